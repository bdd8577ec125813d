package ppmlsecrets

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"time"
)

// DefaultValidityDays is the certificate lifetime when
// [KeysOptions.ValidityDays] is zero: BigDL's `openssl x509 -days 9999`.
// A PPML cluster trusts this one self-signed certificate everywhere, so an
// expiry is an outage, not a rotation.
const DefaultValidityDays = 9999

// maxValidityDays keeps NotAfter a few centuries below X.509's year 9999.
const maxValidityDays = 100 * 366

// clockSkew backdates NotBefore so that nodes whose clocks lag a little
// accept a certificate made a moment ago.
const clockSkew = 5 * time.Minute

// KeyAlgorithm is the type and size of the server key.
type KeyAlgorithm int

// The server key algorithms. The zero value is [RSA3072].
const (
	// RSA3072 is the default: RSA keys work with every TLS client PPML ships,
	// and 3072 bits is the modern size (BigDL's scripts used 2048).
	RSA3072 KeyAlgorithm = iota
	// RSA4096 is RSA with 4096 bits.
	RSA4096
	// ECDSAP256 is ECDSA on NIST P-256 with SHA-256 signatures: smaller and
	// faster; Java 8 and OpenSSL 1.0.1 and later support it.
	ECDSAP256
)

var keyAlgorithmNames = [...]string{RSA3072: "rsa-3072", RSA4096: "rsa-4096", ECDSAP256: "ecdsa-p256"}

// String returns the name [ParseKeyAlgorithm] accepts.
func (a KeyAlgorithm) String() string {
	if a < 0 || int(a) >= len(keyAlgorithmNames) {
		return fmt.Sprintf("KeyAlgorithm(%d)", int(a))
	}
	return keyAlgorithmNames[a]
}

// ParseKeyAlgorithm parses "rsa-3072", "rsa-4096" or "ecdsa-p256".
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	for i, n := range keyAlgorithmNames {
		if s == n {
			return KeyAlgorithm(i), nil
		}
	}
	return 0, fmt.Errorf("unknown key algorithm %q (want %s)", s, strings.Join(keyAlgorithmNames[:], ", "))
}

// PKCS12Encoding selects the algorithms that protect keystore.pkcs12.
type PKCS12Encoding int

// The PKCS #12 encodings. The zero value is [PKCS12Legacy].
const (
	// PKCS12Legacy encrypts the key and the certificate with
	// PBE-SHA1-3DES (2048 iterations) and authenticates the file with
	// HMAC-SHA-1, like `openssl pkcs12 -export -descert`: algorithms every
	// Java 8 update has (its own PKCS #12 writer protects keys that way),
	// and that OpenSSL 1.x and OpenSSL 3 (without -legacy) read. It is the
	// default because PPML images run /opt/jdk8.
	PKCS12Legacy PKCS12Encoding = iota
	// PKCS12Modern uses PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) and an
	// HMAC-SHA-256 MAC, OpenSSL 3's default. Java before 8u301 and 11.0.12
	// cannot open it.
	PKCS12Modern
)

var pkcs12EncodingNames = [...]string{PKCS12Legacy: "legacy", PKCS12Modern: "modern"}

// String returns the name [ParsePKCS12Encoding] accepts.
func (e PKCS12Encoding) String() string {
	if e < 0 || int(e) >= len(pkcs12EncodingNames) {
		return fmt.Sprintf("PKCS12Encoding(%d)", int(e))
	}
	return pkcs12EncodingNames[e]
}

// ParsePKCS12Encoding parses "legacy" or "modern".
func ParsePKCS12Encoding(s string) (PKCS12Encoding, error) {
	for i, n := range pkcs12EncodingNames {
		if s == n {
			return PKCS12Encoding(i), nil
		}
	}
	return 0, fmt.Errorf("unknown PKCS #12 encoding %q (want legacy or modern)", s)
}

// KeysOptions configures [GenerateKeys]. Only Password is required.
type KeysOptions struct {
	// Password protects keystore.jks and keystore.pkcs12, both the store
	// and the private key entry. It must pass the checks of
	// [ValidatePassword]; a password that is merely not shell safe is
	// accepted. GenerateKeys does not keep or modify it.
	Password []byte
	// CommonName is the subject CN. Default: the first DNS name, else the
	// first IP address, else "localhost". At most 64 characters.
	CommonName string
	// DNSNames and IPAddresses are the subject alternative names, which is
	// what TLS clients check. When both are empty the certificate is for
	// localhost, 127.0.0.1 and ::1, plus CommonName if that is set. A DNS
	// name may start with "*." for a wildcard.
	DNSNames    []string
	IPAddresses []net.IP
	// Algorithm is the server key type; the zero value is [RSA3072].
	Algorithm KeyAlgorithm
	// ValidityDays is the certificate lifetime; 0 means
	// [DefaultValidityDays].
	ValidityDays int
	// PKCS12 selects how keystore.pkcs12 is protected; the zero value is
	// [PKCS12Legacy].
	PKCS12 PKCS12Encoding
}

