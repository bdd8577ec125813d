package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAttestListener: -attest-addr serves BigDL's attestation service at
// the root of its own HTTPS listener with kmsd's certificate, as BigDL's
// service on 9875; the same API stays under /attestation/ on the main
// listener.
func TestAttestListener(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "-attest-allow-mock-tee", "-attest-audience", "https://kms.test", "-attest-addr", "127.0.0.1:0")
	if !strings.Contains(s.logs.String(), "INSECURE: the mock TEE is accepted") {
		t.Error("no start-up warning about the mock TEE")
	}
	as := s.m.AttestAddr()
	if as == "" {
		t.Fatal("no attestation listener")
	}
	c := newClient(t, as, dir)
	for _, url := range []string{"https://" + as + "/enroll", "https://" + as + "//enroll", s.url + "/attestation/enroll"} {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		var out struct{ AppID, APIKey string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.AppID == "" || len(out.APIKey) != 32 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
	}
	// The attestation listener serves only the BigDL AS routes.
	resp, err := c.Get("https://" + as + "/dataKey/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("KMS route on the attestation listener: %d", resp.StatusCode)
	}
	s.close(t)
	if _, err := c.Get("https://" + as + "/enroll"); err == nil {
		t.Fatal("attestation listener still up after Close")
	}
}

// TestAttestConfigErrors: attestation options are checked at start.
func TestAttestConfigErrors(t *testing.T) {
	m := NewMain()
	err := m.ParseFlags([]string{"-attest-allow-mock-tee"}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "attest-audience") {
		t.Fatalf("mock TEE without audience: %v", err)
	}
}
