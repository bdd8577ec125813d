// Package attestapi serves kmsd's attestation API: BigDL's remote
// attestation service (enroll, registerPolicy, verifyQuote) and
// attestation-gated key release (challenge, release, per-key release
// policies). Quotes are verified by package attest; state lives in the
// store's documents.
//
// # Key release
//
// A workload asks for a challenge (a single-use 32-byte nonce with a short
// time to live), makes an ephemeral X25519 or P-256 key pair and a quote
// whose report data is [api.AttestReportData] of the nonce, its public key
// and the KMS audience, and sends them to release. The server burns the
// nonce (exactly one replica wins its compare-and-swap delete), verifies
// the quote, its collateral and the binding, evaluates the key's release
// policy, and returns the data key HPKE-sealed (RFC 9180 base mode,
// HKDF-SHA256, AES-256-GCM) to the ephemeral key, with info
// [api.AttestReleaseInfo]. The plaintext key is never in a response or a
// log. A primary key with a release policy gives its data keys to no other
// route (kms.Service.DataKey refuses them).
//
// # Mock TEE
//
// With Config.AllowMockTEE the INSECURE mock TEE of package attest is
// accepted, only by policies naming it; every response, audit record and
// metric of such a request is marked insecure.
//
// See docs/attestation.md.
package attestapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/audit"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/telemetry"
)

// DocStore is the part of the store the attestation API keeps its state
// in: challenge nonces, enrolled BigDL apps and their policies. kms.Store
// implements it.
type DocStore interface {
	Doc(ctx context.Context, kind, id string) (kms.Doc, error)
	PutDoc(ctx context.Context, d kms.Doc) (kms.Doc, error)
	DeleteDoc(ctx context.Context, kind, id string, revision int64) error
	ListDocs(ctx context.Context, kind, prefix string) ([]kms.Doc, error)
}

var _ DocStore = kms.Store(nil)

// Defaults of [Config].
const (
	DefaultNonceTTL          = time.Minute
	DefaultMaxApps           = 10000
	DefaultMaxPoliciesPerApp = 1000
)

// Config configures a [Handler]. Service, Docs, Auth and Audience are
// required.
type Config struct {
	Service *kms.Service
	Docs    DocStore
	// Auth authenticates KMS users (challenge, release, release policies).
	Auth *auth.Authenticator
	// Admins authenticates admins, who may replace or remove release
	// policies; nil means none.
	Admins *auth.Authenticator
	// Collateral provides TCB info, QE identity and CRLs for real quotes;
	// nil refuses every real quote with 503 (only mock quotes can verify).
	Collateral attest.CollateralSource
	// Audience is the KMS identity bound into report data (its URL or a
	// name); quotes made for another audience are refused.
	Audience string
	// AllowMockTEE accepts the INSECURE mock TEE. Never in production.
	AllowMockTEE bool
	// TrustedRootSHA256 and CollateralGrace are passed to attest.Verify
	// (nil: the Intel SGX Root CA only; 0: no grace).
	TrustedRootSHA256 [][32]byte
	CollateralGrace   time.Duration
	// Now is the clock of nonce expiry and the verification time of quotes
	// and collateral; time.Now if nil. Tests pin it to a vector's time.
	Now func() time.Time
	// NonceTTL is how long a challenge nonce can be used (default 1m).
	NonceTTL time.Duration
	// MaxApps and MaxPoliciesPerApp bound what unauthenticated BigDL
	// enrollment can store (defaults 10000 and 1000).
	MaxApps, MaxPoliciesPerApp int

	Metrics   *telemetry.Metrics
	Logger    *slog.Logger
	Audit     *audit.Logger
	AccessLog bool
	// HashToken hashes new BigDL API keys (auth.HashToken by default).
	HashToken func(string) string
}

// Handler serves the attestation API. Create it with [New]; mount
// [Handler.Mounts] on kmsd's main handler and, optionally, serve
// [Handler.BigDL] on a listener of its own. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	native  *http.ServeMux // /v1/attest/*, /v1/keys/{name}/release-policy
	bigdl   *http.ServeMux // BigDL AS routes at the root
	apps    *auth.Authenticator
	ops     *prometheus.CounterVec // api, result, tee, insecure
	sweepAt atomic.Int64           // unix nanoseconds of the last nonce sweep
}

