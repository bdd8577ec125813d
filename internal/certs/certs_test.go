package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func TestSelfSigned(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	c, created, err := SelfSigned(dir)
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	if !created {
		t.Error("first call: created = false")
	}
	for name, perm := range map[string]os.FileMode{"tls.key": 0o600, "tls.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// umask may only remove bits; the key must never be readable by others.
		if got := fi.Mode().Perm(); got&^perm != 0 || (name == "tls.key" && got != 0o600) {
			t.Errorf("%s mode = %v, want %v", name, got, perm)
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("created data dir mode = %v, want 0700", fi.Mode().Perm())
	}

	again, created, err := SelfSigned(dir)
	if err != nil {
		t.Fatalf("second SelfSigned: %v", err)
	}
	if created {
		t.Error("second call: created = true")
	}
	if !slices.EqualFunc(again.Certificate, c.Certificate, bytes.Equal) {
		t.Error("second call returned another certificate")
	}
	if Fingerprint(again) != Fingerprint(c) {
		t.Error("fingerprint changed between calls")
	}

	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("private key is %T, want *ecdsa.PrivateKey", c.PrivateKey)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("certificate expires in %v, want about ten years", life)
	}
	if !leaf.NotBefore.Before(time.Now()) {
		t.Errorf("certificate not valid yet: NotBefore %v", leaf.NotBefore)
	}

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("certificate not valid for %s: %v", name, err)
		}
	}
	for _, name := range []string{"example.com", "10.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err == nil {
			t.Errorf("certificate valid for %s", name)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("certificate valid for client authentication")
	}
}

func TestSelfSignedKeyMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, _, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "tls.key")); err != nil {
		t.Fatal(err)
	}
	// A certificate without its key is an error, not a reason to replace
	// the certificate that clients may have pinned.
	if _, _, err := SelfSigned(dir); err == nil {
		t.Fatal("SelfSigned with tls.key missing succeeded")
	}
	b, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(b); blk == nil || !bytes.Equal(blk.Bytes, c.Certificate[0]) {
		t.Error("tls.crt was replaced")
	}
}

func TestLoadPEM(t *testing.T) {
	t.Parallel()
	dirA, dirB := t.TempDir(), t.TempDir()
	a, _, errA := SelfSigned(dirA)
	_, _, errB := SelfSigned(dirB)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	tests := []struct {
		name, cert, key string
		ok              bool
	}{
		{"pair", filepath.Join(dirA, "tls.crt"), filepath.Join(dirA, "tls.key"), true},
		{"mismatched key", filepath.Join(dirA, "tls.crt"), filepath.Join(dirB, "tls.key"), false},
		{"missing cert", filepath.Join(dirA, "nope.crt"), filepath.Join(dirA, "tls.key"), false},
		{"key as cert", filepath.Join(dirA, "tls.key"), filepath.Join(dirA, "tls.key"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := LoadPEM(tt.cert, tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("LoadPEM = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !bytes.Equal(c.Certificate[0], a.Certificate[0]) {
				t.Error("LoadPEM returned another certificate")
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	c, _, err := SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(c)
	if len(fp) != 95 {
		t.Errorf("len(Fingerprint) = %d, want 95 (32 bytes as XX: pairs)", len(fp))
	}
	// openssl x509 -noout -fingerprint -sha256 prints upper-case hex.
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("Fingerprint = %q, want the openssl format AB:CD:…", fp)
	}
	sum := sha256.Sum256(c.Certificate[0])
	if got, want := strings.ReplaceAll(fp, ":", ""), strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Errorf("Fingerprint = %s, want SHA-256 of the DER %s", got, want)
	}
	if got := Fingerprint(tls.Certificate{}); got != "" {
		t.Errorf("Fingerprint(no certificate) = %q, want empty", got)
	}
}

// testChain returns a CA and a leaf it signed for localhost, with the leaf's key.
func testChain(tb testing.TB) (ca, leaf *x509.Certificate, key *ecdsa.PrivateKey) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kms"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err = x509.ParseCertificate(leafDER)
	if err != nil {
		tb.Fatal(err)
	}
	return ca, leaf, key
}

func TestLoadPKCS12(t *testing.T) {
	t.Parallel()
	ca, leaf, key := testChain(t)
	const password = "Correct-Horse-Battery-Staple-42"
	const wrong = "Tr0ub4dor-and-3-wrong"
	for _, tt := range []struct {
		name string
		enc  *pkcs12.Encoder
	}{
		{"Modern", pkcs12.Modern},
		{"Modern2026", pkcs12.Modern2026},
		{"LegacyRC2", pkcs12.LegacyRC2},
		{"LegacyDES", pkcs12.LegacyDES},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pfx, err := tt.enc.Encode(key, leaf, []*x509.Certificate{ca}, password)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			path := filepath.Join(t.TempDir(), "keystore.pkcs12")
			if err := os.WriteFile(path, pfx, 0o600); err != nil {
				t.Fatal(err)
			}

			c, err := LoadPKCS12(path, password)
			if err != nil {
				t.Fatalf("LoadPKCS12(right password): %v", err)
			}
			if len(c.Certificate) != 2 || !bytes.Equal(c.Certificate[0], leaf.Raw) || !bytes.Equal(c.Certificate[1], ca.Raw) {
				t.Errorf("chain = %d certificates, want leaf then CA", len(c.Certificate))
			}
			if c.Leaf == nil || !bytes.Equal(c.Leaf.Raw, leaf.Raw) {
				t.Error("Leaf not set to the end-entity certificate")
			}
			if k, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok || !k.Equal(key) {
				t.Errorf("private key = %T, not the encoded key", c.PrivateKey)
			}

			_, err = LoadPKCS12(path, wrong)
			if err == nil {
				t.Fatal("LoadPKCS12(wrong password) succeeded")
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains a password", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := LoadPKCS12(filepath.Join(t.TempDir(), "nope.p12"), password)
		if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), password) {
			t.Errorf("LoadPKCS12(missing) = %v", err)
		}
	})
	t.Run("not PKCS#12", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "keystore.pkcs12")
		if err := os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPKCS12(path, password); err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("LoadPKCS12(garbage) = %v", err)
		}
	})
}

