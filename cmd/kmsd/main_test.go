package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the server's log output for assertions.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is a running kmsd and an HTTPS client that trusts its certificate.
type server struct {
	m    *Main
	url  string
	c    *http.Client
	logs *lockedBuffer
}

// start runs the real kmsd program on a loopback port with dataDir.
func start(t *testing.T, dataDir string, args ...string) *server {
	t.Helper()
	return startEnv(t, dataDir, func(string) string { return "" }, args...)
}

func startEnv(t *testing.T, dataDir string, getenv func(string) string, args ...string) *server {
	t.Helper()
	logs := &lockedBuffer{}
	m := NewMain()
	m.Stderr = logs
	args = append([]string{"-addr", "127.0.0.1:0", "-data-dir", dataDir, "-log-level", "debug", "-audit-log", filepath.Join(dataDir, "audit.log")}, args...)
	if err := m.ParseFlags(args, getenv); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatalf("start kmsd: %v\n%s", err, logs)
	}
	s := &server{m: m, url: "https://" + m.Addr(), logs: logs}
	t.Cleanup(func() { s.close(t) })
	s.c = newClient(t, m.listener.Addr().String(), dataDir)
	return s
}

func (s *server) close(t *testing.T) {
	if s.m == nil {
		return
	}
	if err := s.m.Close(); err != nil {
		t.Errorf("close kmsd: %v", err)
	}
	s.m = nil
}