// route is one entry of the route table.
type route struct {
	method, pattern string
	maxBody         int64
	timeout         time.Duration
	bigdl           bool // BigDL AS route: lenient JSON, {"result":-1,...} errors
	handle          func(w http.ResponseWriter, r *http.Request) error
}

// routes is the route table: method, pattern, body limit, timeout.
// Quotes with a PEM PCK chain are 5 to 10 KiB, base64 a third more.
func (h *Handler) routes() []*route {
	return []*route{
		{method: "GET", pattern: "/{$}", maxBody: 4096, timeout: 5 * time.Second, bigdl: true, handle: h.welcome},
		{method: "GET", pattern: "/enroll", maxBody: 4096, timeout: 10 * time.Second, bigdl: true, handle: h.enroll},
		{method: "POST", pattern: "/registerPolicy", maxBody: 64 << 10, timeout: 10 * time.Second, bigdl: true, handle: h.registerPolicy},
		{method: "POST", pattern: "/verifyQuote", maxBody: 256 << 10, timeout: 30 * time.Second, bigdl: true, handle: h.verifyQuote},
		{method: "POST", pattern: api.PathAttestChallenge, maxBody: 4096, timeout: 10 * time.Second, handle: h.challenge},
		{method: "POST", pattern: api.PathAttestRelease, maxBody: 256 << 10, timeout: 30 * time.Second, handle: h.release},
		{method: "PUT", pattern: releasePolicyPattern, maxBody: 64 << 10, timeout: 10 * time.Second, handle: h.putReleasePolicy},
		{method: "GET", pattern: releasePolicyPattern, maxBody: 4096, timeout: 10 * time.Second, handle: h.getReleasePolicy},
		{method: "DELETE", pattern: releasePolicyPattern, maxBody: 4096, timeout: 10 * time.Second, handle: h.deleteReleasePolicy},
	}
}

const releasePolicyPattern = api.PathV1Keys + "/{name}" + api.PathReleasePolicySuffix

// New returns the attestation handler. It returns an error if a required
// field of cfg is missing.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Service == nil || cfg.Docs == nil || cfg.Auth == nil:
		return nil, errors.New("attestapi: Service, Docs and Auth are required")
	case cfg.Audience == "":
		return nil, errors.New("attestapi: an audience (the KMS identity bound into quotes) is required")
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = DefaultNonceTTL
	}
	if cfg.MaxApps <= 0 {
		cfg.MaxApps = DefaultMaxApps
	}
	if cfg.MaxPoliciesPerApp <= 0 {
		cfg.MaxPoliciesPerApp = DefaultMaxPoliciesPerApp
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.New()
	}
	if cfg.HashToken == nil {
		cfg.HashToken = auth.HashToken
	}
	h := &Handler{cfg: cfg, native: http.NewServeMux(), bigdl: http.NewServeMux()}
	h.apps = auth.New(h.lookupApp, auth.Options{
		OnFailure: func(reason string) { cfg.Metrics.AuthFailures.WithLabelValues("attest_app_" + reason).Inc() },
	})
	h.ops = registerCounter(cfg.Metrics.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kms_attest_operations_total",
		Help: "Attestation verifications (api: release or bigdl) by result code, TEE and whether the mock TEE made them insecure.",
	}, []string{"api", "result", "tee", "insecure"}))
	for _, rt := range h.routes() {
		mux, label := h.native, rt.pattern
		if rt.bigdl {
			mux, label = h.bigdl, api.PathAttestBigDL+rt.pattern
		}
		mux.Handle(rt.method+" "+rt.pattern, h.wrap(rt, label))
	}
	notFound := func(w http.ResponseWriter, r *http.Request) error {
		return fail(http.StatusNotFound, api.CodeNotFound, "no such attestation route: %s %s", r.Method, r.URL.Path)
	}
	h.native.Handle("/", h.wrap(&route{pattern: "unmatched", maxBody: 4096, timeout: time.Second, handle: notFound}, "unmatched"))
	h.bigdl.Handle("/", h.wrap(&route{pattern: "unmatched", maxBody: 4096, timeout: time.Second, bigdl: true, handle: notFound}, "unmatched"))
	return h, nil
}

