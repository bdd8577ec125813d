package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ppmlkms/kms/internal/ppmlsecrets"
)

// runCLI runs kmsctl in-process with stdin and returns its output and exit
// code.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(string) string { return "" }, stdinTerminal: -1}
	code = c.run(context.Background(), args)
	return out.String(), errOut.String(), code
}

// runTool runs a real tool in dir and returns its stdout; it fails the test
// if the tool fails.
func runTool(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestSecretsRealTools checks what "kmsctl secrets generate-keys" and
// "generate-password" write with the tools PPML runs on those files:
// openssl decrypts output.bin with key.txt as PPML's entrypoints do,
// keytool lists keystore.jks, openssl opens keystore.pkcs12. Package
// ppmlsecrets tests the library the same way and more; this test checks
// the files of the CLI. Each check skips when its tool is missing.
func TestSecretsRealTools(t *testing.T) {
	t.Parallel()
	have := map[string]bool{}
	for _, tool := range []string{"openssl", "keytool"} {
		_, err := exec.LookPath(tool)
		have[tool] = err == nil
	}
	if !have["openssl"] && !have["keytool"] {
		t.Skip("neither openssl nor keytool is installed: skipping the checks with the real tools")
	}
	const filePassword = "Ch4nge-it.now"
	for _, tt := range []struct {
		name   string
		args   []string
		random bool
	}{
		{"password-file rsa-3072", []string{"--dns", "kms.example.test", "--ip", "192.0.2.10"}, false},
		{"random-password ecdsa-p256 modern", []string{"--key", "ecdsa-p256", "--pkcs12", "modern", "--random-password"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pwFile := filepath.Join(dir, "pw.txt")
			if err := os.WriteFile(pwFile, []byte(filePassword+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			args := append([]string{"secrets", "generate-keys", "--out", out}, tt.args...)
			if !tt.random {
				args = append(args, "--password-file", pwFile)
			}
			stdout, stderr, code := runCLI(t, "", args...)
			if code != exitOK {
				t.Fatalf("generate-keys exited %d: %s", code, stderr)
			}
			if !tt.random {
				if _, stderr, code := runCLI(t, "", "secrets", "generate-password", "--out", out, "--password-file", pwFile); code != exitOK {
					t.Fatalf("generate-password exited %d: %s", code, stderr)
				}
			}
			keysDir, pwDir := filepath.Join(out, ppmlsecrets.KeysDir), filepath.Join(out, ppmlsecrets.PasswordDir)

			password := filePassword
			if tt.random {
				// The random password is only in password/, never printed.
				keyTxt, _ := os.ReadFile(filepath.Join(pwDir, "key.txt"))
				outputBin, _ := os.ReadFile(filepath.Join(pwDir, "output.bin"))
				pw, err := ppmlsecrets.RecoverPassword(keyTxt, outputBin)
				if err != nil {
					t.Fatal(err)
				}
				password = string(pw)
				if len(password) != 26 || strings.Contains(stdout+stderr, password) {
					t.Fatalf("random password of %d characters; printed: %v", len(password), strings.Contains(stdout+stderr, password))
				}
			}

			t.Run("openssl rsautl", func(t *testing.T) {
				if !have["openssl"] {
					t.Skip("openssl is not installed")
				}
				got := runTool(t, pwDir, "openssl", "rsautl", "-decrypt", "-inkey", "key.txt", "-in", "output.bin")
				if got != password+"\n" {
					t.Errorf("openssl rsautl -decrypt gives %d bytes, want the password and a newline", len(got))
				}
			})
			t.Run("openssl pkcs12", func(t *testing.T) {
				if !have["openssl"] {
					t.Skip("openssl is not installed")
				}
				got := runTool(t, keysDir, "openssl", "pkcs12", "-info", "-in", "keystore.pkcs12", "-passin", "pass:"+password, "-nokeys")
				if !strings.Contains(got, "-----BEGIN CERTIFICATE-----") {
					t.Errorf("openssl pkcs12 -info shows no certificate:\n%s", got)
				}
			})
			t.Run("keytool", func(t *testing.T) {
				if !have["keytool"] {
					t.Skip("keytool is not installed")
				}
				got := runTool(t, keysDir, "keytool", "-list", "-keystore", "keystore.jks", "-storepass", password)
				if !strings.Contains(got, "Your keystore contains 1 entry") || strings.Count(got, "PrivateKeyEntry") != 1 {
					t.Errorf("keytool -list keystore.jks:\n%s", got)
				}
			})
		})
	}
}

func TestReadSecretFile(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in, want, err string
	}{
		{"ok/newline dropped", "Ch4nge-it.now\n", "Ch4nge-it.now", ""},
		{"ok/crlf dropped", "Ch4nge-it.now\r\n", "Ch4nge-it.now", ""},
		{"ok/no newline", "Ch4nge-it.now", "Ch4nge-it.now", ""},
		{"usage/two newlines", "Ch4nge-it.now\n\n", "", "more than one line"},
		{"usage/two lines", "a\nb\n", "", "more than one line"},
		{"usage/empty", "", "", "is empty"},
		{"usage/only a newline", "\n", "", "is empty"},
		{"usage/too large", strings.Repeat("x", maxSecretFile+1), "", "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &cli{stdin: strings.NewReader(tt.in)}
			got, err := newCmdOpts().readSecretFile(c, "-", "--password-file")
			if tt.err != "" {
				if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// Standard input can be read once.
	o := newCmdOpts()
	c := &cli{stdin: strings.NewReader("x")}
	o.stdinTaken = "--api-key-file -"
	if _, err := o.readSecretFile(c, "-", "--password-file"); exitCode(err) != exitUsage {
		t.Fatalf("second stdin reader: %v", err)
	}
}

// TestPasswordPrompt covers the keystore password prompt, which testscript
// cannot reach (its stdin is never a terminal).
func TestPasswordPrompt(t *testing.T) {
	var answers []string
	old := testOnlyReadPassword
	t.Cleanup(func() { testOnlyReadPassword = old })
	testOnlyReadPassword = func(int) ([]byte, error) {
		if len(answers) == 0 {
			return nil, errors.New("no more answers")
		}
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}
	for _, tt := range []struct {
		name    string
		answers []string
		err     string // a usage error containing this, or "" for success
		stderr  string
	}{
		{"ok/asked twice", []string{"Ch4nge-it.now", "Ch4nge-it.now"}, "", "Repeat the password: "},
		{"usage/mismatch", []string{"Ch4nge-it.now", "Ch4nge-it.no"}, "do not match", ""},
		{"usage/too short, asked once", []string{"abc12"}, "shorter than 6", ""},
		{"usage/space", []string{"has space"}, "printable ASCII without spaces", ""},
		{"ok/not shell safe warns", []string{"dollar$sign", "dollar$sign"}, "", "warning: the password contains characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := &cli{stderr: &stderr, stdinTerminal: 0}
			answers = tt.answers
			pw, err := newCmdOpts().keystorePassword(c)
			if len(answers) != 0 {
				t.Errorf("%d answers left", len(answers))
			}
			if tt.err != "" {
				if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.err)
				}
			} else if err != nil || string(pw) != tt.answers[0] {
				t.Fatalf("password %q, %v", pw, err)
			}
			if !strings.Contains(stderr.String(), "New keystore password: ") || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("prompt output %q", stderr.String())
			}
			if strings.Contains(stderr.String(), tt.answers[0]) || err != nil && strings.Contains(err.Error(), tt.answers[0]) {
				t.Errorf("the password is echoed: %q, %v", stderr.String(), err)
			}
		})
	}
	// Stdin already read as data, or not a terminal: no prompt.
	o := newCmdOpts()
	o.stdinTaken = "--api-key-file -"
	if _, err := o.keystorePassword(&cli{stdinTerminal: 0}); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no password") {
		t.Fatalf("stdin taken: %v", err)
	}
	if _, err := newCmdOpts().keystorePassword(&cli{stdinTerminal: -1}); exitCode(err) != exitUsage {
		t.Fatalf("no terminal: %v", err)
	}
}

// perm PATH MODE: PATH has the permission bits MODE (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm path mode")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[0], got, want)
	}
}

// size FILE N: FILE is N bytes long.
func cmdSize(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: size file n")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if strconv.FormatInt(fi.Size(), 10) != args[1] {
		ts.Fatalf("%s is %d bytes, want %s", args[0], fi.Size(), args[1])
	}
}

// secretdata MANIFEST KEY OUT: write the decoded value of data key KEY of
// the first Secret in MANIFEST that has it to OUT.
func cmdSecretData(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: secretdata manifest key out")
	}
	prefix := "  " + args[1] + ": "
	for line := range strings.Lines(ts.ReadFile(args[0])) {
		v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), prefix)
		if !ok {
			continue
		}
		s, err := strconv.Unquote(v)
		ts.Check(err)
		b, err := base64.StdEncoding.DecodeString(s)
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(args[2]), b, 0o600))
		return
	}
	ts.Fatalf("%s has no data key %s", args[0], args[1])
}
