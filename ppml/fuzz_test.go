package ppml

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func seedFiles(f *testing.F) {
	f.Add(byte(0), makeCurrent(f, vecKey, vecEDK, vecIV(), []byte(vecPT)))
	f.Add(byte(2), makeLegacy(f, vecKey, vecIV(), []byte(vecPT), false))
	f.Add(byte(2), makeLegacy(f, vecKey, vecIV(), []byte("x"), true))
	f.Add(byte(3), makeNative(f, vecKey, vecIV(), []byte(vecPT)))
	f.Add(byte(1), []byte{})
}

// FuzzReadHeader: the parser never panics, and a header it accepts
// re-encodes to exactly the bytes it read.
func FuzzReadHeader(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, format byte, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r, Format(format%4))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		if consumed := len(data) - r.Len(); consumed != h.Len() {
			t.Fatalf("read %d bytes for a %d-byte header", consumed, h.Len())
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[:h.Len()]) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", b, data[:h.Len()])
		}
	})
}

// FuzzDecrypt: any input gives plaintext or one of the package's errors,
// never a panic; a success under FormatCurrent re-encrypts to the same file.
func FuzzDecrypt(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, format byte, data []byte) {
		var out bytes.Buffer
		err := Decrypt(&out, bytes.NewReader(data), Format(format%4), StaticKey(vecKey))
		switch {
		case err == nil:
		case errors.Is(err, ErrFormat), errors.Is(err, ErrAuth):
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
		h, _ := ReadHeader(bytes.NewReader(data), Format(format%4))
		if h.Format != FormatCurrent {
			return
		}
		var enc bytes.Buffer
		if err := encrypt(&enc, &out, vecKey, h.EncryptedDataKey, bytes.NewReader(h.IV[:])); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc.Bytes(), data) {
			t.Fatal("decrypted file does not re-encrypt to itself")
		}
	})
}

// FuzzTailReader: reading through tailReader in pieces of any size yields
// the input minus its last n bytes, and held returns those.
func FuzzTailReader(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789"), uint8(32), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, n, step uint8) {
		tr := newTailReader(bytes.NewReader(data), int(n))
		var got []byte
		buf := make([]byte, int(step)+1)
		for {
			k, err := tr.Read(buf)
			got = append(got, buf[:k]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		cut := max(0, len(data)-int(n))
		if !bytes.Equal(got, data[:cut]) || !bytes.Equal(tr.held(), data[cut:]) {
			t.Fatalf("body %x held %x for %x, n=%d", got, tr.held(), data, n)
		}
	})
}
