package ppmlsecrets

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

func TestGenerateKeysRSA(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rsaKeys)
	c := k.Certificate

	key := parseKeyPEM(t, k.ServerKey)
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != 3072 {
		t.Fatalf("server.key: %T, want a 3072-bit RSA key", key)
	}
	if !rk.PublicKey.Equal(c.PublicKey) {
		t.Error("server.key does not match server.crt")
	}
	if c.Subject.CommonName != "kms.example.test" {
		t.Errorf("CN = %q, want the first DNS name", c.Subject.CommonName)
	}
	if !slices.Equal(c.DNSNames, testSANs.dns) {
		t.Errorf("DNS SANs = %v, want %v", c.DNSNames, testSANs.dns)
	}
	if got := fmt.Sprint(c.IPAddresses); got != fmt.Sprint(testSANs.ips) {
		t.Errorf("IP SANs = %s, want %v", got, testSANs.ips)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < DefaultValidityDays*24*time.Hour || d > DefaultValidityDays*24*time.Hour+time.Hour {
		t.Errorf("validity = %v, want %d days", d, DefaultValidityDays)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Error("want an end-entity certificate with CA:FALSE")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage = %b", c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage = %v", c.ExtKeyUsage)
	}
	if c.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature algorithm = %v, want SHA256-RSA (Java 8 and every TLS stack)", c.SignatureAlgorithm)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	checkFilesAgree(t, k, key)
}

func TestGenerateKeysECDSAModern(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, ecdsaModernKeys)
	c := k.Certificate
	key := parseKeyPEM(t, k.ServerKey)
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("server.key: %T, want ECDSA", key)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %b, want digitalSignature only for ECDSA", c.KeyUsage)
	}
	if c.Subject.CommonName != "kms ecdsa" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 30*24*time.Hour || d > 30*24*time.Hour+time.Hour {
		t.Errorf("validity = %v, want 30 days", d)
	}
	checkFilesAgree(t, k, key)
}

// checkFilesAgree checks that every file holds the same key and certificate.
func checkFilesAgree(t *testing.T, k *Keys, key any) {
	t.Helper()
	c := k.Certificate
	if b, _ := pem.Decode(k.ServerCRT); b == nil || b.Type != "CERTIFICATE" || !bytes.Equal(b.Bytes, c.Raw) {
		t.Error("server.crt is not the certificate in PEM")
	}
	if want := string(k.ServerKey) + string(k.ServerCRT); string(k.ServerPEM) != want {
		t.Error("server.pem is not server.key followed by server.crt")
	}
	if _, err := tls.X509KeyPair(k.ServerPEM, k.ServerPEM); err != nil {
		t.Errorf("server.pem does not load as a TLS key pair: %v", err)
	}

	b, _ := pem.Decode(k.ServerCSR)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatal("server.csr is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("server.csr signature: %v", err)
	}
	if csr.Subject.String() != c.Subject.String() || !slices.Equal(csr.DNSNames, c.DNSNames) || fmt.Sprint(csr.IPAddresses) != fmt.Sprint(c.IPAddresses) {
		t.Errorf("server.csr names %v %v %v differ from the certificate's", csr.Subject, csr.DNSNames, csr.IPAddresses)
	}
	if !publicKeyEqual(csr.PublicKey, c.PublicKey) {
		t.Error("server.csr is for another key")
	}

	pk, pc, chain, err := pkcs12.DecodeChain(k.KeystorePKCS12, testPassword)
	if err != nil {
		t.Fatalf("keystore.pkcs12: %v", err)
	}
	if !bytes.Equal(pc.Raw, c.Raw) || len(chain) != 0 || !privateKeyEqual(pk, key) {
		t.Error("keystore.pkcs12 holds another key or certificate")
	}
	if _, _, err := pkcs12.Decode(k.KeystorePKCS12, "wrong-password"); err == nil {
		t.Error("keystore.pkcs12 opens with a wrong password")
	}

	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(k.KeystoreJKS), []byte(testPassword)); err != nil {
		t.Fatalf("keystore.jks: %v", err)
	}
	if got := ks.Aliases(); !slices.Equal(got, []string{Alias}) {
		t.Fatalf("keystore.jks aliases = %v, want [%s]", got, Alias)
	}
	e, err := ks.GetPrivateKeyEntry(Alias, []byte(testPassword))
	if err != nil {
		t.Fatalf("keystore.jks key entry: %v", err)
	}
	jk, err := x509.ParsePKCS8PrivateKey(e.PrivateKey)
	if err != nil || !privateKeyEqual(jk, key) {
		t.Errorf("keystore.jks holds another key (%v)", err)
	}
	if len(e.CertificateChain) != 1 || e.CertificateChain[0].Type != "X.509" || !bytes.Equal(e.CertificateChain[0].Content, c.Raw) {
		t.Error("keystore.jks chain is not [server.crt]")
	}
	if err := keystore.New().Load(bytes.NewReader(k.KeystoreJKS), []byte("wrong-password")); err == nil {
		t.Error("keystore.jks integrity check passes with a wrong password")
	}
}

