package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMutualTLSIdentities maps client certificates to an admin and to a
// user; token clients keep working beside them.
func TestMutualTLSIdentities(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newCA(t, "kms clients"), newCA(t, "rogue")
	caFile := filepath.Join(dir, "clients.pem")
	idFile := filepath.Join(dir, "ids.txt")
	os.WriteFile(caFile, ca.pem, 0o644)
	os.WriteFile(idFile, []byte("# cert CN -> identity\nops team admin/ops\nspark-job alice\n"), 0o644)
	data := t.TempDir()
	s := start(t, data, "-tls-client-ca", caFile, "-tls-client-identities", idFile)
	s.seed(t, "alice", "pk1", "dk1")

	get := func(cert *tls.Certificate, path string) (int, string) {
		t.Helper()
		tr := s.c.Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.url + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admin, user, unmapped, forged := ca.client(t, "ops team"), ca.client(t, "spark-job"), ca.client(t, "nobody"), rogue.client(t, "ops team")
	if code, body := get(&admin, "/v1/users"); code != 200 || !strings.Contains(body, `"alice"`) {
		t.Fatalf("admin by certificate: %d %s", code, body)
	}
	if code, body := get(&user, "/v1/keys/pk1"); code != 200 || !strings.Contains(body, `"owner":"alice"`) {
		t.Fatalf("user by certificate: %d %s", code, body)
	}
	if code, _ := get(&user, "/v1/users"); code != 403 {
		t.Fatalf("user certificate on an admin route: %d", code)
	}
	if code, _ := get(&unmapped, "/v1/keys/pk1"); code != 401 {
		t.Fatalf("unmapped certificate: %d", code)
	}
	if code, _ := get(nil, "/v1/keys/pk1"); code != 401 {
		t.Fatalf("no certificate, no token: %d", code)
	}
	// A certificate of another CA never authenticates: Go's client does not
	// even offer it (it is not issued by an acceptable CA), or the
	// handshake fails.
	if code, _ := get(&forged, "/v1/users"); code != 0 && code != 401 {
		t.Fatalf("certificate of another CA: %d", code)
	}
	// Forced to send it anyway, the server refuses the handshake.
	conn, err := tls.Dial("tcp", s.m.Addr(), &tls.Config{InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forged, nil }})
	if err == nil {
		_, err = io.WriteString(conn, "GET /v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil {
		t.Fatal("a certificate of another CA completed a request")
	}
	// Tokens keep working without a certificate (mutual TLS is optional).
	s.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", "")
}
