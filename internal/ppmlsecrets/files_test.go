package ppmlsecrets

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteKeysAndPassword(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rsaKeys)
	p := mustPassword(t)
	out := filepath.Join(t.TempDir(), "out")
	if err := WriteKeys(out, k, "bigdl-kms", false); err != nil {
		t.Fatal(err)
	}
	if err := WritePassword(out, p, "", false); err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		"keys/keystore.jks": 0o600, "keys/keystore.pkcs12": 0o600, "keys/server.crt": 0o644,
		"keys/server.csr": 0o644, "keys/server.key": 0o600, "keys/server.pem": 0o600, "keys/keys.yaml": 0o600,
		"password/key.txt": 0o600, "password/output.bin": 0o600, "password/password.yaml": 0o600,
	}
	var got []string
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.IsDir() {
				if fi, _ := d.Info(); fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: mode %v, want 0700", path, fi.Mode().Perm())
				}
			}
			return err
		}
		rel, _ := filepath.Rel(out, path)
		got = append(got, filepath.ToSlash(rel))
		fi, _ := d.Info()
		if m, ok := want[filepath.ToSlash(rel)]; ok && fi.Mode().Perm() != m {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("files %v, want %v", got, names)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "keys", "keystore.jks")); !bytes.Equal(b, k.KeystoreJKS) {
		t.Error("keystore.jks differs")
	}
	y, _ := os.ReadFile(filepath.Join(out, "keys", "keys.yaml"))
	if !strings.Contains(string(y), "name: ssl-keys\n  namespace: bigdl-kms\n") {
		t.Errorf("keys.yaml:\n%.300s", y)
	}
	y, _ = os.ReadFile(filepath.Join(out, "password", "password.yaml"))
	if !strings.Contains(string(y), "name: ssl-password\n") || strings.Contains(string(y), "namespace") {
		t.Errorf("password.yaml:\n%.300s", y)
	}
}

func TestWriteFilesOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := []File{{Name: "a", Data: []byte("1"), Mode: 0o644}, {Name: "b", Data: []byte("2")}}
	if err := WriteFiles(dir, a, false); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "b")); fi.Mode().Perm() != 0o600 {
		t.Errorf("zero mode gave %v, want 0600", fi.Mode().Perm())
	}
	// "b" exists: nothing is written, not even "c".
	err := WriteFiles(dir, []File{{Name: "c", Data: []byte("3")}, {Name: "b", Data: []byte("new")}}, false)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("err = %v, want already exists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Error("c was written although b existed")
	}
	if err := WriteFiles(dir, []File{{Name: "b", Data: []byte("new")}}, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b")); string(b) != "new" {
		t.Errorf("b = %q after overwrite", b)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteFilesInvalidNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{"", ".", "..", "../x", "a/b", "/abs"} {
		if err := WriteFiles(dir, []File{{Name: n, Data: []byte("x")}}, true); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}