// serveTLS accepts connections on 127.0.0.1 with cfg and completes their
// handshakes until the test ends. It returns the address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if conn.(*tls.Conn).HandshakeContext(t.Context()) == nil {
					io.Copy(io.Discard, conn) // until the client closes
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestServerConfig(t *testing.T) {
	t.Parallel()
	c, _, err := SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(c)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
	}
	addr := serveTLS(t, cfg)
	roots := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(leaf)

	tests := []struct {
		name        string
		min, max    uint16
		suites      []uint16
		wantVersion uint16 // 0: handshake must fail
	}{
		{name: "TLS 1.0 refused", min: tls.VersionTLS10, max: tls.VersionTLS10},
		{name: "TLS 1.1 refused", min: tls.VersionTLS10, max: tls.VersionTLS11},
		{name: "TLS 1.2 accepted", min: tls.VersionTLS12, max: tls.VersionTLS12, wantVersion: tls.VersionTLS12},
		{name: "TLS 1.3 accepted", min: tls.VersionTLS13, max: tls.VersionTLS13, wantVersion: tls.VersionTLS13},
		{name: "client default negotiates TLS 1.3", wantVersion: tls.VersionTLS13},
		{name: "TLS 1.2 CBC suite refused", min: tls.VersionTLS12, max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		{name: "TLS 1.2 ChaCha20 accepted", min: tls.VersionTLS12, max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305}, wantVersion: tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tls.Dialer{Config: &tls.Config{
				RootCAs: roots, ServerName: "localhost",
				MinVersion: tt.min, MaxVersion: tt.max, CipherSuites: tt.suites,
			}}
			conn, err := d.DialContext(t.Context(), "tcp", addr)
			if tt.wantVersion == 0 {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded")
				}
				// The server refused, not the client's own configuration.
				var opErr *net.OpError
				if !errors.As(err, &opErr) || opErr.Op != "remote error" {
					t.Errorf("handshake failed without a server alert: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake failed: %v", err)
			}
			defer conn.Close()
			st := conn.(*tls.Conn).ConnectionState()
			if st.Version != tt.wantVersion {
				t.Errorf("negotiated version %#x, want %#x", st.Version, tt.wantVersion)
			}
			if st.Version == tls.VersionTLS12 && !slices.Contains(cfg.CipherSuites, st.CipherSuite) {
				t.Errorf("negotiated %s, not in ServerConfig's list", tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
}

func TestServerConfigPKCS12(t *testing.T) {
	t.Parallel()
	// A BigDL-style keystore serves TLS with its chain.
	ca, leaf, key := testChain(t)
	pfx, err := pkcs12.Modern.Encode(key, leaf, []*x509.Certificate{ca}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keystore.pkcs12")
	if err := os.WriteFile(path, pfx, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadPKCS12(path, "pw")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, ServerConfig(c))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("handshake with keystore certificate: %v", err)
	}
	conn.Close()
}
