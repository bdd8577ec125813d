package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// HKDF info strings, section 4 of the spec. They separate the two keys
// derived from one file key and salt, and name the format version.
const (
	labelHeader  = "kms stream v1 header"
	labelPayload = "kms stream v1 payload"
)

// KeyFunc returns the file key for a stream whose header has reference
// ref, such as a data key fetched from the KMS by name. Errors it returns
// are passed through wrapped.
type KeyFunc func(ref KeyRef) ([]byte, error)

// StaticKey returns a KeyFunc that returns key whatever the reference.
func StaticKey(key []byte) KeyFunc {
	return func(KeyRef) ([]byte, error) { return key, nil }
}

// fileKeys derives the header MAC key and the payload AEAD from the file
// key and the salt.
func fileKeys(key []byte, salt *[SaltSize]byte) (macKey []byte, aead cipher.AEAD, err error) {
	if len(key) != 16 && len(key) != 32 {
		return nil, nil, ErrKey
	}
	macKey, err = hkdf.Key(sha256.New, key, salt[:], labelHeader, 32)
	if err != nil {
		return nil, nil, err
	}
	pk, err := hkdf.Key(sha256.New, key, salt[:], labelPayload, 32)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(pk)
	if err != nil {
		return nil, nil, err
	}
	aead, err = cipher.NewGCM(block)
	return macKey, aead, err
}

// headerMAC computes the MAC over the encoded header without its MAC.
func headerMAC(macKey, signed []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(signed)
	return m.Sum(nil)
}

// chunkNonce sets n to the nonce of chunk i: an 88-bit big-endian counter
// (whose top 24 bits stay zero here) and the last-chunk flag.
func chunkNonce(n *[12]byte, i uint64, last bool) {
	*n = [12]byte{}
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
}
