package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ppmlkms/kms/internal/ppmlsecrets"
)

// Keystore passwords and api keys are read like tokens: from a file, from
// stdin or from a prompt without echo, never from the command line (see
// refuseSecretFlags).

// maxSecretFile bounds what is read from a password or api key file; a
// keystore password is at most 128 bytes.
const maxSecretFile = 4 << 10

// keystorePassword returns the password from --password-file (a file, or
// '-' for stdin) or, when stdin is a terminal, from a prompt that asks
// twice. A password that fails ppmlsecrets.ValidatePassword is a usage
// error; one that is merely not shell safe draws a warning.
func (o *cmdOpts) keystorePassword(c *cli) ([]byte, error) {
	if f := o.secrets.passwordFile; f != "" {
		pw, err := o.readSecretFile(c, f, "--password-file")
		if err != nil {
			return nil, err
		}
		if err := checkKeystorePassword(c, pw, "--password-file: "+sourceName(f)); err != nil {
			clear(pw)
			return nil, err
		}
		return pw, nil
	}
	if c.stdinTerminal >= 0 && o.stdinTaken == "" {
		return c.promptPassword()
	}
	return nil, usageErrorf("no password: use --password-file FILE, --password-file - (stdin), " +
		"or run in a terminal to be prompted (there is no --password flag)")
}

// checkKeystorePassword applies ppmlsecrets.ValidatePassword. from, if
// not empty, names where the password came from in the error, which never
// holds the password.
func checkKeystorePassword(c *cli, pw []byte, from string) error {
	err := ppmlsecrets.ValidatePassword(pw)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ppmlsecrets.ErrPasswordNotShellSafe):
		fmt.Fprintf(c.stderr, "kmsctl: warning: the %v; using it anyway\n", err)
		return nil
	}
	if from != "" {
		from += ": "
	}
	return usageErrorf("%s%v (a keystore password is %d to %d printable ASCII characters without spaces)",
		from, err, ppmlsecrets.MinPasswordLen, ppmlsecrets.MaxPasswordLen)
}

// readSecretFile reads a one-line secret from path, or from stdin for "-",
// and drops one trailing newline (LF or CRLF). flagName claims stdin and
// names the source in errors.
func (o *cmdOpts) readSecretFile(c *cli, path, flagName string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		if err := o.takeStdin(flagName + " -"); err != nil {
			return nil, err
		}
		r = c.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	name := sourceName(path)
	if len(b) > maxSecretFile {
		clear(b)
		return nil, usageErrorf("%s: %s is larger than %d bytes", flagName, name, maxSecretFile)
	}
	v := bytes.TrimSuffix(b, []byte("\n"))
	v = bytes.TrimSuffix(v, []byte("\r"))
	switch {
	case len(v) == 0:
		clear(b)
		return nil, usageErrorf("%s: %s is empty", flagName, name)
	case bytes.ContainsAny(v, "\r\n"):
		clear(b)
		return nil, usageErrorf("%s: %s has more than one line", flagName, name)
	}
	return v, nil
}

// sourceName names a file flag's value in messages.
func sourceName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// promptPassword asks for a new keystore password twice, without echo. It
// checks the first answer before asking again.
func (c *cli) promptPassword() ([]byte, error) {
	read := func(p string) ([]byte, error) {
		fmt.Fprint(c.stderr, p)
		b, err := testOnlyReadPassword(c.stdinTerminal)
		fmt.Fprintln(c.stderr)
		if err != nil {
			clear(b)
			return nil, fmt.Errorf("read password: %w", err)
		}
		return b, nil
	}
	fmt.Fprintf(c.stderr, "The keystore password: %d to %d printable ASCII characters, no spaces.\n",
		ppmlsecrets.MinPasswordLen, ppmlsecrets.MaxPasswordLen)
	pw, err := read("New keystore password: ")
	if err != nil {
		return nil, err
	}
	if err := checkKeystorePassword(c, pw, ""); err != nil {
		clear(pw)
		return nil, err
	}
	again, err := read("Repeat the password: ")
	defer clear(again)
	if err != nil {
		clear(pw)
		return nil, err
	}
	if !bytes.Equal(pw, again) {
		clear(pw)
		return nil, usageErrorf("the passwords do not match")
	}
	return pw, nil
}

// recoverPassword reads the keystore password back from key.txt and
// output.bin in dir, as PPML's entrypoints do. They are local files, so
// PKCS #1 v1.5 decryption is no oracle here.
func recoverPassword(dir string) ([]byte, error) {
	keyTxt, err := os.ReadFile(filepath.Join(dir, ppmlsecrets.FileKeyTxt))
	if err != nil {
		return nil, fmt.Errorf("--password-dir: %w", err)
	}
	defer clear(keyTxt)
	outputBin, err := os.ReadFile(filepath.Join(dir, ppmlsecrets.FileOutputBin))
	if err != nil {
		return nil, fmt.Errorf("--password-dir: %w", err)
	}
	pw, err := ppmlsecrets.RecoverPassword(keyTxt, outputBin)
	if err != nil {
		return nil, fmt.Errorf("--password-dir %s: %w", dir, err)
	}
	return pw, nil
}