// newClient trusts the certificate kmsd generated in dataDir, like a user
// who copied tls.crt, and forces HTTP/1.1 as BigDL's Java client speaks.
func newClient(t *testing.T, addr, dataDir string) *http.Client {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(filepath.Join(dataDir, "tls.crt")); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends a request with the raw path and query exactly as given.
func (s *server) do(t *testing.T, method, pathAndQuery string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	path, query, _ := strings.Cut(pathAndQuery, "?")
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, path, query
	req.URL.Opaque = "//" + req.URL.Host + path // keep "//" and unencoded bytes as sent
	resp, err := s.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathAndQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func (s *server) must(t *testing.T, method, pathAndQuery, want string) string {
	t.Helper()
	status, body, _ := s.do(t, method, pathAndQuery)
	if status != 200 || (want != "" && body != want) {
		t.Fatalf("%s %s: got %d %q, want 200 %q", method, pathAndQuery, status, body, want)
	}
	return body
}

const tok = "t0k3n+with/odd=chars"

// seed runs the seed's curl sequence and returns the data key body.
func (s *server) seed(t *testing.T, user, pk, dk string) string {
	t.Helper()
	s.must(t, "POST", "/user/"+user+"?token="+tok, "user ["+user+"] is created successfully!")
	s.must(t, "POST", "/primaryKey/"+pk+"?user="+user+"&&token="+tok, "primaryKey ["+pk+"] is generated successfully!")
	s.must(t, "POST", "/dataKey/"+dk+"?user="+user+"&&token="+tok+"&&primaryKeyName="+pk, "dataKey ["+dk+"] is generated successfully!")
	return s.must(t, "GET", "/dataKey/"+dk+"?user="+user+"&&token="+tok+"&&primaryKeyName="+pk, "")
}

func checkDataKey(t *testing.T, body string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(body)
	if len(body) != 24 || err != nil || len(raw) != 16 {
		t.Fatalf("data key body %q is not the bare base64 of 16 bytes", body)
	}
}

func TestSeedSequence(t *testing.T) {
	s := start(t, t.TempDir())
	status, body, h := s.do(t, "GET", "/")
	if status != 200 || !strings.HasPrefix(body, "welcome to BigDL KMS Frontend\n\ncreate a user like: POST /user/{userName}?token=a_token_string_for_the_user\n") {
		t.Fatalf("welcome: %d %q", status, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("content type %q", ct)
	}
	key := s.seed(t, "alice", "pk1", "dk1")
	checkDataKey(t, key)
	if again := s.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", ""); again != key {
		t.Fatalf("second GET returned another key")
	}
}

// TestScalaClientQuirks sends requests the way BigDLKeyManagementService
// builds them: "//dataKey", parameters in another order, nothing encoded.
func TestScalaClientQuirks(t *testing.T) {
	s := start(t, t.TempDir())
	key := s.seed(t, "alice", "pk1", "dk1")
	for _, pq := range []string{
		"//dataKey/dk1?token=" + tok + "&user=alice&primaryKeyName=pk1",
		"//dataKey/dk1?token=" + tok + "&&user=alice&&primaryKeyName=pk1&&",
		"/dataKey/dk1?&primaryKeyName=pk1&token=" + tok + "&user=alice",
		"/dataKey/dk1?primaryKeyName=pk1&token=" + strings.ReplaceAll(tok, "/", "%2F") + "&user=alice",
	} {
		status, body, h := s.do(t, "GET", pq)
		if status != 200 || body != key || h.Get("Location") != "" {
			t.Errorf("GET %s: %d %q (Location %q), want 200 with the key", pq, status, body, h.Get("Location"))
		}
	}
	// PPMLContext: POST then GET of a random UUID name.
	uuid := "0f8fad5b-d9cb-469f-a165-70867728950e"
	s.must(t, "POST", "//dataKey/"+uuid+"?token="+tok+"&user=alice&primaryKeyName=pk1", "dataKey ["+uuid+"] is generated successfully!")
	checkDataKey(t, s.must(t, "GET", "//dataKey/"+uuid+"?token="+tok+"&user=alice&primaryKeyName=pk1", ""))
}

func TestRestartKeepsKeys(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	key := s.seed(t, "alice", "pk1", "dk1")
	s.close(t)
	if fi, err := os.Stat(filepath.Join(dir, "root.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v %v", fi, err)
	}
	for _, f := range []string{"kms.db", "root.key"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		raw, _ := base64.StdEncoding.DecodeString(key)
		if bytes.Contains(b, raw) {
			t.Fatalf("%s holds the plaintext data key", f)
		}
	}
	s2 := start(t, dir)
	if got := s2.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", ""); got != key {
		t.Fatalf("after restart: %q, want %q", got, key)
	}
	if !strings.Contains(s.logs.String(), "GENERATED A NEW ROOT KEY") || strings.Contains(s2.logs.String(), "GENERATED A NEW ROOT KEY") {
		t.Fatal("the root key must be generated, loudly, on the first start only")
	}
}

func TestRootKeyFromEnv(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"ROOT_KEY": "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="}
	getenv := func(k string) string { return env[k] }
	s := startEnv(t, dir, getenv, "-root-key-env", "ROOT_KEY")
	key := s.seed(t, "alice", "pk1", "dk1")
	s.close(t)
	if _, err := os.Stat(filepath.Join(dir, "root.key")); err == nil {
		t.Fatal("a key file was created although the root key came from the environment")
	}
	// Another root key is refused at start with a clear error, instead of
	// failing every request later.
	env["ROOT_KEY"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	m := NewMain()
	logs := &lockedBuffer{}
	m.Stderr = logs
	if err := m.ParseFlags([]string{"-addr", "127.0.0.1:0", "-data-dir", dir, "-root-key-env", "ROOT_KEY"}, getenv); err != nil {
		t.Fatal(err)
	}
	err := m.Run(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "is not this store's seal key") || strings.Contains(err.Error(), env["ROOT_KEY"]) {
		t.Fatalf("wrong root key: %v", err)
	}
	// The right key still works.
	env["ROOT_KEY"] = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
	s3 := startEnv(t, dir, getenv, "-root-key-env", "ROOT_KEY")
	s3.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", key)
}

func TestErrors(t *testing.T) {
	s := start(t, t.TempDir())
	s.seed(t, "alice", "pk1", "dk1")
	long := strings.Repeat("n", 129)
	q := "?user=alice&token=" + tok
	cases := []struct {
		name, method, pq string
		status           int
		msg              string
	}{
		{"401/wrong token", "GET", "/dataKey/dk1?user=alice&token=nope&primaryKeyName=pk1", 401, "unknown user or wrong token"},
		{"401/unknown user", "GET", "/dataKey/dk1?user=mallory&token=" + tok + "&primaryKeyName=pk1", 401, "unknown user or wrong token"},
		{"400/missing token", "POST", "/primaryKey/pk2?user=alice", 400, "missing query parameter token"},
		{"400/missing user and token", "POST", "/primaryKey/pk2", 400, "missing query parameter user, token"},
		{"400/missing primaryKeyName", "GET", "/dataKey/dk1" + q, 400, "missing query parameter primaryKeyName"},
		{"400/missing user token", "POST", "/user/bob", 400, "missing query parameter token"},
		{"400/name too long", "POST", "/primaryKey/" + long + q, 400, "longer than 128"},
		{"400/name with bad characters", "POST", "/user/bob%3Bdrop?token=x", 400, "may contain only"},
		{"400/name starting with dot", "POST", "/primaryKey/..x" + q, 400, "must not start with '.'"},
		{"400/empty name", "POST", "/user/?token=x", 400, "missing name"},
		{"404/unknown primary key", "POST", "/dataKey/dk2" + q + "&primaryKeyName=nope", 404, "primaryKey [nope] does not exist"},
		{"404/unknown data key", "GET", "/dataKey/nope" + q + "&primaryKeyName=pk1", 404, "dataKey [nope] does not exist"},
		{"404/data key under another primary key", "GET", "/dataKey/dk1" + q + "&primaryKeyName=pk2", 404, "does not exist"},
		{"409/user exists", "POST", "/user/alice?token=other", 409, "user [alice] already exists"},
		{"409/primary key exists", "POST", "/primaryKey/pk1" + q, 409, "primaryKey [pk1] already exists"},
		{"409/data key exists", "POST", "/dataKey/dk1" + q + "&primaryKeyName=pk1", 409, "dataKey [dk1] already exists"},
		{"405/wrong method", "DELETE", "/dataKey/dk1" + q, 405, "method DELETE is not supported"},
		{"404/unknown route", "GET", "/nope", 404, "no such route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, h := s.do(t, c.method, c.pq)
			if status != c.status || !strings.Contains(body, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", status, body, c.status, c.msg)
			}
			if c.status != 404 || c.msg != "no such route" {
				if !strings.Contains(body, "\n please ") || !strings.Contains(body, " like: ") {
					t.Fatalf("body lacks BigDL's usage line: %q", body)
				}
			}
			if strings.Contains(body, tok) || strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") {
				t.Fatalf("body leaks internals: %q", body)
			}
			if h.Get("X-Kms-Error") == "" {
				t.Fatal("no error code header")
			}
		})
	}
	// Nothing was overwritten by the refused duplicates.
	if _, err := os.Stat(s.m.Config.DataDir); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicatesNeverOverwrite(t *testing.T) {
	s := start(t, t.TempDir())
	key := s.seed(t, "alice", "pk1", "dk1")
	s.do(t, "POST", "/user/alice?token=other")
	s.do(t, "POST", "/primaryKey/pk1?user=alice&token="+tok)
	s.do(t, "POST", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1")
	if got := s.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", ""); got != key {
		t.Fatal("a refused duplicate changed the data key")
	}
	if status, _, _ := s.do(t, "GET", "/dataKey/dk1?user=alice&token=other&primaryKeyName=pk1"); status != 401 {
		t.Fatal("a refused duplicate user changed the token")
	}
}

