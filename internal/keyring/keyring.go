// Package keyring is the envelope crypto of kms: a root key seals primary
// keys, a primary key seals data keys. It is a factotum: code outside this
// package never sees the root key or a primary key, only wrapped blobs and
// operations on them. The one exception is [Keyring.OpenDataKey], which
// returns a data key because the BigDL API hands data keys to clients.
//
// # Root key versions
//
// A keyring seals new primary keys under its current root key version and
// opens primary keys under any version it holds ([NewMulti]); a primary key
// blob names its root key version. [Keyring.Rewrap] moves a primary key to
// another version during a root key rotation (package seal).
//
// # Wrapped key format
//
// Every sealed key is self-describing (see docs/spec/wrapped-key.md):
//
//	format (1 byte, 0x01) | parent version (uint32 BE) | nonce (24 bytes) | AES-256-GCM ciphertext and tag
//
// The AES-256-GCM key for each blob is derived with HKDF-SHA256 from the
// parent key and the first 12 nonce bytes, and the last 12 nonce bytes are
// the GCM nonce. Deriving a fresh subkey per blob (as kes does) removes
// the 2^32-messages-per-key limit of random 96-bit GCM nonces: a primary key
// can seal any number of data keys. The associated data binds the format,
// the kind of key, its owner, its names, its version and its parent's
// version, so a blob copied to another row does not open.
//
// # Security limits
//
// Go cannot reliably erase memory; zeroing key bytes here is best effort.
// Every failed open returns [ErrDecrypt] with no detail about which check
// failed, so the API cannot become a padding- or format-oracle.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// Sizes of the keys in the hierarchy.
const (
	RootKeyLen    = 32 // AES-256
	PrimaryKeyLen = 32 // AES-256
	DataKeyLen    = 16 // BigDL data keys are 16 bytes
)

const (
	formatV1   = 0x01
	nonceLen   = 24
	headerLen  = 1 + 4 + nonceLen
	tagLen     = 16
	labelPK    = "kms primary key v1"
	labelDK    = "kms data key v1"
	hkdfInfoV1 = "kms wrap v1"
)

// ErrDecrypt is returned for every wrapped blob that does not open: a bad
// tag, the wrong associated data, a wrong parent key, a malformed blob or an
// unknown format. Callers cannot tell these apart on purpose.
var ErrDecrypt = errors.New("decryption failed")

// Keyring holds the current version of the root key, which seals new
// primary keys, and possibly other versions that still open (and rewrap)
// primary keys sealed under them, during and after a root key rotation.
// A Keyring never changes once built: rotation builds a new one
// (clone-on-write), so it is safe for concurrent use. The zero value is
// unusable; build one with [New] or [NewMulti].
type Keyring struct {
	_       [0]func() // not comparable
	version uint32
	root    [RootKeyLen]byte
	// others holds the versions other than the current one; nil when the
	// keyring holds one version.
	others map[uint32]*[RootKeyLen]byte
}

// PrimaryID names one version of a primary key. Every field is bound into
// the associated data of the blob sealed for it.
type PrimaryID struct {
	Owner   string
	Name    string
	Version int
}

// DataID names a data key sealed under one version of a primary key.
type DataID struct {
	Primary PrimaryID
	Name    string
}

// New returns a keyring for the given root key and its version (≥ 1). It
// copies key; the caller should zero its own copy.
func New(key []byte, version int) (*Keyring, error) {
	if len(key) != RootKeyLen {
		return nil, fmt.Errorf("root key must be %d bytes, got %d", RootKeyLen, len(key))
	}
	if version < 1 || version > 1<<31 {
		return nil, fmt.Errorf("root key version %d out of range", version)
	}
	k := &Keyring{version: uint32(version)}
	copy(k.root[:], key)
	return k, nil
}

// Version is the current root key version: the one new primary keys are
// sealed under.
func (k *Keyring) Version() int { return int(k.version) }

// String redacts the key.
func (k *Keyring) String() string { return fmt.Sprintf("keyring(root v%d, redacted)", k.version) }

// LogValue redacts the key in structured logs.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Equal reports whether two keyrings hold the same current version and the
// same root key versions, comparing key bytes in constant time.
func (k *Keyring) Equal(o *Keyring) bool {
	if k.version != o.version || len(k.others) != len(o.others) {
		return false
	}
	eq := subtle.ConstantTimeCompare(k.root[:], o.root[:])
	for v, r := range k.others {
		or, ok := o.others[v]
		if !ok {
			return false
		}
		eq &= subtle.ConstantTimeCompare(r[:], or[:])
	}
	return eq == 1
}

// NewPrimaryKey generates a random AES-256 primary key for id and returns it
// sealed by the root key. The plaintext never leaves this package.
func (k *Keyring) NewPrimaryKey(id PrimaryID) ([]byte, error) {
	var pk [PrimaryKeyLen]byte
	defer clear(pk[:])
	rand.Read(pk[:])
	return seal(k.root[:], k.version, pk[:], primaryAAD(id, k.version))
}

