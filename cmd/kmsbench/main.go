// Command kmsbench measures kmsd's BigDL API over HTTPS on this machine:
// GET /dataKey throughput against a bare Go TLS server that answers a
// fixed 24-byte body (the floor), and durable POST /dataKey throughput,
// with latency percentiles, CPU per request and peak RSS.
//
// One command runs the whole comparison and prints a Markdown report:
//
//	go build -o /tmp/kmsd ./cmd/kmsd && go build -o /tmp/kmsbench ./cmd/kmsbench
//	/tmp/kmsbench -kmsd /tmp/kmsd -floor -rounds 3
//
// It starts the floor server (kmsbench -serve-floor, a separate process)
// and kmsd (temporary data directory, free loopback port), both as child
// processes, sets up a user, a primary key and data keys with names unique
// to the run, then per round measures: floor GET, kmsd GET, kmsd POST. Each
// of -conns connections is one goroutine with its own keep-alive HTTP/1.1
// connection sending the next request as soon as the previous answer is
// in (closed loop). Every answer is checked: status 200 and, for GET,
// exactly the 24-byte key. Any failure makes the report say so and the
// exit status 1.
//
// An already running server can be loaded with -url (loopback only) and,
// for CPU and RSS figures, -rss-pid.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

var selfPID = os.Getpid()

type options struct {
	url        string
	rssPID     int
	kmsd       string
	kmsdArgs   string
	dataParent string
	floor      bool
	keep       bool

	serveFloor    bool
	addr          string
	floorLifetime time.Duration

	conns       int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	scenarios   []string
	clients     []string
	postPercent int
	keys        int
	timeout     time.Duration

	user, token, primary string
	insecure             bool
	cacert               string

	clientProcs, serverProcs int
	fsyncProbe               bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kmsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "base URL of an already running server to load, e.g. https://127.0.0.1:9876 (loopback only)")
	fs.IntVar(&o.rssPID, "rss-pid", 0, "with -url: PID of that server, for its CPU time and peak RSS")
	fs.StringVar(&o.kmsd, "kmsd", "", "path of a kmsd binary to start as a child (temporary data dir, free loopback port) and load")
	fs.StringVar(&o.kmsdArgs, "kmsd-args", "", "extra kmsd flags, space separated")
	fs.StringVar(&o.dataParent, "data-dir-parent", os.TempDir(), "where kmsd's temporary data directory goes; its file system decides what a durable POST costs")
	fs.BoolVar(&o.floor, "floor", false, "also start the floor server (a child kmsbench -serve-floor) and measure GET on it first in every round")
	fs.BoolVar(&o.keep, "keep", false, "keep kmsd's temporary data directory")
	fs.BoolVar(&o.serveFloor, "serve-floor", false, "run the floor server on -addr instead of generating load")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "with -serve-floor: listen address (loopback)")
	fs.DurationVar(&o.floorLifetime, "floor-lifetime", time.Hour, "with -serve-floor: exit after this long at the latest")
	fs.IntVar(&o.conns, "conns", 32, "keep-alive HTTPS connections, one goroutine each")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each run")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat the whole sequence (floor GET, kmsd runs) this often; ratios are per round, summaries are medians")
	scen := fs.String("scenario", "get,post", "comma-separated runs against kmsd: get, post, mixed")
	cl := fs.String("client", "http", "comma-separated load clients: http (net/http Transport per connection) or raw (minimal HTTP/1.1 over crypto/tls)")
	fs.IntVar(&o.postPercent, "post-percent", 10, "share of POSTs in the mixed scenario")
	fs.IntVar(&o.keys, "keys", 32, "distinct data keys the GET runs read (connection i reads key i mod keys)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.user, "user", "", "BigDL user (default kmsbench-RUNID, created by the run)")
	fs.StringVar(&o.token, "token", "", "token of -user (default random)")
	fs.StringVar(&o.primary, "primary", "", "primary key name (default pk-RUNID, created by the run)")
	fs.BoolVar(&o.insecure, "insecure", false, "with -url: do not verify the server certificate (servers kmsbench starts are never verified)")
	fs.StringVar(&o.cacert, "cacert", "", "with -url: PEM file of the CA (or self-signed certificate) to trust, e.g. DATA_DIR/tls.crt")
	fs.IntVar(&o.clientProcs, "gomaxprocs-client", 0, "GOMAXPROCS of the load generator (0: Go's default)")
	fs.IntVar(&o.serverProcs, "gomaxprocs-server", 0, "GOMAXPROCS of the servers kmsbench starts (0: Go's default)")
	fs.BoolVar(&o.fsyncProbe, "fsync-probe", true, "measure write+fsync latency in kmsd's data directory before the runs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.serveFloor {
		return o, nil
	}
	o.scenarios = splitList(*scen)
	o.clients = splitList(*cl)
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if o.url == "" && o.kmsd == "" && !o.floor {
		bad("nothing to load: give -kmsd PATH, -url URL and/or -floor")
	}
	if o.url != "" && o.kmsd != "" {
		bad("choose either -url or -kmsd")
	}
	if o.rssPID != 0 && o.url == "" {
		bad("-rss-pid goes with -url")
	}
	if o.conns < 1 || o.conns > 1024 {
		bad("-conns must be 1..1024")
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		bad("-duration must be in (0, 10m]")
	}
	if o.warmup < 0 || o.warmup > time.Minute {
		bad("-warmup must be in [0, 1m]")
	}
	if o.rounds < 1 || o.rounds > 20 {
		bad("-rounds must be 1..20")
	}
	if o.keys < 1 || o.keys > 1024 {
		bad("-keys must be 1..1024")
	}
	if o.postPercent < 0 || o.postPercent > 100 {
		bad("-post-percent must be 0..100")
	}
	if o.timeout <= 0 {
		bad("-timeout must be positive")
	}
	for _, s := range o.scenarios {
		if s != "get" && s != "post" && s != "mixed" {
			bad("unknown scenario %q (get, post, mixed)", s)
		}
	}
	for _, c := range o.clients {
		if c != "http" && c != "raw" {
			bad("unknown client %q (http, raw)", c)
		}
	}
	if len(o.clients) == 0 {
		bad("-client is empty")
	}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			bad("-url must be https://HOST:PORT")
		} else if err := checkLoopback(hostPort(u)); err != nil {
			bad("%v", err)
		}
	}
	return o, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return u.Host + ":443"
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kmsbench:", err)
		return 2
	}
	if o.serveFloor {
		if err := serveFloor(o.addr, o.floorLifetime, stderr); err != nil {
			fmt.Fprintln(stderr, "kmsbench floor:", err)
			return 1
		}
		return 0
	}
	if o.clientProcs > 0 {
		runtime.GOMAXPROCS(o.clientProcs)
	}
	rep, err := bench(o, stderr)
	if rep != nil {
		rep.write(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kmsbench:", err)
		return 1
	}
	if rep.errors() > 0 {
		fmt.Fprintf(stderr, "kmsbench: %d REQUESTS FAILED: the figures are not valid\n", rep.errors())
		return 1
	}
	return 0
}

