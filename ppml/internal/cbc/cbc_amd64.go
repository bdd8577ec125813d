//go:build amd64 && !purego

package cbc

import (
	"crypto/cipher"
	"crypto/fips140"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// SSE2, which the assembly also uses, is part of amd64 itself.
var haveAESNI = cpu.X86.HasAES

// encryptBlocks encrypts n > 0 blocks from src to dst in CBC mode with the
// nr-round encryption schedule at rk, chaining from *iv and leaving the
// last ciphertext block there. dst may equal src.
//
//go:noescape
func encryptBlocks(nr int, rk *byte, iv *[BlockSize]byte, dst, src *byte, n int)

// decryptBlocks is encryptBlocks for decryption, with the schedule of the
// inverse cipher at rk.
//
//go:noescape
func decryptBlocks(nr int, rk *byte, iv *[BlockSize]byte, dst, src *byte, n int)

// accelerated reports whether new modes use the assembly. In FIPS 140
// mode (GODEBUG=fips140=on) they do not: AES then stays inside the Go
// Cryptographic Module, which this package is not part of.
func accelerated() bool { return haveAESNI && !fips140.Enabled() }

func newEncrypter(key, iv []byte) cipher.BlockMode {
	if !accelerated() {
		return stdEncrypter(key, iv)
	}
	m := &encrypter{iv: [BlockSize]byte(iv)}
	m.ks.expandKey(key)
	return m
}

func newDecrypter(key, iv []byte) cipher.BlockMode {
	if !accelerated() {
		return stdDecrypter(key, iv)
	}
	m := &decrypter{iv: [BlockSize]byte(iv)}
	m.ks.expandKey(key)
	m.ks.invert()
	return m
}

type encrypter struct {
	ks schedule
	iv [BlockSize]byte // the previous ciphertext block
}

func (m *encrypter) BlockSize() int { return BlockSize }

func (m *encrypter) CryptBlocks(dst, src []byte) {
	if n := blocks(dst, src); n > 0 {
		encryptBlocks(m.ks.nr, &m.ks.rk[0], &m.iv, &dst[0], &src[0], n)
	}
}

type decrypter struct {
	ks schedule
	iv [BlockSize]byte
}

func (m *decrypter) BlockSize() int { return BlockSize }

func (m *decrypter) CryptBlocks(dst, src []byte) {
	if n := blocks(dst, src); n > 0 {
		decryptBlocks(m.ks.nr, &m.ks.rk[0], &m.iv, &dst[0], &src[0], n)
	}
}

// blocks returns the number of blocks in src, after the checks that
// crypto/cipher makes, with the same panics: they guard the assembly from
// writing out of bounds or reading bytes it has already overwritten.
func blocks(dst, src []byte) int {
	if len(src)%BlockSize != 0 {
		panic("cbc: input not full blocks")
	}
	if len(dst) < len(src) {
		panic("cbc: output smaller than input")
	}
	if len(src) > 0 && &dst[0] != &src[0] && overlap(dst[:len(src)], src) {
		panic("cbc: invalid buffer overlap")
	}
	return len(src) / BlockSize
}

// overlap reports whether the non-empty slices a and b share any byte.
func overlap(a, b []byte) bool {
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
