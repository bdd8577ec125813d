package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// newTestHandler builds the handler on a real SQLite store. A cheap token
// hash keeps the fuzzer fast; it is only used here.
func newTestHandler(t testing.TB, logs *bytes.Buffer) *Handler {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/kms.db", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{1}, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return New(Config{
		Service:   kms.NewService(st, kms.Static{K: kr}, kms.ServiceOptions{}),
		Auth:      auth.New(st.User, auth.Options{UserLimit: 1 << 30, AddrLimit: 1 << 30}),
		Logger:    logger,
		AccessLog: logs != nil,
	})
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://kms.test/", nil)
	path, query, _ := strings.Cut(target, "?")
	req.URL.Path, req.URL.RawQuery = path, query
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestRouteTable pins the limits of every route, so that a change to them
// is a deliberate change to this test.
func TestRouteTable(t *testing.T) {
	h := &Handler{}
	want := map[string]struct {
		maxBody int64
		timeout time.Duration
		auth    bool
	}{
		"GET /{$}":                {0, 0, false},
		"POST /user/{name}":       {4096, 10 * time.Second, false},
		"POST /primaryKey/{name}": {4096, 10 * time.Second, true},
		"POST /dataKey/{name}":    {4096, 10 * time.Second, true},
		"GET /dataKey/{name}":     {4096, 0, true},
		"GET /healthz":            {0, 2 * time.Second, false},
		"GET /readyz":             {0, 2 * time.Second, false},
		"GET /rootKey/rotate":     {4096, 10 * time.Minute, false},
		"PUT /rootKey/recover":    {4096, 10 * time.Second, false},
	}
	nativeExceptions := map[string]struct {
		maxBody int64
		timeout time.Duration
	}{
		"GET /v1/sys/seal-status":  {0, 2 * time.Second},
		"POST /v1/sys/rotate-root": {1 << 20, 10 * time.Minute},
	}
	routes := h.routes()
	bigdl := 0
	for _, rt := range routes {
		if ex, ok := nativeExceptions[rt.method+" "+rt.pattern]; ok {
			if !rt.native || rt.maxBody != ex.maxBody || rt.timeout != ex.timeout {
				t.Errorf("%s %s: body %d timeout %v", rt.method, rt.pattern, rt.maxBody, rt.timeout)
			}
			continue
		}
		if rt.native {
			if !strings.HasPrefix(rt.pattern, "/v1/") || rt.maxBody != 1<<20 || rt.timeout != 10*time.Second || rt.auth {
				t.Errorf("native %s %s: body %d timeout %v auth %v", rt.method, rt.pattern, rt.maxBody, rt.timeout, rt.auth)
			}
			continue
		}
		bigdl++
		w, ok := want[rt.method+" "+rt.pattern]
		if !ok || rt.maxBody != w.maxBody || rt.timeout != w.timeout || rt.auth != w.auth {
			t.Errorf("%s %s: body %d timeout %v auth %v, want %+v", rt.method, rt.pattern, rt.maxBody, rt.timeout, rt.auth, w)
		}
		if strings.Contains(rt.pattern, "{name}") && (rt.usage == "" || rt.verb == "") {
			t.Errorf("%s %s has no BigDL usage line", rt.method, rt.pattern)
		}
	}
	if bigdl != len(want) {
		t.Fatalf("%d BigDL routes, want %d", bigdl, len(want))
	}
}

func TestGetDataKeyBody(t *testing.T) {
	h := newTestHandler(t, nil)
	for _, target := range []string{"/user/u?token=t", "/primaryKey/p?user=u&token=t", "/dataKey/d?user=u&token=t&primaryKeyName=p"} {
		if rec := serve(h, "POST", target); rec.Code != 200 {
			t.Fatalf("POST %s: %d %s", target, rec.Code, rec.Body)
		}
	}
	rec := serve(h, "GET", "//dataKey/d?user=u&&token=t&&primaryKeyName=p")
	if rec.Code != 200 || rec.Body.Len() != 24 || rec.Header().Get("Location") != "" {
		t.Fatalf("GET: %d %q", rec.Code, rec.Body)
	}
}

// FuzzHandler sends arbitrary methods, paths and queries through the whole
// handler on a real store. Properties: no panic, never a 5xx, and every
// error carries a code header.
func FuzzHandler(f *testing.F) {
	var logs bytes.Buffer
	h := newTestHandler(f, &logs)
	serve(h, "POST", "/user/u?token=t")
	serve(h, "POST", "/primaryKey/p?user=u&token=t")
	serve(h, "POST", "/dataKey/d?user=u&token=t&primaryKeyName=p")
	for _, s := range []string{"/", "//dataKey/d?user=u&&token=t&&primaryKeyName=p", "/user/x?token=%zz",
		"/primaryKey/%2e%2e?user=u&token=t", "/dataKey/?user=u", "/dataKey/d?user=u&token=t&primaryKeyName=" + strings.Repeat("p", 200),
		"/user/a;b?token=;", "/metricsx", "///"} {
		f.Add(uint8(0), s)
		f.Add(uint8(1), s)
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"}
	f.Fuzz(func(t *testing.T, m uint8, target string) {
		if strings.ContainsAny(target, " \r\n\x00#") || !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "/metrics") {
			return
		}
		rec := serve(h, methods[int(m)%len(methods)], target)
		if rec.Code >= 500 {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("X-Kms-Error") == "" {
			t.Fatalf("%s: %d without code header", target, rec.Code)
		}
	})
}

// BenchmarkGetDataKey measures the handler's own cost of the hot path
// (no TLS, no network): what kmsd adds on top of net/http.
func BenchmarkGetDataKey(b *testing.B) {
	h := newTestHandler(b, nil)
	for _, target := range []string{"/user/u?token=t", "/primaryKey/p?user=u&token=t", "/dataKey/d?user=u&token=t&primaryKeyName=p"} {
		serve(h, "POST", target)
	}
	req := httptest.NewRequest("GET", "https://kms.test/dataKey/d?user=u&token=t&primaryKeyName=p", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
