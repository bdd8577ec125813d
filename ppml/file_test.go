package ppml

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pt := randBytes(bufSize+100, 3)
	src, enc, dec := filepath.Join(dir, "a.csv"), filepath.Join(dir, "a.csv.cbc"), filepath.Join(dir, "out.csv")
	writeFile(t, src, pt)
	if err := EncryptFile(enc, src, vecKey, vecEDK); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeaderFile(enc, FormatAuto)
	if err != nil || h.EncryptedDataKey != vecEDK {
		t.Fatalf("header %+v, %v", h, err)
	}
	if err := DecryptFile(dec, enc, FormatAuto, StaticKey(vecKey)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dec); !bytes.Equal(got, pt) {
		t.Fatal("plaintext differs")
	}
	if fi, _ := os.Stat(dec); fi.Mode().Perm() != 0o600 {
		t.Errorf("plaintext mode %v", fi.Mode())
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"a.csv", "a.csv.cbc", "out.csv"}) {
		t.Errorf("left behind: %v", names)
	}
}

// TestDecryptFileLeavesNoOutput: on any failure the destination keeps its
// old content (or stays absent) and no temporary file remains.
func TestDecryptFileLeavesNoOutput(t *testing.T) {
	t.Parallel()
	good, _ := tamperFile(t)
	cases := map[string]struct {
		file []byte
		key  string
		want error
	}{
		"bad tag":   {flip(len(good)-1, 1)(clone(good)), vecKey, ErrAuth},
		"truncated": {good[:len(good)-40], vecKey, ErrTruncated},
		"wrong key": {good, "q83vEjRWeJCrze8SNFZ4kA==", ErrAuth},
		"bad key":   {good, "short", ErrKey},
		"not ppml":  {[]byte("plain text file"), vecKey, ErrFormat},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "in.cbc")
			writeFile(t, src, c.file)
			if err := DecryptFile(filepath.Join(dir, "new"), src, FormatAuto, StaticKey(c.key)); !errors.Is(err, c.want) {
				t.Fatalf("new: got %v, want %v", err, c.want)
			}
			old := filepath.Join(dir, "old")
			writeFile(t, old, []byte("keep me"))
			if err := DecryptFile(old, src, FormatAuto, StaticKey(c.key)); !errors.Is(err, c.want) {
				t.Fatalf("old: got %v, want %v", err, c.want)
			}
			if got := string(readFile(t, old)); got != "keep me" {
				t.Fatalf("existing output changed to %q", got)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"in.cbc", "old"}) {
				t.Fatalf("left behind: %v", names)
			}
		})
	}
}

func TestEncryptFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	writeFile(t, src, []byte("data"))
	if err := EncryptFile(filepath.Join(dir, "x.cbc"), src, "short", "dk"); !errors.Is(err, ErrKey) {
		t.Fatal(err)
	}
	if err := EncryptFile(filepath.Join(dir, "x.cbc"), filepath.Join(dir, "missing"), vecKey, "dk"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"in"}) {
		t.Fatalf("left behind: %v", names)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
