package kmstest

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"testing"
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
