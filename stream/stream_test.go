package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

var (
	testKey32 = bytes.Repeat([]byte{0x42}, 32)
	testKey16 = bytes.Repeat([]byte{0x17}, 16)
	testRef   = KMSRef("pk", "dk")
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func encryptT(t testing.TB, pt, key []byte, cs int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encrypt(&b, bytes.NewReader(pt), key, testRef, &Options{ChunkSize: cs}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, cs := range []int{MinChunkSize, 1024, DefaultChunkSize} {
		for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 3*cs + 7} {
			for _, key := range [][]byte{testKey16, testKey32} {
				t.Run(fmt.Sprintf("chunk %d/size %d/key %d", cs, size, len(key)), func(t *testing.T) {
					t.Parallel()
					pt := randBytes(size, uint64(size))
					file := encryptT(t, pt, key, cs)
					chunks := max(1, (size+cs-1)/cs)
					if want := 76 + 2 + 4 + chunks*TagSize + size; len(file) != want {
						t.Fatalf("file is %d bytes, want %d", len(file), want)
					}
					checkDecrypt(t, file, key, pt)
				})
			}
		}
	}
}

// checkDecrypt reads file with Decrypt (WriteTo), with Read through a
// small buffer, and from a source that returns one byte at a time.
func checkDecrypt(t *testing.T, file, key, want []byte) {
	t.Helper()
	var out bytes.Buffer
	if err := Decrypt(&out, bytes.NewReader(file), StaticKey(key)); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("Decrypt: %v (%d bytes, want %d)", err, out.Len(), len(want))
	}
	r, err := NewReader(iotest.OneByteReader(bytes.NewReader(file)), StaticKey(key))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(iotest.OneByteReader(r))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read: %v (%d bytes, want %d)", err, len(got), len(want))
	}
}

