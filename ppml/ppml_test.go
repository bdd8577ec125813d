package ppml

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSpecVectorEncrypt(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := encrypt(&out, strings.NewReader(vecPT), vecKey, vecEDK, bytes.NewReader(vecIV()))
	if err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	if len(b) != vecSize {
		t.Fatalf("file is %d bytes, want %d", len(b), vecSize)
	}
	if got := hex.EncodeToString(b[400:416]); got != vecCT {
		t.Errorf("ciphertext %s, want %s", got, vecCT)
	}
	if got := hex.EncodeToString(b[416:]); got != vecTag {
		t.Errorf("tag %s, want %s", got, vecTag)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != vecSHA {
		t.Errorf("sha256 %s, want %s", got, vecSHA)
	}
	if !bytes.Equal(b, makeCurrent(t, vecKey, vecEDK, vecIV(), []byte(vecPT))) {
		t.Error("Encrypt and the stdlib construction differ")
	}
}

func TestSpecVectorDecrypt(t *testing.T) {
	t.Parallel()
	file := makeCurrent(t, vecKey, vecEDK, vecIV(), []byte(vecPT))
	var gotName string
	keyFn := func(edk string) (string, error) { gotName = edk; return vecKey, nil }
	var out bytes.Buffer
	if err := Decrypt(&out, bytes.NewReader(file), FormatAuto, keyFn); err != nil {
		t.Fatal(err)
	}
	if out.String() != vecPT || gotName != vecEDK {
		t.Errorf("got %q with key name %q", out.String(), gotName)
	}
	h, err := ReadHeader(bytes.NewReader(file), FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	if h.Format != FormatCurrent || h.EncryptedDataKey != vecEDK || !bytes.Equal(h.IV[:], vecIV()) {
		t.Errorf("header %+v", h)
	}
}

// roundTripSizes cover block edges and the edges of the 1 MiB work unit,
// where the decrypter carries its last block over to the next buffer.
var roundTripSizes = []int{0, 1, 15, 16, 17, 1000,
	bufSize - 17, bufSize - 16, bufSize - 1, bufSize, bufSize + 15, bufSize + 16, bufSize + 3, 2*bufSize + 5}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"24 chars": vecKey, "44 chars": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	for kname, key := range keys {
		for _, size := range roundTripSizes {
			t.Run(fmt.Sprintf("%s/%d", kname, size), func(t *testing.T) {
				t.Parallel()
				pt := randBytes(size, uint64(size))
				var enc bytes.Buffer
				if err := Encrypt(&enc, bytes.NewReader(pt), key, "dk"); err != nil {
					t.Fatal(err)
				}
				if want := 400 + (size/16+1)*16 + 32; enc.Len() != want {
					t.Fatalf("file is %d bytes, want %d", enc.Len(), want)
				}
				file := enc.Bytes()
				_, macKey := stringKeys(key)
				if !bytes.Equal(file[len(file)-32:], hmacSHA256(macKey, file[400:len(file)-32])) {
					t.Fatal("tag is not HMAC-SHA256 over the ciphertext")
				}
				checkDecrypt(t, file, FormatAuto, key, pt)
				checkDecrypt(t, file, FormatCurrent, key, pt)
			})
		}
	}
}

func TestReadOtherFormats(t *testing.T) {
	t.Parallel()
	for _, size := range roundTripSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			pt := randBytes(size, uint64(size)+7)
			iv := randBytes(16, uint64(size)+8)
			checkDecrypt(t, makeLegacy(t, vecKey, iv, pt, false), FormatAuto, vecKey, pt)
			checkDecrypt(t, makeLegacy(t, vecKey, iv, pt, false), FormatLegacy, vecKey, pt)
			checkDecrypt(t, makeLegacy(t, vecKey, iv, pt, true), FormatLegacy, vecKey, pt)
			checkDecrypt(t, makeNative(t, vecKey, iv, pt), FormatNativeAESCBC, vecKey, pt)
		})
	}
}