// registerCounter registers c, or returns the identical counter already
// registered (several handlers on one registry, as in tests).
func registerCounter(reg *prometheus.Registry, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return c
}

// Mounts returns the handlers to serve on kmsd's main listener, by
// ServeMux pattern: the BigDL AS routes under /attestation/, and the
// native routes.
func (h *Handler) Mounts() map[string]http.Handler {
	return map[string]http.Handler{
		api.PathAttestBigDL + "/": http.StripPrefix(api.PathAttestBigDL, h.bigdl),
		"/v1/attest/":             h.native,
		api.PathV1Keys + "/{name}" + api.PathReleasePolicySuffix: h.native,
	}
}

// BigDL returns the BigDL remote attestation service routes at the root
// (/enroll, /registerPolicy, /verifyQuote), as BigDL serves them on port
// 9875, for a listener of their own. Like kmsd's main handler it serves
// "//x" as "/x".
func (h *Handler) BigDL() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := cleanPath(r.URL.Path); p != r.URL.Path {
			r.URL.Path, r.URL.RawPath = p, ""
		}
		h.bigdl.ServeHTTP(w, r)
	})
}

func cleanPath(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// wrap applies a route's body limit and deadline, and maps its error,
// counts it and logs it.
func (h *Handler) wrap(rt *route, label string) http.Handler {
	latency := h.cfg.Metrics.Latency.WithLabelValues(label)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Request-Id", newRequestID())
		ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
		status := http.StatusOK
		if err := rt.handle(w, r); err != nil {
			status = h.writeError(w, r, rt, err)
		}
		elapsed := time.Since(start)
		h.cfg.Metrics.Requests.WithLabelValues(label, r.Method, strconv.Itoa(status)).Inc()
		latency.Observe(elapsed.Seconds())
		if h.cfg.AccessLog {
			h.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", status), slog.Duration("duration", elapsed),
				slog.String("remote", r.RemoteAddr))
		}
	})
}

// writeError maps err through httpapi's one status table. BigDL AS routes
// answer {"result":-1,"code":…,"message":…}: BigDL's clients ignore the
// status and read "result" from whatever JSON comes back.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, rt *route, err error) int {
	status, code, msg, internal := httpapi.Classify(err)
	if internal {
		h.cfg.Logger.ErrorContext(r.Context(), "request failed", "route", rt.pattern, "status", status,
			"request_id", w.Header().Get("X-Request-Id"), "err", err)
	}
	w.Header().Set(api.HeaderError, code)
	if status == http.StatusUnauthorized && !rt.bigdl {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kms"`)
	}
	if rt.bigdl {
		writeJSON(w, status, api.BigDLVerifyQuoteResponse{Result: -1, Code: code, Message: msg})
	} else {
		writeJSON(w, status, api.Error{Code: code, Message: msg})
	}
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// fail returns an error with an explicit status and code; cause, if any,
// is logged for 5xx and never sent.
func fail(status int, code, format string, a ...any) *httpapi.Error {
	return &httpapi.Error{Status: status, Code: code, Msg: fmt.Sprintf(format, a...)}
}

// decodeStrict decodes a native JSON body: unknown fields and trailing
// data are errors; an empty body leaves v as it is.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return decodeWith(dec, v)
}

// decodeLenient decodes a BigDL body: BigDL's server (Jackson) ignored
// unknown fields and its Python client sends fields of other policy types.
func decodeLenient(r *http.Request, v any) error {
	return decodeWith(json.NewDecoder(r.Body), v)
}

func decodeWith(dec *json.Decoder, v any) error {
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return kms.Errorf(kms.ErrInvalid, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return kms.Errorf(kms.ErrInvalid, "malformed JSON body: data after the object")
	}
	return nil
}
