package main

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppmlkms/kms/internal/ppmlsecrets"
)

// TestPPMLSecrets starts kmsd the way a PPML cluster mounts its Secrets:
// keystore.pkcs12 from ssl-keys, its password recovered from ssl-password's
// output.bin with key.txt.
func TestPPMLSecrets(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("s3cret-pass")
	keys, err := ppmlsecrets.GenerateKeys(ppmlsecrets.KeysOptions{Password: pw, DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	pass, err := ppmlsecrets.GeneratePassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ks := write("keystore.pkcs12", keys.KeystorePKCS12)
	keyTxt := write("key.txt", pass.KeyTxt)
	out := write("output.bin", pass.OutputBin)

	s := start(t, t.TempDir(), "-tls-pkcs12", ks, "-tls-pkcs12-password-rsa-key", keyTxt, "-tls-pkcs12-password-encrypted", out)
	conn, err := tls.Dial("tcp", s.m.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].Raw; !bytes.Equal(got, keys.Certificate.Raw) {
		t.Fatal("kmsd does not serve the certificate of the PPML keystore")
	}
	if bytes.Contains([]byte(s.logs.String()), pw) {
		t.Fatal("the keystore password reached the log")
	}

	// A wrong output.bin is a clear start-up error without the password.
	write("output.bin", []byte("garbage"))
	m := NewMain()
	m.Stderr = &lockedBuffer{}
	if err := m.ParseFlags([]string{"-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-tls-pkcs12", ks,
		"-tls-pkcs12-password-rsa-key", keyTxt, "-tls-pkcs12-password-encrypted", out}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	err = m.Run(t.Context())
	m.Close()
	if err == nil || bytes.Contains([]byte(err.Error()), pw) {
		t.Fatalf("wrong output.bin: %v", err)
	}
}
