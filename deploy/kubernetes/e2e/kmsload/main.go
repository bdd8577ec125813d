// Command kmsload is the load generator of scripts/e2e-k8s.sh: it creates
// data keys through the BigDL API of a kmsd Service while the test deletes
// pods or rolls the Deployment, remembers every creation the server
// acknowledged (200) together with the key's value, and later checks that
// each of them is still there with the same value.
//
//	kmsload -url https://NODE:PORT -user u -token t -setup
//	kmsload -url ... -user u -token t -duration 60s -stop-file F -acked acked.txt -max-failures 0
//	kmsload -url ... -user u -token t -verify acked.txt
//
// By default every request opens a new connection, as curl and most BigDL
// clients do, so it follows the Service's current endpoints. Requests are
// never retried: a failure counts. Only the addresses given with -url are
// contacted.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	urls                     []string
	user, token, primaryKey  string
	prefix, acked, stopFile  string
	verify                   string
	setup, keepAlive         bool
	workers, maxFailures     int
	maxRequests              int64
	duration, timeout, pause time.Duration
	cacert                   string
}

func main() {
	var o options
	var urls string
	flag.StringVar(&urls, "url", "", "kmsd base URL(s), comma-separated; requests alternate between them")
	flag.StringVar(&o.user, "user", "e2e", "user name")
	flag.StringVar(&o.token, "token", "", "user token (required)")
	flag.StringVar(&o.primaryKey, "primary-key", "e2e-pk", "primary key the data keys are created under")
	flag.StringVar(&o.prefix, "prefix", "dk", "data key name prefix (make it unique per run)")
	flag.StringVar(&o.acked, "acked", "", "append acknowledged keys (name value) to this file")
	flag.StringVar(&o.stopFile, "stop-file", "", "stop once this file exists")
	flag.StringVar(&o.verify, "verify", "", "check every key listed in this file instead of creating keys")
	flag.BoolVar(&o.setup, "setup", false, "create the user and the primary key (existing ones are fine), then exit")
	flag.BoolVar(&o.keepAlive, "keepalive", false, "reuse connections (default: a new connection per request)")
	flag.IntVar(&o.workers, "workers", 4, "concurrent workers")
	flag.IntVar(&o.maxFailures, "max-failures", 0, "exit 1 if more requests than this fail; -1: any number")
	flag.Int64Var(&o.maxRequests, "max-requests", 20000, "stop after this many create requests")
	flag.DurationVar(&o.duration, "duration", time.Minute, "stop after this long")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of each request")
	flag.DurationVar(&o.pause, "pause", 20*time.Millisecond, "pause between two requests of a worker")
	flag.StringVar(&o.cacert, "cacert", "", "trust this PEM certificate (default: no verification, like curl -k)")
	flag.Parse()
	o.urls = strings.Split(urls, ",")
	if urls == "" || o.token == "" {
		fmt.Fprintln(os.Stderr, "kmsload: -url and -token are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "kmsload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	c, err := newClient(o)
	if err != nil {
		return err
	}
	switch {
	case o.setup:
		return c.setup(ctx)
	case o.verify != "":
		return c.verifyFile(ctx, o.verify)
	}
	return c.load(ctx)
}

type client struct {
	o    options
	http *http.Client
	next atomic.Uint64
}

func newClient(o options) (*client, error) {
	tc := &tls.Config{InsecureSkipVerify: true}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", o.cacert)
		}
		tc = &tls.Config{RootCAs: pool}
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: !o.keepAlive, MaxIdleConnsPerHost: o.workers}
	return &client{o: o, http: &http.Client{Transport: tr, Timeout: o.timeout}}, nil
}

