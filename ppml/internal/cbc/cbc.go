// Package cbc implements AES in CBC mode, without padding, as a
// [cipher.BlockMode]. It gives the same bytes as crypto/cipher's CBC over
// crypto/aes, faster: on amd64 with AES-NI it runs AES-NI assembly. For
// AES-128 on a 2-core EPYC that is 1.6 GB/s against 1.1 GB/s for
// encryption, which CBC makes serial and so bound by the latency of the AES
// rounds (OpenSSL gets the same 1.6), and 12 GB/s against 2.3 for
// decryption, which is parallel: eight blocks go through the AES unit at
// once. Elsewhere, built with the purego tag, or in FIPS 140 mode, it is
// crypto/cipher.
//
// crypto/cipher has no assembly for CBC on amd64: it calls the block cipher
// once per 16-byte block and XORs in Go, which made CBC the bottleneck of
// the BigDL file formats in package ppml.
//
// # Security
//
// This is unauthenticated CBC; callers MAC the ciphertext. The assembly and
// the key schedule use no secret-dependent branches, memory addresses or
// tables: the S-box is computed by arithmetic in GF(2⁸). Round keys live in
// ordinary Go memory and are not zeroed when the mode is dropped.
package cbc

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// BlockSize is the AES block size, which is also the IV size.
const BlockSize = aes.BlockSize

// NewEncrypter returns a CBC encrypter for AES with key (16, 24 or 32 bytes,
// for AES-128, -192 or -256) that starts from iv (BlockSize bytes). It
// returns an error for other key or IV lengths; key and iv are copied.
//
// Like crypto/cipher's, the mode's CryptBlocks panics when len(src) is not
// a multiple of BlockSize, when dst is shorter than src or when dst and src
// overlap other than exactly. The mode carries the chaining value from one
// call to the next, so it must be used by one goroutine at a time.
func NewEncrypter(key, iv []byte) (cipher.BlockMode, error) {
	if err := check(key, iv); err != nil {
		return nil, err
	}
	return newEncrypter(key, iv), nil
}

// NewDecrypter is [NewEncrypter] for decryption.
func NewDecrypter(key, iv []byte) (cipher.BlockMode, error) {
	if err := check(key, iv); err != nil {
		return nil, err
	}
	return newDecrypter(key, iv), nil
}

func check(key, iv []byte) error {
	switch len(key) {
	case 16, 24, 32:
	default:
		return aes.KeySizeError(len(key))
	}
	if len(iv) != BlockSize {
		return fmt.Errorf("cbc: IV is %d bytes, want %d", len(iv), BlockSize)
	}
	return nil
}

// stdEncrypter and stdDecrypter are the portable implementation; key and
// iv have been checked.
func stdEncrypter(key, iv []byte) cipher.BlockMode {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	return cipher.NewCBCEncrypter(b, iv)
}

func stdDecrypter(key, iv []byte) cipher.BlockMode {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	return cipher.NewCBCDecrypter(b, iv)
}