// checkDecrypt decrypts file with an ordinary reader and with one that
// returns short reads, and compares with want.
func checkDecrypt(t *testing.T, file []byte, f Format, key string, want []byte) {
	t.Helper()
	readers := map[string]io.Reader{
		"full": bytes.NewReader(file),
		"half": iotest.HalfReader(bytes.NewReader(file)),
	}
	for name, r := range readers {
		var out bytes.Buffer
		if err := Decrypt(&out, r, f, StaticKey(key)); err != nil {
			t.Fatalf("%v/%s: %v", f, name, err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%v/%s: plaintext differs (%d bytes, want %d)", f, name, out.Len(), len(want))
		}
	}
}

func TestHeaderMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	headers := []*Header{
		{Format: FormatCurrent, EncryptedDataKey: vecEDK, IV: [16]byte{1, 2, 3}},
		{Format: FormatCurrent},
		{Format: FormatCurrent, EncryptedDataKey: strings.Repeat("x", MaxEncryptedDataKeyLen)},
		{Format: FormatLegacy, Timestamp: -5, IV: [16]byte{9}},
		{Format: FormatNativeAESCBC, IV: [16]byte{0x80}},
	}
	for _, h := range headers {
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != h.Len() {
			t.Errorf("%v: %d bytes, Len says %d", h.Format, len(b), h.Len())
		}
		got, err := ReadHeader(bytes.NewReader(b), h.Format)
		if err != nil || *got != *h {
			t.Errorf("%v: read back %+v, %v", h.Format, got, err)
		}
	}
	long := &Header{Format: FormatCurrent, EncryptedDataKey: strings.Repeat("x", MaxEncryptedDataKeyLen+1)}
	if _, err := long.MarshalBinary(); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized encryptedDataKey: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatAuto, FormatCurrent, FormatLegacy, FormatNativeAESCBC} {
		if got, err := ParseFormat(strings.ToUpper(f.String())); err != nil || got != f {
			t.Errorf("ParseFormat(%v) = %v, %v", f, got, err)
		}
	}
	if got, _ := ParseFormat("common"); got != FormatCurrent {
		t.Errorf("common = %v", got)
	}
	if _, err := ParseFormat("gcm"); !errors.Is(err, ErrFormat) {
		t.Errorf("gcm: %v", err)
	}
}

func TestKeyErrors(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "short", strings.Repeat("k", MinKeyLen-1)} {
		err := Encrypt(io.Discard, strings.NewReader("x"), key, "dk")
		if !errors.Is(err, ErrKey) {
			t.Errorf("key of %d chars: %v", len(key), err)
		}
		if key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("error %q shows the key", err)
		}
	}
	native := makeNative(t, vecKey, vecIV(), []byte("x"))
	for _, key := range []string{"not base64!", "AAAA"} {
		err := Decrypt(io.Discard, bytes.NewReader(native), FormatNativeAESCBC, StaticKey(key))
		if !errors.Is(err, ErrKey) {
			t.Errorf("native key %q: %v", key, err)
		}
	}
}

// failingWriter fails once more than n bytes have been written to it.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	pt := randBytes(5*bufSize, 5)
	var file bytes.Buffer
	if err := Encrypt(&file, bytes.NewReader(pt), vecKey, "dk"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 399, 400, 2*bufSize + 7, file.Len() - 1} {
		if err := Encrypt(&failingWriter{n}, bytes.NewReader(pt), vecKey, "dk"); !errors.Is(err, errDiskFull) {
			t.Errorf("encrypt, fail after %d: %v", n, err)
		}
		if n >= len(pt) {
			continue
		}
		err := Decrypt(&failingWriter{n}, bytes.NewReader(file.Bytes()), FormatAuto, StaticKey(vecKey))
		if !errors.Is(err, errDiskFull) {
			t.Errorf("decrypt, fail after %d: %v", n, err)
		}
	}
	readErr := errors.New("read failed")
	src := io.MultiReader(bytes.NewReader(file.Bytes()[:3*bufSize]), iotest.ErrReader(readErr))
	if err := Decrypt(io.Discard, src, FormatAuto, StaticKey(vecKey)); !errors.Is(err, readErr) {
		t.Errorf("read error: %v", err)
	}
	if err := Encrypt(io.Discard, iotest.ErrReader(readErr), vecKey, "dk"); !errors.Is(err, readErr) {
		t.Errorf("encrypt read error: %v", err)
	}
}
