package ppmlsecrets

// Checks with the real tools PPML uses: openssl, keytool and a Java program
// that opens the keystores as Spark and Flink do. Each test skips with a
// message when its tool is missing.

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var keyVariants = []struct {
	name string
	keys func() (*Keys, error)
	// what `openssl pkcs12 -info` reports for this encoding
	pkcs12Algs []string
}{
	{"rsa-3072 legacy", rsaKeys, []string{"MAC: sha1", "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC", "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"}},
	{"ecdsa-p256 modern", ecdsaModernKeys, []string{"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC"}},
}

func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

func TestOpenSSLReadsKeys(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	for _, v := range keyVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			k := mustKeys(t, v.keys)
			dir := writeTemp(t, k.Files())

			_, stderr, err := runErr(dir, nil, "openssl", "req", "-verify", "-noout", "-in", "server.csr")
			if err != nil {
				t.Fatalf("openssl req -verify: %v\n%s", err, stderr)
			}
			mustContain(t, "openssl req -verify", stderr, "verify OK")

			text := run(t, dir, nil, "openssl", "x509", "-noout", "-text", "-in", "server.crt")
			mustContain(t, "openssl x509 -text", text, "CA:FALSE", "TLS Web Server Authentication, TLS Web Client Authentication")
			for _, d := range k.Certificate.DNSNames {
				mustContain(t, "openssl x509 -text", text, "DNS:"+d)
			}
			for _, ip := range k.Certificate.IPAddresses {
				if ip.To4() != nil {
					mustContain(t, "openssl x509 -text", text, "IP Address:"+ip.String())
				}
			}
			if k.Certificate.PublicKeyAlgorithm == x509.RSA {
				mustContain(t, "openssl x509 -text", text, "Public-Key: (3072 bit)", "IP Address:FD00:0:0:0:0:0:0:5")
				mustContain(t, "openssl rsa -check", run(t, dir, nil, "openssl", "rsa", "-check", "-noout", "-in", "server.key"), "RSA key ok")
			} else {
				mustContain(t, "openssl x509 -text", text, "Public-Key: (256 bit)", "NIST CURVE: P-256")
				run(t, dir, nil, "openssl", "pkey", "-check", "-noout", "-in", "server.key")
			}

			mustContain(t, "openssl verify", run(t, dir, nil, "openssl", "verify", "-CAfile", "server.crt", "server.crt"), "server.crt: OK")

			// server.pem holds both halves of the same key pair.
			pub1 := run(t, dir, nil, "openssl", "pkey", "-in", "server.pem", "-pubout")
			pub2 := run(t, dir, nil, "openssl", "x509", "-in", "server.pem", "-noout", "-pubkey")
			if pub1 != pub2 || !strings.Contains(pub1, "PUBLIC KEY") {
				t.Errorf("server.pem: key and certificate differ:\n%s\n%s", pub1, pub2)
			}

			info, infoErr, err := runErr(dir, nil, "openssl", "pkcs12", "-info", "-in", "keystore.pkcs12", "-passin", "env:KEYSTORE_PASSWORD", "-nokeys")
			if err != nil {
				t.Fatalf("openssl pkcs12 -info: %v\n%s", err, infoErr)
			}
			mustContain(t, "openssl pkcs12 -info", info, "-----BEGIN CERTIFICATE-----")
			mustContain(t, "openssl pkcs12 -info (stderr)", infoErr, v.pkcs12Algs...)
			keyPEM := run(t, dir, nil, "openssl", "pkcs12", "-in", "keystore.pkcs12", "-passin", "env:KEYSTORE_PASSWORD", "-nocerts", "-nodes")
			if !privateKeyEqual(firstPrivateKey(t, []byte(keyPEM)), parseKeyPEM(t, k.ServerKey)) {
				t.Error("keystore.pkcs12 holds another key than server.key")
			}
			if _, _, err := runErr(dir, nil, "openssl", "pkcs12", "-info", "-in", "keystore.pkcs12", "-passin", "pass:wrong-password", "-nokeys"); err == nil {
				t.Error("openssl opens keystore.pkcs12 with a wrong password")
			}

			// An OpenSSL client trusts server.crt and checks the host name
			// against the SANs, talking to a server that loads server.pem.
			cert, err := tls.X509KeyPair(k.ServerPEM, k.ServerPEM)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.(*tls.Conn).Handshake()
					c.Close()
				}
			}()
			out := run(t, dir, []byte{}, "openssl", "s_client", "-connect", ln.Addr().String(), "-CAfile", "server.crt",
				"-verify_return_error", "-verify_hostname", k.Certificate.DNSNames[0])
			mustContain(t, "openssl s_client", out, "Verify return code: 0 (ok)")
			if _, _, err := runErr(dir, []byte{}, "openssl", "s_client", "-connect", ln.Addr().String(), "-CAfile", "server.crt",
				"-verify_return_error", "-verify_hostname", "not-in-the-sans.example"); err == nil {
				t.Error("openssl s_client accepted a host name outside the SANs")
			}
		})
	}
}

// firstPrivateKey parses the first PEM private key in data (openssl pkcs12
// prints "Bag Attributes" text around it).
func firstPrivateKey(t *testing.T, data []byte) any {
	t.Helper()
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			t.Fatal("no private key in openssl output")
		}
		if b.Type == "PRIVATE KEY" {
			return parseKeyPEM(t, pem.EncodeToMemory(b))
		}
	}
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return strings.ToUpper(strings.Join(splitPairs(hex.EncodeToString(sum[:])), ":"))
}

func splitPairs(s string) []string {
	var out []string
	for i := 0; i < len(s); i += 2 {
		out = append(out, s[i:i+2])
	}
	return out
}