// Keys holds the files of the ssl-keys Secret, byte for byte, and the
// certificate they share. Its String and LogValue methods never show the
// key material.
type Keys struct {
	// KeystoreJKS is keystore.jks: a Java KeyStore with one PrivateKeyEntry,
	// alias [Alias], store and key protected by the password.
	KeystoreJKS []byte
	// KeystorePKCS12 is keystore.pkcs12: the key and the certificate, which
	// Java lists under the alias [Alias].
	KeystorePKCS12 []byte
	// ServerPEM is server.pem: ServerKey followed by ServerCRT, as
	// `cat server.key server.crt`.
	ServerPEM []byte
	// ServerCRT is server.crt: the self-signed certificate in PEM.
	ServerCRT []byte
	// ServerCSR is server.csr: a PEM certificate request for the same key,
	// subject and names, to have the key certified by a real CA later.
	ServerCSR []byte
	// ServerKey is server.key: the unencrypted private key, PKCS #8 PEM.
	ServerKey []byte
	// Certificate is the parsed server certificate (public).
	Certificate *x509.Certificate
}

// GenerateKeys makes a new key pair, a self-signed certificate for it and
// the six files of the ssl-keys Secret. It returns an error if
// opts.Password fails [ValidatePassword]'s hard checks, or if a name,
// address, algorithm or lifetime is invalid; errors never contain the
// password.
//
// The certificate is an X.509 v3 end-entity certificate (CA:FALSE) valid
// for TLS servers and clients (PPML's Flink and Spark use the keystore for
// mutual TLS between their own nodes), signed with SHA-256.
func GenerateKeys(opts KeysOptions) (*Keys, error) {
	if err := checkPassword(opts.Password); err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(opts)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(opts.Algorithm)
	if err != nil {
		return nil, err
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     tmpl.Subject,
		DNSNames:    tmpl.DNSNames,
		IPAddresses: tmpl.IPAddresses,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(pkcs8)
	k := &Keys{
		ServerKey:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		ServerCRT:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ServerCSR:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
		Certificate: cert,
	}
	k.ServerPEM = append(append([]byte(nil), k.ServerKey...), k.ServerCRT...)
	if k.KeystorePKCS12, err = encodePKCS12(opts.PKCS12, key, cert, opts.Password); err != nil {
		return nil, err
	}
	if k.KeystoreJKS, err = encodeJKS(pkcs8, cert, opts.Password, cert.NotBefore.Add(clockSkew)); err != nil {
		return nil, err
	}
	return k, nil
}

// certTemplate validates opts and returns the certificate template.
func certTemplate(opts KeysOptions) (*x509.Certificate, error) {
	days := opts.ValidityDays
	if days == 0 {
		days = DefaultValidityDays
	}
	if days < 0 || days > maxValidityDays {
		return nil, fmt.Errorf("validity of %d days is out of range 1..%d", days, maxValidityDays)
	}
	for _, d := range opts.DNSNames {
		if err := checkDNSName(d); err != nil {
			return nil, err
		}
	}
	var ips []net.IP
	for _, ip := range opts.IPAddresses {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("invalid IP address %v", ip)
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		ips = append(ips, ip)
	}
	dns := append([]string(nil), opts.DNSNames...)
	cn := opts.CommonName
	if len(dns) == 0 && len(ips) == 0 {
		dns = []string{"localhost"}
		ips = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
		if ip := net.ParseIP(cn); ip != nil {
			ips = append(ips, ip)
		} else if cn != "" && cn != "localhost" && checkDNSName(cn) == nil {
			dns = append(dns, cn)
		}
	}
	switch {
	case cn != "":
	case len(opts.DNSNames) > 0:
		cn = opts.DNSNames[0]
	case len(ips) > 0 && len(opts.IPAddresses) > 0:
		cn = ips[0].String()
	default:
		cn = "localhost"
	}
	if len(cn) > 64 || strings.ContainsAny(cn, "\x00\n\r") {
		return nil, errors.New("common name must be at most 64 characters on one line")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	return &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}, nil
}

// checkDNSName accepts host names made of letters, digits, '-' and '_'
// labels, with an optional leading "*." wildcard. It is deliberately
// lenient on label syntax (Kubernetes Service names are all valid).
func checkDNSName(name string) error {
	d := strings.TrimPrefix(name, "*.")
	if d == "" || len(name) > 253 {
		return fmt.Errorf("invalid DNS name %q", name)
	}
	for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid DNS name %q", name)
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid DNS name %q", name)
			}
		}
	}
	return nil
}

func generateKey(a KeyAlgorithm) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch a {
	case RSA3072:
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case ECDSAP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key algorithm %v", a)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %v key: %w", a, err)
	}
	return k, nil
}

// Files returns the six files of the ssl-keys Secret sorted by name.
// server.crt and server.csr are public (mode 0644); the others hold the
// private key (mode 0600).
func (k *Keys) Files() []File {
	return []File{
		{Name: FileKeystoreJKS, Data: k.KeystoreJKS, Mode: 0o600},
		{Name: FileKeystorePKCS12, Data: k.KeystorePKCS12, Mode: 0o600},
		{Name: FileServerCRT, Data: k.ServerCRT, Mode: 0o644},
		{Name: FileServerCSR, Data: k.ServerCSR, Mode: 0o644},
		{Name: FileServerKey, Data: k.ServerKey, Mode: 0o600},
		{Name: FileServerPEM, Data: k.ServerPEM, Mode: 0o600},
	}
}

// String implements fmt.Stringer without revealing key material.
func (k *Keys) String() string {
	if k.Certificate == nil {
		return "ppmlsecrets.Keys{redacted}"
	}
	return fmt.Sprintf("ppmlsecrets.Keys{CN=%q, not after %s, key redacted}",
		k.Certificate.Subject.CommonName, k.Certificate.NotAfter.Format(time.DateOnly))
}

// LogValue implements slog.LogValuer without revealing key material.
func (k *Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }
