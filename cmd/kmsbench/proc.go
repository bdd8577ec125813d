package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a server process kmsbench started and will stop.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// startChild starts argv with its output in logPath and GOMAXPROCS set if
// procs > 0. The child gets SIGTERM should kmsbench die first (Linux).
func startChild(name string, argv []string, logPath string, procs int) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitReady polls url (a GET that must answer 200) until it does, the
// child exits or timeout passes.
func (c *child) waitReady(url string, tlsConf *tls.Config, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", c.name, c.waitErr, c.logPath, tail(c.logPath, 20))
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last: %v); log %s:\n%s", c.name, timeout, err, c.logPath, tail(c.logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit, then kills.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s had already exited: %v", c.name, c.waitErr)
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.waitErr
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s ignored SIGTERM for %v and was killed", c.name, grace)
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// procCPU is the user+system CPU time a process has used so far, from
// /proc/PID/stat (all threads; clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on every Linux ABI Go supports
	return time.Duration(ut+st) * tick, nil
}

// machineBusy is the CPU time all processes have used so far, from the
// first line of /proc/stat (user, nice, system, irq, softirq, steal).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procStatusKB reads a "kB" field such as VmHWM (peak RSS) or VmRSS from
// /proc/PID/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// machine describes the box a run happened on.
type machine struct {
	cpus       int
	cpuModel   string
	cpuMHz     string
	memTotal   string
	kernel     string
	goVersion  string // kmsbench's
	kmsdBuild  string // Go version and VCS revision of the kmsd binary
	clientGMP  int
	serverGMP  string
	loadBefore string
	loadAfter  string
	dataFS     string
	fsync      string
	started    time.Time
}

func gatherMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), clientGMP: runtime.GOMAXPROCS(0),
		started: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if k == "model name" && m.cpuModel == "" {
				m.cpuModel = v
			}
			if k == "cpu MHz" && m.cpuMHz == "" {
				m.cpuMHz = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
				m.memTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.loadBefore = loadavg()
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// binaryBuild describes how a Go binary was built: Go version and VCS
// revision, as `go version -m` would show.
func binaryBuild(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	s := bi.GoVersion
	var rev, modified string
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			modified = st.Value
		}
	}
	if rev != "" {
		s += ", revision " + rev[:min(12, len(rev))]
		if modified == "true" {
			s += " (modified tree)"
		}
	}
	return s
}

// fsType is the file system type holding path, from /proc/self/mountinfo.
func fsType(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "?"
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := f[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, g[0]+" ("+g[1]+" on "+mp+")"
		}
	}
	return typ
}

// fsyncProbe writes and fsyncs 4 KiB n times in dir and returns the
// median and the 99th percentile of the fsync time: the floor under any
// durable commit, which explains most of the POST latency.
func fsyncProbe(ctx context.Context, dir string, n int) (string, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var d []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if _, err := f.Write(buf); err != nil {
			return "", err
		}
		t := time.Now()
		if err := f.Sync(); err != nil {
			return "", err
		}
		d = append(d, time.Since(t))
	}
	if len(d) == 0 {
		return "", ctx.Err()
	}
	slices.Sort(d)
	return fmt.Sprintf("median %s, p99 %s (%d × write 4 KiB + fsync)", fmtDur(d[len(d)/2]), fmtDur(d[len(d)*99/100]), len(d)), nil
}
