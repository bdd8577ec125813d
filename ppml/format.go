package ppml

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Sizes of the PPML file layouts.
const (
	// HeaderSize is the header length of [FormatCurrent] files.
	HeaderSize = 400
	// LegacyHeaderSize is the header length of [FormatLegacy] files.
	LegacyHeaderSize = 25
	// IVSize is the AES-CBC IV length, also the nativeaescbc header length.
	IVSize = 16
	// TagSize is the HMAC-SHA256 tag length at the end of MAC'd files.
	TagSize = 32
	// MaxEncryptedDataKeyLen is the longest encryptedDataKey that fits the
	// 400-byte header (BigDL's writer overflows past it).
	MaxEncryptedDataKeyLen = HeaderSize - 4 - 4 - IVSize

	legacyVersion = 0x80
	headerPad     = 0x80
)

// Errors returned by this package. Parse failures wrap [ErrFormat] (and
// [ErrTruncated], which also matches ErrFormat); every failed cryptographic
// check (tag, padding) returns [ErrAuth] and says nothing about which one.
var (
	// ErrFormat reports a header that is not a PPML header of the expected
	// format, or a body whose length cannot be a ciphertext.
	ErrFormat = errors.New("ppml: malformed file")
	// ErrTruncated reports a file that ends before its header, first
	// ciphertext block or tag is complete. errors.Is(ErrTruncated, ErrFormat)
	// is true.
	ErrTruncated error = truncatedError{}
	// ErrAuth reports a file whose HMAC tag or padding does not verify: it was
	// modified, or the key is wrong.
	ErrAuth = errors.New("ppml: authentication failed (wrong key or modified file)")
	// ErrKey reports a data key that cannot be used with the format.
	ErrKey = errors.New("ppml: invalid data key")
)

type truncatedError struct{}

func (truncatedError) Error() string        { return "ppml: truncated file" }
func (truncatedError) Is(target error) bool { return target == ErrFormat }

// Format is a PPML file layout.
type Format int

// The PPML file layouts. The zero value is FormatAuto.
const (
	// FormatAuto detects FormatCurrent or FormatLegacy from the first byte.
	// It never selects FormatNativeAESCBC, whose header is a random IV.
	FormatAuto Format = iota
	// FormatCurrent is the 400-byte header format of BigDL ≥ 2.3.
	FormatCurrent
	// FormatLegacy is the 25-byte header format of BigDL ≤ 2.2.
	FormatLegacy
	// FormatNativeAESCBC is BigDL's "nativeaescbc": IV, ciphertext, no MAC.
	FormatNativeAESCBC
)

var formatNames = [...]string{"auto", "current", "legacy", "nativeaescbc"}

