package client_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

func newClient(t *testing.T, s *kmstest.Server, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, append([]client.Option{client.WithRootCAs(s.CAPool)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seed creates user with token, primary key "pk" and data key "dk".
func seed(t *testing.T, c *client.Client, user, token string) {
	t.Helper()
	ctx := t.Context()
	if err := c.CreateUser(ctx, user, token); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePrimaryKey(ctx, user, token, "pk"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDataKey(ctx, user, token, "pk", "dk"); err != nil {
		t.Fatal(err)
	}
}

func TestBigDLFlow(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	c := newClient(t, s)
	seed(t, c, "alice", "alice-token")
	key, err := c.DataKey(t.Context(), "alice", "alice-token", "pk", "dk")
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != api.DataKeyLen {
		t.Fatalf("DataKey: %d bytes, want %d", len(key), api.DataKeyLen)
	}
	str, err := c.DataKeyString(t.Context(), "alice", "alice-token", "pk", "dk")
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(key); str != want {
		t.Fatalf("DataKeyString = %q, DataKey encodes to %q", str, want)
	}
	if bytes.Equal(key, make([]byte, len(key))) {
		t.Fatal("data key is all zeros")
	}
}

// TestTokenEncoding uses a token full of characters that a naive query
// string would mangle ('+' as space, '&' and '=' splitting, '%').
func TestTokenEncoding(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	c := newClient(t, s)
	tokens := []string{
		"a b+c&d=e%f/g?h#i",
		"%2B%20+ ",
		"ünïcödé token ✓",
		"&&token=other&&user=mallory",
	}
	for i, token := range tokens {
		user := "user" + string(rune('a'+i))
		seed(t, c, user, token)
		if _, err := c.DataKey(t.Context(), user, token, "pk", "dk"); err != nil {
			t.Errorf("token %q: %v", token, err)
		}
		// The same token with '+' for space must not authenticate.
		if alt := strings.ReplaceAll(token, " ", "+"); alt != token {
			_, err := c.DataKey(t.Context(), user, alt, "pk", "dk")
			if !errors.Is(err, client.ErrUnauthorized) {
				t.Errorf("token %q sent as %q: err = %v, want ErrUnauthorized", token, alt, err)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	c := newClient(t, s)
	seed(t, c, "alice", "tok")
	ctx := t.Context()
	tests := []struct {
		name   string
		call   func() error
		want   error
		status int // 0: the client refused before sending
		code   string
	}{
		{"409/user exists", func() error { return c.CreateUser(ctx, "alice", "x") }, client.ErrExists, 409, api.CodeExists},
		{"409/primary key exists", func() error { return c.CreatePrimaryKey(ctx, "alice", "tok", "pk") }, client.ErrExists, 409, api.CodeExists},
		{"409/data key exists", func() error { return c.CreateDataKey(ctx, "alice", "tok", "pk", "dk") }, client.ErrExists, 409, api.CodeExists},
		{"404/unknown primary key", func() error { return c.CreateDataKey(ctx, "alice", "tok", "nope", "dk2") }, client.ErrNotFound, 404, api.CodeNotFound},
		{"404/unknown data key", func() error { _, err := c.DataKey(ctx, "alice", "tok", "pk", "nope"); return err }, client.ErrNotFound, 404, api.CodeNotFound},
		{"401/wrong token", func() error { _, err := c.DataKey(ctx, "alice", "bad", "pk", "dk"); return err }, client.ErrUnauthorized, 401, api.CodeUnauthorized},
		{"401/unknown user", func() error { return c.CreatePrimaryKey(ctx, "nobody", "tok", "pk") }, client.ErrUnauthorized, 401, api.CodeUnauthorized},
		{"400/bad user name", func() error { return c.CreateUser(ctx, "bad name!", "tok") }, client.ErrInvalid, 400, api.CodeInvalid},
		{"400/slash in key name", func() error { return c.CreatePrimaryKey(ctx, "alice", "tok", "a/b") }, client.ErrInvalid, 400, api.CodeInvalid},
		{"local/empty user", func() error { return c.CreateUser(ctx, "", "tok") }, client.ErrInvalid, 0, ""},
		{"local/empty token", func() error { _, err := c.DataKey(ctx, "alice", "", "pk", "dk"); return err }, client.ErrInvalid, 0, ""},
		{"local/empty primary", func() error { return c.CreateDataKey(ctx, "alice", "tok", "", "dk") }, client.ErrInvalid, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var e *client.Error
			if !errors.As(err, &e) {
				if tt.status != 0 {
					t.Fatalf("err = %#v, want a *client.Error", err)
				}
				return
			}
			if e.Status != tt.status || e.Code != tt.code {
				t.Errorf("Status, Code = %d, %q, want %d, %q", e.Status, e.Code, tt.status, tt.code)
			}
			if strings.Contains(e.Message, "please") {
				t.Errorf("Message %q keeps BigDL's usage line", e.Message)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	c := newClient(t, s)
	seed(t, c, "alice", "tok")
	var err error
	for i := 0; i < 20 && !errors.Is(err, client.ErrThrottled); i++ {
		_, err = c.DataKey(t.Context(), "alice", "wrong", "pk", "dk")
	}
	if !errors.Is(err, client.ErrThrottled) {
		t.Fatalf("after 20 wrong tokens: %v, want ErrThrottled", err)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	st, err := newClient(t, s).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Welcome != "welcome to BigDL KMS Frontend" || !st.Ready || st.Latency <= 0 {
		t.Fatalf("Status = %+v", st)
	}
}

func TestTLSVerification(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	c, err := client.New(s.URL) // system roots: the self-signed cert fails
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(t.Context())
	if err == nil || errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Status without the CA: %v, want a certificate error", err)
	}
	c, err = client.New(s.URL, client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("Status with WithInsecureSkipVerify: %v", err)
	}
	c, err = client.New(s.URL, client.WithCAFile(s.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("Status with WithCAFile: %v", err)
	}
}

// TestTokenNeverInErrors: net/http puts the URL, query and all, into its
// errors; the client must not pass that on.
func TestTokenNeverInErrors(t *testing.T) {
	t.Parallel()
	s := kmstest.Start(t)
	url := s.URL
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(url, client.WithRootCAs(s.CAPool), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	const token = "s3cret-token-value"
	_, err = c.DataKey(t.Context(), "alice", token, "pk", "dk")
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("server down: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestRetryOnlyGETs(t *testing.T) {
	t.Parallel()
	var gets, posts atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		} else {
			posts.Add(1)
		}
		w.Header().Set(api.HeaderError, api.CodeUnavailable)
		http.Error(w, "service temporarily unavailable, retry later", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	c, err := client.New(ts.URL, client.WithHTTPClient(ts.Client()), client.WithRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DataKey(t.Context(), "u", "t", "p", "d"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("DataKey: %v, want ErrUnavailable", err)
	}
	if err := c.CreateUser(t.Context(), "u", "t"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("CreateUser: %v, want ErrUnavailable", err)
	}
	if gets.Load() != 3 || posts.Load() != 1 {
		t.Fatalf("GETs, POSTs = %d, %d; want 3, 1", gets.Load(), posts.Load())
	}
}

func TestRetryHonoursContext(t *testing.T) {
	t.Parallel()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	c, err := client.New(ts.URL, client.WithHTTPClient(ts.Client()), client.WithRetries(1000))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.DataKey(ctx, "u", "t", "p", "d"); err == nil {
		t.Fatal("DataKey with a cancelled context succeeded")
	}
}

func TestMalformedDataKey(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"",
		"AAECAwQFBgcICQoLDA0ODw==\n", // trailing newline
		"AAECAwQFBgcICQoLDA0ODw",     // unpadded
		"AAECAwQFBgcICQoLDA0ODx==",   // non-canonical padding bits
		"AAECAwQFBgcICQoLDA0ODwAAECAwQFBgcICQoLDA0ODw=", // 32 bytes
		`"AAECAwQFBgcICQoLDA0ODw=="`,                    // JSON
	} {
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(body))
		}))
		c, err := client.New(ts.URL, client.WithHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.DataKey(t.Context(), "u", "t", "p", "d")
		ts.Close()
		if !errors.Is(err, client.ErrMalformedResponse) {
			t.Errorf("body %q: err = %v, want ErrMalformedResponse", body, err)
			continue
		}
		if body != "" && strings.Contains(err.Error(), strings.Trim(body, "\"\n")) {
			t.Errorf("error repeats the key material: %v", err)
		}
	}
}

// TestRequestShape pins what goes on the wire: path, percent-encoding with
// %20 for space, no '+'.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	var got string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.RequestURI()
	}))
	defer ts.Close()
	c, err := client.New(ts.URL+"/prefix/", client.WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDataKey(t.Context(), "bob", "a b+c&d", "pk 1", "dk"); err != nil {
		t.Fatal(err)
	}
	want := "POST /prefix/dataKey/dk?token=a%20b%2Bc%26d&user=bob&primaryKeyName=pk%201"
	if got != want {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}
}

// TestFallbackToStatus: an error without the X-Kms-Error header, e.g. from
// a proxy, is classified by its status.
func TestFallbackToStatus(t *testing.T) {
	t.Parallel()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nothing here\n please get the data key like: GET /dataKey/...", http.StatusNotFound)
	}))
	defer ts.Close()
	c, err := client.New(ts.URL, client.WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DataKey(t.Context(), "u", "t", "p", "d")
	var e *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &e) || e.Message != "nothing here" {
		t.Fatalf("err = %v (%#v)", err, e)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url  string
		opts []client.Option
		ok   bool
	}{
		{"https://kms.example:9876", nil, true},
		{"https://kms.example:9876/prefix", nil, true},
		{"kms.example:9876", nil, false},
		{"ftp://kms.example", nil, false},
		{"https://kms.example?token=x", nil, false},
		{"https://u:p@kms.example", nil, false},
		{"https://kms.example", []client.Option{client.WithCAFile("/nonexistent")}, false},
		{"https://kms.example", []client.Option{client.WithHTTPClient(http.DefaultClient), client.WithInsecureSkipVerify()}, false},
		{"https://kms.example", []client.Option{client.WithRetries(-1)}, false},
	} {
		_, err := client.New(tt.url, tt.opts...)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) err = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

// TestNoRedirects: the query carries the token, so the client's own
// *http.Client never follows a redirect.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store(true) }))
	defer target.Close()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	pool.AddCert(target.Certificate())
	c, err := client.New(ts.URL, client.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DataKey(t.Context(), "u", "secret", "p", "d")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusFound || followed.Load() {
		t.Fatalf("err = %v, followed = %v", err, followed.Load())
	}
}
