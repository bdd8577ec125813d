package attestapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/audit"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/kms"
)

// Authentication, audit, metrics and logging shared by the handlers.

// identity is who a native request authenticated as.
type identity struct {
	user  string // a user's name, or "" for an admin
	admin string // an admin's name, or ""
}

func (id identity) String() string {
	if id.admin != "" {
		return "admin/" + id.admin
	}
	return id.user
}

// bearer authenticates "Authorization: Bearer <user>:<token>" or
// "admin/<name>:<token>", as the native API does.
func (h *Handler) bearer(r *http.Request) (identity, error) {
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return identity{}, kms.Errorf(kms.ErrPermission, "missing bearer credentials: send Authorization: Bearer <user>:<token>")
	}
	principal, token, ok := strings.Cut(cred, ":")
	if !ok || token == "" {
		return identity{}, kms.Errorf(kms.ErrPermission, "malformed bearer credentials: want <user>:<token>")
	}
	addr := clientAddr(r)
	if name, ok := strings.CutPrefix(principal, "admin/"); ok {
		if h.cfg.Admins == nil {
			return identity{}, kms.Errorf(kms.ErrPermission, "no admin identities are configured")
		}
		if err := h.cfg.Admins.Authenticate(r.Context(), name, token, addr); err != nil {
			return identity{}, err
		}
		return identity{admin: name}, nil
	}
	if err := kms.ValidateName("user", principal); err != nil {
		return identity{}, err
	}
	if err := h.cfg.Auth.Authenticate(r.Context(), principal, token, addr); err != nil {
		return identity{}, err
	}
	return identity{user: principal}, nil
}

// owner is whose keys a request acts on: a user's own, or for an admin the
// ?owner= named.
func owner(id identity, r *http.Request) (string, error) {
	o := r.URL.Query().Get("owner")
	if id.admin == "" {
		if o != "" && o != id.user {
			return "", kms.Errorf(kms.ErrForbidden, "users can act only on their own keys")
		}
		return id.user, nil
	}
	if o == "" {
		return "", kms.Errorf(kms.ErrInvalid, "admins name the keys' owner with ?owner=")
	}
	return o, kms.ValidateName("owner", o)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auditRecord writes one audit record; in fail-closed mode an unwritable
// record turns a success into an error (the caller must then not answer
// with the result).
func (h *Handler) auditRecord(r *http.Request, w http.ResponseWriter, who, op, key string, version int, insecure bool, err error) error {
	if h.cfg.Audit == nil {
		return err
	}
	rec := audit.Record{RequestID: w.Header().Get("X-Request-Id"), Identity: who, Remote: clientAddr(r),
		Operation: op, Key: key, KeyVersion: version, Result: "ok", Insecure: insecure}
	if err != nil {
		_, rec.Result, _, _ = httpapi.Classify(err)
	}
	if aerr := h.cfg.Audit.Log(r.Context(), rec); aerr != nil && err == nil {
		h.cfg.Logger.Error("audit log refused a record: refusing the operation", "op", op, "err", aerr)
		return aerr
	}
	return err
}

// count records the outcome of a verification in the metrics.
func (h *Handler) count(apiName string, res *attest.Result, err error) {
	result, tee, insecure := "ok", "unknown", "false"
	if err != nil {
		_, result, _, _ = httpapi.Classify(err)
	}
	if res != nil {
		tee = string(res.TEE)
		if res.Insecure {
			insecure = "true"
		}
	}
	h.ops.WithLabelValues(apiName, result, tee, insecure).Inc()
}

// Request ids: a random per-process prefix and a counter, as httpapi's.
var (
	requestIDPrefix = func() string {
		var b [6]byte
		rand.Read(b[:])
		return "a" + hex.EncodeToString(b[:]) + "-"
	}()
	requestCounter atomic.Uint64
)

func newRequestID() string {
	return requestIDPrefix + strconv.FormatUint(requestCounter.Add(1), 16)
}

// logRefusal logs a refused verification or release: the code and the
// verifier's reason and detail (measurements, statuses; never key
// material). Server faults are logged by writeError instead.
func (h *Handler) logRefusal(r *http.Request, msg, subject string, res *attest.Result, err error) {
	status, code, _, internal := httpapi.Classify(err)
	if internal {
		return
	}
	attrs := []slog.Attr{slog.String("subject", subject), slog.Int("status", status), slog.String("code", code),
		slog.String("reason", string(attest.ReasonOf(err))), slog.String("err", err.Error())}
	if res != nil {
		attrs = append(attrs, slog.Any("quote", res), slog.Bool("insecure", res.Insecure))
	}
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, msg, attrs...)
}
