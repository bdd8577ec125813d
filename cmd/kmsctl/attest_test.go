package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// runAttestCmd runs "kmsctl attest release args..." as dispatch would once
// the command is registered, with env as the environment.
func runAttestCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, stdinTerminal: -1,
		getenv: func(k string) string { return env[k] }}
	cmd := attestCommand()
	o := newCmdOpts()
	fs := newFlagSet("kmsctl "+cmd.name, c)
	o.registerConnection(fs)
	cmd.flags(fs, o)
	positional, err := parseInterleaved(fs, args)
	if err == nil {
		o.markSet(fs)
		err = cmd.run(context.Background(), c, o, positional)
	} else {
		err = flagError(err)
	}
	if err != nil {
		errb.WriteString("kmsctl: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), exitCode(err)
}

func TestAttestRelease(t *testing.T) {
	s := kmstest.Start(t, "-attest-allow-mock-tee", "-attest-audience", "https://kms.test")
	ctx := t.Context()
	const tok = "kmsctl-attest-token"
	cl, err := client.New(s.URL, client.WithRootCAs(s.CAPool), client.WithToken("alice", tok))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateUser(ctx, "alice", tok); err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{cl.CreatePrimaryKey(ctx, "alice", tok, "pk"), cl.CreateDataKey(ctx, "alice", tok, "pk", "dk")} {
		if step != nil {
			t.Fatal(step)
		}
	}
	key, err := cl.DataKeyString(ctx, "alice", tok, "pk", "dk")
	if err != nil {
		t.Fatal(err)
	}
	mr := strings.Repeat("5a", 32)
	if _, err := cl.SetReleasePolicy(ctx, "pk", []byte(`{"tee":"mock","sgx":{"mrenclave":["`+mr+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KMS_SERVER": s.URL, "KMS_USER": "alice", "KMS_TOKEN": tok, "KMS_CACERT": s.CAFile}

	out, errs, code := runAttestCmd(t, env, "--primary-key", "pk", "--data-key", "dk", "--tee", "mock", "--mock-mrenclave", mr)
	if code != exitOK || out != key+"\n" {
		t.Fatalf("release: code %d, stdout %q, stderr %q; want the key %s", code, out, errs, key)
	}
	if !strings.Contains(errs, "MOCK TEE") {
		t.Errorf("no insecure warning: %q", errs)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out)); err != nil {
		t.Fatal(err)
	}
	// An exportable primary key, released itself.
	if _, err := cl.CreateKey(ctx, "xk", &client.CreateKeyOptions{Exportable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SetReleasePolicy(ctx, "xk", []byte(`{"tee":"mock","sgx":{"mrenclave":["`+mr+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runAttestCmd(t, env, "--primary-key", "xk", "--export-primary-key", "--tee", "mock", "--mock-mrenclave", mr)
	if pk, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out)); code != exitOK || err != nil || len(pk) != 32 {
		t.Fatalf("export: code %d, stdout %q, stderr %q; want a 32-byte key", code, out, errs)
	}
	if again, _, code := runAttestCmd(t, env, "--primary-key", "xk", "--export-primary-key", "--version", "1", "--tee", "mock", "--mock-mrenclave", mr); code != exitOK || again != out {
		t.Fatalf("export of version 1: code %d, %q; want %q", code, again, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"5/not exportable", []string{"--primary-key", "pk", "--export-primary-key", "--tee", "mock", "--mock-mrenclave", mr}, exitAuth},
		{"3/no such version", []string{"--primary-key", "xk", "--export-primary-key", "--version", "7", "--tee", "mock", "--mock-mrenclave", mr}, exitNotFound},
		{"2/data key and export", []string{"--primary-key", "xk", "--data-key", "dk", "--export-primary-key", "--tee", "mock"}, exitUsage},
		{"2/version without export", []string{"--primary-key", "pk", "--data-key", "dk", "--version", "1", "--tee", "mock"}, exitUsage},
		{"5/policy mismatch", []string{"--primary-key", "pk", "--data-key", "dk", "--tee", "mock", "--mock-mrenclave", hex.EncodeToString(make([]byte, 32))}, exitAuth},
		{"5/p256 and wrong audience", []string{"--primary-key", "pk", "--data-key", "dk", "--tee", "mock", "--curve", "p256", "--audience", "https://other"}, exitAuth},
		{"2/no tee", []string{"--primary-key", "pk", "--data-key", "dk"}, exitUsage},
		{"2/bad tee", []string{"--primary-key", "pk", "--data-key", "dk", "--tee", "sev"}, exitUsage},
		{"2/no data key", []string{"--primary-key", "pk", "--tee", "mock"}, exitUsage},
		{"2/short measurement", []string{"--primary-key", "pk", "--data-key", "dk", "--tee", "mock", "--mock-mrenclave", "ab"}, exitUsage},
		{"1/not in gramine", []string{"--primary-key", "pk", "--data-key", "dk", "--tee", "gramine", "--attestation-dir", t.TempDir()}, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runAttestCmd(t, env, tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.want, errs)
			}
		})
	}
}

// TestAttestFlagsPerRun: two runs of "attest release" in one process do
// not share flag values (they once did, through a closure-captured value).
func TestAttestFlagsPerRun(t *testing.T) {
	t.Parallel()
	cmd := attestCommand()
	parse := func(args ...string) *cmdOpts {
		o := newCmdOpts()
		fs := newFlagSet("kmsctl "+cmd.name, &cli{stderr: &bytes.Buffer{}})
		cmd.flags(fs, o)
		if _, err := parseInterleaved(fs, args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := parse("--tee", "gramine", "--curve", "p256")
	b := parse("--tee", "tdx")
	if a.attest.tee != "gramine" || a.attest.curve != "p256" || b.attest.tee != "tdx" || b.attest.curve != "x25519" {
		t.Fatalf("flags shared between runs: %+v, %+v", a.attest, b.attest)
	}
}
