package client_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/client"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGramineQuoteProvider(t *testing.T) {
	t.Parallel()
	rd := [64]byte{9, 8, 7, 63: 1}
	t.Run("writes user_report_data, reads quote", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"attestation_type": "dcap\n", "user_report_data": "", "quote": "QUOTE"})
		q, err := client.GramineQuoteProvider{Dir: dir}.Quote(t.Context(), rd)
		if err != nil || string(q) != "QUOTE" {
			t.Fatalf("Quote = %q, %v", q, err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "user_report_data")); !bytes.Equal(got, rd[:]) {
			t.Fatalf("user_report_data = %x", got)
		}
	})
	t.Run("attestation type none", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"attestation_type": "none\n", "user_report_data": "", "quote": "Q"})
		if _, err := (client.GramineQuoteProvider{Dir: dir}).Quote(t.Context(), rd); err == nil || !strings.Contains(err.Error(), "want dcap") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not in Gramine", func(t *testing.T) {
		_, err := client.GramineQuoteProvider{Dir: t.TempDir()}.Quote(t.Context(), rd)
		if err == nil || !strings.Contains(err.Error(), "Gramine") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestTDXQuoteProvider(t *testing.T) {
	t.Parallel()
	rd := [64]byte{1, 63: 2}
	t.Run("existing entry: writes inblob, reads outblob", func(t *testing.T) {
		dir := t.TempDir()
		entry := filepath.Join(dir, "e")
		os.Mkdir(entry, 0o700)
		writeFiles(t, entry, map[string]string{"provider": "tdx_guest\n", "inblob": "", "outblob": "TDQUOTE", "generation": "3\n"})
		q, err := client.TDXQuoteProvider{Dir: dir, Name: "e"}.Quote(t.Context(), rd)
		if err != nil || string(q) != "TDQUOTE" {
			t.Fatalf("Quote = %q, %v", q, err)
		}
		if got, _ := os.ReadFile(filepath.Join(entry, "inblob")); !bytes.Equal(got, rd[:]) {
			t.Fatalf("inblob = %x", got)
		}
		if _, err := os.Stat(entry); err != nil {
			t.Fatal("an existing entry was removed")
		}
	})
	t.Run("another provider", func(t *testing.T) {
		dir := t.TempDir()
		entry := filepath.Join(dir, "e")
		os.Mkdir(entry, 0o700)
		writeFiles(t, entry, map[string]string{"provider": "sev_guest\n", "inblob": "", "outblob": "X"})
		if _, err := (client.TDXQuoteProvider{Dir: dir, Name: "e"}).Quote(t.Context(), rd); err == nil || !strings.Contains(err.Error(), "tdx_guest") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("new entry is removed afterwards", func(t *testing.T) {
		dir := t.TempDir()
		// A plain directory is no configfs: inblob does not appear.
		if _, err := (client.TDXQuoteProvider{Dir: dir}).Quote(t.Context(), rd); err == nil {
			t.Fatal("no error without configfs-tsm")
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("entries left behind: %v", left)
		}
	})
	t.Run("no configfs", func(t *testing.T) {
		_, err := client.TDXQuoteProvider{Dir: filepath.Join(t.TempDir(), "absent")}.Quote(t.Context(), rd)
		if err == nil || !strings.Contains(err.Error(), "configfs-tsm") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestMockQuoteProviderUnknownTEE(t *testing.T) {
	t.Parallel()
	if _, err := (client.MockQuoteProvider{TEE: "sev"}).Quote(t.Context(), [64]byte{}); err == nil {
		t.Fatal("no error for an unknown TEE")
	}
}

func TestReleaseNeedsUserCredential(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]client.Option{nil, {client.WithAdminToken("root", "x")}} {
		c, err := client.New("https://kms.invalid:9876", opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReleaseDataKey(t.Context(), "pk", "dk", client.MockQuoteProvider{}, nil); !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("ReleaseDataKey without a user credential: %v, want ErrInvalid", err)
		}
	}
}