func TestOversizedRequests(t *testing.T) {
	s := start(t, t.TempDir())
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.url+"/user/bob?token=x", bytes.NewReader(make([]byte, 10000)))
	resp, err := s.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), "too large") {
		t.Fatalf("oversized body: %d %q", resp.StatusCode, body)
	}
	status, _, _ := s.do(t, "POST", "/user/bob?token=x")
	if status != 200 {
		t.Fatalf("the user refused for its oversized body must not exist yet: %d", status)
	}
	status, _, _ = s.do(t, "GET", "/dataKey/x?user=bob&primaryKeyName=p&token="+strings.Repeat("a", 40000))
	if status != 431 {
		t.Fatalf("oversized header: got %d, want 431", status)
	}
	status, body2, _ := s.do(t, "POST", "/user/carol?token="+strings.Repeat("a", 513))
	if status != 400 || !strings.Contains(body2, "token longer") {
		t.Fatalf("oversized token: %d %q", status, body2)
	}
}

func TestUserIsolation(t *testing.T) {
	s := start(t, t.TempDir())
	aliceKey := s.seed(t, "alice", "pk1", "dk1")
	s.must(t, "POST", "/user/bob?token=bobtoken", "")
	// Bob's token never reaches Alice's keys.
	for _, pq := range []string{
		"/dataKey/dk1?user=alice&token=bobtoken&primaryKeyName=pk1",
		"/dataKey/dk1?user=bob&token=" + tok + "&primaryKeyName=pk1",
	} {
		if status, body, _ := s.do(t, "GET", pq); status != 401 || strings.Contains(body, aliceKey) {
			t.Fatalf("GET %s: %d %q", pq, status, body)
		}
	}
	if status, _, _ := s.do(t, "GET", "/dataKey/dk1?user=bob&token=bobtoken&primaryKeyName=pk1"); status != 404 {
		t.Fatalf("bob sees a key he does not own: %d", status)
	}
	// Names are scoped per user: Bob gets his own pk1 and dk1.
	s.must(t, "POST", "/primaryKey/pk1?user=bob&token=bobtoken", "primaryKey [pk1] is generated successfully!")
	s.must(t, "POST", "/dataKey/dk1?user=bob&token=bobtoken&primaryKeyName=pk1", "dataKey [dk1] is generated successfully!")
	bobKey := s.must(t, "GET", "/dataKey/dk1?user=bob&token=bobtoken&primaryKeyName=pk1", "")
	if bobKey == aliceKey {
		t.Fatal("two users' keys are equal")
	}
}

