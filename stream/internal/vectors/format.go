package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// file is a stream file spelled out field by field, so that vectors can
// set any field to any value.
type file struct {
	key     []byte
	magic   string
	version byte
	shift   byte
	refType byte
	ref     []byte
	refLen  int // -1: len(ref)
	salt    []byte
	chunks  []chunk
	badMAC  bool // flip a bit of the header MAC
}

// chunk is one payload chunk with its own counter and flag, to make
// reordered, duplicated and wrongly flagged chunks.
type chunk struct {
	index uint64
	last  bool
	pt    []byte
	key   []byte // nil: the file's key and salt
	salt  []byte
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func derive(key, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, key, salt, info, 32)
	if err != nil {
		panic(err)
	}
	return k
}

func (f *file) header() []byte {
	b := append([]byte(f.magic), f.version, f.shift, f.refType)
	n := len(f.ref)
	if f.refLen >= 0 {
		n = f.refLen
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, f.ref...)
	b = append(b, f.salt...)
	m := hmac.New(sha256.New, derive(f.key, f.salt, "kms stream v1 header"))
	m.Write(b)
	mac := m.Sum(nil)
	if f.badMAC {
		mac[31] ^= 1
	}
	return append(b, mac...)
}

func seal(key, salt []byte, c chunk) []byte {
	block, err := aes.NewCipher(derive(key, salt, "kms stream v1 payload"))
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint64(nonce[3:11], c.index)
	if c.last {
		nonce[11] = 1
	}
	return gcm.Seal(nil, nonce, c.pt, nil)
}

func (f *file) bytes() []byte {
	b := f.header()
	for _, c := range f.chunks {
		key, salt := f.key, f.salt
		if c.key != nil {
			key, salt = c.key, c.salt
		}
		b = append(b, seal(key, salt, c)...)
	}
	return b
}

// split cuts pt into STREAM chunks of 2^shift bytes, as the spec says.
func split(pt []byte, shift byte) []chunk {
	size := 1 << shift
	var cs []chunk
	for i := 0; ; i++ {
		n := min(size, len(pt))
		last := n == len(pt)
		cs = append(cs, chunk{index: uint64(i), last: last, pt: pt[:n]})
		pt = pt[n:]
		if last {
			return cs
		}
	}
}

// kmsRef encodes a KMS names reference body.
func kmsRef(primary, data string) []byte {
	b := append([]byte{byte(len(primary))}, primary...)
	b = append(b, byte(len(data)))
	return append(b, data...)
}

// seeded returns n deterministic bytes named by label.
func seeded(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		out = append(out, sha256Sum([]byte(fmt.Sprintf("%s/%d", label, i)))...)
	}
	return out[:n]
}
