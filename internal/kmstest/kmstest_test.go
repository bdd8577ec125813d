package kmstest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(M(m).Run()) }

func TestStart(t *testing.T) {
	s := Start(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool}}}
	resp, err := hc.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", resp.StatusCode, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := StartServer("-log-format", "yaml"); err == nil {
		t.Fatal("StartServer with a bad flag succeeded")
	}
}

func TestRestartEnvAndWait(t *testing.T) {
	s := Start(t)
	if code, err := s.Wait(50 * time.Millisecond); err == nil {
		t.Fatalf("Wait on a running kmsd = %d, nil", code)
	}
	cert, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The same data directory: the same certificate. Env reaches kmsd even
	// for KMS_* variables.
	s2 := StartWith(t, Options{DataDir: s.DataDir, Env: []string{"KMS_AUDIT_LOG=off"}})
	if again, err := os.ReadFile(s2.CAFile); err != nil || !bytes.Equal(again, cert) {
		t.Fatalf("restart on the same data directory made a new certificate (%v)", err)
	}
	if !strings.Contains(s2.Logs(), "audit log is off") {
		t.Fatalf("KMS_AUDIT_LOG did not reach kmsd:\n%s", s2.Logs())
	}
	// Wait reports the exit status of a kmsd that stopped (the crash test
	// in client covers a non-zero status, which Close then does not report).
	s2.cmd.Process.Signal(syscall.SIGTERM)
	if code, err := s2.Wait(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("Wait after SIGTERM = %d, %v", code, err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}
