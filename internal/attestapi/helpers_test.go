package attestapi

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/kmstest"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kmstest.Cleanup()
	os.Exit(code)
}

// Measurements of the mock workloads of the tests.
var (
	mrGood  = [32]byte{0x11, 0x22, 0x33}
	mrOther = [32]byte{0x99}
)

const (
	testAudience = "https://kms.test:9876"
	userToken    = "alice-token-0123456789"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is kmsd's handler (route table + mounted attestation API) on a real
// SQLite store, served over TLS by httptest.
type env struct {
	srv   *httptest.Server
	h     *Handler
	svc   *kms.Service
	store *sqlite.DB
	logs  *bytes.Buffer
}

// newEnv builds the environment; mutate adjusts the attestation config.
func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/kms.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{7}, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	svc := kms.NewService(st, kms.Static{K: kr}, kms.ServiceOptions{})
	authn := auth.New(st.User, auth.Options{})
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	cfg := Config{Service: svc, Docs: st, Auth: authn, Audience: testAudience, AllowMockTEE: true, Logger: logger}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := httpapi.New(httpapi.Config{Service: svc, Auth: authn, Logger: logger, Mount: h.Mounts()})
	srv := httptest.NewUnstartedServer(root)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &env{srv: srv, h: h, svc: svc, store: st, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// seedUser creates user with userToken, primary key pk and data key dk.
func (e *env) seedUser(t *testing.T, user string, pks ...string) {
	t.Helper()
	ctx := t.Context()
	if err := e.svc.CreateUser(ctx, user, auth.HashToken(userToken)); err != nil {
		t.Fatal(err)
	}
	for _, pk := range pks {
		if err := e.svc.CreatePrimaryKey(ctx, user, pk); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.CreateDataKey(ctx, user, pk, "dk"); err != nil {
			t.Fatal(err)
		}
	}
}

// sdk is the public client, as alice, over the env's TLS server.
func (e *env) sdk(t *testing.T, user string) *client.Client {
	t.Helper()
	c, err := client.New(e.srv.URL, client.WithHTTPClient(e.srv.Client()), client.WithToken(user, userToken))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caller sends raw JSON requests with a bearer credential.
type caller struct {
	base   string
	hc     *http.Client
	bearer string
}

func (c *caller) post(t *testing.T, path string, in any) (int, []byte) {
	t.Helper()
	return c.send(t, "POST", path, in)
}

func (c *caller) send(t *testing.T, method, path string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.bearer != "" {
		req.Header.Set("Authorization", c.bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// challenge asks for a nonce.
func (c *caller) challenge(t *testing.T) []byte {
	t.Helper()
	status, b := c.post(t, api.PathAttestChallenge, struct{}{})
	var ch api.AttestChallengeResponse
	if status != 200 || json.Unmarshal(b, &ch) != nil || len(ch.Nonce) != 32 {
		t.Fatalf("challenge: %d %s", status, b)
	}
	return ch.Nonce
}

// ephemeral returns a fresh X25519 key and its SPKI DER.
func ephemeral(t *testing.T) (*ecdh.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return k, spki
}

// mockQuote is a mock SGX quote with MRENCLAVE mr and report data rd.
func mockQuote(mr [32]byte, rd [64]byte) []byte {
	return attest.NewMockSGXQuote(&attest.EnclaveReport{MREnclave: mr, ReportData: rd})
}

// releaseReq builds a release request with a mock quote binding nonce,
// spki and audience.
func releaseReq(nonce, spki []byte, audience, pk string, mr [32]byte) api.AttestReleaseRequest {
	return api.AttestReleaseRequest{Nonce: nonce, PublicKey: spki, Audience: audience,
		Quote: mockQuote(mr, api.AttestReportData(nonce, spki, audience)),
		Key:   api.AttestKeyRef{PrimaryKey: pk, DataKey: "dk"}}
}

// wantCode checks an error response's status and code.
func wantCode(t *testing.T, status int, body []byte, wantStatus int, wantCode string) api.Error {
	t.Helper()
	var e api.Error
	json.Unmarshal(body, &e)
	if status != wantStatus || e.Code != wantCode {
		t.Fatalf("got %d %s, want %d %s", status, body, wantStatus, wantCode)
	}
	return e
}

// mockPolicy is a release policy accepting the mock enclave mr.
func mockPolicy(mr [32]byte) []byte {
	return []byte(`{"tee":"mock","sgx":{"mrenclave":["` + hex.EncodeToString(mr[:]) + `"]}}`)
}

// sgxPolicy is a release policy for a real SGX enclave mr.
func sgxPolicy(mr [32]byte) []byte {
	return []byte(`{"tee":"sgx","sgx":{"mrenclave":["` + hex.EncodeToString(mr[:]) + `"]},"accepted_tcb_status":["UpToDate","SWHardeningNeeded"]}`)
}

func contains(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
