package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// TestNativeScripts runs testdata/native/*.txtar. Unlike TestScripts it
// starts no kmsd: admin identities and the seal mode are flags of kmsd's
// start, and the seal scripts restart kmsd on the same data directory, so
// each script starts its own with "kmsd start [kmsd flags]".
func TestNativeScripts(t *testing.T) {
	if _, err := kmstest.Binary(); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/native",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			tb, ok := env.T().(testing.TB)
			if !ok {
				return errors.New("testscript's T is not a testing.TB")
			}
			env.Values[kmsdKey{}] = &kmsdState{tb: tb}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"kmsd":     cmdKmsd,
			"mkfile":   cmdMkfile,
			"unbase64": cmdUnbase64,
			"flipbit":  cmdFlipBit,
			"perm":     cmdPerm,
			"size":     cmdSize,
		},
	})
}

type kmsdKey struct{}

// kmsdState is the kmsd of one script.
type kmsdState struct {
	tb testing.TB
	s  *kmstest.Server
}

// kmsd start [FLAGS...] | stop: start kmsd with FLAGS on the data directory
// $WORK/kmsd-data (kept across restarts) and point KMS_SERVER and
// KMS_CACERT at it; or stop it with SIGTERM.
func cmdKmsd(ts *testscript.TestScript, neg bool, args []string) {
	st, _ := ts.Value(kmsdKey{}).(*kmsdState)
	if neg || len(args) == 0 || st == nil {
		ts.Fatalf("usage: kmsd start [flags] | kmsd stop")
	}
	switch args[0] {
	case "start":
		if st.s != nil {
			ts.Fatalf("kmsd is already running")
		}
		st.s = kmstest.StartWith(st.tb, kmstest.Options{DataDir: ts.MkAbs("kmsd-data"), Args: args[1:]})
		ts.Setenv("KMS_SERVER", st.s.URL)
		ts.Setenv("KMS_CACERT", st.s.CAFile)
	case "stop":
		if st.s == nil {
			ts.Fatalf("kmsd is not running")
		}
		err := st.s.Close()
		st.s = nil
		ts.Check(err)
	default:
		ts.Fatalf("usage: kmsd start [flags] | kmsd stop")
	}
}

// TestHashTokenCompatible: kmsd (internal/auth) verifies the hashes that
// kmsctl's own argon2id code makes, and they have auth.HashToken's format
// and parameters.
func TestHashTokenCompatible(t *testing.T) {
	t.Parallel()
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	h := hashToken([]byte("correct horse battery staple"))
	if !phc.MatchString(h) {
		t.Fatalf("hash %q is not in the PHC format of auth.HashToken", h)
	}
	if ref := auth.HashToken("x"); !phc.MatchString(ref) {
		t.Fatalf("auth.HashToken's format changed: %q", ref)
	}
	for token, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false} {
		ok, err := auth.VerifyToken(h, token)
		if err != nil || ok != want {
			t.Errorf("VerifyToken(%q) = %v, %v; want %v", token, ok, err, want)
		}
	}
	if hashToken([]byte("a")) == hashToken([]byte("a")) {
		t.Error("two hashes of one token are equal: no random salt")
	}
}

func TestNativeExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{&client.Error{Status: 409, Code: "conflict"}, exitExists},
		{&client.Error{Status: 403, Code: "disabled"}, exitDisabled},
		{fmt.Errorf("encrypt: %w", &client.Error{Status: 403, Code: "disabled"}), exitDisabled},
		{&client.Error{Status: 403, Code: "forbidden"}, exitAuth},
		{&client.Error{Status: 503, Code: "sealed"}, exitUnavailable},
		{&errSealed{"sealed"}, exitUnavailable},
		{&client.Error{Status: 400, Code: "decrypt_failed"}, exitIntegrity},
		{fmt.Errorf("batch: %w", &client.Error{Code: "decrypt_failed"}), exitIntegrity}, // a batch item
		{&client.Error{Status: 400, Code: "invalid"}, exitFailure},
		{&client.Error{Status: 413, Code: "too_large"}, exitFailure},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestContextFlag(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	var m contextFlag
	fs.Var(&m, "context", "")
	if err := fs.Parse([]string{"--context", "b=2", "--context", "a=x=y", "--context", "e="}); err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != "a=x=y,b=2,e=" {
		t.Fatalf("context = %q", got)
	}
	for _, bad := range [][]string{{"--context", "b=3"}, {"--context", "novalue"}, {"--context", "=v"}} {
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var zero *contextFlag
	if zero.String() != "" {
		t.Error("nil contextFlag String")
	}
}

func TestDecodeCiphertext(t *testing.T) {
	t.Parallel()
	raw := append([]byte{ciphertextFormat, 0, 0, 0, 1}, bytes.Repeat([]byte{0xA5}, 40)...)
	b64 := base64.StdEncoding.EncodeToString(raw)
	for name, in := range map[string][]byte{
		"raw":               raw,
		"base64":            []byte(b64),
		"base64+newline":    []byte(b64 + "\n"),
		"base64 wrapped":    []byte(b64[:20] + "\r\n" + b64[20:] + "\n"),
		"base64 +space pad": []byte("  " + b64 + "  \n"),
	} {
		if got := decodeCiphertext(in); !bytes.Equal(got, raw) {
			t.Errorf("%s: decoded to %x", name, got)
		}
	}
	// Base64 of something that is not a native ciphertext stays as it is:
	// the server answers decrypt_failed.
	other := []byte(base64.StdEncoding.EncodeToString([]byte("hello")))
	if got := decodeCiphertext(other); !bytes.Equal(got, other) {
		t.Errorf("non-ciphertext base64 decoded to %q", got)
	}
}

func TestParseShares(t *testing.T) {
	t.Parallel()
	shares, err := parseShares([]byte("{\"index\":1,\"content\":\"QUJD\"}\n\n  {\"index\":2,\"content\":\"REVG\"}\r\n"), "f")
	if err != nil || len(shares) != 2 || shares[1].Index != 2 || shares[1].Content != "REVG" {
		t.Fatalf("shares = %+v, %v", shares, err)
	}
	for _, bad := range []string{
		`{"index":1,"content":"s3cretshare"`,
		`{"index":0,"content":"s3cretshare"}`,
		`{"index":1,"content":"s3cretshare","x":1}`,
		`s3cretshare`,
		"\n",
	} {
		_, err := parseShares([]byte(bad), "f")
		if exitCode(err) != exitUsage || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"720h": "720h", "90m": "1h30m", "1h0m30s": "1h0m30s", "45s": "45s", "2m": "2m"} {
		d, _ := time.ParseDuration(in)
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestAdminPrompts covers the prompts that testscript cannot reach: a new
// admin token (asked twice) and an unseal share.
func TestAdminPrompts(t *testing.T) {
	answers := []string{}
	old := testOnlyReadPassword
	t.Cleanup(func() { testOnlyReadPassword = old })
	testOnlyReadPassword = func(int) ([]byte, error) {
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}
	run := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		c := &cli{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""), stdinTerminal: 0,
			getenv: func(string) string { return "" }}
		code := c.run(context.Background(), args)
		return stdout.String(), stderr.String(), code
	}

	answers = []string{"a-long-enough-admin-token-123", "a-long-enough-admin-token-123"}
	stdout, stderr, code := run("admin", "hash-token", "ops")
	if code != 0 || !strings.HasPrefix(stdout, "ops $argon2id$") || strings.Contains(stdout+stderr, "admin-token-123") {
		t.Fatalf("hash-token: %d %q %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "New token for admin ops: ") || !strings.Contains(stderr, "Repeat the token: ") {
		t.Errorf("prompts: %q", stderr)
	}
	if ok, err := auth.VerifyToken(strings.Fields(stdout)[1], "a-long-enough-admin-token-123"); !ok || err != nil {
		t.Errorf("hash does not verify: %v %v", ok, err)
	}

	answers = []string{"short", "short"}
	if _, stderr, code := run("admin", "hash-token", "ops"); code != 0 || !strings.Contains(stderr, "warning: the token is shorter") {
		t.Errorf("short token: %d %q", code, stderr)
	}
	answers = []string{"one-token-xxxxxxxxxxxxxxxxxxxxx", "another-token-xxxxxxxxxxxxxxxxx"}
	if _, stderr, code := run("admin", "hash-token", "ops"); code != exitUsage || !strings.Contains(stderr, "do not match") {
		t.Errorf("mismatch: %d %q", code, stderr)
	}
	if _, stderr, code := run("admin", "hash-token", "bad name"); code != exitUsage || !strings.Contains(stderr, "admin name may contain only") {
		t.Errorf("bad name: %d %q", code, stderr)
	}

	// The share prompt: read without echo, parsed, never shown.
	answers = []string{`{"index":3,"content":"c2VjcmV0"}`}
	shares, err := readShares(&cli{stderr: &bytes.Buffer{}, stdinTerminal: 0}, newCmdOpts(), nil)
	if err != nil || len(shares) != 1 || shares[0].Index != 3 {
		t.Fatalf("prompted share: %+v %v", shares, err)
	}
}

func TestNativeRefusesSecretFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"admin", "users", "list", "--admin-token=hunter2"}, {"--admin-token", "hunter2", "sys", "init"}} {
		err := refuseSecretFlags(args)
		if exitCode(err) != exitUsage || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "--admin-token-file") {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := refuseSecretFlags([]string{"--admin-token-file", "f", "--admin", "ops"}); err != nil {
		t.Error(err)
	}
}

// TestNativeCompletion: the native commands complete like the others, and
// --key completes the secrets commands' key types only where they apply.
func TestNativeCompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	writeBash(&script, false)
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"kmsctl", "key", ""}, "create describe list rotate config enable disable schedule-deletion cancel-deletion"},
		{[]string{"kmsctl", "sys", ""}, "status init unseal rotate-root"},
		{[]string{"kmsctl", "admin", "users", "r"}, "rotate-token"},
		{[]string{"kmsctl", "encrypt-data", "--key", ""}, ""},
		{[]string{"kmsctl", "secrets", "generate-keys", "--key", "r"}, "rsa-3072 rsa-4096"},
		{[]string{"kmsctl", "generate-data-key", "--spec", ""}, "AES_256 AES_128"},
		{[]string{"kmsctl", "generate-data-key", "--no"}, "--no-plaintext"},
		{[]string{"kmsctl", "decrypt-data", "--con"}, "--config --context"},
	} {
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script.String()+`
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kmsctl; echo "${COMPREPLY[*]}"`, "bash")
		cmd.Args = append(cmd.Args, tt.words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
}
