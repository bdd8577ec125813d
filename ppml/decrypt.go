package ppml

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ppmlkms/kms/ppml/internal/cbc"
)

// Decrypt reads a PPML file of format f (use [FormatAuto] unless the file
// is nativeaescbc) from src, gets its data key from keyFn, and writes the
// plaintext to dst.
//
// The tag is checked only at the end, after all but the last block of
// plaintext has been written to dst. When Decrypt returns an error, dst holds
// plaintext nobody vouches for and the caller MUST discard it; [DecryptFile]
// and [DecryptTo] do so. Errors wrap [ErrTruncated] or [ErrFormat] for files
// that do not parse, [ErrAuth] for a bad tag or padding (a wrong key, or a
// modified file), [ErrKey] for an unusable key; errors from keyFn, src and
// dst are wrapped or passed through.
func Decrypt(dst io.Writer, src io.Reader, f Format, keyFn KeyFunc) error {
	h, err := ReadHeader(src, f)
	if err != nil {
		return err
	}
	key, err := keyFn(h.EncryptedDataKey)
	if err != nil {
		return fmt.Errorf("ppml: get data key: %w", err)
	}
	return DecryptBody(dst, src, h, key)
}

// DecryptBody decrypts the rest of a file whose header h was just read from
// src by [ReadHeader], with the data key string key. It behaves like
// [Decrypt]; the same rule about discarding dst on error applies.
func DecryptBody(dst io.Writer, src io.Reader, h *Header, key string) error {
	if h.Format < FormatCurrent || h.Format > FormatNativeAESCBC {
		return fmt.Errorf("%w: cannot decrypt a header of format %v", ErrFormat, h.Format)
	}
	k, err := deriveKeys(h.Format, key)
	if err != nil {
		return err
	}
	cbcDec, err := cbc.NewDecrypter(k.aes, h.IV[:])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	d := &decrypter{cbc: cbcDec, legacy: h.Format == FormatLegacy}
	if h.Format.hasMAC() {
		d.mac = hmac.New(sha256.New, k.mac)
		t := newTailReader(src, TagSize)
		final, err := d.body(dst, t)
		if err != nil {
			return err
		}
		if len(t.held()) < TagSize {
			return ErrTruncated
		}
		return d.finish(dst, final, t.held())
	}
	final, err := d.body(dst, src)
	if err != nil {
		return err
	}
	return d.finish(dst, final, nil)
}

// decrypter streams a CBC body. mac is nil for nativeaescbc.
type decrypter struct {
	cbc    cipher.BlockMode
	mac    hash.Hash
	legacy bool
	last   [aes.BlockSize]byte
}

// body decrypts and MACs all of src but its final block, which it returns
// unprocessed: that block holds the padding, and BigDL ≤ 2.2 tags stop
// inside it. Plaintext goes to dst as it is produced.
func (d *decrypter) body(dst io.Writer, src io.Reader) ([]byte, error) {
	const bs = aes.BlockSize
	p := newHasher(d.mac, bs+bufSize, nil)
	defer p.wait()
	out := make([]byte, bufSize)
	carry := false // d.last holds a block read in the previous round
	for {
		buf := p.get()
		off := bs
		if carry {
			copy(buf, d.last[:])
			off = 0
		}
		n, err := io.ReadFull(src, buf[bs:])
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return nil, err
		}
		data := buf[off : bs+n]
		if len(data) == 0 || len(data)%bs != 0 {
			return nil, ErrTruncated
		}
		k := len(data) - bs
		copy(d.last[:], data[k:])
		carry = true
		p.submit(buf, data[:k])
		d.cbc.CryptBlocks(out[:k], data[:k])
		if k > 0 {
			if _, err := dst.Write(out[:k]); err != nil {
				return nil, err
			}
		}
		if eof {
			return d.last[:], nil
		}
	}
}

// finish checks the tag over the whole ciphertext (hashed by body except
// for final), then the padding, and only then writes the last plaintext.
func (d *decrypter) finish(dst io.Writer, final, tag []byte) error {
	var pt [aes.BlockSize]byte
	d.cbc.CryptBlocks(pt[:], final)
	keep, padOK := unpad(&pt)
	if d.mac != nil && !d.verify(final, tag, keep, padOK) {
		return ErrAuth
	}
	if !padOK {
		return ErrAuth
	}
	_, err := dst.Write(pt[:keep])
	return err
}

// verify compares the tag in constant time. For legacy files it also
// accepts BigDL ≤ 2.2's tag over the ciphertext minus its last 16-keep
// bytes (see the package doc).
func (d *decrypter) verify(final, tag []byte, keep int, padOK bool) bool {
	var trunc hash.Hash
	if d.legacy && padOK {
		if c, ok := d.mac.(hash.Cloner); ok {
			if clone, err := c.Clone(); err == nil {
				trunc = clone
			}
		}
	}
	d.mac.Write(final)
	ok := subtle.ConstantTimeCompare(d.mac.Sum(nil), tag)
	if trunc != nil {
		trunc.Write(final[:keep])
		ok |= subtle.ConstantTimeCompare(trunc.Sum(nil), tag)
	}
	return ok == 1
}

// unpad returns the length of the plaintext in the final block and whether
// its PKCS#5 padding is well formed.
func unpad(pt *[aes.BlockSize]byte) (int, bool) {
	p := int(pt[aes.BlockSize-1])
	if p == 0 || p > aes.BlockSize {
		return 0, false
	}
	for _, c := range pt[aes.BlockSize-p:] {
		if int(c) != p {
			return 0, false
		}
	}
	return aes.BlockSize - p, true
}
