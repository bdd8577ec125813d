package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Operations a worker performs.
const (
	opGet  = iota // GET /dataKey/{name}: 200 and exactly the 24-byte key
	opPost        // POST /dataKey/{unique name}: 200 and BigDL's success text
	nOps
)

var opNames = [nOps]string{"GET /dataKey", "POST /dataKey"}

// Phases of a load run, read by every worker before and after each request.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// loadSpec is one measured run: a target, a mix, a client kind.
type loadSpec struct {
	target      *target
	scenario    string // get, post or mixed
	postPercent int    // share of POSTs in mixed
	client      string // http or raw
	conns       int
	warmup      time.Duration
	duration    time.Duration
	timeout     time.Duration
	tag         string // unique per run: prefix of POSTed data key names
}

// loadResult is what a run measured.
type loadResult struct {
	spec      loadSpec
	round     int
	window    time.Duration
	hist      [nOps]*hist
	errors    int64
	errSample []string
	dials     int64
	serverCPU time.Duration // -1 if unknown
	clientCPU time.Duration // -1 if unknown
	otherCPU  time.Duration // CPU time of everything else on the machine; -1 if unknown
	rssKB     int64         // server's resident set at the end of the run; -1 if unknown
}

func (r *loadResult) total() uint64 {
	var n uint64
	for _, h := range r.hist {
		n += h.n
	}
	return n
}

func (r *loadResult) rate() float64 { return float64(r.total()) / r.window.Seconds() }

// worker drives one keep-alive connection, one request at a time.
type worker struct {
	id       int
	spec     *loadSpec
	c        requester
	getPath  string // /dataKey/NAME?user=…&token=…&primaryKeyName=…
	expected []byte // the key GET must return
	postPfx  []byte // "dk-TAG-wID-"
	query    string // user=…&token=…&primaryKeyName=…
	seq      uint64
	acc      int // mixed: POST when the accumulated percentage reaches 100

	name []byte // scratch: current POST name
	body []byte // scratch: response body

	hist      [nOps]hist
	errors    int64
	errSample []string
}

// requester sends one request on the worker's connection and reads the
// whole response body into body (up to its capacity; n is the full size).
type requester interface {
	do(method, pathQuery string, name []byte, body []byte) (status int, n int, err error)
	close()
}

func (w *worker) run(phase *atomic.Int32) {
	for phase.Load() != phaseStop {
		op := opGet
		switch w.spec.scenario {
		case "post":
			op = opPost
		case "mixed":
			w.acc += w.spec.postPercent
			if w.acc >= 100 {
				w.acc -= 100
				op = opPost
			}
		}
		t0 := time.Now()
		err := w.one(op)
		d := time.Since(t0)
		if err != nil {
			w.errors++
			if len(w.errSample) < 3 {
				w.errSample = append(w.errSample, fmt.Sprintf("worker %d %s: %v", w.id, opNames[op], err))
			}
			continue
		}
		// Only requests that complete inside the window count, so that
		// count/window is the throughput.
		if phase.Load() == phaseMeasure {
			w.hist[op].record(d)
		}
	}
}

var (
	createdPrefix = []byte("dataKey [")
	createdSuffix = []byte("] is generated successfully!")
)

func (w *worker) one(op int) error {
	var status, n int
	var err error
	if op == opGet {
		status, n, err = w.c.do("GET", w.getPath, nil, w.body)
	} else {
		w.seq++
		w.name = strconv.AppendUint(append(w.name[:0], w.postPfx...), w.seq, 10)
		status, n, err = w.c.do("POST", w.query, w.name, w.body)
	}
	if err != nil {
		return err
	}
	body := w.body[:min(n, cap(w.body))]
	if status != http.StatusOK {
		return fmt.Errorf("status %d, body %q", status, trunc(body, 120))
	}
	if op == opGet {
		if n != len(w.expected) || !bytes.Equal(body, w.expected) {
			return fmt.Errorf("GET body %q (%d bytes), want the %d-byte key %q", trunc(body, 120), n, len(w.expected), w.expected)
		}
		return nil
	}
	if n != len(createdPrefix)+len(w.name)+len(createdSuffix) || !bytes.HasPrefix(body, createdPrefix) ||
		!bytes.HasSuffix(body, createdSuffix) || !bytes.Equal(body[len(createdPrefix):n-len(createdSuffix)], w.name) {
		return fmt.Errorf("POST body %q (%d bytes), want %q", trunc(body, 120), n, "dataKey ["+string(w.name)+"] is generated successfully!")
	}
	return nil
}

func trunc(b []byte, n int) []byte { return b[:min(len(b), n)] }

