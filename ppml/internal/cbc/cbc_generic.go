//go:build !amd64 || purego

package cbc

import "crypto/cipher"

func newEncrypter(key, iv []byte) cipher.BlockMode { return stdEncrypter(key, iv) }
func newDecrypter(key, iv []byte) cipher.BlockMode { return stdDecrypter(key, iv) }

// accelerated reports whether the assembly is in use; tests log it.
func accelerated() bool { return false }