// do sends one BigDL request and returns the status and body.
func (c *client) do(ctx context.Context, method, path string, q url.Values) (int, string, error) {
	base := c.o.urls[c.next.Add(1)%uint64(len(c.o.urls))]
	// BigDL clients separate parameters with "&&"; kmsd accepts both.
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path+"?"+strings.ReplaceAll(q.Encode(), "&", "&&"), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func (c *client) auth(extra ...string) url.Values {
	q := url.Values{"user": {c.o.user}, "token": {c.o.token}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func (c *client) setup(ctx context.Context) error {
	steps := []struct {
		path string
		q    url.Values
	}{
		{"/user/" + c.o.user, url.Values{"token": {c.o.token}}},
		{"/primaryKey/" + c.o.primaryKey, c.auth()},
	}
	for _, s := range steps {
		code, body, err := c.do(ctx, http.MethodPost, s.path, s.q)
		if err != nil {
			return fmt.Errorf("POST %s: %w", s.path, err)
		}
		if code != http.StatusOK && code != http.StatusConflict {
			return fmt.Errorf("POST %s: %d %s", s.path, code, body)
		}
	}
	fmt.Printf("kmsload: user %s and primary key %s ready\n", c.o.user, c.o.primaryKey)
	return nil
}

// stats counts outcomes; failures are kept by reason.
type stats struct {
	mu       sync.Mutex
	requests int64
	failures map[string]int
	acked    map[string]string
	first    time.Time // first failure
	last     time.Time // last failure
}

func (s *stats) fail(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(reason) > 120 {
		reason = reason[:120]
	}
	s.failures[reason]++
	now := time.Now()
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
}

func (s *stats) failed() int {
	n := 0
	for _, v := range s.failures {
		n += v
	}
	return n
}

func (c *client) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.duration)
	defer cancel()
	st := &stats{failures: map[string]int{}, acked: map[string]string{}}
	var created atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.o.workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && created.Add(1) <= c.o.maxRequests; i++ {
				if c.o.stopFile != "" {
					if _, err := os.Stat(c.o.stopFile); err == nil {
						cancel()
						return
					}
				}
				c.createOne(ctx, st, fmt.Sprintf("%s-%d-%d", c.o.prefix, w, i))
				select {
				case <-ctx.Done():
				case <-time.After(c.o.pause):
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Round(time.Millisecond)
	if err := c.writeAcked(st.acked); err != nil {
		return err
	}
	failed := st.failed()
	fmt.Printf("kmsload: %d requests in %s (%.0f/s), %d data keys acknowledged, %d failed\n",
		st.requests, elapsed, float64(st.requests)/elapsed.Seconds(), len(st.acked), failed)
	if failed > 0 {
		fmt.Printf("kmsload: failures between %s and %s (%s):\n", st.first.Format("15:04:05.000"),
			st.last.Format("15:04:05.000"), st.last.Sub(st.first).Round(time.Millisecond))
		for _, r := range sortedKeys(st.failures) {
			fmt.Printf("  %5d  %s\n", st.failures[r], r)
		}
	}
	if len(st.acked) == 0 {
		return errors.New("no data key was acknowledged")
	}
	if c.o.maxFailures >= 0 && failed > c.o.maxFailures {
		return fmt.Errorf("%d failed requests, more than the %d allowed", failed, c.o.maxFailures)
	}
	return nil
}

// createOne creates a data key and, once acknowledged, reads its value.
func (c *client) createOne(ctx context.Context, st *stats, name string) {
	count := func() { st.mu.Lock(); st.requests++; st.mu.Unlock() }
	path := "/dataKey/" + name
	q := c.auth("primaryKeyName", c.o.primaryKey)
	count()
	code, body, err := c.do(ctx, http.MethodPost, path, q)
	if ctx.Err() != nil {
		return // stopping: an interrupted request is not a failure
	}
	switch {
	case err != nil:
		st.fail("POST: " + errorClass(err))
		return
	case code != http.StatusOK:
		st.fail(fmt.Sprintf("POST: %d %s", code, body))
		return
	}
	// Acknowledged: from here on the key must never be lost.
	st.mu.Lock()
	st.acked[name] = "?"
	st.mu.Unlock()
	count()
	code, body, err = c.do(ctx, http.MethodGet, path, q)
	if ctx.Err() != nil {
		return
	}
	switch {
	case err != nil:
		st.fail("GET: " + errorClass(err))
	case code != http.StatusOK:
		st.fail(fmt.Sprintf("GET after an acknowledged POST: %d %s", code, body))
	default:
		st.mu.Lock()
		st.acked[name] = body
		st.mu.Unlock()
	}
}

// errorClass shortens a transport error to its kind, so that the summary
// groups them.
func errorClass(err error) string {
	s := err.Error()
	host, _, _ := strings.Cut(s, ": ")
	for _, k := range []string{"connection refused", "connection reset", "EOF", "timeout", "Client.Timeout",
		"no route to host", "broken pipe", "tls:"} {
		if strings.Contains(s, k) {
			return k + " (" + host + ")"
		}
	}
	return s
}

func (c *client) writeAcked(acked map[string]string) error {
	if c.o.acked == "" {
		return nil
	}
	f, err := os.OpenFile(c.o.acked, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, name := range sortedKeys(acked) {
		fmt.Fprintf(w, "%s %s\n", name, acked[name])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// verifyFile reads every key listed in path and compares its value.
func (c *client) verifyFile(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var checked, lost, changed, errs int
	for line := range strings.Lines(string(b)) {
		name, want, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		checked++
		// Only a 404 means lost: transport errors and 5xx (a store that
		// is restarting) are retried for a while.
		var code int
		var body string
		var err error
		for try := 0; try < 20; try++ {
			code, body, err = c.do(ctx, http.MethodGet, "/dataKey/"+name, c.auth("primaryKeyName", c.o.primaryKey))
			if err == nil && code < 500 && code != http.StatusTooManyRequests {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case err != nil:
			errs++
			fmt.Printf("  error   %s: %v\n", name, err)
		case code == http.StatusNotFound:
			lost++
			fmt.Printf("  LOST    %s\n", name)
		case code != http.StatusOK:
			errs++
			fmt.Printf("  error   %s: %d %s\n", name, code, body)
		case want != "?" && body != want:
			changed++
			fmt.Printf("  CHANGED %s\n", name)
		}
	}
	fmt.Printf("kmsload: verified %d acknowledged data keys: %d lost, %d changed, %d errors\n", checked, lost, changed, errs)
	if checked == 0 || lost+changed+errs > 0 {
		return errors.New("verification failed")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
