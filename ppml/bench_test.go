package ppml

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
		if err := Encrypt(io.Discard, bytes.NewReader(pt), vecKey, vecEDK); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	var file bytes.Buffer
	if err := Encrypt(&file, bytes.NewReader(randBytes(benchSize, 1)), vecKey, vecEDK); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := Decrypt(io.Discard, bytes.NewReader(file.Bytes()), FormatAuto, StaticKey(vecKey)); err != nil {
			b.Fatal(err)
		}
	}
}
