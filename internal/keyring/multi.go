package keyring

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// NewMulti returns a keyring holding several root key versions (each
// version ≥ 1 maps to its 32-byte key). New primary keys are sealed under
// current, which must be one of them; primary keys sealed under any held
// version open. NewMulti copies the keys; the caller should zero its own
// copies.
//
// A keyring with several versions exists during a root key rotation
// (package seal): readers keep opening keys under the old version while
// they are rewrapped to the new one.
func NewMulti(roots map[int][]byte, current int) (*Keyring, error) {
	key, ok := roots[current]
	if !ok {
		return nil, fmt.Errorf("current root key version %d is not among the keys", current)
	}
	k, err := New(key, current)
	if err != nil {
		return nil, err
	}
	for v, key := range roots {
		if v == current {
			continue
		}
		if len(key) != RootKeyLen {
			return nil, fmt.Errorf("root key version %d must be %d bytes, got %d", v, RootKeyLen, len(key))
		}
		if v < 1 || v > 1<<31 {
			return nil, fmt.Errorf("root key version %d out of range", v)
		}
		if k.others == nil {
			k.others = make(map[uint32]*[RootKeyLen]byte, len(roots)-1)
		}
		r := new([RootKeyLen]byte)
		copy(r[:], key)
		k.others[uint32(v)] = r
	}
	return k, nil
}

// Versions returns the root key versions held, in increasing order.
func (k *Keyring) Versions() []int {
	vs := []int{int(k.version)}
	for v := range k.others {
		vs = append(vs, int(v))
	}
	slices.Sort(vs)
	return vs
}

// Has reports whether the keyring holds root key version v.
func (k *Keyring) Has(v int) bool {
	return v >= 1 && v <= 1<<31 && k.rootFor(uint32(v)) != nil
}

// Rewrap opens the primary key id sealed in wrapped under root key version
// from and returns it sealed under version to, without the key leaving
// this package. It returns ErrDecrypt if wrapped does not open for id under
// version from (including when wrapped names another version or from is
// not held), and another error if version to is not held.
//
// Rewrap is not an oracle beyond [Keyring.CheckPrimaryKey]: a caller learns
// success or ErrDecrypt, and gets a blob only for a blob that already opens.
func (k *Keyring) Rewrap(wrapped []byte, id PrimaryID, from, to int) ([]byte, error) {
	if !k.Has(to) {
		return nil, fmt.Errorf("root key version %d is not held", to)
	}
	if len(wrapped) < headerLen || !k.Has(from) || binary.BigEndian.Uint32(wrapped[1:5]) != uint32(from) {
		return nil, ErrDecrypt
	}
	pk, err := k.openPrimary(wrapped, id)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	v := uint32(to)
	return seal(k.rootFor(v)[:], v, pk, primaryAAD(id, v))
}

// rootFor returns the root key of version v, or nil if it is not held.
func (k *Keyring) rootFor(v uint32) *[RootKeyLen]byte {
	if v == k.version {
		return &k.root
	}
	return k.others[v]
}
