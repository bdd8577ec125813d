package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzHeader: the parser never panics, and a header it accepts encodes
// back to exactly the bytes it read (age's FuzzMalleability). Seeded from
// the test vectors.
func FuzzHeader(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		n := len(data) - r.Len()
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if n != h.Len() || !bytes.Equal(b, data[:n]) {
			t.Fatalf("header re-encodes differently:\n%x\n%x", b, data[:n])
		}
	})
}

// FuzzDecrypt: any input decrypts, or fails with ErrFormat or ErrAuth;
// never a panic. What decrypts re-encrypts to the same bytes, so no other
// encoding of a plaintext is accepted.
func FuzzDecrypt(f *testing.F) {
	key := []byte(nil)
	for _, v := range loadVectors(f) {
		if v.name == "success_three_chunks" {
			key = v.key
		}
		f.Add(v.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		err := Decrypt(&out, bytes.NewReader(data), StaticKey(key))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrAuth) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		h, _ := ReadHeader(bytes.NewReader(data))
		var enc bytes.Buffer
		opts := &Options{ChunkSize: h.ChunkSize, Rand: bytes.NewReader(h.Salt[:])}
		if err := Encrypt(&enc, &out, key, h.KeyRef, opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc.Bytes(), data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}

var _ io.ReaderFrom = (*Writer)(nil)
var _ io.WriterTo = (*Reader)(nil)