func TestKeytoolListsKeystores(t *testing.T) {
	t.Parallel()
	needTool(t, "keytool")
	for _, v := range keyVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			k := mustKeys(t, v.keys)
			dir := writeTemp(t, k.Files())
			fp := "SHA256: " + fingerprint(k.Certificate.Raw)
			for _, store := range []struct{ file, typ string }{{"keystore.jks", "JKS"}, {"keystore.pkcs12", "PKCS12"}} {
				out := run(t, dir, nil, "keytool", "-list", "-v", "-keystore", store.file, "-storetype", store.typ, "-storepass:env", "KEYSTORE_PASSWORD")
				mustContain(t, "keytool -list "+store.file, out, "Keystore type: "+store.typ, "Your keystore contains 1 entry",
					"Alias name: "+Alias, "Entry type: PrivateKeyEntry", "Certificate chain length: 1", fp)
				_, _, err := runErr(dir, nil, "keytool", "-list", "-keystore", store.file, "-storetype", store.typ, "-storepass", "wrong-password")
				if err == nil {
					t.Errorf("keytool opens %s with a wrong password", store.file)
				}
			}
			// BigDL's own step: keytool -importkeystore from the PKCS #12
			// file into a JKS, with the key password left equal to the store's.
			run(t, dir, nil, "keytool", "-importkeystore", "-noprompt",
				"-srckeystore", "keystore.pkcs12", "-srcstoretype", "PKCS12", "-srcstorepass:env", "KEYSTORE_PASSWORD",
				"-destkeystore", "converted.jks", "-deststoretype", "JKS", "-deststorepass:env", "KEYSTORE_PASSWORD")
			out := run(t, dir, nil, "keytool", "-list", "-keystore", "converted.jks", "-storepass:env", "KEYSTORE_PASSWORD")
			mustContain(t, "keytool -list converted.jks", out, Alias+", ", "PrivateKeyEntry")
		})
	}
}

// TestJavaOpensKeystores loads both keystores with java.security.KeyStore,
// recovers the key with the password (as spark.ssl.keyPassword does) and
// runs mutual-TLS handshakes (TLS 1.2 as Java 8, and TLS 1.3) with each
// keystore as key store and trust store, as Spark and Flink use them.
func TestJavaOpensKeystores(t *testing.T) {
	t.Parallel()
	needTool(t, "java")
	if _, _, err := runErr("", nil, "java", "--version"); err != nil {
		t.Skip("java is older than 11 (no single-file source launcher), skipping the Java check")
	}
	src, err := filepath.Abs(filepath.Join("testdata", "KeystoreCheck.java"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range keyVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			k := mustKeys(t, v.keys)
			dir := writeTemp(t, k.Files())
			out := run(t, dir, nil, "java", src, "JKS", "keystore.jks", "PKCS12", "keystore.pkcs12")
			alg := "EC"
			if k.Certificate.PublicKeyAlgorithm == x509.RSA {
				alg = "RSA"
			}
			sum := sha256.Sum256(k.Certificate.Raw)
			tail := fmt.Sprintf("alias=%s key=%s sha256=%x handshake=TLSv1.2,TLSv1.3\n", Alias, alg, sum)
			if want := "JKS " + tail + "PKCS12 " + tail; out != want {
				t.Errorf("java KeystoreCheck:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

func TestOpenSSLDecryptsPassword(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	p := mustPassword(t)
	dir := writeTemp(t, p.Files())
	mustContain(t, "openssl rsa -check key.txt", run(t, dir, nil, "openssl", "rsa", "-check", "-noout", "-in", "key.txt"), "RSA key ok")
	for _, cmd := range [][]string{
		{"openssl", "rsautl", "-decrypt", "-inkey", "key.txt", "-in", "output.bin"},
		{"openssl", "pkeyutl", "-decrypt", "-inkey", "key.txt", "-in", "output.bin"},
	} {
		if out := run(t, dir, nil, cmd[0], cmd[1:]...); out != testPassword+"\n" {
			t.Errorf("%v = %q, want the password and a newline", cmd, out)
		}
	}
	// Exactly what PPML's entrypoints run.
	needTool(t, "sh")
	out := run(t, dir, nil, "sh", "-c", "p=`openssl rsautl -inkey key.txt -decrypt <output.bin 2>/dev/null`; printf %s \"$p\"")
	if out != testPassword {
		t.Errorf("command substitution gives %q", out)
	}
}

// TestRecoverPasswordFromOpenSSL runs generate-password.sh's two commands,
// with openssl writing key.txt in both of its formats, and recovers the
// password in Go.
func TestRecoverPasswordFromOpenSSL(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	needTool(t, "sh")
	tests := []struct {
		name   string
		genrsa string
		header string
	}{
		{"PKCS1/openssl 1.1 genrsa or -traditional", "openssl genrsa -traditional -out key.txt 2048 2>/dev/null || openssl genrsa -out key.txt 2048", "-----BEGIN RSA PRIVATE KEY-----"},
		{"PKCS8/openssl 3 genrsa", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.txt", "-----BEGIN PRIVATE KEY-----"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			run(t, dir, nil, "sh", "-c", tt.genrsa+" && echo $KEYSTORE_PASSWORD | openssl rsautl -inkey key.txt -encrypt >output.bin 2>/dev/null")
			key, err := os.ReadFile(filepath.Join(dir, "key.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(key), tt.header) {
				t.Skipf("this openssl writes %.40q, not %s", key, tt.header)
			}
			out, err := os.ReadFile(filepath.Join(dir, "output.bin"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := RecoverPassword(key, out)
			if err != nil || string(got) != testPassword {
				t.Fatalf("RecoverPassword = %q, %v", got, err)
			}
		})
	}
}
