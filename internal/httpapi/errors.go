package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/kms"
)

// Error is an error with an explicit status, code and client message. Its
// Err, if any, is logged and never sent.
type Error struct {
	Status int
	Code   string
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// statusTable is the one place that maps domain errors to HTTP. Order
// matters only where an error could wrap two sentinels.
var statusTable = []struct {
	err    error
	status int
	code   string
}{
	{kms.ErrInvalid, http.StatusBadRequest, api.CodeInvalid},
	{kms.ErrPermission, http.StatusUnauthorized, api.CodeUnauthorized},
	{kms.ErrForbidden, http.StatusForbidden, api.CodeForbidden},
	{kms.ErrDisabled, http.StatusForbidden, api.CodeDisabled},
	{kms.ErrSealed, http.StatusServiceUnavailable, api.CodeSealed},
	{kms.ErrConflict, http.StatusConflict, api.CodeConflict},
	{kms.ErrThrottled, http.StatusTooManyRequests, api.CodeThrottled},
	{kms.ErrNotFound, http.StatusNotFound, api.CodeNotFound},
	{kms.ErrExists, http.StatusConflict, api.CodeExists},
	{kms.ErrUnavailable, http.StatusServiceUnavailable, api.CodeUnavailable},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, api.CodeUnavailable},
}

// classify turns any error into what the client is told. Messages of
// domain errors are safe to show (they carry names, never secrets); any
// other error becomes a generic internal error, to be logged in full.
func classify(err error) (status int, code, msg string, internal bool) {
	var he *Error
	if errors.As(err, &he) {
		return he.Status, he.Code, he.Msg, he.Status >= 500
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge, "request body too large", false
	}
	var ke *kms.Error
	if errors.As(err, &ke) && ke.Kind == kms.ErrDecrypt {
		// A caller's ciphertext that does not open: the client's problem.
		return http.StatusBadRequest, api.CodeDecrypt, ke.Msg, false
	}
	if errors.Is(err, kms.ErrDecrypt) {
		// Stored material that does not open is a server-side fault.
		return http.StatusInternalServerError, api.CodeInternal, "internal error", true
	}
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			msg := err.Error()
			if e.status == http.StatusServiceUnavailable && e.err != kms.ErrSealed {
				msg = "service temporarily unavailable, retry later"
			}
			if e.status == http.StatusTooManyRequests {
				msg = "too many failed authentication attempts, retry later"
			}
			return e.status, e.code, msg, e.status >= 500
		}
	}
	return http.StatusInternalServerError, api.CodeInternal, "internal error", true
}

// Classify is classify for handlers mounted beside the route table (see
// Config.Mount), so that their errors map through this one table too.
func Classify(err error) (status int, code, msg string, internal bool) { return classify(err) }

// writeError answers a BigDL route in BigDL's style: the message, a newline
// and the usage line, as plain text; the code goes into a header.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, rt *route, err error) int {
	status, code, msg, internal := classify(err)
	if internal {
		log.ErrorContext(r.Context(), "request failed", "route", rt.pattern, "status", status,
			"request_id", requestID(r), "err", err)
	}
	if rt.native {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kms"`)
		}
		writeJSON(w, status, api.Error{Code: code, Message: msg})
		return status
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(api.HeaderError, code)
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", "60")
	}
	w.WriteHeader(status)
	body := msg
	if rt.usage != "" {
		body += "\n please " + rt.verb + " like: " + rt.usage
	}
	w.Write([]byte(body))
	return status
}

// hdrRequestID carries the request id inside the server: it is written
// into the request's own header map (overwriting anything a client sent
// under that name), which costs no copy of the request, unlike
// r.WithContext on the hot path.
const hdrRequestID = "X-Kms-Internal-Request-Id"

// Request ids are a random per-process prefix and a counter: unique
// across replicas in practice, and cheap on the hot path (no crypto/rand
// per request).
var (
	requestIDPrefix = func() string {
		var b [6]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "-"
	}()
	requestCounter atomic.Uint64
)

// withRequestID gives the request an id, echoed in X-Request-Id and
// recorded in the audit log and error logs.
func withRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := requestIDPrefix + strconv.FormatUint(requestCounter.Add(1), 16)
	v := []string{id}
	w.Header()["X-Request-Id"] = v
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header[hdrRequestID] = v
	return r
}

func requestID(r *http.Request) string {
	if v := r.Header[hdrRequestID]; len(v) == 1 {
		return v[0]
	}
	return ""
}