func TestConcurrentCreatesOneWins(t *testing.T) {
	s := start(t, t.TempDir())
	s.seed(t, "alice", "pk1", "dk1")
	const n = 24
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var pq string
			switch i % 3 {
			case 0:
				pq = "/dataKey/race?user=alice&token=" + tok + "&primaryKeyName=pk1"
			case 1:
				pq = "/primaryKey/race?user=alice&token=" + tok
			default:
				pq = "/user/racer?token=" + tok
			}
			codes[i], _, _ = s.do(t, "POST", pq)
		})
	}
	wg.Wait()
	for kind := range 3 {
		wins := 0
		for i := kind; i < n; i += 3 {
			switch codes[i] {
			case 200:
				wins++
			case 409:
			default:
				t.Errorf("kind %d: status %d", kind, codes[i])
			}
		}
		if wins != 1 {
			t.Errorf("kind %d: %d creates won, want exactly 1 (%v)", kind, wins, codes)
		}
	}
}

func TestThrottling(t *testing.T) {
	s := start(t, t.TempDir())
	s.seed(t, "alice", "pk1", "dk1")
	// A client that already authenticated keeps working while its user is
	// attacked: the verification is cached.
	var last int
	for range 12 {
		last, _, _ = s.do(t, "GET", "/dataKey/dk1?user=alice&token=guess&primaryKeyName=pk1")
	}
	if last != 429 {
		t.Fatalf("after 12 failures: %d, want 429", last)
	}
	status, body, h := s.do(t, "GET", "/dataKey/dk1?user=alice&token=guess&primaryKeyName=pk1")
	if status != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, "too many") {
		t.Fatalf("throttled: %d %q", status, body)
	}
	s.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", "")
}

