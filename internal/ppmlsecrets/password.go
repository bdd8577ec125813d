package ppmlsecrets

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
)

// Password length limits, in bytes (the password is ASCII).
const (
	// MinPasswordLen is keytool's minimum for a keystore password; BigDL's
	// generate-keys.sh could not make a keystore with a shorter one.
	MinPasswordLen = 6
	// MaxPasswordLen leaves room to spare below what PKCS #1 v1.5 can encrypt
	// to an RSA-2048 key (245 bytes, including the trailing newline).
	MaxPasswordLen = 128
)

// PasswordKeyBits is the size of the RSA key in key.txt, as BigDL's
// `openssl genrsa -out key.txt 2048`.
const PasswordKeyBits = 2048

// ErrPasswordNotShellSafe reports a password that is valid for the keystores
// but contains characters that PPML's shell scripts would interpret: they
// expand the recovered password unquoted (--conf spark.ssl.keyPassword=$p)
// and, in SGX mode, inside a command line that bash parses again. Callers
// may warn and go on, or ask for another password.
var ErrPasswordNotShellSafe = errors.New("password contains characters that PPML's shell scripts interpret (safe: letters, digits and - _ . , : = + @ % / ^)")

// ValidatePassword checks a keystore password. It returns an error, which
// never contains the password, if the password is shorter than
// [MinPasswordLen] or longer than [MaxPasswordLen] bytes, or has a character
// other than printable ASCII without space: keytool and JKS treat a
// password as UTF-16 characters while PKCS #12 tools differ on non-ASCII,
// and `echo $PASSWORD` in generate-password.sh mangled white space. If those
// checks pass but the password has a character outside letters, digits and
// "-_.,:=+@%/^", it returns an error wrapping [ErrPasswordNotShellSafe];
// [GenerateKeys] and [GeneratePassword] accept such passwords.
func ValidatePassword(password []byte) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	for _, c := range password {
		if !shellSafe(c) {
			return ErrPasswordNotShellSafe
		}
	}
	return nil
}

// checkPassword applies the rules of [ValidatePassword] that make a
// password unusable.
func checkPassword(password []byte) error {
	switch {
	case len(password) == 0:
		return errors.New("password is empty")
	case len(password) < MinPasswordLen:
		return fmt.Errorf("password is shorter than %d characters", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password is longer than %d characters", MaxPasswordLen)
	}
	for _, c := range password {
		if c <= ' ' || c > '~' {
			return errors.New("password must be printable ASCII without spaces")
		}
	}
	return nil
}

func shellSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("-_.,:=+@%/^"), c) >= 0
}

// RandomPassword returns a new random password of 26 characters from the
// base32 alphabet (A-Z, 2-7), 130 bits of entropy, that passes
// [ValidatePassword]. Nobody needs to type it: PPML recovers it from
// output.bin.
func RandomPassword() []byte {
	return []byte(rand.Text())
}

// Password holds the files of the ssl-password Secret. Its String and
// LogValue methods never show the contents.
type Password struct {
	// KeyTxt is key.txt: an unencrypted RSA-2048 private key in PKCS #8 PEM.
	KeyTxt []byte
	// OutputBin is output.bin: the password and "\n", encrypted to KeyTxt
	// with RSA PKCS #1 v1.5, as `echo $P | openssl rsautl -encrypt` wrote it.
	OutputBin []byte
}

// GeneratePassword makes the ssl-password files for password, which must
// pass the checks of [ValidatePassword] (a password that is merely not
// shell safe is accepted). The result decrypts with
// `openssl rsautl -decrypt -inkey key.txt -in output.bin` (or pkeyutl) to
// the password followed by a newline. GeneratePassword does not keep or
// modify password.
func GeneratePassword(password []byte) (*Password, error) {
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, PasswordKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate key.txt: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key.txt: %w", err)
	}
	defer clear(der)
	msg := append(bytes.Clone(password), '\n')
	defer clear(msg)
	// PKCS #1 v1.5 because that is openssl rsautl's default padding, which
	// every PPML script decrypts with; OAEP would not open there.
	//lint:ignore SA1019 BigDL compatibility: output.bin is PKCS #1 v1.5.
	out, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, msg) //nolint:staticcheck // see above
	if err != nil {
		return nil, fmt.Errorf("encrypt output.bin: %w", err)
	}
	return &Password{
		KeyTxt:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		OutputBin: out,
	}, nil
}

// Files returns key.txt and output.bin, both with mode 0600.
func (p *Password) Files() []File {
	return []File{
		{Name: FileKeyTxt, Data: p.KeyTxt, Mode: 0o600},
		{Name: FileOutputBin, Data: p.OutputBin, Mode: 0o600},
	}
}

// String implements fmt.Stringer without revealing the key.
func (p *Password) String() string { return "ppmlsecrets.Password{redacted}" }

// LogValue implements slog.LogValuer without revealing the key.
func (p *Password) LogValue() slog.Value { return slog.StringValue(p.String()) }

// RecoverPassword decrypts output.bin with key.txt, as PPML's
// `openssl rsautl -inkey key.txt -decrypt <output.bin` in a shell command
// substitution does, and returns the password without its trailing
// newlines. key.txt may be PKCS #1 ("RSA PRIVATE KEY", older openssl
// genrsa) or PKCS #8 ("PRIVATE KEY", OpenSSL 3 and [GeneratePassword]) PEM,
// unencrypted. Errors never contain key or password bytes; a wrong key and
// a damaged output.bin give the same error.
//
// PKCS #1 v1.5 decryption must not become an oracle: call this on local
// files (kmsd at start-up), never on ciphertexts chosen by a network peer.
func RecoverPassword(keyTxtPEM, outputBin []byte) ([]byte, error) {
	key, err := parseRSAPrivateKey(keyTxtPEM)
	if err != nil {
		return nil, err
	}
	if len(outputBin) != key.Size() {
		return nil, fmt.Errorf("output.bin is %d bytes, want %d for the %d-bit key in key.txt", len(outputBin), key.Size(), key.N.BitLen())
	}
	//lint:ignore SA1019 BigDL compatibility: output.bin is PKCS #1 v1.5.
	msg, err := rsa.DecryptPKCS1v15(nil, key, outputBin) //nolint:staticcheck // see above
	if err != nil {
		return nil, errors.New("output.bin does not decrypt with key.txt")
	}
	// A shell command substitution drops every trailing newline.
	pw := bytes.TrimRight(msg, "\n")
	if len(pw) == 0 {
		clear(msg)
		return nil, errors.New("output.bin holds an empty password")
	}
	return pw, nil
}

// parseRSAPrivateKey returns the first RSA private key in a PEM file,
// skipping other blocks and text, as OpenSSL does.
func parseRSAPrivateKey(data []byte) (*rsa.PrivateKey, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("key.txt has no PEM private key")
		}
		switch b.Type {
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("key.txt is encrypted; PPML reads it without a passphrase")
		case "RSA PRIVATE KEY":
			if _, ok := b.Headers["DEK-Info"]; ok {
				return nil, errors.New("key.txt is encrypted; PPML reads it without a passphrase")
			}
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, errors.New("key.txt: invalid PKCS #1 RSA private key")
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, errors.New("key.txt: invalid PKCS #8 private key")
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("key.txt holds a %T key, want RSA", k)
			}
			return rk, nil
		}
	}
}
