package stream

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testVector is one file of testdata/vectors (see docs/spec/stream-format.md §6).
type testVector struct {
	name, expect string
	key          []byte
	ptSHA256     string
	file         []byte
}

func loadVectors(t testing.TB) []testVector {
	t.Helper()
	paths, err := filepath.Glob("testdata/vectors/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var vs []testVector
	for _, p := range paths {
		vs = append(vs, parseVector(t, p))
	}
	return vs
}

func parseVector(t testing.TB, path string) testVector {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := testVector{name: strings.TrimSuffix(filepath.Base(path), ".txt")}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() && sc.Text() != "" {
		k, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			t.Fatalf("%s: bad header line %q", path, sc.Text())
		}
		switch k {
		case "expect":
			v.expect = val
		case "key":
			if v.key, err = hex.DecodeString(val); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		case "plaintext sha256":
			v.ptSHA256 = val
		case "comment":
		default:
			t.Fatalf("%s: unknown header %q", path, k)
		}
	}
	var b64 strings.Builder
	for sc.Scan() {
		b64.WriteString(sc.Text())
	}
	if v.file, err = base64.StdEncoding.DecodeString(b64.String()); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	count := map[string]int{}
	for _, v := range vs {
		count[v.expect]++
		prefix := map[string]string{"success": "success_", "parse failure": "parse_", "auth failure": "auth_"}[v.expect]
		if prefix == "" || !strings.HasPrefix(v.name, prefix) {
			t.Errorf("%s: expect %q does not match its name", v.name, v.expect)
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			checkVector(t, v)
		})
	}
	if neg := count["parse failure"] + count["auth failure"]; neg <= count["success"] {
		t.Errorf("%d negative vectors, %d positive: negatives should outnumber", neg, count["success"])
	}
}

func checkVector(t *testing.T, v testVector) {
	var out bytes.Buffer
	err := Decrypt(&out, bytes.NewReader(v.file), StaticKey(v.key))
	_, hdrErr := ReadHeader(bytes.NewReader(v.file))
	switch v.expect {
	case "success":
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(out.Bytes())
		if hex.EncodeToString(sum[:]) != v.ptSHA256 {
			t.Fatal("plaintext sha256 differs")
		}
		checkReencrypt(t, v, out.Bytes())
	case "parse failure":
		if !errors.Is(err, ErrFormat) || errors.Is(err, ErrAuth) || !errors.Is(hdrErr, ErrFormat) {
			t.Fatalf("want a parse failure, got %v (ReadHeader: %v)", err, hdrErr)
		}
	case "auth failure":
		if !errors.Is(err, ErrAuth) || errors.Is(err, ErrFormat) || hdrErr != nil {
			t.Fatalf("want an auth failure, got %v (ReadHeader: %v)", err, hdrErr)
		}
	default:
		t.Fatalf("unknown expectation %q", v.expect)
	}
}

// checkReencrypt: the Writer, given the vector's salt, chunk size and key
// reference, reproduces the vector byte for byte.
func checkReencrypt(t *testing.T, v testVector, pt []byte) {
	h, err := ReadHeader(bytes.NewReader(v.file))
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	opts := &Options{ChunkSize: h.ChunkSize, Rand: bytes.NewReader(h.Salt[:])}
	if err := Encrypt(&enc, bytes.NewReader(pt), v.key, h.KeyRef, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc.Bytes(), v.file) {
		t.Fatal("Encrypt does not reproduce the vector")
	}
}
