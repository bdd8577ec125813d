package stream

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
	pt := randBytes(3*DefaultChunkSize+5, 1)
	src, enc, dec := filepath.Join(dir, "in"), filepath.Join(dir, "in.kms"), filepath.Join(dir, "out")
	if err := os.WriteFile(src, pt, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := EncryptFile(enc, src, testKey32, testRef, nil); err != nil {
		t.Fatal(err)
	}
	if err := DecryptFile(dec, enc, StaticKey(testKey32)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dec)
	if !bytes.Equal(got, pt) {
		t.Fatal("plaintext differs")
	}
	if fi, _ := os.Stat(dec); fi.Mode().Perm() != 0o600 {
		t.Errorf("plaintext mode %v", fi.Mode())
	}
}

// TestDecryptFileLeavesNoOutput: a stream damaged anywhere, even after
// chunks that verify, leaves no file and no temporary behind.
func TestDecryptFileLeavesNoOutput(t *testing.T) {
	t.Parallel()
	good := encryptT(t, randBytes(3*MinChunkSize, 2), testKey32, MinChunkSize)
	cases := map[string][]byte{
		"last chunk damaged": append(slices.Clone(good[:len(good)-1]), good[len(good)-1]^1),
		"last chunk dropped": good[:len(good)-MinChunkSize-TagSize],
		"header only":        good[:80],
		"not a stream":       []byte("hello"),
	}
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "in")
			if err := os.WriteFile(src, file, 0o600); err != nil {
				t.Fatal(err)
			}
			err := DecryptFile(filepath.Join(dir, "out"), src, StaticKey(testKey32))
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("left behind %d entries", len(entries))
			}
		})
	}
}