// bench starts the servers, runs every round and stops the servers. The
// report is returned even on error, with what was measured.
func bench(o *options, log io.Writer) (rep *report, err error) {
	runID := randomHex(4)
	rep = &report{opts: o, machine: gatherMachine(), command: commandLine()}
	rep.machine.clientGMP = runtime.GOMAXPROCS(0)
	if o.serverProcs > 0 {
		rep.machine.serverGMP = fmt.Sprint(o.serverProcs)
	} else {
		rep.machine.serverGMP = fmt.Sprintf("Go default (%d CPUs)", runtime.NumCPU())
	}
	defer func() { rep.machine.loadAfter = loadavg() }()
	user, token, primary := o.user, o.token, o.primary
	if user == "" {
		user = "kmsbench-" + runID
	}
	if token == "" {
		token = randomHex(16)
	}
	if primary == "" {
		primary = "pk-" + runID
	}
	insecure := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	newTarget := func(name, base string, pid int, conf *tls.Config, bigdl bool) *target {
		u, _ := url.Parse(base)
		return &target{name: name, base: base, hostport: hostPort(u), pid: pid, tlsConf: conf, bigdl: bigdl,
			user: user, token: token, primary: primary}
	}

	tmp, err := os.MkdirTemp("", "kmsbench-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)
	var children []*child
	var removeDirs []string
	defer func() {
		defer func() {
			for _, d := range removeDirs {
				os.RemoveAll(d)
			}
		}()
		for _, c := range children {
			if rss, err := procStatusKB(c.pid(), "VmHWM"); err == nil {
				rep.rss = append(rep.rss, rssFigure{c.name, rss})
			}
			if e := c.stop(30 * time.Second); e != nil {
				err = errors.Join(err, fmt.Errorf("stopping %s: %w (log %s:\n%s)", c.name, e, c.logPath, tail(c.logPath, 10)))
			}
		}
	}()

	var floor *target
	if o.floor {
		exe, err := os.Executable()
		if err != nil {
			return rep, err
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			return rep, err
		}
		c, err := startChild("floor", []string{exe, "-serve-floor", "-addr", addr}, filepath.Join(tmp, "floor.log"), o.serverProcs)
		if err != nil {
			return rep, err
		}
		children = append(children, c)
		floor = newTarget("floor", "https://"+addr, c.pid(), insecure, false)
		if err := c.waitReady(floor.base+"/", insecure, 30*time.Second); err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "floor server pid %d on %s\n", c.pid(), addr)
	}

	var srv *target
	switch {
	case o.kmsd != "":
		rep.machine.kmsdBuild = binaryBuild(o.kmsd)
		dir, err := os.MkdirTemp(o.dataParent, "kmsbench-kmsd-")
		if err != nil {
			return rep, err
		}
		if o.keep {
			fmt.Fprintf(log, "kmsd data directory %s is kept\n", dir)
		} else {
			removeDirs = append(removeDirs, dir)
		}
		rep.machine.dataFS = fsType(dir)
		if o.fsyncProbe {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s, err := fsyncProbe(ctx, dir, 200)
			cancel()
			if err != nil {
				s = "probe failed: " + err.Error()
			}
			rep.machine.fsync = s
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			return rep, err
		}
		argv := append([]string{o.kmsd, "-addr", addr, "-data-dir", dir, "-access-log=false"}, strings.Fields(o.kmsdArgs)...)
		rep.kmsdArgv = argv
		c, err := startChild("kmsd", argv, filepath.Join(tmp, "kmsd.log"), o.serverProcs)
		if err != nil {
			return rep, err
		}
		children = append(children, c)
		srv = newTarget("kmsd", "https://"+addr, c.pid(), insecure, true)
		if err := c.waitReady(srv.base+"/readyz", insecure, 30*time.Second); err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "kmsd pid %d on %s, data dir %s\n", c.pid(), addr, dir)
	case o.url != "":
		conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecure}
		if o.cacert != "" {
			pem, err := os.ReadFile(o.cacert)
			if err != nil {
				return rep, err
			}
			conf.RootCAs = x509.NewCertPool()
			if !conf.RootCAs.AppendCertsFromPEM(pem) {
				return rep, fmt.Errorf("%s holds no PEM certificate", o.cacert)
			}
		}
		srv = newTarget("server", strings.TrimRight(o.url, "/"), o.rssPID, conf, true)
	}

	for _, t := range []*target{floor, srv} {
		if t == nil {
			continue
		}
		if err := t.setup(o.keys, runID, o.timeout); err != nil {
			return rep, fmt.Errorf("set up %s: %w", t.name, err)
		}
		rep.targets = append(rep.targets, t)
	}

	runs := 0
	for round := 1; round <= o.rounds; round++ {
		for _, client := range o.clients {
			var plan []loadSpec
			base := loadSpec{client: client, conns: o.conns, warmup: o.warmup, duration: o.duration,
				timeout: o.timeout, postPercent: o.postPercent}
			if floor != nil {
				s := base
				s.target, s.scenario = floor, "get"
				plan = append(plan, s)
			}
			if srv != nil {
				for _, sc := range o.scenarios {
					s := base
					s.target, s.scenario = srv, sc
					plan = append(plan, s)
				}
			}
			for _, s := range plan {
				runs++
				s.tag = fmt.Sprintf("%s-%d", runID, runs)
				fmt.Fprintf(log, "round %d/%d, %s client: %s %s, %d conns, %v warm-up + %v ... ",
					round, o.rounds, client, s.target.name, s.scenario, s.conns, s.warmup, s.duration)
				res, err := runLoad(s, s.target.keys, s.target.expected)
				if err != nil {
					fmt.Fprintln(log, "failed")
					return rep, err
				}
				res.round = round
				rep.results = append(rep.results, res)
				fmt.Fprintf(log, "%s req/s, p50 %s, p99 %s, %d errors\n", fmtRate(res.rate()),
					fmtDur(res.combined().quantile(0.5)), fmtDur(res.combined().quantile(0.99)), res.errors)
			}
		}
	}
	return rep, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// commandLine is this invocation, quoted for a POSIX shell.
func commandLine() string {
	parts := []string{"kmsbench"}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
