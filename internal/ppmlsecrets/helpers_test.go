package ppmlsecrets

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// testPassword is shell safe and long enough for keytool.
const testPassword = "Ch4nge-it.now"

var testSANs = struct {
	dns []string
	ips []net.IP
}{
	dns: []string{"kms.example.test", "bigdl-kms-frontend-service.bigdl-kms.svc", "localhost"},
	ips: []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1"), net.ParseIP("fd00::5")},
}

// Key generation is slow (RSA-3072, and more so under -race), so each
// variant is made once per test binary.
var (
	rsaKeys = sync.OnceValues(func() (*Keys, error) {
		return GenerateKeys(KeysOptions{
			Password:    []byte(testPassword),
			DNSNames:    testSANs.dns,
			IPAddresses: testSANs.ips,
		})
	})
	ecdsaModernKeys = sync.OnceValues(func() (*Keys, error) {
		return GenerateKeys(KeysOptions{
			Password:     []byte(testPassword),
			CommonName:   "kms ecdsa",
			DNSNames:     []string{"localhost"},
			Algorithm:    ECDSAP256,
			ValidityDays: 30,
			PKCS12:       PKCS12Modern,
		})
	})
	testPasswordFiles = sync.OnceValues(func() (*Password, error) {
		return GeneratePassword([]byte(testPassword))
	})
)

func mustKeys(t *testing.T, f func() (*Keys, error)) *Keys {
	t.Helper()
	k, err := f()
	if err != nil {
		t.Fatalf("GenerateKeys: %v", err)
	}
	return k
}

func mustPassword(t *testing.T) *Password {
	t.Helper()
	p, err := testPasswordFiles()
	if err != nil {
		t.Fatalf("GeneratePassword: %v", err)
	}
	return p
}

// writeTemp writes files into a new temporary directory and returns it.
func writeTemp(t *testing.T, files []File) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// needTool skips the test when a real tool is not installed.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed, skipping the check with the real tool: %v", name, err)
	}
}

// run runs a command in dir and returns its standard output, failing the
// test if it exits non-zero. Passwords go through the environment
// (KEYSTORE_PASSWORD), never the command line.
func run(t *testing.T, dir string, stdin []byte, name string, args ...string) string {
	t.Helper()
	out, errOut, err := runErr(dir, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out, errOut)
	}
	return out
}

func runErr(dir string, stdin []byte, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KEYSTORE_PASSWORD="+testPassword)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
