package stream

import (
	"crypto/cipher"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"math"
)

// Reader decrypts a stream. Each Read returns plaintext only from chunks
// whose tag has verified. Reading ends with io.EOF only after the last
// chunk verified; any damage ends it with [ErrAuth], possibly after some
// verified plaintext. A Reader is not safe for concurrent use.
type Reader struct {
	src      io.Reader
	h        *Header
	aead     cipher.AEAD
	buf      []byte // one sealed chunk and one byte of look-ahead
	pt       []byte // verified plaintext not yet returned, inside buf
	ahead    byte   // the look-ahead byte: the first byte of the next chunk
	hasAhead bool
	ctr      uint64
	err      error // sticky; io.EOF after the last chunk
}

// NewReader reads the header from src, asks keyFn for the file key, and
// checks the header MAC. It returns an error wrapping [ErrFormat] for a
// header that does not parse, [ErrKey] for a key of the wrong length,
// [ErrAuth] for a wrong key or a modified header, and errors from keyFn
// and src.
func NewReader(src io.Reader, keyFn KeyFunc) (*Reader, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, err
	}
	key, err := keyFn(h.KeyRef)
	if err != nil {
		return nil, fmt.Errorf("stream: get file key: %w", err)
	}
	macKey, aead, err := fileKeys(key, &h.Salt)
	if err != nil {
		return nil, err
	}
	signed, err := h.signedBytes()
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(headerMAC(macKey, signed), h.MAC[:]) {
		return nil, ErrAuth
	}
	return &Reader{src: src, h: h, aead: aead, buf: make([]byte, h.ChunkSize+TagSize+1)}, nil
}

// Header returns the stream's header, authenticated by NewReader.
func (r *Reader) Header() *Header { return r.h }

// Read returns verified plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

// WriteTo writes all remaining plaintext to w, one verified chunk at a
// time. io.Copy uses it.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.pt) > 0 {
			n, err := w.Write(r.pt)
			total += int64(n)
			r.pt = r.pt[n:]
			if err != nil {
				return total, err
			}
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		r.err = r.next()
	}
}

// next reads, opens and exposes the next chunk. It returns io.EOF after
// the last chunk.
func (r *Reader) next() error {
	enc := r.h.ChunkSize + TagSize
	have := 0
	if r.hasAhead {
		r.buf[0], have, r.hasAhead = r.ahead, 1, false
	}
	k, err := io.ReadFull(r.src, r.buf[have:enc+1])
	have += k
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	last := have <= enc
	if !last {
		r.ahead, r.hasAhead, have = r.buf[enc], true, enc
	}
	// A last chunk needs its tag, and is empty only in an empty stream.
	if have < TagSize || last && have == TagSize && r.ctr > 0 || r.ctr == math.MaxUint64 {
		return ErrAuth
	}
	var nonce [12]byte
	chunkNonce(&nonce, r.ctr, last)
	pt, err := r.aead.Open(r.buf[:0], nonce[:], r.buf[:have], nil)
	if err != nil {
		return ErrAuth
	}
	r.ctr++
	r.pt = pt
	if last {
		return io.EOF
	}
	return nil
}

// Decrypt reads a stream from src and writes its plaintext to dst, getting
// the key from keyFn (see [NewReader] for the errors). It writes each chunk
// once verified; if it returns an error, what it wrote is incomplete and
// the caller must discard it. [DecryptFile] and [DecryptTo] do so.
func Decrypt(dst io.Writer, src io.Reader, keyFn KeyFunc) error {
	r, err := NewReader(src, keyFn)
	if err != nil {
		return err
	}
	_, err = r.WriteTo(dst)
	return err
}
