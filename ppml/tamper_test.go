package ppml

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// tamperFile is a 3-block file whose layout the cases below refer to.
func tamperFile(t *testing.T) ([]byte, []byte) {
	pt := []byte("0123456789abcdef0123456789abcdef0123456789")
	return makeCurrent(t, vecKey, vecEDK, vecIV(), pt), pt
}

func TestTamperedCurrent(t *testing.T) {
	t.Parallel()
	file, _ := tamperFile(t)
	ctEnd := len(file) - 32
	cases := []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"auth/flip first ciphertext bit", flip(400, 0x01), ErrAuth},
		{"auth/flip middle ciphertext byte", flip(420, 0x80), ErrAuth},
		{"auth/flip last ciphertext byte", flip(ctEnd-1, 0x01), ErrAuth},
		{"auth/flip tag", flip(len(file)-1, 0x01), ErrAuth},
		{"auth/drop last block", cut(ctEnd-16, ctEnd), ErrAuth},
		{"auth/drop first block", cut(400, 416), ErrAuth},
		{"auth/swap blocks", swap(400, 416, 16), ErrAuth},
		{"auth/append block", insert(ctEnd, make([]byte, 16)), ErrAuth},
		{"auth/cut file at block edge", cut(len(file)-16, len(file)), ErrAuth},
		{"format/flip length", flip(3, 0x40), ErrFormat},
		{"format/length too big", flip(1, 0x01), ErrFormat},
		{"format/length into IV", flip(2, 0x01), ErrFormat},
		{"format/flip IV length", flip(7, 0x01), ErrFormat},
		{"format/flip header padding", flip(399, 0x01), ErrFormat},
		{"format/unknown first byte", flip(0, 0x42), ErrFormat},
		{"truncated/empty", cut(0, len(file)), ErrTruncated},
		{"truncated/inside header", cut(200, len(file)), ErrTruncated},
		{"truncated/header only", cut(400, len(file)), ErrTruncated},
		{"truncated/inside tag", cut(len(file)-5, len(file)), ErrTruncated},
		{"truncated/tag only", cut(400, ctEnd), ErrTruncated},
		{"truncated/odd length", cut(len(file)-1, len(file)), ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := Decrypt(&bytes.Buffer{}, bytes.NewReader(c.edit(clone(file))), FormatAuto, StaticKey(vecKey))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == ErrFormat && errors.Is(err, ErrAuth) || c.want == ErrAuth && errors.Is(err, ErrFormat) {
				t.Fatalf("%v matches both parse and auth failures", err)
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	file, _ := tamperFile(t)
	keys := map[string]string{
		"mac half":  "AAECAwQFBgcICQoMDA0ODw==", // s[0:16] differs
		"aes half":  "AAECAwQFBgcICQoLDA0ODx==", // s[16:32] differs
		"unrelated": "q83vEjRWeJCrze8SNFZ4kA==",
	}
	for name, key := range keys {
		var out bytes.Buffer
		err := Decrypt(&out, bytes.NewReader(file), FormatAuto, StaticKey(key))
		if !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLastBlockWithheld checks that a bad tag keeps the last block (the
// one holding the padding) out of dst.
func TestLastBlockWithheld(t *testing.T) {
	t.Parallel()
	file, pt := tamperFile(t)
	var out bytes.Buffer
	err := Decrypt(&out, bytes.NewReader(flip(len(file)-1, 1)(file)), FormatAuto, StaticKey(vecKey))
	if !errors.Is(err, ErrAuth) || out.Len() != 32 || !bytes.Equal(out.Bytes(), pt[:32]) {
		t.Fatalf("err %v, wrote %d bytes", err, out.Len())
	}
}

// TestBadPaddingGoodTag: a correctly tagged file whose padding is wrong
// (a writer bug, or an AES key that differs while the MAC key matches).
func TestBadPaddingGoodTag(t *testing.T) {
	t.Parallel()
	aesKey, macKey := stringKeys(vecKey)
	ct := stdlibCBC(t, aesKey, vecIV(), []byte("0123456789abcdef"))[:16] // no padding block
	hdr, _ := (&Header{Format: FormatCurrent, IV: [16]byte(vecIV())}).MarshalBinary()
	file := append(append(hdr, ct...), hmacSHA256(macKey, ct)...)
	if err := Decrypt(&bytes.Buffer{}, bytes.NewReader(file), FormatAuto, StaticKey(vecKey)); !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v", err)
	}
}

// TestIVNotAuthenticated pins a known weakness of the BigDL format (see the
// package doc): the HMAC does not cover the header, so IV bit flips pass.
func TestIVNotAuthenticated(t *testing.T) {
	t.Parallel()
	file, pt := tamperFile(t)
	ivOff := 8 + len(vecEDK)
	var out bytes.Buffer
	if err := Decrypt(&out, bytes.NewReader(flip(ivOff, 0x01)(file)), FormatAuto, StaticKey(vecKey)); err != nil {
		t.Fatal(err)
	}
	want := clone(pt)
	want[0] ^= 0x01
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("IV flip did not flip the first plaintext bit")
	}
}

func TestLegacyTampered(t *testing.T) {
	t.Parallel()
	pt := []byte("legacy file, 2 blocks of text")
	for _, buggy := range []bool{false, true} {
		file := makeLegacy(t, vecKey, vecIV(), pt, buggy)
		ctEnd := len(file) - 32
		for i, edit := range []func([]byte) []byte{flip(25, 1), flip(ctEnd-17, 1), flip(len(file)-1, 1), cut(ctEnd-16, ctEnd)} {
			err := Decrypt(&bytes.Buffer{}, bytes.NewReader(edit(clone(file))), FormatAuto, StaticKey(vecKey))
			if !errors.Is(err, ErrAuth) {
				t.Errorf("buggy tag %v, edit %d: %v", buggy, i, err)
			}
		}
	}
}

// TestBuggyTagOnlyForLegacy: the BigDL 2.2 tag variant is not accepted for
// the current format.
func TestBuggyTagOnlyForLegacy(t *testing.T) {
	t.Parallel()
	legacy := makeLegacy(t, vecKey, vecIV(), []byte(vecPT), true)
	hdr, _ := (&Header{Format: FormatCurrent, IV: [16]byte(vecIV())}).MarshalBinary()
	file := append(hdr, legacy[25:]...)
	if err := Decrypt(&bytes.Buffer{}, bytes.NewReader(file), FormatAuto, StaticKey(vecKey)); !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v", err)
	}
}

func TestNativeErrors(t *testing.T) {
	t.Parallel()
	file := makeNative(t, vecKey, vecIV(), []byte(vecPT))
	cases := map[string]struct {
		file []byte
		want error
	}{
		"truncated/iv only":    {file[:16], ErrTruncated},
		"truncated/short iv":   {file[:10], ErrTruncated},
		"truncated/odd length": {file[:len(file)-1], ErrTruncated},
		"auth/bad padding":     {flip(len(file)-1, 0x55)(clone(file)), ErrAuth},
		"format/auto refuses":  {file, ErrFormat},
	}
	for name, c := range cases {
		f := FormatNativeAESCBC
		if name == "format/auto refuses" {
			f = FormatAuto
			c.file[0] = 0x42
		}
		err := Decrypt(&bytes.Buffer{}, bytes.NewReader(c.file), f, StaticKey(vecKey))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestKeyFuncError(t *testing.T) {
	t.Parallel()
	file, _ := tamperFile(t)
	boom := errors.New("kms down")
	err := Decrypt(&bytes.Buffer{}, bytes.NewReader(file), FormatAuto, func(string) (string, error) { return "", boom })
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	t.Parallel()
	if !errors.Is(ErrTruncated, ErrFormat) || errors.Is(ErrFormat, ErrTruncated) || errors.Is(ErrAuth, ErrFormat) {
		t.Fatal("sentinel relations are wrong")
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrTruncated), ErrFormat) {
		t.Fatal("wrapped ErrTruncated does not match ErrFormat")
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func flip(i int, mask byte) func([]byte) []byte {
	return func(b []byte) []byte { b[i] ^= mask; return b }
}

func cut(from, to int) func([]byte) []byte {
	return func(b []byte) []byte { return append(b[:from:from], b[to:]...) }
}

func insert(at int, x []byte) func([]byte) []byte {
	return func(b []byte) []byte { return append(b[:at:at], append(clone(x), b[at:]...)...) }
}

func swap(i, j, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		tmp := clone(b[i : i+n])
		copy(b[i:i+n], b[j:j+n])
		copy(b[j:j+n], tmp)
		return b
	}
}

// TestDecryptBodyNeedsConcreteFormat: a hand-made header with no concrete
// format must not fall through to the unauthenticated path.
func TestDecryptBodyNeedsConcreteFormat(t *testing.T) {
	t.Parallel()
	file, _ := tamperFile(t)
	for _, f := range []Format{FormatAuto, Format(-1), Format(9)} {
		h := &Header{Format: f}
		if err := DecryptBody(&bytes.Buffer{}, bytes.NewReader(file[400:]), h, vecKey); !errors.Is(err, ErrFormat) {
			t.Errorf("%v: %v", f, err)
		}
	}
}
