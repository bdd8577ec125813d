// Package httpapi serves kmsd's HTTP APIs: the BigDL KMS API, byte for byte
// as BigDL PPML's clients expect it, plus health, readiness and metrics.
//
// Every route is declared once in the route table (method, pattern, body
// limit, timeout, whether it authenticates) and every handler returns an
// error that one function maps to a status (see errors.go).
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/audit"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/seal"
	"github.com/ppmlkms/kms/internal/telemetry"
)

// Config wires a Handler.
type Config struct {
	Service   *kms.Service
	Auth      *auth.Authenticator
	Metrics   *telemetry.Metrics
	Logger    *slog.Logger
	AccessLog bool // log one line per request (path only, never the query)
	// Admins authenticates admin identities ("admin/<name>:<token>"); nil
	// means no admin routes work.
	Admins *auth.Authenticator
	// Seal manages the root key (Shamir unsealing, root rotation); nil for
	// a fixed keyring (tests).
	Seal *seal.Manager
	// Audit receives a record of every key access and admin action on the
	// native API and the BigDL key routes; nil disables auditing.
	Audit *audit.Logger
	// HashToken hashes a new user's token; auth.HashToken by default.
	HashToken func(string) string
	// ClientIdentities maps the common name of a verified client
	// certificate (mutual TLS) to a principal: a user name or
	// "admin/<name>". A request with a mapped certificate and no
	// Authorization header authenticates as that principal.
	ClientIdentities map[string]string
	// Mount adds handlers served beside the route table, by ServeMux
	// pattern (e.g. "/v1/attest/"): the attestation API. They get the
	// root handler's path cleaning and apply their own limits, errors,
	// metrics and audit.
	Mount map[string]http.Handler
}

// route is one entry of the route table.
type route struct {
	method  string
	pattern string // http.ServeMux pattern without the method
	maxBody int64
	timeout time.Duration
	auth    bool   // needs user and token
	native  bool   // JSON API: JSON errors, bearer authentication in the handler
	verb    string // BigDL usage: "please <verb> like: <usage>"
	usage   string
	handle  func(w http.ResponseWriter, r *http.Request, q map[string]string) error

	latency prometheus.Observer
	// counters caches the request counter of each status for the route's
	// method, so the hot path does not hash label values.
	counters [600]atomic.Pointer[prometheus.Counter]
}

func (rt *route) count(m *telemetry.Metrics, method string, status int) {
	if method != rt.method || status < 0 || status >= len(rt.counters) {
		m.Requests.WithLabelValues(rt.pattern, method, strconv.Itoa(status)).Inc()
		return
	}
	if c := rt.counters[status].Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.Requests.WithLabelValues(rt.pattern, method, strconv.Itoa(status))
	rt.counters[status].Store(&c)
	c.Inc()
}

// Handler is kmsd's root http.Handler.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// routes is the route table. BigDL routes take no body; the limit makes a
// client that sends one get a clear 413 instead of being read forever.
func (h *Handler) routes() []*route {
	return []*route{
		{method: "GET", pattern: "/{$}", handle: h.welcome},
		{method: "POST", pattern: "/user/{name}", maxBody: 4096, timeout: 10 * time.Second,
			verb: "create a user", usage: api.UsageUser, handle: h.createUser},
		{method: "POST", pattern: "/primaryKey/{name}", maxBody: 4096, timeout: 10 * time.Second, auth: true,
			verb: "get a primary key", usage: api.UsagePrimaryKey, handle: h.createPrimaryKey},
		{method: "POST", pattern: "/dataKey/{name}", maxBody: 4096, timeout: 10 * time.Second, auth: true,
			verb: "get a data key", usage: api.UsageDataKeyCreate, handle: h.createDataKey},
		// The hot path carries no per-request deadline context (it costs a
		// timer per request); store calls are bounded by the store's own
		// query timeout and the response by the server's write timeout.
		{method: "GET", pattern: "/dataKey/{name}", maxBody: 4096, auth: true,
			verb: "get the data key", usage: api.UsageDataKeyGet, handle: h.getDataKey},
		{method: "GET", pattern: api.PathHealthz, timeout: 2 * time.Second, handle: h.healthz},
		v1("POST", "/v1/keys", h.v1CreateKey),
		v1("GET", "/v1/keys", h.v1ListKeys),
		v1("GET", "/v1/keys/{name}", h.v1DescribeKey),
		v1("POST", "/v1/keys/{name}/rotate", h.v1RotateKey),
		v1("POST", "/v1/keys/{name}/config", h.v1ConfigureKey),
		v1("POST", "/v1/keys/{name}/enable", h.v1EnableKey),
		v1("POST", "/v1/keys/{name}/disable", h.v1DisableKey),
		v1("POST", "/v1/keys/{name}/schedule-deletion", h.v1ScheduleDeletion),
		v1("POST", "/v1/keys/{name}/cancel-deletion", h.v1CancelDeletion),
		v1("POST", "/v1/keys/{name}/encrypt", h.v1Encrypt),
		v1("POST", "/v1/keys/{name}/decrypt", h.v1Decrypt),
		v1("POST", "/v1/keys/{name}/reencrypt", h.v1ReEncrypt),
		v1("POST", "/v1/keys/{name}/generate-data-key", h.v1GenerateDataKey(true)),
		v1("POST", "/v1/keys/{name}/generate-data-key-without-plaintext", h.v1GenerateDataKey(false)),
		v1("POST", "/v1/keys/{name}/encrypt-batch", h.v1EncryptBatch),
		v1("POST", "/v1/keys/{name}/decrypt-batch", h.v1DecryptBatch),
		{method: "GET", pattern: "/v1/sys/seal-status", timeout: 2 * time.Second, native: true, handle: h.v1SealStatus},
		v1("POST", "/v1/sys/init", h.v1Init),
		v1("POST", "/v1/sys/unseal", h.v1Unseal),
		{method: "POST", pattern: "/v1/sys/rotate-root", maxBody: 1 << 20, timeout: 10 * time.Minute, native: true, handle: h.v1RotateRoot},
		{method: "GET", pattern: "/rootKey/rotate", maxBody: 4096, timeout: 10 * time.Minute,
			verb: "rotate the root key", usage: "GET /rootKey/rotate with Authorization: Bearer admin/<name>:<token>", handle: h.bigdlRotate},
		{method: "PUT", pattern: "/rootKey/recover", maxBody: 4096, timeout: 10 * time.Second, verb: "submit a root key share",
			usage: `PUT /rootKey/recover {"index":N,"content":"<base64>"} with Authorization: Bearer admin/<name>:<token>`, handle: h.bigdlRecover},
		v1("GET", "/v1/users", h.v1ListUsers),
		v1("POST", "/v1/users/{name}/disable", h.v1SetUserDisabled(true)),
		v1("POST", "/v1/users/{name}/enable", h.v1SetUserDisabled(false)),
		v1("POST", "/v1/users/{name}/token", h.v1RotateUserToken),
		{method: "GET", pattern: api.PathReadyz, timeout: 2 * time.Second, handle: h.readyz},
	}
}