func TestNoSecretsInLogs(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "-access-log=true")
	key := s.seed(t, "alice", "pk1", "dk1")
	s.do(t, "GET", "/dataKey/dk1?user=alice&token=wrong-secret&primaryKeyName=pk1")
	auditLog, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil || !strings.Contains(string(auditLog), `"operation":"get_data_key"`) {
		t.Fatalf("audit log: %v\n%s", err, auditLog)
	}
	logs := s.logs.String() + string(auditLog)
	for _, secret := range []string{tok, "wrong-secret", key, "token="} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "path=/dataKey/dk1") {
		t.Fatalf("access log missing:\n%s", logs)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	s := start(t, t.TempDir())
	s.seed(t, "alice", "pk1", "dk1")
	s.must(t, "GET", "/healthz", "ok\n")
	s.must(t, "GET", "/readyz", "ready\n")
	metrics := s.must(t, "GET", "/metrics", "")
	for _, want := range []string{
		`kms_http_requests_total{code="200",method="GET",route="/dataKey/{name}"} 1`,
		`kms_http_request_duration_seconds_bucket{route="/dataKey/{name}"`,
		`kms_key_operations_total{op="create_data_key",result="ok"} 1`,
		`kms_store_duration_seconds_count{op="create_user",result="ok"} 1`,
		`kms_cache_requests_total{cache="auth",result="miss"}`,
		`kms_cache_requests_total{cache="keys",result="miss"}`,
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	s.do(t, "GET", "/dataKey/dk1?user=alice&token=bad&primaryKeyName=pk1")
	if m := s.must(t, "GET", "/metrics", ""); !strings.Contains(m, `kms_auth_failures_total{reason="bad credentials"} 1`) {
		t.Error("auth failure not counted")
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	addr := s.m.Addr()
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	conn.Close()
	if !strings.Contains(s.logs.String(), "sha256=") {
		t.Fatal("the generated certificate's fingerprint is not logged")
	}
	// Plain HTTP gets no key.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if strings.Contains(string(b), "welcome") {
		t.Fatal("served plain HTTP")
	}
}

// TestGracefulShutdown closes the server while a request is still sending
// its body; the request must complete.
func TestGracefulShutdown(t *testing.T) {
	s := start(t, t.TempDir())
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.url+"/user/late?token=x", pr)
	req.ContentLength = 4
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := s.c.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	pw.Write([]byte("ab"))
	time.Sleep(200 * time.Millisecond) // the request is in flight
	closed := make(chan error, 1)
	go func() { closed <- s.m.Close() }()
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte("cd"))
	pw.Close()
	r := <-done
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request during shutdown: %d %v", r.status, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s.m = nil
}

func TestConfigErrors(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	err := m.ParseFlags([]string{"-tls-cert", "x", "-log-format", "xml"}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "tls-cert and tls-key go together") || !strings.Contains(err.Error(), "log-format") {
		t.Fatalf("got %v", err)
	}
}

// TestFailedAuthenticationAudited: a wrong token leaves an audit record,
// without the token, on the native API (bearer header) and on the BigDL
// routes (token in the query, as BigDL sends it; the record names the
// claimed user).
func TestFailedAuthenticationAudited(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  func(url string) *http.Request
		want []string // on one audit line
	}{
		{"native", func(url string) *http.Request {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/v1/keys/pk1", nil)
			req.Header.Set("Authorization", "Bearer alice:not-the-token")
			return req
		}, []string{`"operation":"authenticate"`, `"result":"unauthorized"`}},
		{"bigdl", func(url string) *http.Request {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/dataKey/dk1?user=alice&&token=not-the-token&&primaryKeyName=pk1", nil)
			return req
		}, []string{`"operation":"authenticate"`, `"result":"unauthorized"`, `"key":"alice"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, dir)
			s.seed(t, "alice", "pk1", "dk1")
			resp, err := s.c.Do(tt.req(s.url))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("wrong token: %d", resp.StatusCode)
			}
			s.close(t) // drain the audit log
			b, err := os.ReadFile(filepath.Join(dir, "audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			hasAll := func(line string) bool {
				for _, w := range tt.want {
					if !strings.Contains(line, w) {
						return false
					}
				}
				return true
			}
			if !slices.ContainsFunc(strings.Split(string(b), "\n"), hasAll) {
				t.Fatalf("no audit record of the failed authentication:\n%s", b)
			}
			if strings.Contains(string(b), "not-the-token") {
				t.Fatal("the audit log holds the presented token")
			}
		})
	}
}
