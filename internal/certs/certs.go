// Package certs loads kmsd's TLS certificate: PEM files, a PKCS#12
// keystore as BigDL uses, or a self-signed certificate generated once into
// the data directory.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// LoadPEM loads a certificate chain and its key from PEM files.
func LoadPEM(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS certificate: %w", err)
	}
	return c, nil
}

// LoadPKCS12 loads a key and certificate chain from a PKCS#12 keystore.
// The password is not part of any error.
func LoadPKCS12(path, password string) (tls.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load PKCS#12 keystore: %w", err)
	}
	key, leaf, chain, err := pkcs12.DecodeChain(b, password)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("open PKCS#12 keystore %s (wrong password or unsupported format): %w", path, err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
	for _, ca := range chain {
		c.Certificate = append(c.Certificate, ca.Raw)
	}
	return c, nil
}

// SelfSigned loads tls.crt and tls.key from dir, creating them first if
// absent: an ECDSA P-256 certificate valid for ten years for localhost,
// the loopback addresses and the host name. created reports whether it was
// generated now.
func SelfSigned(dir string) (c tls.Certificate, created bool, err error) {
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := os.Stat(certFile); err == nil {
		c, err := LoadPEM(certFile, keyFile)
		return c, false, err
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, false, err
	}
	certPEM, keyPEM, err := generate()
	if err != nil {
		return c, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, false, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return c, false, err
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return c, false, err
	}
	c, err = tls.X509KeyPair(certPEM, keyPEM)
	return c, true, err
}

func generate() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	hosts := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "localhost" {
		hosts = append(hosts, h)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kmsd self-signed", Organization: []string{"kms"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     hosts,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Fingerprint is the SHA-256 of the leaf certificate, hex with colons, as
// `openssl x509 -fingerprint -sha256` prints it.
func Fingerprint(c tls.Certificate) string {
	if len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	const digits = "0123456789ABCDEF" // upper case, as openssl prints
	out := make([]byte, 0, len(sum)*3)
	for i, b := range sum {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[b>>4], digits[b&0xf])
	}
	return string(out)
}

// ServerConfig returns a TLS configuration with TLS 1.2 as the minimum and
// only AEAD cipher suites with forward secrecy for TLS 1.2.
func ServerConfig(c tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
	}
}
