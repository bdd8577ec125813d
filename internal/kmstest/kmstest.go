// Package kmstest runs the real kmsd program for end-to-end tests of the
// client and kmsctl: it builds cmd/kmsd once per test process with the go
// command, starts it on a loopback port with a fresh data directory, and
// stops it with SIGTERM. Nothing of the server's wiring is duplicated, so
// the tests exercise exactly what users run.
//
// Test binaries that use it should call [Cleanup] when m.Run returns (or
// wrap their *testing.M with [M]) to remove the built binary.
package kmstest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long Start waits for the server to listen.
const StartTimeout = 60 * time.Second

// Server is a running kmsd.
type Server struct {
	// URL is the server's base URL, https://127.0.0.1:PORT.
	URL string
	// Addr is the listen address, 127.0.0.1:PORT.
	Addr string
	// DataDir is the server's data directory.
	DataDir string
	// CAFile is the self-signed certificate the server generated
	// (DataDir/tls.crt); trust it to talk to the server.
	CAFile string
	// CAPool holds CAFile's certificate.
	CAPool *x509.CertPool

	cmd     *exec.Cmd
	logs    *logBuffer
	exited  chan struct{}
	waitErr error
	ownDir  bool
	once    sync.Once
	closed  error
	waited  atomic.Bool // Wait saw the process exit: Close does not report it
}

// Start runs kmsd with a data directory in t.TempDir() and the extra
// command-line args, and stops it when the test ends. It fails the test
// if kmsd does not start.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return StartWith(t, Options{Args: args})
}

// Options configure [StartWith].
type Options struct {
	// DataDir is the data directory; "" means a new t.TempDir(). Pass the
	// DataDir of a stopped Server to restart kmsd on the same state.
	DataDir string
	// Args are extra command-line arguments.
	Args []string
	// Env holds extra KEY=VALUE environment variables. Unlike the test
	// process's own KMS_* variables, which never reach kmsd, these may set
	// KMS_* (for example KMS_TEST_CRASH_AT).
	Env []string
}

// StartWith is [Start] with options. It fails the test if kmsd does not
// start.
func StartWith(t testing.TB, opt Options) *Server {
	t.Helper()
	dir := opt.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := start(dir, false, opt.Args, opt.Env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("kmstest: %v", err)
		}
		if t.Failed() {
			t.Logf("kmsd logs:\n%s", s.Logs())
		}
	})
	return s
}

// StartServer is Start for use outside a test, e.g. in TestMain: it uses a
// temporary data directory that Close removes. The caller must call Close.
func StartServer(args ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "kmstest-data-")
	if err != nil {
		return nil, err
	}
	s, err := start(dir, true, args)
	if err != nil {
		os.RemoveAll(dir)
	}
	return s, err
}

func start(dataDir string, ownDir bool, args []string, env ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	args = append([]string{"-addr", "127.0.0.1:0", "-data-dir", dataDir, "-log-format", "json"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	setProcAttr(cmd)
	addr := make(chan string, 1)
	s := &Server{DataDir: dataDir, CAFile: filepath.Join(dataDir, "tls.crt"), cmd: cmd,
		logs: &logBuffer{addr: addr}, exited: make(chan struct{}), ownDir: ownDir}
	// exec copies stderr into logs and Wait waits for that copy to finish.
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kmsd: %w", err)
	}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	select {
	case a := <-addr:
		s.Addr, s.URL = a, "https://"+a
	case <-s.exited:
		return nil, fmt.Errorf("kmsd exited before listening (%v):\n%s", s.waitErr, s.Logs())
	case <-time.After(StartTimeout):
		s.Close()
		return nil, fmt.Errorf("kmsd did not listen within %v:\n%s", StartTimeout, s.Logs())
	}
	if err := s.loadCA(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) loadCA() error {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return fmt.Errorf("kmstest: read kmsd certificate: %w", err)
	}
	s.CAPool = x509.NewCertPool()
	if !s.CAPool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("kmstest: %s holds no certificate", s.CAFile)
	}
	return nil
}

// Logs returns what the server has logged so far (JSON lines).
func (s *Server) Logs() string { return s.logs.String() }

// Wait waits up to timeout for kmsd to exit by itself, as it does at a
// crash point (KMS_TEST_CRASH_AT), and returns its exit status. It returns
// an error if kmsd is still running after timeout or was killed by a
// signal. Once Wait has seen the exit, Close no longer reports it as
// unclean.
func (s *Server) Wait(timeout time.Duration) (int, error) {
	select {
	case <-s.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("kmstest: kmsd still running after %v", timeout)
	}
	s.waited.Store(true)
	code := s.cmd.ProcessState.ExitCode()
	if code < 0 {
		return code, fmt.Errorf("kmstest: kmsd did not exit normally: %v", s.waitErr)
	}
	return code, nil
}

// Close stops the server with SIGTERM (SIGKILL after 20 seconds) and
// reports an unclean exit. It removes the data directory if StartServer
// created it. Close is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
			s.closed = errors.New("kmsd ignored SIGTERM; killed")
		}
		if s.closed == nil && s.waitErr != nil && !s.waited.Load() {
			s.closed = fmt.Errorf("kmsd exited uncleanly: %v", s.waitErr)
		}
		if s.ownDir {
			os.RemoveAll(s.DataDir)
		}
	})
	return s.closed
}

// cleanEnv is the test process's environment without KMS_* variables, so
// that a developer's own kmsd configuration cannot leak into tests.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KMS_") {
			env = append(env, kv)
		}
	}
	return env
}

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Binary builds cmd/kmsd (once per process) and returns its path.
func Binary() (string, error) {
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "kmstest-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "kmsd")
		gocmd, err := goCommand()
		if err != nil {
			build.err = err
			return
		}
		cmd := exec.Command(gocmd, "build", "-o", build.bin, "github.com/ppmlkms/kms/cmd/kmsd")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			build.err = fmt.Errorf("kmstest: go build cmd/kmsd: %v\n%s", err, out.Bytes())
		}
	})
	return build.bin, build.err
}

func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("kmstest: go command not found")
	}
	return p, nil
}

// Cleanup removes the kmsd binary that Binary built.
func Cleanup() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// M wraps a *testing.M so that its Run removes the built binary after the
// tests, for TestMain functions that hand m to something that exits
// (testscript.Main).
func M(m interface{ Run() int }) interface{ Run() int } { return cleanupM{m} }

type cleanupM struct{ m interface{ Run() int } }

func (c cleanupM) Run() int {
	defer Cleanup()
	return c.m.Run()
}

// logBuffer collects the server's log lines, safe for the exec copier and
// test readers, and sends the address of the first "kmsd listening" line
// to addr.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	scanned int // bytes of b already looked at for the listening line
	addr    chan<- string
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	for l.addr != nil {
		rest := l.b.Bytes()[l.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.scanned += i + 1
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(rest[:i], &rec) == nil && rec.Msg == "kmsd listening" && rec.Addr != "" {
			l.addr <- rec.Addr // buffered, sent once
			l.addr = nil
		}
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
