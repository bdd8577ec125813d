package ppml

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ppmlkms/kms/ppml/internal/cbc"
)

// Encrypt reads all of src and writes it to dst as a [FormatCurrent] file,
// byte-compatible with BigDL's BigDLEncrypt: a 400-byte header naming
// encryptedDataKey, a random IV from crypto/rand, the AES-CBC-PKCS5
// ciphertext and its HMAC-SHA256. key is the data key string as the KMS
// returns it (base64 text, at least [MinKeyLen] characters).
//
// It returns an error wrapping [ErrKey] for an unusable key, [ErrFormat] for
// an encryptedDataKey longer than [MaxEncryptedDataKeyLen] or not UTF-8, and
// errors from src and dst as they are. On error dst holds a partial file.
// Memory use is constant; see the package doc for the limits of this format.
func Encrypt(dst io.Writer, src io.Reader, key, encryptedDataKey string) error {
	return encrypt(dst, src, key, encryptedDataKey, rand.Reader)
}

// encrypt is Encrypt with the IV read from rnd; tests pass fixed IVs.
func encrypt(dst io.Writer, src io.Reader, key, edk string, rnd io.Reader) error {
	k, err := deriveKeys(FormatCurrent, key)
	if err != nil {
		return err
	}
	h := &Header{Format: FormatCurrent, EncryptedDataKey: edk}
	if _, err := io.ReadFull(rnd, h.IV[:]); err != nil {
		return fmt.Errorf("ppml: read random IV: %w", err)
	}
	cbcEnc, err := cbc.NewEncrypter(k.aes, h.IV[:])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	hdr, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := dst.Write(hdr); err != nil {
		return err
	}
	mac := hmac.New(sha256.New, k.mac)
	if err := encryptBody(dst, src, cbcEnc, mac); err != nil {
		return err
	}
	_, err = dst.Write(mac.Sum(nil))
	return err
}

// encryptBody streams src through AES-CBC with PKCS#5 padding into mac and
// dst. AES runs here while the hasher goroutine MACs and writes the
// previous buffer, so the two cores work at once, as openssl enc | openssl
// dgst does.
func encryptBody(dst io.Writer, src io.Reader, cbc cipher.BlockMode, mac hash.Hash) error {
	p := newHasher(mac, bufSize+aes.BlockSize, dst)
	defer p.wait()
	for {
		if err := p.err(); err != nil {
			return err
		}
		buf := p.get()
		n, err := io.ReadFull(src, buf[:bufSize])
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return err
		}
		if last {
			n = pad(buf, n)
		}
		cbc.CryptBlocks(buf[:n], buf[:n])
		p.submit(buf, buf[:n])
		if last {
			p.wait()
			return p.err()
		}
	}
}

// pad appends PKCS#5 padding to buf[:n] in place and returns the new length.
// buf must have room for one more block.
func pad(buf []byte, n int) int {
	p := aes.BlockSize - n%aes.BlockSize
	for i := range p {
		buf[n+i] = byte(p)
	}
	return n + p
}
