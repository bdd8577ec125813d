package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/ppml"
	"github.com/ppmlkms/kms/stream"
)

// TestDependencies: kmsctl reaches kmsd only through package client, and
// the binary does not link the testing package. The one internal package
// it uses, ppmlsecrets, writes local files and talks to nobody.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ppmlkms/kms/cmd/kmsctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "testing", p == "database/sql":
			t.Errorf("kmsctl links %s", p)
		case p == "github.com/ppmlkms/kms/internal/ppmlsecrets":
		case strings.HasPrefix(p, "github.com/ppmlkms/kms/internal/"):
			t.Errorf("kmsctl imports %s; talk to kmsd through ./client", p)
		}
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitFailure},
		{usageErrorf("bad"), exitUsage},
		{fmt.Errorf("stream: get file key: %w", usageErrorf("bad")), exitUsage},
		{fmt.Errorf("x: %w", &client.Error{Status: 404, Code: "not_found"}), exitNotFound},
		{&client.Error{Status: 409, Code: "already_exists"}, exitExists},
		{&client.Error{Status: 401, Code: "unauthorized"}, exitAuth},
		{&client.Error{Status: 403, Code: "forbidden"}, exitAuth},
		{&client.Error{Status: 429, Code: "throttled"}, exitAuth},
		{&client.Error{Status: 503, Code: "unavailable"}, exitUnavailable},
		{fmt.Errorf("%w: dial", client.ErrUnavailable), exitUnavailable},
		{&client.Error{Status: 500, Code: "internal"}, exitFailure},
		{ppml.ErrAuth, exitIntegrity},
		{fmt.Errorf("decrypt part: %w", ppml.ErrTruncated), exitIntegrity},
		{ppml.ErrMixedKeys, exitIntegrity},
		{stream.ErrAuth, exitIntegrity},
		{stream.ErrFormat, exitIntegrity},
		{ppml.ErrKey, exitFailure},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args           []string
		positional     []string
		primary, force string
	}{
		{[]string{"a", "--primary-key", "p", "b"}, []string{"a", "b"}, "p", "false"},
		{[]string{"--force", "a"}, []string{"a"}, "", "true"},
		{[]string{"a", "--", "--force", "-"}, []string{"a", "--force", "-"}, "", "false"},
		{[]string{"-", "--force"}, []string{"-"}, "", "true"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		primary := fs.String("primary-key", "", "")
		force := fs.Bool("force", false, "")
		got, err := parseInterleaved(fs, tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.positional) || *primary != tt.primary || fmt.Sprint(*force) != tt.force {
			t.Errorf("%q: positional %q primary %q force %v", tt.args, got, *primary, *force)
		}
	}
}

func TestRefuseSecretFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--token", "x"}, {"-token=x"}, {"status", "--token=hunter2"},
		{"secrets", "generate-keys", "--password=hunter2"}, {"secrets", "spark-secret", "-password", "hunter2"},
		{"secrets", "kms-secret", "--api-key=hunter2"},
	} {
		err := refuseSecretFlags(args)
		if exitCode(err) != exitUsage || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"--token-file", "x"}, {"encrypt", "--", "--token"}, {"token"},
		{"--password-file", "-"}, {"--api-key-file=k"}, {"password"},
	} {
		if err := refuseSecretFlags(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

func TestServerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"kms.example":             "https://kms.example:9876",
		"kms.example:443":         "https://kms.example:443",
		"10.0.0.1":                "https://10.0.0.1:9876",
		"[::1]":                   "https://[::1]:9876",
		"[::1]:1234":              "https://[::1]:1234",
		"https://kms.example":     "https://kms.example",
		"http://127.0.0.1:80/kms": "http://127.0.0.1:80/kms",
	} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStripExt(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"a.csv.cbc": "a.csv", "x.kms": "x", "dir/.cbc": "", "plain": "", ".cbc": ""} {
		got, ok := stripExt(in)
		if got != want || ok != (want != "") {
			t.Errorf("stripExt(%q) = %q, %v", in, got, ok)
		}
	}
}

