package cbc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestAccelerated(t *testing.T) {
	t.Logf("AES-NI assembly in use: %v", accelerated())
}

// TestVectors checks NIST SP 800-38A F.2.1 and F.2.5 (CBC-AES128 and
// CBC-AES256, four blocks each) in both directions.
func TestVectors(t *testing.T) {
	const iv = "000102030405060708090a0b0c0d0e0f"
	const pt = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
		"30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
	tests := []struct{ name, key, ct string }{
		{"AES-128", "2b7e151628aed2a6abf7158809cf4f3c",
			"7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2" +
				"73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"},
		{"AES-256", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
			"f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d" +
				"39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, iv, pt, ct := unhex(tt.key), unhex(iv), unhex(pt), unhex(tt.ct)
			got := make([]byte, len(pt))
			mustEncrypter(t, key, iv).CryptBlocks(got, pt)
			if !bytes.Equal(got, ct) {
				t.Errorf("encrypt = %x, want %x", got, ct)
			}
			mustDecrypter(t, key, iv).CryptBlocks(got, ct)
			if !bytes.Equal(got, pt) {
				t.Errorf("decrypt = %x, want %x", got, pt)
			}
		})
	}
}

// TestMatchesStdlib compares with crypto/cipher on random keys, IVs and
// lengths of 0 to 70 blocks (across the eight-block groups of the
// decrypter), a few MiB-sized inputs, in place and not.
func TestMatchesStdlib(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1 << 20, 3<<20 + 7*BlockSize}
	for n := range 71 {
		sizes = append(sizes, n*BlockSize)
	}
	for _, keyLen := range []int{16, 24, 32} {
		for _, size := range sizes {
			for range 3 {
				key, iv, pt := randBytes(r, keyLen), randBytes(r, BlockSize), randBytes(r, size)
				compare(t, key, iv, pt, false)
				compare(t, key, iv, pt, true)
			}
		}
	}
}

// compare checks one encryption and one decryption against crypto/cipher,
// and that a non-in-place call leaves src alone.
func compare(t *testing.T, key, iv, pt []byte, inPlace bool) {
	t.Helper()
	want := stdCrypt(t, cipher.NewCBCEncrypter, key, iv, pt)
	got := crypt(t, mustEncrypter(t, key, iv), pt, inPlace)
	if !bytes.Equal(got, want) {
		t.Fatalf("encrypt, %d-byte key, %d bytes, in place %v: differs from crypto/cipher", len(key), len(pt), inPlace)
	}
	wantPT := stdCrypt(t, cipher.NewCBCDecrypter, key, iv, want)
	got = crypt(t, mustDecrypter(t, key, iv), want, inPlace)
	if !bytes.Equal(got, wantPT) || !bytes.Equal(got, pt) {
		t.Fatalf("decrypt, %d-byte key, %d bytes, in place %v: differs from crypto/cipher", len(key), len(pt), inPlace)
	}
}

// crypt runs m over src, in place or into a new buffer.
func crypt(t *testing.T, m cipher.BlockMode, src []byte, inPlace bool) []byte {
	t.Helper()
	orig := bytes.Clone(src)
	buf := bytes.Clone(src)
	if inPlace {
		m.CryptBlocks(buf, buf)
		return buf
	}
	dst := make([]byte, len(src))
	m.CryptBlocks(dst, buf)
	if !bytes.Equal(buf, orig) {
		t.Fatal("CryptBlocks modified its input")
	}
	return dst
}

// TestChaining splits one message over many CryptBlocks calls: the
// chaining value must carry over, and agree with the stdlib's.
func TestChaining(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for _, keyLen := range []int{16, 24, 32} {
		key, iv, pt := randBytes(r, keyLen), randBytes(r, BlockSize), randBytes(r, 300*BlockSize)
		ct := stdCrypt(t, cipher.NewCBCEncrypter, key, iv, pt)
		enc, dec := mustEncrypter(t, key, iv), mustDecrypter(t, key, iv)
		gotCT, gotPT := make([]byte, len(pt)), make([]byte, len(pt))
		for off := 0; off < len(pt); {
			n := min(r.IntN(20)*BlockSize, len(pt)-off) // zero-length calls too
			enc.CryptBlocks(gotCT[off:off+n], pt[off:off+n])
			dec.CryptBlocks(gotPT[off:off+n], ct[off:off+n])
			off += n
		}
		if !bytes.Equal(gotCT, ct) || !bytes.Equal(gotPT, pt) {
			t.Fatalf("%d-byte key: split calls differ from one stdlib call", keyLen)
		}
	}
}

func TestDstLonger(t *testing.T) {
	key, iv := make([]byte, 16), make([]byte, 16)
	dst := bytes.Repeat([]byte{0xaa}, 3*BlockSize)
	mustEncrypter(t, key, iv).CryptBlocks(dst, make([]byte, 2*BlockSize))
	if !bytes.Equal(dst[2*BlockSize:], bytes.Repeat([]byte{0xaa}, BlockSize)) {
		t.Fatal("CryptBlocks wrote past len(src)")
	}
}

func TestBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		key, iv int
	}{
		{"key/15", 15, 16}, {"key/0", 0, 16}, {"key/33", 33, 16},
		{"iv/15", 16, 15}, {"iv/17", 16, 17}, {"iv/0", 16, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, iv := make([]byte, tt.key), make([]byte, tt.iv)
			if _, err := NewEncrypter(key, iv); err == nil {
				t.Error("NewEncrypter: no error")
			}
			if _, err := NewDecrypter(key, iv); err == nil {
				t.Error("NewDecrypter: no error")
			}
		})
	}
	var kse aes.KeySizeError
	if _, err := NewEncrypter(make([]byte, 20), make([]byte, 16)); !errors.As(err, &kse) {
		t.Errorf("20-byte key: error %v is not an aes.KeySizeError", err)
	}
}

func TestPanics(t *testing.T) {
	buf := make([]byte, 8*BlockSize)
	tests := []struct {
		name     string
		dst, src []byte
	}{
		{"panic/partial block", buf[:33], buf[:33]},
		{"panic/short dst", buf[:16], make([]byte, 32)},
		{"panic/overlap ahead", buf[16:], buf[:4*BlockSize]},
		{"panic/overlap behind", buf[:4*BlockSize], buf[1 : 1+4*BlockSize]},
	}
	key, iv := make([]byte, 16), make([]byte, 16)
	for _, tt := range tests {
		for _, m := range []cipher.BlockMode{mustEncrypter(t, key, iv), mustDecrypter(t, key, iv)} {
			t.Run(tt.name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Error("no panic")
					}
				}()
				m.CryptBlocks(tt.dst, tt.src)
			})
		}
	}
}

// FuzzMatchesStdlib: any key size, IV, data and split into two calls gives
// the stdlib's bytes, both ways.
func FuzzMatchesStdlib(f *testing.F) {
	f.Add(uint8(0), []byte("0123456789abcdef0123456789abcdef"), []byte("abcdefghijklmnop"), make([]byte, 160), uint16(3))
	f.Add(uint8(2), make([]byte, 32), make([]byte, 16), make([]byte, 16*17), uint16(9))
	f.Fuzz(func(t *testing.T, ks uint8, keyMaterial, iv, data []byte, split uint16) {
		keyLen := []int{16, 24, 32}[ks%3]
		if len(keyMaterial) < keyLen || len(iv) < BlockSize {
			return
		}
		key, iv := keyMaterial[:keyLen], iv[:BlockSize]
		data = data[:len(data)&^(BlockSize-1)]
		cut := min(int(split)*BlockSize, len(data))
		for _, dir := range []struct {
			ours func([]byte, []byte) (cipher.BlockMode, error)
			std  func(cipher.Block, []byte) cipher.BlockMode
		}{{NewEncrypter, cipher.NewCBCEncrypter}, {NewDecrypter, cipher.NewCBCDecrypter}} {
			want := stdCrypt(t, dir.std, key, iv, data)
			m, err := dir.ours(key, iv)
			if err != nil {
				t.Fatal(err)
			}
			got := bytes.Clone(data)
			m.CryptBlocks(got[:cut], got[:cut])
			m.CryptBlocks(got[cut:], got[cut:])
			if !bytes.Equal(got, want) {
				t.Fatalf("%d-byte key, %d bytes split at %d: differs from crypto/cipher", keyLen, len(data), cut)
			}
		}
	})
}

func BenchmarkCBC(b *testing.B) {
	key, iv := make([]byte, 16), make([]byte, 16)
	buf := make([]byte, 1<<20)
	modes := []struct {
		name string
		m    cipher.BlockMode
	}{
		{"Encrypt", mustEncrypter(b, key, iv)},
		{"Decrypt", mustDecrypter(b, key, iv)},
		{"Encrypt/stdlib", cipher.NewCBCEncrypter(must(aes.NewCipher(key)), iv)},
		{"Decrypt/stdlib", cipher.NewCBCDecrypter(must(aes.NewCipher(key)), iv)},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				m.m.CryptBlocks(buf, buf)
			}
		})
	}
}

func stdCrypt(t testing.TB, mode func(cipher.Block, []byte) cipher.BlockMode, key, iv, src []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(src))
	mode(b, iv).CryptBlocks(dst, src)
	return dst
}

func mustEncrypter(t testing.TB, key, iv []byte) cipher.BlockMode {
	t.Helper()
	m, err := NewEncrypter(key, iv)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDecrypter(t testing.TB, key, iv []byte) cipher.BlockMode {
	t.Helper()
	m, err := NewDecrypter(key, iv)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
