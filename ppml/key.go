package ppml

import (
	"encoding/base64"
	"fmt"
)

// MinKeyLen is the shortest data key string accepted for the MAC'd formats:
// the 24 base64 characters of a 16-byte BigDL data key. BigDL itself takes
// 16, but then the AES key would be all zero bytes.
const MinKeyLen = 24

// KeyFunc returns the data key for a file: the exact string the KMS
// returned (callers reading a key file should trim its newline). It receives the encryptedDataKey
// from the file's header (or from the directory's .meta file when the header
// has none), so it can fetch the key from the KMS by that name. Errors it
// returns are passed through wrapped.
type KeyFunc func(encryptedDataKey string) (key string, err error)

// StaticKey returns a KeyFunc that ignores the name and returns key, for
// offline use with a local data key.
func StaticKey(key string) KeyFunc {
	return func(string) (string, error) { return key, nil }
}

// cipherKeys holds what one file operation needs: the AES key (16, 24 or
// 32 bytes) for package cbc, and the HMAC key, nil for nativeaescbc.
type cipherKeys struct {
	aes []byte
	mac []byte
}

// deriveKeys turns the data key string into the keys of format f the way
// BigDLEncrypt.init and BigDLAESCBCEncrypt.init do. Errors wrap [ErrKey] and
// never contain key material.
func deriveKeys(f Format, key string) (cipherKeys, error) {
	if f == FormatNativeAESCBC {
		return nativeKeys(key)
	}
	if len(key) < MinKeyLen {
		return cipherKeys{}, fmt.Errorf("%w: data key is %d characters, want at least %d", ErrKey, len(key), MinKeyLen)
	}
	// Java: Arrays.copyOfRange(secret, 0, 16) and (secret, 16, 32), which
	// pads with zero bytes past the end of the string.
	aesKey := make([]byte, 16)
	copy(aesKey, key[16:min(32, len(key))])
	return cipherKeys{aes: aesKey, mac: []byte(key[:16])}, nil
}

// nativeKeys decodes the base64 data key (Java's decoder accepts it with or
// without padding) into an AES-128, -192 or -256 key.
func nativeKeys(key string) (cipherKeys, error) {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(key)
	}
	if err != nil {
		return cipherKeys{}, fmt.Errorf("%w: nativeaescbc needs a base64 data key", ErrKey)
	}
	switch len(raw) {
	case 16, 24, 32:
		return cipherKeys{aes: raw}, nil
	}
	return cipherKeys{}, fmt.Errorf("%w: nativeaescbc key decodes to %d bytes, want 16, 24 or 32", ErrKey, len(raw))
}