// String returns the name that [ParseFormat] accepts.
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// ParseFormat returns the format named s: "auto", "current" (or BigDL's name
// "common"), "legacy" or "nativeaescbc", in any case. It returns an error
// wrapping [ErrFormat] for other names.
func ParseFormat(s string) (Format, error) {
	s = strings.ToLower(s)
	if s == "common" {
		return FormatCurrent, nil
	}
	for i, n := range formatNames {
		if s == n {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown format %q (want auto, current, legacy or nativeaescbc)", ErrFormat, s)
}

func (f Format) hasMAC() bool { return f == FormatCurrent || f == FormatLegacy }

// Header is the parsed header of a PPML file. It is not authenticated: read
// it to find which data key to fetch, then let decryption verify the file.
type Header struct {
	// Format is the file's layout; never FormatAuto.
	Format Format
	// EncryptedDataKey names the data key (BigDL KMS) or holds its
	// ciphertext (eHSM). Empty for FormatLegacy and FormatNativeAESCBC.
	EncryptedDataKey string
	// IV is the AES-CBC initialisation vector.
	IV [IVSize]byte
	// Timestamp is the writer's clock in unix seconds (FormatLegacy only).
	Timestamp int64
}

// Len returns the encoded length of the header in bytes.
func (h *Header) Len() int {
	switch h.Format {
	case FormatCurrent:
		return HeaderSize
	case FormatLegacy:
		return LegacyHeaderSize
	default:
		return IVSize
	}
}

// MarshalBinary encodes the header as it appears at the start of a file.
// It returns an error wrapping [ErrFormat] if the fields do not fit.
func (h *Header) MarshalBinary() ([]byte, error) {
	switch h.Format {
	case FormatCurrent:
		return h.marshalCurrent()
	case FormatLegacy:
		b := make([]byte, LegacyHeaderSize)
		b[0] = legacyVersion
		binary.BigEndian.PutUint64(b[1:9], uint64(h.Timestamp))
		copy(b[9:], h.IV[:])
		return b, nil
	case FormatNativeAESCBC:
		return append([]byte(nil), h.IV[:]...), nil
	}
	return nil, fmt.Errorf("%w: cannot encode a header of format %v", ErrFormat, h.Format)
}

func (h *Header) marshalCurrent() ([]byte, error) {
	edk := h.EncryptedDataKey
	if err := checkEncryptedDataKey(edk); err != nil {
		return nil, err
	}
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(b[0:4], uint32(len(edk)))
	binary.BigEndian.PutUint32(b[4:8], IVSize)
	n := 8 + copy(b[8:], edk)
	n += copy(b[n:], h.IV[:])
	for i := n; i < HeaderSize; i++ {
		b[i] = headerPad
	}
	return b, nil
}

func checkEncryptedDataKey(edk string) error {
	if len(edk) > MaxEncryptedDataKeyLen {
		return fmt.Errorf("%w: encryptedDataKey is %d bytes, more than %d", ErrFormat, len(edk), MaxEncryptedDataKeyLen)
	}
	if !utf8.ValidString(edk) {
		return fmt.Errorf("%w: encryptedDataKey is not valid UTF-8", ErrFormat)
	}
	return nil
}

// ReadHeader reads exactly one header of format f from r, leaving r at the
// first ciphertext byte. With [FormatAuto] it reads one byte to tell
// FormatLegacy (0x80) from FormatCurrent (0x00). It returns an error wrapping
// [ErrTruncated] if r ends early and [ErrFormat] if the header is malformed;
// other errors come from r.
func ReadHeader(r io.Reader, f Format) (*Header, error) {
	var buf [HeaderSize]byte
	n := 0 // bytes consumed by detection
	if f == FormatAuto {
		if err := readFull(r, buf[:1]); err != nil {
			return nil, err
		}
		n = 1
		switch buf[0] {
		case legacyVersion:
			f = FormatLegacy
		case 0x00:
			f = FormatCurrent
		default:
			return nil, fmt.Errorf("%w: unrecognised header (name the nativeaescbc format explicitly)", ErrFormat)
		}
	}
	if f < FormatCurrent || f > FormatNativeAESCBC {
		return nil, fmt.Errorf("%w: unknown format %v", ErrFormat, f)
	}
	h := &Header{Format: f}
	b := buf[:h.Len()]
	if err := readFull(r, b[n:]); err != nil {
		return nil, err
	}
	if err := h.parse(b); err != nil {
		return nil, err
	}
	return h, nil
}

// parse decodes b, which holds exactly h.Len() bytes, into h.
func (h *Header) parse(b []byte) error {
	switch h.Format {
	case FormatCurrent:
		return h.parseCurrent(b)
	case FormatLegacy:
		if b[0] != legacyVersion {
			return fmt.Errorf("%w: legacy header does not start with 0x80", ErrFormat)
		}
		h.Timestamp = int64(binary.BigEndian.Uint64(b[1:9]))
		copy(h.IV[:], b[9:])
	default:
		copy(h.IV[:], b)
	}
	return nil
}

// parseCurrent is strict: BigDL writes exactly one encoding of each header,
// and refusing others catches damaged headers and non-PPML files early.
func (h *Header) parseCurrent(b []byte) error {
	l := binary.BigEndian.Uint32(b[0:4])
	if l > MaxEncryptedDataKeyLen {
		return fmt.Errorf("%w: encryptedDataKey length %d does not fit the header", ErrFormat, l)
	}
	if iv := binary.BigEndian.Uint32(b[4:8]); iv != IVSize {
		return fmt.Errorf("%w: IV length %d, want %d", ErrFormat, iv, IVSize)
	}
	end := 8 + int(l)
	copy(h.IV[:], b[end:end+IVSize])
	for _, c := range b[end+IVSize:] {
		if c != headerPad {
			return fmt.Errorf("%w: header padding is not 0x80", ErrFormat)
		}
	}
	h.EncryptedDataKey = string(b[8:end])
	return checkEncryptedDataKey(h.EncryptedDataKey)
}

// readFull is io.ReadFull with a short read reported as ErrTruncated.
func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// ReadHeaderFile reads the header of the file at path; see [ReadHeader].
func ReadHeaderFile(path string, f Format) (*Header, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return ReadHeader(fh, f)
}
