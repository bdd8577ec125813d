// Package auth authenticates BigDL users by name and token.
//
// Tokens are stored only as salted argon2id hashes. Verifying one costs tens
// of milliseconds on purpose, so the hot path checks a bounded in-memory
// cache of recently verified credentials first. The cache is keyed by an
// HMAC of the user name and token under a key that lives only in this
// process: the cache holds neither tokens nor anything that can be tested
// offline against guesses. Repeated failures are throttled per user and per
// client address.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: the OWASP minimum recommendation (19 MiB, 2 passes,
// 1 lane). They are recorded in every hash, so they can be raised later
// without breaking stored users.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
	// MaxTokenLen bounds the tokens accepted, so hashing cannot be abused.
	MaxTokenLen = 512
)

var errBadHash = errors.New("malformed token hash")

// HashToken returns an encoded argon2id hash of token with a random salt,
// in the PHC string format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashToken(token string) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(token), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// VerifyToken reports whether token matches the encoded hash, comparing in
// constant time. It returns an error only for a malformed hash.
func VerifyToken(encoded, token string) (bool, error) {
	p, salt, sum, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(token), salt, p.time, p.memory, p.threads, uint32(len(sum)))
	return subtle.ConstantTimeCompare(got, sum) == 1, nil
}

type argonParams struct {
	memory, time uint32
	threads      uint8
}

func parseHash(encoded string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Refuse absurd parameters so a corrupted row cannot exhaust memory.
	if p.memory < 8 || p.memory > 1<<20 || p.time < 1 || p.time > 16 || p.threads < 1 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	sum, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(sum) < 16 || len(sum) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, sum, nil
}
