package ppmlsecrets

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// Alias is the alias of the private key entry in keystore.jks, and the alias
// Java gives the entry of keystore.pkcs12, which has no friendly name. It is
// what BigDL's `openssl pkcs12 -export` (no -name) followed by
// `keytool -importkeystore` produced. No PPML component selects the entry
// by alias: Spark, Flink, Redis clients and the KMS take the only key.
const Alias = "1"

// encodePKCS12 writes key and cert as a PKCS #12 file protected by password.
func encodePKCS12(enc PKCS12Encoding, key crypto.Signer, cert *x509.Certificate, password []byte) ([]byte, error) {
	var e *pkcs12.Encoder
	switch enc {
	case PKCS12Legacy:
		e = pkcs12.LegacyDES
	case PKCS12Modern:
		e = pkcs12.Modern2023
	default:
		return nil, fmt.Errorf("unknown PKCS #12 encoding %v", enc)
	}
	// go-pkcs12 takes the password as a string, so this copy cannot be
	// cleared; checkPassword has ensured it is ASCII, which PKCS #12's
	// BMPString encoding and Java agree on.
	b, err := e.Encode(key, cert, nil, string(password))
	if err != nil {
		return nil, fmt.Errorf("encode keystore.pkcs12: %w", err)
	}
	return b, nil
}

// encodeJKS writes a Java KeyStore with one PrivateKeyEntry (alias [Alias])
// holding the PKCS #8 key and cert, with store and key protected by
// password.
//
// keystore-go implements Sun's JKS format: the SHA-1 "Mighty Aphrodite"
// integrity hash and the proprietary SHA-1 XOR key protector. It turns each
// password byte into one Java char, which is right because checkPassword
// allows ASCII only.
func encodeJKS(pkcs8 []byte, cert *x509.Certificate, password []byte, created time.Time) ([]byte, error) {
	ks := keystore.New(keystore.WithCaseExactAliases())
	entry := keystore.PrivateKeyEntry{
		CreationTime:     created,
		PrivateKey:       bytes.Clone(pkcs8),
		CertificateChain: []keystore.Certificate{{Type: "X.509", Content: cert.Raw}},
	}
	defer clear(entry.PrivateKey)
	if err := ks.SetPrivateKeyEntry(Alias, entry, password); err != nil {
		return nil, fmt.Errorf("encode keystore.jks: %w", err)
	}
	var buf bytes.Buffer
	if err := ks.Store(&buf, password); err != nil {
		return nil, fmt.Errorf("encode keystore.jks: %w", err)
	}
	return buf.Bytes(), nil
}