// TestPrompt covers the interactive token prompt, which testscript cannot
// reach (its stdin is never a terminal).
func TestPrompt(t *testing.T) {
	answers := []string{}
	old := testOnlyReadPassword
	t.Cleanup(func() { testOnlyReadPassword = old })
	testOnlyReadPassword = func(int) ([]byte, error) {
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}
	var stderr bytes.Buffer
	c := &cli{stderr: &stderr, stdinTerminal: 0, getenv: func(string) string { return "" }}
	o := newCmdOpts()
	s := &settings{}

	answers = []string{"tok"}
	if tok, err := o.token(c, s, "Token for user alice", false); err != nil || tok != "tok" {
		t.Fatalf("token = %q, %v", tok, err)
	}
	if !strings.Contains(stderr.String(), "Token for user alice: ") || strings.Contains(stderr.String(), "tok\n") {
		t.Fatalf("prompt output %q", stderr.String())
	}
	answers = []string{"new", "new"}
	if tok, err := o.token(c, s, "New token", true); err != nil || tok != "new" {
		t.Fatalf("confirmed token = %q, %v", tok, err)
	}
	answers = []string{"new", "typo"}
	if _, err := o.token(c, s, "New token", true); exitCode(err) != exitUsage {
		t.Fatalf("mismatch: %v", err)
	}
	answers = []string{""}
	if _, err := o.token(c, s, "Token", false); exitCode(err) != exitUsage {
		t.Fatalf("empty: %v", err)
	}
	// Stdin already read as data: no prompt.
	o.stdinTaken = "INPUT -"
	if _, err := o.token(c, s, "Token", false); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("stdin taken: %v", err)
	}
	// A token source wins over the prompt.
	if tok, err := o.token(c, &settings{envToken: "env"}, "Token", false); err != nil || tok != "env" {
		t.Fatalf("env token = %q, %v", tok, err)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&out, "encrypt big.csv", 4<<20)
	p.now = func() time.Time { return now }
	p.start, p.last = now, now
	p.add(1 << 20)
	if out.Len() != 0 {
		t.Fatalf("drawn before the interval: %q", out.String())
	}
	now = now.Add(time.Second)
	p.add(1 << 20)
	if got := out.String(); !strings.Contains(got, " 50%  2.0 MiB / 4.0 MiB  2.0 MiB/s") || !strings.HasPrefix(got, "\r") {
		t.Fatalf("progress line %q", got)
	}
	p.finish()
	p.finish()
	if !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("finish: %q", out.String())
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stdout, getenv: func(string) string { return "" }, stdinTerminal: -1}
	if code := c.run(context.Background(), []string{"help"}); code != 0 {
		t.Fatalf("help exited %d", code)
	}
	for _, cmd := range commands {
		if !strings.Contains(stdout.String(), "  "+cmd.name+" ") {
			t.Errorf("help does not list %q", cmd.name)
		}
	}
}

// TestBashCompletion loads the generated script into bash and asks it for
// completions.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	writeBash(&script, false)
	probe := func(words ...string) string {
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script.String()+`
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kmsctl; echo "${COMPREPLY[*]}"`, "bash")
		cmd.Args = append(cmd.Args, words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"kmsctl", "data-key", ""}, "create get"},
		{[]string{"kmsctl", "enc"}, "encrypt encrypt-data"},
		{[]string{"kmsctl", "encrypt", "--format", "s"}, "stream"},
		{[]string{"kmsctl", "decrypt", "--key-"}, "--key-file"},
		{[]string{"kmsctl", "completion", "f"}, "fish"},
		{[]string{"kmsctl", "secrets", ""}, "generate-keys generate-password kms-secret spark-secret root-key"},
		{[]string{"kmsctl", "secrets", "generate-keys", "--key", "e"}, "ecdsa-p256"},
		{[]string{"kmsctl", "secrets", "generate-keys", "--pkcs12", ""}, "legacy modern"},
		{[]string{"kmsctl", "secrets", "root-key", "--"}, "--force --namespace --out"},
		{[]string{"kmsctl", "secrets", "kms-secret", "--api"}, "--api-key-file"},
	} {
		if got := probe(tt.words...); got != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
}
