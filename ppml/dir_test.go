package ppml

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMeta(t *testing.T) {
	t.Parallel()
	want := "{\n  \"encryptedDataKey\" : \"" + vecEDK + "\"\n}\n"
	if got := string(MarshalMeta(vecEDK)); got != want {
		t.Fatalf("MarshalMeta = %q, want %q", got, want)
	}
	good := map[string]string{
		want:                             vecEDK,
		`{"encryptedDataKey":"a/b+c=="}`: "a/b+c==",
		"\n{ \"x\": 1, \"encryptedDataKey\" : \"k\" }": "k",
		string(MarshalMeta(`<&>"`)):                    `<&>"`,
	}
	for in, edk := range good {
		if got, err := ParseMeta([]byte(in)); err != nil || got != edk {
			t.Errorf("ParseMeta(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "{}", `{"encryptedDataKey": 5}`, "[1]", "{"} {
		if _, err := ParseMeta([]byte(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseMeta(%q): %v", in, err)
		}
	}
}

func TestDirRoundTrip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plain, enc, dec := filepath.Join(root, "plain"), filepath.Join(root, "enc"), filepath.Join(root, "dec")
	files := map[string][]byte{"part-0.csv": []byte("a,b\n1,2\n"), "part-1.csv": {}, "big.csv": randBytes(bufSize+1, 9)}
	mustMkdir(t, plain)
	for name, b := range files {
		writeFile(t, filepath.Join(plain, name), b)
	}
	writeFile(t, filepath.Join(plain, "_SUCCESS"), nil)
	writeFile(t, filepath.Join(plain, ".part-0.csv.crc"), []byte("x"))
	mustMkdir(t, filepath.Join(plain, "subdir"))

	written, err := EncryptDir(enc, plain, vecKey, vecEDK)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 4 || filepath.Base(written[3]) != MetaFile {
		t.Fatalf("written %v", written)
	}
	if got := dirNames(t, enc); !slices.Equal(got, []string{".meta", "big.csv.cbc", "part-0.csv.cbc", "part-1.csv.cbc"}) {
		t.Fatalf("encrypted dir holds %v", got)
	}
	if got := string(readFile(t, filepath.Join(enc, MetaFile))); got != string(MarshalMeta(vecEDK)) {
		t.Fatalf(".meta = %q", got)
	}
	var asked []string
	keyFn := func(edk string) (string, error) { asked = append(asked, edk); return vecKey, nil }
	if _, err := DecryptDir(dec, enc, FormatAuto, keyFn); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{vecEDK}) {
		t.Errorf("key asked for %v", asked)
	}
	for name, b := range files {
		if got := readFile(t, filepath.Join(dec, name)); !bytes.Equal(got, b) {
			t.Errorf("%s differs", name)
		}
	}
}

func TestDecryptDirRefusesMixedKeys(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	enc := filepath.Join(root, "enc")
	mustMkdir(t, enc)
	writeFile(t, filepath.Join(enc, "a.cbc"), makeCurrent(t, vecKey, "key-1", vecIV(), []byte("a")))
	writeFile(t, filepath.Join(enc, "b.cbc"), makeCurrent(t, vecKey, "key-2", vecIV(), []byte("b")))
	called := false
	keyFn := func(string) (string, error) { called = true; return vecKey, nil }
	if _, err := DecryptDir(filepath.Join(root, "dec"), enc, FormatAuto, keyFn); !errors.Is(err, ErrMixedKeys) {
		t.Fatalf("got %v", err)
	}
	if called || exists(filepath.Join(root, "dec")) {
		t.Fatal("work started despite mixed keys")
	}

	writeFile(t, filepath.Join(enc, "b.cbc"), makeCurrent(t, vecKey, "key-1", vecIV(), []byte("b")))
	writeFile(t, filepath.Join(enc, MetaFile), MarshalMeta("key-3"))
	if _, err := DecryptDir(filepath.Join(root, "dec"), enc, FormatAuto, keyFn); !errors.Is(err, ErrMixedKeys) {
		t.Fatalf(".meta mismatch: got %v", err)
	}
}

// TestDecryptDirMetaNamesKey: for formats without a name in the header,
// the key name comes from .meta.
func TestDecryptDirMetaNamesKey(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	enc := filepath.Join(root, "enc")
	mustMkdir(t, enc)
	writeFile(t, filepath.Join(enc, "a.cbc"), makeNative(t, vecKey, vecIV(), []byte("native")))
	writeFile(t, filepath.Join(enc, MetaFile), MarshalMeta("the-key"))
	var asked string
	keyFn := func(edk string) (string, error) { asked = edk; return vecKey, nil }
	if _, err := DecryptDir(filepath.Join(root, "dec"), enc, FormatNativeAESCBC, keyFn); err != nil {
		t.Fatal(err)
	}
	if asked != "the-key" || string(readFile(t, filepath.Join(root, "dec", "a"))) != "native" {
		t.Fatalf("asked %q", asked)
	}
}

func TestDecryptDirStopsOnBadPart(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	enc, dec := filepath.Join(root, "enc"), filepath.Join(root, "dec")
	mustMkdir(t, enc)
	writeFile(t, filepath.Join(enc, "a.cbc"), makeCurrent(t, vecKey, vecEDK, vecIV(), []byte("good")))
	bad := makeCurrent(t, vecKey, vecEDK, vecIV(), []byte("bad"))
	writeFile(t, filepath.Join(enc, "b.cbc"), flip(len(bad)-1, 1)(bad))
	out, err := DecryptDir(dec, enc, FormatAuto, StaticKey(vecKey))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v", err)
	}
	if len(out) != 1 || !slices.Equal(dirNames(t, dec), []string{"a"}) {
		t.Fatalf("outputs %v, dir %v", out, dirNames(t, dec))
	}
}

func TestDirErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	mustMkdir(t, empty)
	if _, err := EncryptDir(filepath.Join(root, "x"), empty, vecKey, vecEDK); !errors.Is(err, ErrNoFiles) {
		t.Errorf("encrypt empty: %v", err)
	}
	if _, err := DecryptDir(filepath.Join(root, "x"), empty, FormatAuto, StaticKey(vecKey)); !errors.Is(err, ErrNoFiles) {
		t.Errorf("decrypt empty: %v", err)
	}
	writeFile(t, filepath.Join(empty, "f"), []byte("x"))
	if _, err := EncryptDir(empty, empty, vecKey, vecEDK); err == nil {
		t.Error("encrypting a directory into itself succeeded")
	}
	if _, err := EncryptDir(filepath.Join(root, "x"), empty, "short", vecEDK); !errors.Is(err, ErrKey) {
		t.Errorf("bad key: %v", err)
	}
	if exists(filepath.Join(root, "x")) {
		t.Error("output directory created on error")
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
