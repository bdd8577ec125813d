package client_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppmlkms/kms/internal/kmstest"
)

// The server that the examples talk to: a real kmsd, started once, with an
// admin identity (adminName, adminToken).
var (
	kmsURL    string // https://127.0.0.1:PORT
	kmsCAFile string // its self-signed certificate
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	defer kmstest.Cleanup()
	dir, err := os.MkdirTemp("", "client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	admins := filepath.Join(dir, "admins")
	if err := os.WriteFile(admins, []byte(adminName+" "+adminHash()+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := kmstest.StartServer("-admin-tokens", admins, "-audit-log", "off")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	kmsURL, kmsCAFile = s.URL, s.CAFile
	return m.Run()
}
