package stream

import (
	"fmt"
)

// KeyRefType says what a [KeyRef] holds.
type KeyRefType uint8

// The key reference types of format version 1.
const (
	// KeyRefNone: the key is known out of band, such as a local key file.
	KeyRefNone KeyRefType = 0x00
	// KeyRefKMS: the key is a data key in the KMS, named by PrimaryKey and
	// DataKey.
	KeyRefKMS KeyRefType = 0x01
	// KeyRefWrapped: the key is Wrapped, sealed by a KMS or another key.
	KeyRefWrapped KeyRefType = 0x02
)

// KeyRef tells a reader where to get the file key. It is stored in the
// header in clear text (so KMS key names are visible) and covered by the
// header MAC.
type KeyRef struct {
	Type KeyRefType
	// PrimaryKey and DataKey name the key for KeyRefKMS: 1 to 255 bytes
	// of UTF-8 each, without control characters.
	PrimaryKey, DataKey string
	// Wrapped is the wrapped key for KeyRefWrapped, 1 to MaxKeyRefLen bytes.
	Wrapped []byte
}

// KMSRef returns a reference to the KMS data key dataKey under primaryKey.
func KMSRef(primaryKey, dataKey string) KeyRef {
	return KeyRef{Type: KeyRefKMS, PrimaryKey: primaryKey, DataKey: dataKey}
}

// WrappedRef returns a reference holding a wrapped key.
func WrappedRef(wrapped []byte) KeyRef {
	return KeyRef{Type: KeyRefWrapped, Wrapped: wrapped}
}

// String describes the reference without the wrapped bytes.
func (r KeyRef) String() string {
	switch r.Type {
	case KeyRefNone:
		return "none"
	case KeyRefKMS:
		return fmt.Sprintf("kms primary key %q data key %q", r.PrimaryKey, r.DataKey)
	case KeyRefWrapped:
		return fmt.Sprintf("wrapped key (%d bytes)", len(r.Wrapped))
	}
	return fmt.Sprintf("KeyRefType(%d)", r.Type)
}

func (r KeyRef) bodyLen() int {
	switch r.Type {
	case KeyRefKMS:
		return 2 + len(r.PrimaryKey) + len(r.DataKey)
	case KeyRefWrapped:
		return len(r.Wrapped)
	}
	return 0
}

// marshal encodes the body of the reference, checking its fields.
func (r KeyRef) marshal() ([]byte, error) {
	switch r.Type {
	case KeyRefNone:
		if r.PrimaryKey != "" || r.DataKey != "" || r.Wrapped != nil {
			return nil, fmt.Errorf("%w: a key reference of type none has fields set", ErrFormat)
		}
		return nil, nil
	case KeyRefKMS:
		if !validName(r.PrimaryKey) || !validName(r.DataKey) || r.Wrapped != nil {
			return nil, fmt.Errorf("%w: KMS key names must be 1 to 255 bytes of printable UTF-8", ErrFormat)
		}
		b := append([]byte{byte(len(r.PrimaryKey))}, r.PrimaryKey...)
		b = append(b, byte(len(r.DataKey)))
		return append(b, r.DataKey...), nil
	case KeyRefWrapped:
		if len(r.Wrapped) == 0 || len(r.Wrapped) > MaxKeyRefLen || r.PrimaryKey != "" || r.DataKey != "" {
			return nil, fmt.Errorf("%w: a wrapped key must be 1 to %d bytes", ErrFormat, MaxKeyRefLen)
		}
		return append([]byte(nil), r.Wrapped...), nil
	}
	return nil, fmt.Errorf("%w: unknown key reference type %d", ErrFormat, r.Type)
}

// parseKeyRef decodes a reference body; it accepts exactly what marshal
// produces.
func parseKeyRef(t KeyRefType, body []byte) (KeyRef, error) {
	r := KeyRef{Type: t}
	switch t {
	case KeyRefNone:
		if len(body) != 0 {
			return KeyRef{}, fmt.Errorf("%w: a key reference of type none has a body", ErrFormat)
		}
	case KeyRefWrapped:
		r.Wrapped = append([]byte(nil), body...)
	case KeyRefKMS:
		if len(body) < 2 || int(body[0])+2 > len(body) {
			return KeyRef{}, fmt.Errorf("%w: KMS key reference is malformed", ErrFormat)
		}
		p := int(body[0])
		r.PrimaryKey = string(body[1 : 1+p])
		if int(body[1+p]) != len(body)-2-p {
			return KeyRef{}, fmt.Errorf("%w: KMS key reference is malformed", ErrFormat)
		}
		r.DataKey = string(body[2+p:])
	}
	if _, err := r.marshal(); err != nil {
		return KeyRef{}, err
	}
	return r, nil
}