func parseKeyPEM(t *testing.T, data []byte) any {
	t.Helper()
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("want exactly one PKCS #8 PEM block, got %q", data)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func privateKeyEqual(a, b any) bool {
	x, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && x.Equal(b)
}

func publicKeyEqual(a, b any) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

func TestGenerateKeysDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts KeysOptions
		cn   string
		dns  []string
		ips  string
	}{
		{"no names/localhost", KeysOptions{}, "localhost", []string{"localhost"}, "[127.0.0.1 ::1]"},
		{"CN only/CN added to localhost", KeysOptions{CommonName: "kms.local"}, "kms.local", []string{"localhost", "kms.local"}, "[127.0.0.1 ::1]"},
		{"CN is an IP/added as IP", KeysOptions{CommonName: "10.1.2.3"}, "10.1.2.3", []string{"localhost"}, "[127.0.0.1 ::1 10.1.2.3]"},
		{"IP only/CN is the IP", KeysOptions{IPAddresses: []net.IP{net.ParseIP("192.0.2.7")}}, "192.0.2.7", nil, "[192.0.2.7]"},
		{"wildcard/kept", KeysOptions{DNSNames: []string{"*.kms.svc"}}, "*.kms.svc", []string{"*.kms.svc"}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Password = []byte(testPassword)
			tt.opts.Algorithm = ECDSAP256 // fast
			k, err := GenerateKeys(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := k.Certificate
			if c.Subject.CommonName != tt.cn || !slices.Equal(c.DNSNames, tt.dns) || fmt.Sprint(c.IPAddresses) != tt.ips {
				t.Errorf("CN %q DNS %v IP %v, want %q %v %s", c.Subject.CommonName, c.DNSNames, c.IPAddresses, tt.cn, tt.dns, tt.ips)
			}
		})
	}
}

func TestGenerateKeysErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Passw0rd"
	tests := []struct {
		name string
		opts KeysOptions
		want string
	}{
		{"error/no password", KeysOptions{}, "password is empty"},
		{"error/short password", KeysOptions{Password: []byte("abc12")}, "shorter than 6"},
		{"error/space in password", KeysOptions{Password: []byte("abc 1234")}, "printable ASCII"},
		{"error/non-ASCII password", KeysOptions{Password: []byte("pässwort")}, "printable ASCII"},
		{"error/long password", KeysOptions{Password: bytes.Repeat([]byte("a"), MaxPasswordLen+1)}, "longer than"},
		{"error/negative validity", KeysOptions{Password: []byte(secret), ValidityDays: -1}, "out of range"},
		{"error/huge validity", KeysOptions{Password: []byte(secret), ValidityDays: 1 << 30}, "out of range"},
		{"error/bad DNS name", KeysOptions{Password: []byte(secret), DNSNames: []string{"a b"}}, "invalid DNS name"},
		{"error/empty DNS label", KeysOptions{Password: []byte(secret), DNSNames: []string{"a..b"}}, "invalid DNS name"},
		{"error/bad IP", KeysOptions{Password: []byte(secret), IPAddresses: []net.IP{{1, 2, 3}}}, "invalid IP"},
		{"error/long CN", KeysOptions{Password: []byte(secret), CommonName: strings.Repeat("c", 65)}, "common name"},
		{"error/unknown algorithm", KeysOptions{Password: []byte(secret), Algorithm: 42}, "unknown key algorithm"},
		{"error/unknown PKCS12 encoding", KeysOptions{Password: []byte(secret), Algorithm: ECDSAP256, PKCS12: 9}, "unknown PKCS #12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := GenerateKeys(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || (len(tt.opts.Password) > 0 && strings.Contains(err.Error(), string(tt.opts.Password))) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestGenerateKeysKeepsPassword(t *testing.T) {
	t.Parallel()
	pw := []byte(testPassword + "!")
	if _, err := GenerateKeys(KeysOptions{Password: pw, Algorithm: ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if string(pw) != testPassword+"!" {
		t.Error("GenerateKeys modified the caller's password")
	}
}

func TestParseNames(t *testing.T) {
	t.Parallel()
	for _, a := range []KeyAlgorithm{RSA3072, RSA4096, ECDSAP256} {
		if got, err := ParseKeyAlgorithm(a.String()); err != nil || got != a {
			t.Errorf("ParseKeyAlgorithm(%q) = %v, %v", a, got, err)
		}
	}
	for _, e := range []PKCS12Encoding{PKCS12Legacy, PKCS12Modern} {
		if got, err := ParsePKCS12Encoding(e.String()); err != nil || got != e {
			t.Errorf("ParsePKCS12Encoding(%q) = %v, %v", e, got, err)
		}
	}
	if _, err := ParseKeyAlgorithm("rsa-1024"); err == nil {
		t.Error("rsa-1024 accepted")
	}
	if _, err := ParsePKCS12Encoding("rc2"); err == nil {
		t.Error("rc2 accepted")
	}
	if KeyAlgorithm(7).String() != "KeyAlgorithm(7)" || PKCS12Encoding(7).String() != "PKCS12Encoding(7)" {
		t.Error("String of unknown values")
	}
}

func TestKeysRedacted(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rsaKeys)
	for _, s := range []string{k.String(), fmt.Sprint(k), fmt.Sprintf("%v", k), k.LogValue().String()} {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, "MII") {
			t.Errorf("Keys prints key material: %s", s)
		}
	}
	if !strings.Contains(k.String(), "kms.example.test") {
		t.Errorf("String = %s, want the CN", k)
	}
}
