package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
)

// The seal document lives in the store as kms.Doc{Kind: DocKind, ID: DocID}.
const (
	DocKind = "sys"
	DocID   = "root"
)

// KeyLen is the length of the seal key (and of every root key version).
const KeyLen = keyring.RootKeyLen

const (
	formatV1    = 1
	checkLabel  = "kms seal check v1"
	wrapInfo    = "kms seal root v1"
	rootAADBase = "kms root key v"
)

// sealKey holds the seal key. It is not comparable and redacts itself.
type sealKey struct {
	_ [0]func()
	b [KeyLen]byte
}

func newSealKey(b []byte) (*sealKey, error) {
	if len(b) != KeyLen {
		return nil, fmt.Errorf("seal key must be %d bytes, got %d", KeyLen, len(b))
	}
	k := &sealKey{}
	copy(k.b[:], b)
	return k, nil
}

func (k *sealKey) String() string       { return "seal key (redacted)" }
func (k *sealKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// check returns the check value HMAC-SHA256(seal key, "kms seal check v1").
// It identifies the seal key without revealing it (HMAC is a PRF) and lets
// a replica reject a wrong key before loading anything.
func (k *sealKey) check() []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write([]byte(checkLabel))
	return m.Sum(nil)
}

// matches reports in constant time whether check is this key's check value.
func (k *sealKey) matches(check []byte) bool {
	return subtle.ConstantTimeCompare(k.check(), check) == 1
}

// aead returns AES-256-GCM with random nonces under a key derived from the
// seal key for sealing root keys only. Deriving it keeps the seal key's
// three uses apart: HMAC key for the check value, root key version 1 in the
// keyring (where it is itself only an HKDF input), and this wrapping key.
// A handful of root versions is ever sealed, far below GCM's 2^32 limit for
// random nonces.
func (k *sealKey) aead() (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, k.b[:], nil, wrapInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(sub)
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func rootAAD(version int) []byte { return []byte(rootAADBase + strconv.Itoa(version)) }

// sealRoot seals root key version v: nonce (12) | ciphertext | tag (16).
func (k *sealKey) sealRoot(v int, root []byte) ([]byte, error) {
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nil, root, rootAAD(v)), nil
}

// openRoot opens root key version v. Every failure is errCorruptDoc: with a
// verified check value, a blob that does not open is damaged or forged.
func (k *sealKey) openRoot(v int, sealed []byte) ([]byte, error) {
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	root, err := a.Open(nil, nil, sealed, rootAAD(v))
	if err != nil || len(root) != KeyLen {
		clear(root)
		return nil, fmt.Errorf("root key version %d does not open: %w", v, errCorruptDoc)
	}
	return root, nil
}

var errCorruptDoc = errors.New("seal document is corrupt")

// sealDoc is the JSON value of the seal document (see docs/spec/sealing.md).
type sealDoc struct {
	Format int `json:"format"`
	// Check is HMAC-SHA256(seal key, "kms seal check v1").
	Check []byte `json:"check"`
	// Shares and Threshold are set when the seal key was split by Init.
	Shares    int `json:"shares,omitempty"`
	Threshold int `json:"threshold,omitempty"`
	// Current is the root key version every primary key is (or is being
	// rewrapped) under; Target, when set, the version a rotation moves to.
	Current int `json:"current"`
	Target  int `json:"target,omitempty"`
	// Finished is when the last rotation finished; old versions are retired
	// at least Grace after it.
	Finished time.Time `json:"finished,omitzero"`
	// Roots lists the root key versions held, increasing. Version 1 has no
	// Sealed: it is the seal key itself.
	Roots []rootEntry `json:"roots"`
}

type rootEntry struct {
	Version int       `json:"version"`
	Sealed  []byte    `json:"sealed,omitempty"`
	Created time.Time `json:"created"`
}

// active is the version new primary keys are sealed under.
func (d *sealDoc) active() int {
	if d.Target != 0 {
		return d.Target
	}
	return d.Current
}

func (d *sealDoc) maxVersion() int {
	m := d.Current
	for _, r := range d.Roots {
		m = max(m, r.Version)
	}
	return max(m, d.Target)
}

func (d *sealDoc) versions() []int {
	vs := make([]int, len(d.Roots))
	for i, r := range d.Roots {
		vs[i] = r.Version
	}
	return vs
}

func (d *sealDoc) has(v int) bool { return slices.Contains(d.versions(), v) }

func parseDoc(b []byte) (*sealDoc, error) {
	var d sealDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptDoc, err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptDoc, err)
	}
	return &d, nil
}

func (d *sealDoc) validate() error {
	switch {
	case d.Format != formatV1:
		return fmt.Errorf("unknown format %d", d.Format)
	case len(d.Check) != sha256.Size:
		return errors.New("bad check value")
	case d.Threshold < 0 || d.Threshold > d.Shares:
		return errors.New("bad threshold")
	case d.Current < 1 || (d.Target != 0 && d.Target <= d.Current):
		return errors.New("bad current or target version")
	}
	last := 0
	for _, r := range d.Roots {
		if r.Version <= last {
			return errors.New("root versions not increasing")
		}
		last = r.Version
		if (len(r.Sealed) == 0) != (r.Version == 1) {
			return fmt.Errorf("root version %d: sealed key missing or unexpected", r.Version)
		}
	}
	if !d.has(d.Current) || (d.Target != 0 && !d.has(d.Target)) {
		return errors.New("current or target version not among the roots")
	}
	return nil
}

func (d *sealDoc) marshal() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // cannot happen: plain data
	}
	return b
}

// keyring opens every root version of d with the seal key and returns a
// keyring holding them all whose current version is d.active().
func (d *sealDoc) keyring(k *sealKey) (*keyring.Keyring, error) {
	roots := make(map[int][]byte, len(d.Roots))
	defer func() {
		for v, r := range roots {
			if v != 1 {
				clear(r)
			}
		}
	}()
	for _, r := range d.Roots {
		if r.Version == 1 {
			roots[1] = k.b[:]
			continue
		}
		key, err := k.openRoot(r.Version, r.Sealed)
		if err != nil {
			return nil, err
		}
		roots[r.Version] = key
	}
	return keyring.NewMulti(roots, d.active())
}
