package stream

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 64 << 20

func BenchmarkEncrypt(b *testing.B) {
	pt := randBytes(benchSize, 1)
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := Encrypt(io.Discard, bytes.NewReader(pt), testKey32, testRef, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptWrite goes through Writer.Write in 32 KiB pieces, as
// io.Copy from a source without WriteTo would.
func BenchmarkEncryptWrite(b *testing.B) {
	pt := randBytes(benchSize, 1)
	b.SetBytes(benchSize)
	for b.Loop() {
		w, err := NewWriter(io.Discard, testKey32, testRef, nil)
		if err != nil {
			b.Fatal(err)
		}
		for p := pt; len(p) > 0; p = p[32<<10:] {
			w.Write(p[:32<<10])
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	var file bytes.Buffer
	if err := Encrypt(&file, bytes.NewReader(randBytes(benchSize, 1)), testKey32, testRef, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := Decrypt(io.Discard, bytes.NewReader(file.Bytes()), StaticKey(testKey32)); err != nil {
			b.Fatal(err)
		}
	}
}