// v1 declares a native route: JSON bodies up to 1 MiB (batches), 10 s.
func v1(method, pattern string, handle func(http.ResponseWriter, *http.Request, map[string]string) error) *route {
	return &route{method: method, pattern: pattern, maxBody: 1 << 20, timeout: 10 * time.Second, native: true, handle: handle}
}

// New returns the root handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HashToken == nil {
		cfg.HashToken = auth.HashToken
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.New()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.method+" "+rt.pattern, h.wrap(rt))
		if rt.method == "GET" && rt.pattern == "/{$}" {
			// BigDL answered the welcome text on any method.
			for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
				h.mux.Handle(m+" "+rt.pattern, h.wrap(rt))
			}
		}
	}
	h.mux.Handle("GET "+api.PathMetrics, promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	for pattern, mh := range cfg.Mount {
		h.mux.Handle(pattern, mh)
	}
	h.mux.Handle("/", h.wrap(&route{pattern: "unmatched", handle: h.notFound}))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := cleanPath(r.URL.Path); p != r.URL.Path {
		r.URL.Path, r.URL.RawPath = p, ""
	}
	h.mux.ServeHTTP(w, r)
}

// wrap applies to one route: body limit, deadline, authentication, error
// mapping, metrics and the access log.
func (h *Handler) wrap(rt *route) http.Handler {
	m := h.cfg.Metrics
	rt.latency = m.Latency.WithLabelValues(rt.pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = withRequestID(w, r)
		if rt.timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
		status := http.StatusOK
		if err := h.serve(w, r, rt); err != nil {
			ert := rt
			if !rt.native && strings.HasPrefix(r.URL.Path, "/v1/") {
				ert = &route{pattern: rt.pattern, native: true}
			}
			status = writeError(w, r, h.cfg.Logger, ert, err)
		}
		elapsed := time.Since(start)
		rt.count(m, r.Method, status)
		rt.latency.Observe(elapsed.Seconds())
		// Probes would add a line every few seconds per pod: not logged.
		if h.cfg.AccessLog && rt.pattern != api.PathHealthz && rt.pattern != api.PathReadyz {
			// The query carries tokens: only the path is logged.
			h.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", status), slog.Duration("duration", elapsed),
				slog.String("remote", r.RemoteAddr))
		}
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt *route) error {
	// BigDL requests carry no body; read what there is so an oversized one
	// is refused, not silently ignored.
	if r.ContentLength != 0 && !rt.native && rt.method != "PUT" {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
	}
	q := parseQuery(r.URL.RawQuery)
	if rt.auth {
		if err := h.authenticate(r, q); err != nil {
			// Failed attempts on the BigDL routes are audited like those on
			// the native API: the claimed user as owner (when it is a valid
			// name), never the token.
			owner := q[api.ParamUser]
			if kms.ValidateName("user", owner) != nil {
				owner = ""
			}
			h.audit(r, identity{}, "authenticate", owner, "", 0, nil, err)
			return err
		}
	}
	return rt.handle(w, r, q)
}

func (h *Handler) authenticate(r *http.Request, q map[string]string) error {
	user, token := q[api.ParamUser], q[api.ParamToken]
	if err := requireParams(q, api.ParamUser, api.ParamToken); err != nil {
		return err
	}
	if err := kms.ValidateName("user", user); err != nil {
		return err
	}
	return h.cfg.Auth.Authenticate(r.Context(), user, token, clientAddr(r))
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