// TestWriterWrites: any pattern of Write calls, mixed with ReadFrom, gives
// the same file as one Encrypt.
func TestWriterWrites(t *testing.T) {
	t.Parallel()
	pt := randBytes(1000, 9)
	salt := randBytes(SaltSize, 10)
	want := encryptSalted(t, pt, salt, func(w *Writer) { w.ReadFrom(bytes.NewReader(pt)) })
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 50 {
		got := encryptSalted(t, pt, salt, func(w *Writer) {
			rest := pt
			for len(rest) > 0 {
				n := min(len(rest), rng.IntN(200))
				if i%2 == 0 && n%3 == 0 {
					w.ReadFrom(iotest.HalfReader(bytes.NewReader(rest[:n])))
				} else if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
		})
		if !bytes.Equal(got, want) {
			t.Fatalf("pattern %d gives another file", i)
		}
	}
}

func encryptSalted(t *testing.T, pt, salt []byte, write func(*Writer)) []byte {
	var b bytes.Buffer
	w, err := NewWriter(&b, testKey32, testRef, &Options{ChunkSize: MinChunkSize, Rand: bytes.NewReader(salt)})
	if err != nil {
		t.Fatal(err)
	}
	write(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriterAfterClose(t *testing.T) {
	t.Parallel()
	w, err := NewWriter(io.Discard, testKey32, testRef, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// TestReaderReleasesOnlyVerified: with the third chunk damaged, a Reader
// returns exactly the first two chunks, then ErrAuth.
func TestReaderReleasesOnlyVerified(t *testing.T) {
	t.Parallel()
	pt := randBytes(3*MinChunkSize, 4)
	file := encryptT(t, pt, testKey32, MinChunkSize)
	file[len(file)-1] ^= 1
	r, err := NewReader(bytes.NewReader(file), StaticKey(testKey32))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrAuth) || !bytes.Equal(got, pt[:2*MinChunkSize]) {
		t.Fatalf("got %d bytes and %v", len(got), err)
	}
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrAuth) {
		t.Fatalf("error is not sticky: %v", err)
	}
}

func TestKeyErrors(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 15, 17, 24, 31, 33, 64} {
		key := bytes.Repeat([]byte{1}, n)
		if err := Encrypt(io.Discard, strings.NewReader("x"), key, testRef, nil); !errors.Is(err, ErrKey) {
			t.Errorf("encrypt with %d-byte key: %v", n, err)
		}
	}
	file := encryptT(t, []byte("x"), testKey32, 0)
	if err := Decrypt(io.Discard, bytes.NewReader(file), StaticKey(make([]byte, 20))); !errors.Is(err, ErrKey) {
		t.Errorf("decrypt with 20-byte key: %v", err)
	}
	boom := errors.New("kms down")
	err := Decrypt(io.Discard, bytes.NewReader(file), func(KeyRef) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("KeyFunc error: %v", err)
	}
}

func TestKeyFuncSeesRef(t *testing.T) {
	t.Parallel()
	refs := []KeyRef{{}, KMSRef("primary", "0f8fad5b-d9cb-469f-a165-70867728950e"), WrappedRef([]byte{1, 2, 3})}
	for _, ref := range refs {
		var b bytes.Buffer
		if err := Encrypt(&b, strings.NewReader("x"), testKey32, ref, nil); err != nil {
			t.Fatal(err)
		}
		var seen KeyRef
		keyFn := func(r KeyRef) ([]byte, error) { seen = r; return testKey32, nil }
		if err := Decrypt(io.Discard, &b, keyFn); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(seen, ref) {
			t.Errorf("KeyFunc saw %v, want %v", seen, ref)
		}
	}
}

func TestInvalidOptionsAndRefs(t *testing.T) {
	t.Parallel()
	bad := map[string]struct {
		ref KeyRef
		cs  int
	}{
		"chunk size 100":           {testRef, 100},
		"chunk size 32":            {testRef, 32},
		"chunk size 32 MiB":        {testRef, 32 << 20},
		"empty names":              {KMSRef("", "dk"), 0},
		"long name":                {KMSRef(strings.Repeat("p", 256), "dk"), 0},
		"control char":             {KMSRef("p\x00", "dk"), 0},
		"empty wrapped":            {WrappedRef(nil), 0},
		"huge wrapped":             {WrappedRef(make([]byte, MaxKeyRefLen+1)), 0},
		"none with names":          {KeyRef{DataKey: "x"}, 0},
		"unknown type":             {KeyRef{Type: 9}, 0},
		"kms with wrapped payload": {KeyRef{Type: KeyRefKMS, PrimaryKey: "a", DataKey: "b", Wrapped: []byte{1}}, 0},
	}
	for name, c := range bad {
		err := Encrypt(io.Discard, strings.NewReader("x"), testKey32, c.ref, &Options{ChunkSize: c.cs})
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSaltIsFresh(t *testing.T) {
	t.Parallel()
	a := encryptT(t, []byte("same"), testKey32, 0)
	b := encryptT(t, []byte("same"), testKey32, 0)
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions are identical")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ref := range []KeyRef{{}, KMSRef("a", "b"), WrappedRef(make([]byte, MaxKeyRefLen))} {
		file := encryptT(t, nil, testKey32, MaxChunkSize)
		h, err := ReadHeader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		h.KeyRef = ref
		b, err := h.MarshalBinary()
		if err != nil || len(b) != h.Len() {
			t.Fatalf("%v: %d bytes, Len %d, %v", ref, len(b), h.Len(), err)
		}
		h2, err := ReadHeader(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("%v: read back %+v, %v", ref, h2, err)
		}
	}
}

func TestErrorsHideKeys(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdefghijklmnopqrstuv")
	file := encryptT(t, []byte("x"), testKey32, 0)
	err := Decrypt(io.Discard, bytes.NewReader(file), StaticKey(secret))
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), string(secret[:8])) {
		t.Fatalf("error %q", err)
	}
}

// countingWriter records the size of each Write.
type countingWriter struct {
	bytes.Buffer
	sizes []int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	return c.Buffer.Write(p)
}

// TestWriterBatches: sealed chunks reach dst in batches of at most
// batchSize, through both Write and ReadFrom, and the result decrypts.
func TestWriterBatches(t *testing.T) {
	t.Parallel()
	pt := randBytes(5*batchSize/2+11, 6)
	for _, viaWrite := range []bool{false, true} {
		var dst countingWriter
		w, err := NewWriter(&dst, testKey16, testRef, nil)
		if err != nil {
			t.Fatal(err)
		}
		if viaWrite {
			for p := pt; len(p) > 0; p = p[min(len(p), 10000):] {
				w.Write(p[:min(len(p), 10000)])
			}
		} else {
			w.ReadFrom(iotest.HalfReader(bytes.NewReader(pt)))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if len(dst.sizes) < 4 || slices.Max(dst.sizes) > batchSize {
			t.Errorf("write sizes %v", dst.sizes)
		}
		checkDecrypt(t, dst.Bytes(), testKey16, pt)
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	pt := randBytes(3*batchSize, 7)
	file := encryptT(t, pt, testKey32, 0)
	for _, n := range []int{0, 100, batchSize, len(file) - 1} {
		err := Encrypt(&failingWriter{n}, bytes.NewReader(pt), testKey32, testRef, nil)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("encrypt, fail after %d: %v", n, err)
		}
		if n >= len(pt) {
			continue
		}
		if err := Decrypt(&failingWriter{n}, bytes.NewReader(file), StaticKey(testKey32)); !errors.Is(err, errDiskFull) {
			t.Errorf("decrypt, fail after %d: %v", n, err)
		}
	}
	readErr := errors.New("read failed")
	src := io.MultiReader(bytes.NewReader(file[:len(file)/2]), iotest.ErrReader(readErr))
	if err := Decrypt(io.Discard, src, StaticKey(testKey32)); !errors.Is(err, readErr) {
		t.Errorf("decrypt read error: %v", err)
	}
	if err := Encrypt(io.Discard, iotest.ErrReader(readErr), testKey32, testRef, nil); !errors.Is(err, readErr) {
		t.Errorf("encrypt read error: %v", err)
	}
}