// runLoad performs one warm-up plus measurement run of spec.
func runLoad(spec loadSpec, keys []string, expected [][]byte) (*loadResult, error) {
	t := spec.target
	var dials atomic.Int64
	workers := make([]*worker, spec.conns)
	for i := range workers {
		k := i % len(keys)
		query := "user=" + t.user + "&token=" + t.token + "&primaryKeyName=" + t.primary
		w := &worker{id: i, spec: &spec, expected: expected[k], query: query,
			getPath: "/dataKey/" + keys[k] + "?" + query,
			postPfx: fmt.Appendf(nil, "dk-%s-w%d-", spec.tag, i),
			body:    make([]byte, 0, 512)}
		switch spec.client {
		case "raw":
			w.c = newRawClient(t.hostport, t.tlsConf, &dials, spec.timeout)
		default:
			c, err := newHTTPClient(t.base, t.tlsConf, &dials, spec.timeout, w.getPath)
			if err != nil {
				return nil, err
			}
			w.c = c
		}
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			w.c.close()
		}
	}()

	var phase atomic.Int32
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(&phase) }()
	}
	time.Sleep(spec.warmup)
	srv0, srvErr := t.cpu()
	cli0, cliErr := procCPU(selfPID)
	all0, allErr := machineBusy()
	start := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(spec.duration)
	phase.Store(phaseStop)
	window := time.Since(start)
	srv1, srvErr1 := t.cpu()
	cli1, cliErr1 := procCPU(selfPID)
	all1, allErr1 := machineBusy()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(spec.timeout + 5*time.Second):
		return nil, fmt.Errorf("workers still busy %v after the end of the run: the server hangs", spec.timeout+5*time.Second)
	}

	res := &loadResult{spec: spec, window: window, dials: dials.Load(), serverCPU: -1, clientCPU: -1, otherCPU: -1, rssKB: -1}
	if t.pid != 0 {
		if kb, err := procStatusKB(t.pid, "VmRSS"); err == nil {
			res.rssKB = kb
		}
	}
	if srvErr == nil && srvErr1 == nil {
		res.serverCPU = srv1 - srv0
	}
	if cliErr == nil && cliErr1 == nil {
		res.clientCPU = cli1 - cli0
	}
	if allErr == nil && allErr1 == nil && res.serverCPU >= 0 && res.clientCPU >= 0 {
		res.otherCPU = max(0, all1-all0-res.serverCPU-res.clientCPU)
	}
	for op := range res.hist {
		res.hist[op] = new(hist)
	}
	for _, w := range workers {
		for op := range w.hist {
			res.hist[op].merge(&w.hist[op])
		}
		res.errors += w.errors
		if len(res.errSample) < 5 {
			res.errSample = append(res.errSample, w.errSample...)
		}
	}
	return res, nil
}

// httpClient is net/http's client as an application would use it: its own
// Transport with one keep-alive HTTP/1.1 connection (BigDL's Java client
// speaks HTTP/1.1). Requests are reused; RoundTrip is called directly.
type httpClient struct {
	tr       *http.Transport
	get      *http.Request
	post     *http.Request
	postPath []byte
}

func newHTTPClient(base string, tlsConf *tls.Config, dials *atomic.Int64, timeout time.Duration, getPath string) (*httpClient, error) {
	d := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       tlsConf.Clone(),
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		MaxConnsPerHost:       1,
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		DisableCompression:    true,
		ResponseHeaderTimeout: timeout,
		TLSHandshakeTimeout:   timeout,
	}
	get, err := http.NewRequest("GET", base+getPath, nil)
	if err != nil {
		return nil, err
	}
	post, err := http.NewRequest("POST", base+"/dataKey/x", nil)
	if err != nil {
		return nil, err
	}
	return &httpClient{tr: tr, get: get, post: post}, nil
}

func (c *httpClient) do(method, pathQuery string, name []byte, body []byte) (int, int, error) {
	req := c.get
	if method == "POST" {
		// The previous response body is closed, so the request may be reused.
		req = c.post
		c.postPath = append(append(c.postPath[:0], "/dataKey/"...), name...)
		req.URL.Path = string(c.postPath)
		req.URL.RawQuery = pathQuery
	}
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := readAll(resp.Body, body)
	resp.Body.Close()
	if err != nil {
		return 0, 0, err
	}
	if resp.ProtoMajor != 1 {
		return 0, 0, fmt.Errorf("got %s, want HTTP/1.1", resp.Proto)
	}
	return resp.StatusCode, n, nil
}

func (c *httpClient) close() { c.tr.CloseIdleConnections() }

