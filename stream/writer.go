package stream

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
)

// Options tune a [Writer]. The zero value (or a nil *Options) is right for
// almost every use.
type Options struct {
	// ChunkSize is the plaintext chunk size: a power of two from
	// MinChunkSize to MaxChunkSize. Zero means DefaultChunkSize.
	ChunkSize int
	// Rand is the source of the salt. Nil means crypto/rand. Set it only
	// to generate test vectors: a repeated salt repeats the payload key.
	Rand io.Reader
}

// batchSize is how much sealed data a Writer collects before writing it:
// fewer, larger writes are much cheaper than one write per 64 KiB chunk.
const batchSize = 1 << 20

// Writer encrypts what is written to it into a stream. [NewWriter] writes
// the header; sealed chunks are written in batches of about 1 MiB, and the
// rest, ending with the last chunk, in Close. A Writer is not safe for
// concurrent use.
type Writer struct {
	dst  io.Writer
	aead cipher.AEAD
	cs   int
	// buf holds sealed chunks in buf[:off], then the pending plaintext in
	// buf[off:off+n]. There is always room to seal a whole chunk in place
	// at off, and so for one byte of look-ahead after it.
	buf   []byte
	off   int
	n     int
	ctr   uint64
	nonce [12]byte
	err   error // sticky: after a failure, or errClosed after Close
}

var errClosed = errors.New("stream: write to a closed Writer")

// NewWriter writes a header for key and ref to dst and returns a Writer for
// the payload. key is the 16- or 32-byte file key. It returns [ErrKey] for
// a key of another length, an error wrapping [ErrFormat] for an invalid ref
// or chunk size, and errors from dst and the random source.
func NewWriter(dst io.Writer, key []byte, ref KeyRef, opts *Options) (*Writer, error) {
	if opts == nil {
		opts = &Options{}
	}
	h := &Header{ChunkSize: opts.ChunkSize, KeyRef: ref}
	if h.ChunkSize == 0 {
		h.ChunkSize = DefaultChunkSize
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, h.Salt[:]); err != nil {
		return nil, fmt.Errorf("stream: read random salt: %w", err)
	}
	macKey, aead, err := fileKeys(key, &h.Salt)
	if err != nil {
		return nil, err
	}
	signed, err := h.signedBytes()
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(append(signed, headerMAC(macKey, signed)...)); err != nil {
		return nil, err
	}
	slots := max(1, batchSize/(h.ChunkSize+TagSize))
	return &Writer{dst: dst, aead: aead, cs: h.ChunkSize, buf: make([]byte, slots*(h.ChunkSize+TagSize))}, nil
}

// Write encrypts p. A chunk is sealed once it is full and more data
// follows, so it is known not to be the last. After an error, every later
// call returns it.
func (w *Writer) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && w.err == nil {
		if w.n == w.cs {
			w.err = w.seal(false)
			continue
		}
		k := copy(w.buf[w.off+w.n:w.off+w.cs], p)
		w.n += k
		total += k
		p = p[k:]
	}
	return total, w.err
}

// ReadFrom encrypts everything src yields until io.EOF, reading straight
// into the chunk buffer. io.Copy uses it. It leaves the last chunk to Close.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for w.err == nil {
		// Read one byte past the chunk: if it arrives, the chunk is not
		// the last one.
		k, err := io.ReadFull(src, w.buf[w.off+w.n:w.off+w.cs+1])
		total += int64(k)
		w.n += k
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		next := w.buf[w.off+w.cs]
		w.n = w.cs
		if w.err = w.seal(false); w.err == nil {
			w.buf[w.off], w.n = next, 1
		}
	}
	return total, w.err
}

// Close seals whatever is pending as the last chunk (an empty stream gets
// one empty chunk) and writes out everything. It does not close the
// underlying writer. Without Close the stream is incomplete and readers
// reject it.
func (w *Writer) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	if err := w.seal(true); err != nil {
		w.err = err
		return err
	}
	w.err = errClosed
	return nil
}

// seal encrypts the pending chunk in place as chunk ctr, and writes the
// batch if it is the last chunk or no room for another one is left.
func (w *Writer) seal(last bool) error {
	if w.ctr == math.MaxUint64 {
		return errors.New("stream: too many chunks")
	}
	chunkNonce(&w.nonce, w.ctr, last)
	pending := w.buf[w.off : w.off+w.n]
	w.aead.Seal(pending[:0], w.nonce[:], pending, nil)
	w.ctr++
	w.off += w.n + TagSize
	w.n = 0
	if !last && len(w.buf)-w.off >= w.cs+TagSize {
		return nil
	}
	_, err := w.dst.Write(w.buf[:w.off])
	w.off = 0
	return err
}

// Encrypt writes src to dst as a stream encrypted under key, with ref in
// the header. opts may be nil. It returns the errors of [NewWriter] and
// errors from src and dst; on error dst holds an incomplete stream, which
// readers reject.
func Encrypt(dst io.Writer, src io.Reader, key []byte, ref KeyRef, opts *Options) error {
	w, err := NewWriter(dst, key, ref, opts)
	if err != nil {
		return err
	}
	if _, err := w.ReadFrom(src); err != nil {
		return err
	}
	return w.Close()
}
