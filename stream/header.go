package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"
)

// Constants of format version 1.
const (
	// Magic starts every file; callers can sniff it to tell this format
	// from BigDL's.
	Magic = "KMSSTRM"
	// Version is the format version this package writes and reads.
	Version = 1

	// DefaultChunkSize is the plaintext chunk size writers use by default.
	DefaultChunkSize = 64 << 10
	// MinChunkSize and MaxChunkSize bound the chunk size, a power of two.
	MinChunkSize = 1 << minShift
	MaxChunkSize = 1 << maxShift

	// SaltSize is the length of the per-file salt.
	SaltSize = 32
	// MACSize is the length of the header MAC.
	MACSize = 32
	// TagSize is the GCM tag that each chunk carries.
	TagSize = 16
	// MaxKeyRefLen is the longest key reference body.
	MaxKeyRefLen = 4096

	minShift   = 6
	maxShift   = 24
	prefixSize = len(Magic) + 1 + 1 + 1 + 2 // magic, version, shift, ref type, ref length
)

// Errors returned by this package.
var (
	// ErrFormat reports a header that does not parse: not this format, an
	// unsupported version, or a field out of range. No key is needed to
	// detect it.
	ErrFormat = errors.New("stream: malformed header")
	// ErrAuth reports a stream that fails authentication: a wrong key, a
	// modified header, or a damaged, truncated, reordered or extended
	// payload.
	ErrAuth = errors.New("stream: authentication failed (wrong key, or modified or truncated file)")
	// ErrKey reports a file key that is not 16 or 32 bytes long.
	ErrKey = errors.New("stream: file key must be 16 or 32 bytes")
)

// Header is a parsed stream header. The fields are authenticated only once
// a [Reader] has checked MAC with the file key.
type Header struct {
	// ChunkSize is the plaintext chunk size, a power of two.
	ChunkSize int
	// KeyRef says where to find the file key.
	KeyRef KeyRef
	// Salt makes the derived keys unique to this file.
	Salt [SaltSize]byte
	// MAC is the header MAC as read or written.
	MAC [MACSize]byte
}

// Len returns the encoded length of the header.
func (h *Header) Len() int { return prefixSize + h.KeyRef.bodyLen() + SaltSize + MACSize }

// MarshalBinary returns the header's encoding, including MAC as it stands.
// It returns an error wrapping [ErrFormat] if a field is out of range.
func (h *Header) MarshalBinary() ([]byte, error) {
	b, err := h.signedBytes()
	if err != nil {
		return nil, err
	}
	return append(b, h.MAC[:]...), nil
}

// signedBytes encodes the header up to, not including, the MAC.
func (h *Header) signedBytes() ([]byte, error) {
	shift, err := chunkShift(h.ChunkSize)
	if err != nil {
		return nil, err
	}
	body, err := h.KeyRef.marshal()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, h.Len())
	b = append(b, Magic...)
	b = append(b, Version, shift, byte(h.KeyRef.Type))
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	b = append(b, body...)
	return append(b, h.Salt[:]...), nil
}

// chunkShift returns log2 of a valid chunk size.
func chunkShift(size int) (byte, error) {
	if size < MinChunkSize || size > MaxChunkSize || size&(size-1) != 0 {
		return 0, fmt.Errorf("%w: chunk size %d is not a power of two from %d to %d", ErrFormat, size, MinChunkSize, MaxChunkSize)
	}
	return byte(bits.TrailingZeros(uint(size))), nil
}

// ReadHeader reads one header from r and checks its syntax, leaving r at
// the first chunk. It does not check the MAC, which needs the key; a
// [Reader] does. It returns an error wrapping [ErrFormat] for a header that
// does not parse or ends early, or an error from r.
func ReadHeader(r io.Reader) (*Header, error) {
	var pre [prefixSize]byte
	if err := readFull(r, pre[:]); err != nil {
		return nil, err
	}
	if string(pre[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: not a kms stream file", ErrFormat)
	}
	pre2 := pre[len(Magic):]
	if pre2[0] != Version {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrFormat, pre2[0])
	}
	if pre2[1] < minShift || pre2[1] > maxShift {
		return nil, fmt.Errorf("%w: chunk size 2^%d out of range", ErrFormat, pre2[1])
	}
	n := int(binary.BigEndian.Uint16(pre2[3:5]))
	if n > MaxKeyRefLen {
		return nil, fmt.Errorf("%w: key reference of %d bytes", ErrFormat, n)
	}
	rest := make([]byte, n+SaltSize+MACSize)
	if err := readFull(r, rest); err != nil {
		return nil, err
	}
	ref, err := parseKeyRef(KeyRefType(pre2[2]), rest[:n])
	if err != nil {
		return nil, err
	}
	h := &Header{ChunkSize: 1 << pre2[1], KeyRef: ref}
	copy(h.Salt[:], rest[n:])
	copy(h.MAC[:], rest[n+SaltSize:])
	return h, nil
}

// readFull is io.ReadFull with an early end reported as ErrFormat.
func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside the header", ErrFormat)
	}
	return err
}

// validName reports whether s may appear in a KMS key reference.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