// readAll reads r to EOF into buf[:cap(buf)] and returns the total size
// (which may exceed the capacity; the excess is discarded).
func readAll(r io.Reader, buf []byte) (int, error) {
	buf = buf[:cap(buf)]
	n := 0
	for {
		var m int
		var err error
		if n < len(buf) {
			m, err = r.Read(buf[n:])
		} else {
			var scratch [256]byte
			m, err = r.Read(scratch[:])
		}
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// rawClient is the leanest possible HTTP/1.1 client: a TLS connection, a
// request written in one Write and a response parsed in place. It leaves
// more of the 2 cores to the server than net/http does, so it is the
// stricter test of the server; -client raw selects it.
type rawClient struct {
	addr    string
	tlsConf *tls.Config
	dials   *atomic.Int64
	timeout time.Duration
	conn    *tls.Conn
	br      *bufio.Reader
	req     []byte
	host    string
}

func newRawClient(addr string, tlsConf *tls.Config, dials *atomic.Int64, timeout time.Duration) *rawClient {
	return &rawClient{addr: addr, tlsConf: tlsConf.Clone(), dials: dials, timeout: timeout, host: addr}
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *rawClient) dial() error {
	c.dials.Add(1)
	d := &net.Dialer{Timeout: c.timeout}
	conn, err := tls.DialWithDialer(d, "tcp", c.addr, c.tlsConf)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

var errNoLength = errors.New("response without Content-Length")

func (c *rawClient) do(method, pathQuery string, name []byte, body []byte) (status int, n int, err error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, 0, err
		}
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.req = append(c.req[:0], method...)
	c.req = append(c.req, ' ')
	if method == "POST" {
		c.req = append(c.req, "/dataKey/"...)
		c.req = append(c.req, name...)
		c.req = append(c.req, '?')
	}
	c.req = append(c.req, pathQuery...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nUser-Agent: kmsbench\r\n"...)
	if method == "POST" {
		c.req = append(c.req, "Content-Length: 0\r\n"...)
	}
	c.req = append(c.req, "\r\n"...)
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	length, closeAfter := -1, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(line) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, 0, fmt.Errorf("bad header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return 0, 0, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, 0, fmt.Errorf("Transfer-Encoding %q not supported by the raw client", v)
		}
	}
	if length < 0 {
		return 0, 0, errNoLength
	}
	buf := body[:cap(body)]
	m := min(length, len(buf))
	if _, err := io.ReadFull(c.br, buf[:m]); err != nil {
		return 0, 0, err
	}
	if length > m {
		if _, err := c.br.Discard(length - m); err != nil {
			return 0, 0, err
		}
	}
	if closeAfter {
		c.close()
	}
	return status, length, nil
}

// target is a server under test.
type target struct {
	name     string // floor or kmsd
	base     string // https://127.0.0.1:PORT
	hostport string
	pid      int // 0 if unknown: no CPU or RSS figures
	tlsConf  *tls.Config
	bigdl    bool // a BigDL KMS: set up a user, a primary key and data keys

	user, token, primary string
	keys                 []string
	expected             [][]byte
	tlsInfo              string
}

func (t *target) cpu() (time.Duration, error) {
	if t.pid == 0 {
		return 0, errors.New("no pid")
	}
	return procCPU(t.pid)
}

// setup creates the user, primary key and data keys for GET (or, for the
// floor, fetches its fixed body), and records the key each GET must return.
func (t *target) setup(nkeys int, runID string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: t.tlsConf.Clone(),
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	defer client.CloseIdleConnections()
	call := func(method, path string, q url.Values, okExists bool) ([]byte, *http.Response, error) {
		u := t.base + path + "?" + q.Encode()
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			return nil, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = t.base + path // the query carries the token
			}
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusOK && !(okExists && resp.Header.Get("X-Kms-Error") == "already_exists") {
			return b, resp, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, trunc(b, 200))
		}
		return b, resp, nil
	}
	auth := url.Values{"user": {t.user}, "token": {t.token}}
	if t.bigdl {
		if _, _, err := call("POST", "/user/"+t.user, url.Values{"token": {t.token}}, true); err != nil {
			return err
		}
		if _, _, err := call("POST", "/primaryKey/"+t.primary, auth, true); err != nil {
			return err
		}
	}
	auth.Set("primaryKeyName", t.primary)
	t.keys, t.expected = nil, nil
	for i := 0; i < nkeys; i++ {
		name := fmt.Sprintf("dk-%s-get%d", runID, i)
		if t.bigdl {
			if _, _, err := call("POST", "/dataKey/"+name, auth, false); err != nil {
				return err
			}
		}
		b, resp, err := call("GET", "/dataKey/"+name, auth, false)
		if err != nil {
			return err
		}
		if len(b) != 24 {
			return fmt.Errorf("GET /dataKey/%s returned %d bytes %q, want 24 base64 characters", name, len(b), b)
		}
		if resp.TLS != nil && t.tlsInfo == "" {
			t.tlsInfo = fmt.Sprintf("%s, %s, %s", tls.VersionName(resp.TLS.Version),
				tls.CipherSuiteName(resp.TLS.CipherSuite), resp.Proto)
		}
		t.keys, t.expected = append(t.keys, name), append(t.expected, b)
	}
	return nil
}