// NewDataKey generates a random 16-byte data key for id and returns it
// sealed by the primary key that wrappedPrimary holds (sealed for id.Primary
// by this root key).
func (k *Keyring) NewDataKey(wrappedPrimary []byte, id DataID) ([]byte, error) {
	pk, err := k.openPrimary(wrappedPrimary, id.Primary)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	var dk [DataKeyLen]byte
	defer clear(dk[:])
	rand.Read(dk[:])
	pv := uint32(id.Primary.Version)
	return seal(pk, pv, dk[:], dataAAD(id, pv))
}

// OpenDataKey returns the plaintext data key sealed in wrappedData, opening
// the primary key in wrappedPrimary on the way. It returns ErrDecrypt if
// either blob does not open for the given ids.
//
// This is the one operation that returns key material, as the BigDL API
// requires. It is not an oracle: a caller learns only success or ErrDecrypt
// for blobs it cannot forge.
func (k *Keyring) OpenDataKey(wrappedPrimary, wrappedData []byte, id DataID) ([]byte, error) {
	pk, err := k.openPrimary(wrappedPrimary, id.Primary)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	pv := uint32(id.Primary.Version)
	dk, err := open(pk, pv, wrappedData, dataAAD(id, pv))
	if err != nil {
		return nil, err
	}
	if len(dk) != DataKeyLen {
		clear(dk)
		return nil, ErrDecrypt
	}
	return dk, nil
}

// ExportPrimaryKey returns the plaintext primary key sealed in wrapped for
// id.
//
// SECURITY: its only caller is attested release of a key created
// exportable, after the attestation layer verified a fresh quote against
// the key's release policy; the plaintext leaves the process only
// HPKE-sealed to the attested workload. Every other path keeps primary keys
// inside this package.
func (k *Keyring) ExportPrimaryKey(wrapped []byte, id PrimaryID) ([]byte, error) {
	return k.openPrimary(wrapped, id)
}

// CheckPrimaryKey reports whether wrappedPrimary opens for id under this
// root key, without revealing the key.
func (k *Keyring) CheckPrimaryKey(wrappedPrimary []byte, id PrimaryID) error {
	pk, err := k.openPrimary(wrappedPrimary, id)
	clear(pk)
	return err
}

// openPrimary opens a primary key sealed under any root key version held;
// the version is the one the blob names (and binds in its AAD).
func (k *Keyring) openPrimary(wrapped []byte, id PrimaryID) ([]byte, error) {
	if len(wrapped) < headerLen {
		return nil, ErrDecrypt
	}
	v := binary.BigEndian.Uint32(wrapped[1:5])
	root := k.rootFor(v)
	if root == nil {
		return nil, ErrDecrypt
	}
	pk, err := open(root[:], v, wrapped, primaryAAD(id, v))
	if err != nil {
		return nil, err
	}
	if len(pk) != PrimaryKeyLen {
		clear(pk)
		return nil, ErrDecrypt
	}
	return pk, nil
}

// seal encrypts plaintext under a subkey of parent (see the package doc).
func seal(parent []byte, parentVersion uint32, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, headerLen, headerLen+len(plaintext)+tagLen)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], parentVersion)
	nonce := out[5:headerLen]
	rand.Read(nonce)
	aead, err := subkeyAEAD(parent, nonce[:12])
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce[12:], plaintext, aad), nil
}

func open(parent []byte, parentVersion uint32, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < headerLen+tagLen || wrapped[0] != formatV1 ||
		binary.BigEndian.Uint32(wrapped[1:5]) != parentVersion {
		return nil, ErrDecrypt
	}
	nonce := wrapped[5:headerLen]
	aead, err := subkeyAEAD(parent, nonce[:12])
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, nonce[12:], wrapped[headerLen:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func subkeyAEAD(parent, salt []byte) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, parent, salt, hkdfInfoV1, 32)
	if err != nil {
		return nil, err
	}
	defer clear(sub)
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// primaryAAD binds the kind, owner, name and version of a primary key and
// the version of the root key that seals it.
func primaryAAD(id PrimaryID, rootVersion uint32) []byte {
	b := appendField([]byte{formatV1}, labelPK)
	b = appendField(b, id.Owner)
	b = appendField(b, id.Name)
	b = binary.BigEndian.AppendUint32(b, uint32(id.Version))
	return binary.BigEndian.AppendUint32(b, rootVersion)
}

// dataAAD binds the kind, owner, primary key name, data key name and the
// version of the primary key that seals it.
func dataAAD(id DataID, primaryVersion uint32) []byte {
	b := appendField([]byte{formatV1}, labelDK)
	b = appendField(b, id.Primary.Owner)
	b = appendField(b, id.Primary.Name)
	b = appendField(b, id.Name)
	return binary.BigEndian.AppendUint32(b, primaryVersion)
}

// appendField appends a length-prefixed string, so that ("ab","c") and
// ("a","bc") give different associated data.
func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
