package ppmlsecrets

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pw        string
		wantErr   string // "" for none
		shellOnly bool   // the error is ErrPasswordNotShellSafe
	}{
		{"ok/letters digits", "abcDEF123", "", false},
		{"ok/safe punctuation", "a-b_c.d,e:f=g+h@i%j/k^l", "", false},
		{"ok/min length", "abcdef", "", false},
		{"ok/max length", strings.Repeat("x", MaxPasswordLen), "", false},
		{"error/empty", "", "empty", false},
		{"error/too short", "abcde", "shorter", false},
		{"error/too long", strings.Repeat("x", MaxPasswordLen+1), "longer", false},
		{"error/space", "abc def", "printable ASCII", false},
		{"error/tab", "abc\tdef", "printable ASCII", false},
		{"error/newline", "abcdef\n", "printable ASCII", false},
		{"error/non-ASCII", "passwörd", "printable ASCII", false},
		{"error/DEL", "abcdef\x7f", "printable ASCII", false},
		{"shell/dollar", "abc$def", "", true},
		{"shell/backquote", "abc`def", "", true},
		{"shell/quote", "abc'def", "", true},
		{"shell/glob", "abc*def", "", true},
		{"shell/semicolon", "abc;def", "", true},
		{"shell/tilde", "~abcdef", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidatePassword([]byte(tt.pw))
			switch {
			case tt.shellOnly:
				if !errors.Is(err, ErrPasswordNotShellSafe) {
					t.Fatalf("err = %v, want ErrPasswordNotShellSafe", err)
				}
				if err := checkPassword([]byte(tt.pw)); err != nil {
					t.Errorf("hard check rejects a shell-unsafe password: %v", err)
				}
			case tt.wantErr == "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrPasswordNotShellSafe) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			}
			if err != nil && len(tt.pw) >= 3 && strings.Contains(err.Error(), tt.pw) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestRandomPassword(t *testing.T) {
	t.Parallel()
	a, b := RandomPassword(), RandomPassword()
	if err := ValidatePassword(a); err != nil {
		t.Errorf("random password fails validation: %v", err)
	}
	if len(a) < 26 || bytes.Equal(a, b) {
		t.Errorf("weak random passwords %d %d", len(a), len(b))
	}
}

func TestGeneratePasswordRoundTrip(t *testing.T) {
	t.Parallel()
	p := mustPassword(t)
	b, rest := pem.Decode(p.KeyTxt)
	if b == nil || b.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("key.txt is not one PKCS #8 PEM block: %q", p.KeyTxt)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != PasswordKeyBits {
		t.Fatalf("key.txt holds %T, want RSA-%d", k, PasswordKeyBits)
	}
	if len(p.OutputBin) != rk.Size() {
		t.Fatalf("output.bin is %d bytes", len(p.OutputBin))
	}
	//lint:ignore SA1019 testing the compatible format.
	msg, err := rsa.DecryptPKCS1v15(nil, rk, p.OutputBin) //nolint:staticcheck
	if err != nil || string(msg) != testPassword+"\n" {
		t.Fatalf("output.bin decrypts to %q, %v; want the password and a newline", msg, err)
	}
	got, err := RecoverPassword(p.KeyTxt, p.OutputBin)
	if err != nil || string(got) != testPassword {
		t.Fatalf("RecoverPassword = %q, %v", got, err)
	}
}

// encryptTo builds an output.bin for msg with key, the way openssl rsautl does.
func encryptTo(t *testing.T, key *rsa.PrivateKey, msg string) []byte {
	t.Helper()
	//lint:ignore SA1019 testing the compatible format.
	out, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, []byte(msg)) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecoverPassword(t *testing.T) {
	t.Parallel()
	p := mustPassword(t)
	k2, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k2)})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	encPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})

	tests := []struct {
		name    string
		key     []byte
		out     []byte
		want    string
		wantErr string
	}{
		{"ok/PKCS8 from GeneratePassword", p.KeyTxt, p.OutputBin, testPassword, ""},
		{"ok/PKCS1 as openssl 1.1 genrsa", pkcs1, encryptTo(t, k2, "from-openssl\n"), "from-openssl", ""},
		{"ok/no newline", pkcs1, encryptTo(t, k2, "no-newline"), "no-newline", ""},
		{"ok/all trailing newlines as $(...)", pkcs1, encryptTo(t, k2, "two\n\n"), "two", ""},
		{"ok/text around PEM", append([]byte("Bag Attributes\n"), append(pkcs1, "trailer\n"...)...), encryptTo(t, k2, "pw-text\n"), "pw-text", ""},
		{"ok/certificate block first", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), pkcs1...), encryptTo(t, k2, "cert-first\n"), "cert-first", ""},
		{"error/wrong key", pkcs1, p.OutputBin, "", "does not decrypt"},
		{"error/flipped bit", p.KeyTxt, flip(p.OutputBin, 100), "", "does not decrypt"},
		{"error/short output", p.KeyTxt, p.OutputBin[1:], "", "output.bin is 255 bytes"},
		{"error/empty output", p.KeyTxt, nil, "", "output.bin is 0 bytes"},
		{"error/empty password", pkcs1, encryptTo(t, k2, "\n"), "", "empty password"},
		{"error/no PEM", []byte("not a key"), p.OutputBin, "", "no PEM private key"},
		{"error/ECDSA key", ecPEM, p.OutputBin, "", "want RSA"},
		{"error/encrypted PKCS8", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), p.OutputBin, "", "encrypted"},
		{"error/encrypted PKCS1", encPKCS1, p.OutputBin, "", "encrypted"},
		{"error/garbage PKCS1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2}}), p.OutputBin, "", "invalid PKCS #1"},
		{"error/garbage PKCS8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), p.OutputBin, "", "invalid PKCS #8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RecoverPassword(tt.key, tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "MII") {
					t.Errorf("error reveals secrets: %v", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("RecoverPassword = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestGeneratePasswordErrors(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"", "short", "with space", strings.Repeat("y", MaxPasswordLen+1)} {
		if _, err := GeneratePassword([]byte(pw)); err == nil {
			t.Errorf("GeneratePassword(%q) succeeded", pw)
		}
	}
	pw := []byte("sh3ll$unsafe")
	p, err := GeneratePassword(pw)
	if err != nil {
		t.Fatalf("a shell-unsafe password is still usable: %v", err)
	}
	if string(pw) != "sh3ll$unsafe" {
		t.Error("GeneratePassword modified the caller's password")
	}
	if got, err := RecoverPassword(p.KeyTxt, p.OutputBin); err != nil || string(got) != "sh3ll$unsafe" {
		t.Errorf("RecoverPassword = %q, %v", got, err)
	}
}

func TestPasswordRedacted(t *testing.T) {
	t.Parallel()
	p := mustPassword(t)
	for _, s := range []string{p.String(), fmt.Sprint(p), fmt.Sprintf("%+v", p), p.LogValue().String()} {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, "MII") {
			t.Errorf("Password prints key material: %s", s)
		}
	}
}

func FuzzRecoverPassword(f *testing.F) {
	p, err := testPasswordFiles()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.KeyTxt, p.OutputBin)
	f.Add(p.KeyTxt, p.OutputBin[:10])
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), []byte{0})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, key, out []byte) {
		pw, err := RecoverPassword(key, out)
		if err == nil && (len(pw) == 0 || pw[len(pw)-1] == '\n') {
			t.Fatalf("RecoverPassword = %q without error", pw)
		}
	})
}
