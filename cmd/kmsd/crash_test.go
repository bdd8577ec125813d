package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as kmsd itself, so that crash tests can
// run the real program in a child process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("KMSD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"kmsd"}, strings.Fields(os.Getenv("KMSD_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var listenRE = regexp.MustCompile(`msg="kmsd listening" addr=(\S+)`)

// startProcess runs kmsd in a child process and returns it and its address.
func startProcess(t *testing.T, dataDir string) (*exec.Cmd, string) {
	t.Helper()
	return startProcessArgs(t, dataDir, nil)
}

// startProcessArgs is startProcess with extra environment and arguments
// (arguments must not contain spaces).
func startProcessArgs(t *testing.T, dataDir string, env []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KMSD_TEST_RUN_MAIN=1",
		"KMSD_TEST_ARGS=-addr 127.0.0.1:0 -access-log=false -audit-log "+filepath.Join(dataDir, "audit.log")+" -data-dir "+dataDir+" "+strings.Join(args, " "))
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a
	case <-time.After(30 * time.Second):
		t.Fatal("kmsd did not start")
	}
	return nil, ""
}

// TestCrashKeepsAcknowledgedKeys kills kmsd with SIGKILL while clients
// create data keys, restarts it, and checks that every key acknowledged with
// 200 is readable afterwards.
func TestCrashKeepsAcknowledgedKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	cmd, addr := startProcess(t, dir)
	s := &server{url: "https://" + addr, c: newClient(t, addr, dir)}
	s.seed(t, "alice", "pk1", "dk0")

	var mu sync.Mutex
	acked := map[string]string{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				req := "/dataKey/" + name + "?user=alice&token=" + tok + "&primaryKeyName=pk1"
				resp, err := s.c.Post(s.url+req, "", nil)
				if err != nil {
					return // the server died
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[name] = ""
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	cmd.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d keys acknowledged before the crash", len(acked))
	}

	_, addr2 := startProcess(t, dir)
	s2 := &server{url: "https://" + addr2, c: newClient(t, addr2, dir)}
	for name := range acked {
		status, body, _ := s2.do(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1")
		if status != 200 || len(body) != 24 {
			t.Fatalf("key %s acknowledged before the crash: %d %q after restart", name, status, body)
		}
	}
	t.Logf("%d acknowledged keys survived SIGKILL", len(acked))
	if _, err := os.Stat(filepath.Join(dir, "kms.db")); err != nil {
		t.Fatal(err)
	}
}
