package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ppmlkms/kms/internal/kmstest"
)

func TestMain(m *testing.M) {
	testscript.Main(kmstest.M(m), map[string]func(){
		"kmsctl":     main,
		"expectcode": expectCode,
	})
}

// expectCode runs "expectcode N prog args..." : prog with the script's
// stdin, stdout and stderr, and fails unless it exits with N. testscript's
// "! exec" only knows zero from non-zero; kmsctl's exit codes are API.
func expectCode() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: expectcode N prog [args...]")
		os.Exit(2)
	}
	want, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "expectcode:", err)
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "expectcode:", err)
		os.Exit(2)
	}
	if got := cmd.ProcessState.ExitCode(); got != want {
		fmt.Fprintf(os.Stderr, "expectcode: %s exited with %d, want %d\n", os.Args[2], got, want)
		os.Exit(1)
	}
}

// TestScripts runs testdata/*.txtar against a real kmsd, one per script.
func TestScripts(t *testing.T) {
	if _, err := kmstest.Binary(); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			s, err := kmstest.StartServer()
			if err != nil {
				return err
			}
			env.Defer(func() { s.Close() })
			env.Setenv("KMS_SERVER", s.URL)
			env.Setenv("KMS_CACERT", s.CAFile)
			env.Setenv("KMS_ADDR", s.Addr)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"unbase64":   cmdUnbase64,
			"sha256":     cmdSHA256,
			"flipbit":    cmdFlipBit,
			"truncate":   cmdTruncate,
			"notemp":     cmdNoTemp,
			"mkfile":     cmdMkfile,
			"envsubst":   cmdEnvsubst,
			"perm":       cmdPerm,
			"size":       cmdSize,
			"secretdata": cmdSecretData,
		},
	})
}

// unbase64 IN OUT: decode the base64 text of IN (whitespace ignored).
func cmdUnbase64(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: unbase64 in out")
	}
	text := strings.Join(strings.Fields(ts.ReadFile(args[0])), "")
	b, err := base64.StdEncoding.DecodeString(text)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), b, 0o644))
}

// sha256 FILE HEX: the file's SHA-256 is HEX.
func cmdSHA256(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sha256 file hex")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); (got == args[1]) == neg {
		ts.Fatalf("sha256(%s) = %s, want %s%s", args[0], got, map[bool]string{true: "not "}[neg], args[1])
	}
}

// flipbit FILE OFFSET: flip the low bit of the byte at OFFSET (negative:
// from the end).
func cmdFlipBit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbit file offset")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 1
	ts.Check(os.WriteFile(path, b, 0o644))
}

// truncate FILE SIZE: cut FILE to SIZE bytes (negative: drop that many).
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate file size")
	}
	path := ts.MkAbs(args[0])
	fi, err := os.Stat(path)
	ts.Check(err)
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if n < 0 {
		n += fi.Size()
	}
	ts.Check(os.Truncate(path, n))
}

// notemp DIR: DIR holds no temporary file or directory (".*.tmp*") left
// by an atomic write.
func cmdNoTemp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: notemp dir")
	}
	entries, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, e := range entries {
		// $WORK/.tmp is testscript's own TMPDIR.
		if e.Name() != ".tmp" && strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp") {
			ts.Fatalf("temporary file left behind: %s", filepath.Join(args[0], e.Name()))
		}
	}
}

// mkfile FILE SIZE: write SIZE deterministic pseudo-random bytes of text
// (hex digits, a newline every 64) to FILE, readable in failure logs.
func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkfile file size")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	var b bytes.Buffer
	x := uint32(2463534242)
	for b.Len() < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if b.Len()%65 == 64 {
			b.WriteByte('\n')
		} else {
			b.WriteByte("0123456789abcdef"[x&15])
		}
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b.Bytes(), 0o644))
}

// envsubst IN OUT: copy IN to OUT with $VAR and ${VAR} replaced by the
// script's environment.
func cmdEnvsubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envsubst in out")
	}
	out := os.Expand(ts.ReadFile(args[0]), ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o600))
}
