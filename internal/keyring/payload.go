package keyring

import (
	"encoding/binary"
	"sort"
)

// Ciphertext format of the native API (docs/spec/ciphertext.md):
//
//	format (1 byte, 0x4B 'K') | key version (uint32 BE) | nonce (24 bytes) | AES-256-GCM ciphertext and tag
//
// The key is an HKDF subkey of the primary key version, exactly as for
// wrapped keys; only the format byte and the associated data differ, so a
// wrapped key blob can never be passed off as a ciphertext or back.
const (
	formatCiphertextV1 = 0x4B
	labelCiphertext    = "kms ciphertext v1"
	// MaxContextPairs bounds an encryption context.
	MaxContextPairs = 64
)

// CiphertextVersion returns the primary key version a native ciphertext was
// made with, or ErrDecrypt if it is not one.
func CiphertextVersion(ct []byte) (int, error) {
	if len(ct) < headerLen+tagLen || ct[0] != formatCiphertextV1 {
		return 0, ErrDecrypt
	}
	return int(binary.BigEndian.Uint32(ct[1:5])), nil
}

// Encrypt seals plaintext under the primary key in wrappedPrimary (version
// id.Version), binding the owner, key name, version and the encryption
// context as associated data.
func (k *Keyring) Encrypt(wrappedPrimary []byte, id PrimaryID, plaintext []byte, context map[string]string) ([]byte, error) {
	pk, err := k.openPrimary(wrappedPrimary, id)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	ct, err := seal(pk, uint32(id.Version), plaintext, ciphertextAAD(id, context))
	if err != nil {
		return nil, err
	}
	ct[0] = formatCiphertextV1
	return ct, nil
}

// Decrypt opens a ciphertext made by Encrypt for the same id and context.
// Every failure is ErrDecrypt: the caller learns nothing about which check
// failed (wrong key, version, context or a modified ciphertext), so the
// operation is not an oracle.
func (k *Keyring) Decrypt(wrappedPrimary []byte, id PrimaryID, ciphertext []byte, context map[string]string) ([]byte, error) {
	v, err := CiphertextVersion(ciphertext)
	if err != nil || v != id.Version {
		return nil, ErrDecrypt
	}
	pk, err := k.openPrimary(wrappedPrimary, id)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	// open checks the format byte of wrapped keys; present the sealed part
	// under that format without modifying the caller's slice.
	blob := make([]byte, len(ciphertext))
	copy(blob, ciphertext)
	blob[0] = formatV1
	return open(pk, uint32(id.Version), blob, ciphertextAAD(id, context))
}

// ciphertextAAD binds the format, owner, key name, version and the context,
// whose pairs are sorted by key and length-prefixed.
func ciphertextAAD(id PrimaryID, context map[string]string) []byte {
	b := appendField([]byte{formatCiphertextV1}, labelCiphertext)
	b = appendField(b, id.Owner)
	b = appendField(b, id.Name)
	b = binary.BigEndian.AppendUint32(b, uint32(id.Version))
	keys := make([]string, 0, len(context))
	for key := range context {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, key := range keys {
		b = appendField(b, key)
		b = appendField(b, context[key])
	}
	return b
}
