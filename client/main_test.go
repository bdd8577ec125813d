package client_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ppmlkms/kms/internal/kmstest"
)

// The server that the examples talk to: a real kmsd, started once.
var (
	kmsURL    string // https://127.0.0.1:PORT
	kmsCAFile string // its self-signed certificate
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	defer kmstest.Cleanup()
	s, err := kmstest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	kmsURL, kmsCAFile = s.URL, s.CAFile
	return m.Run()
}
