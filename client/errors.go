package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ppmlkms/kms/api"
)

// Sentinel errors. Every error the server reports is an [*Error] that
// unwraps to one of these (chosen by its code), so callers test the kind of
// failure with errors.Is and never by matching message text.
var (
	// ErrNotFound: the user, primary key or data key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the user or key already exists. kmsd never overwrites a
	// key, unlike BigDL.
	ErrExists = errors.New("already exists")
	// ErrInvalid: a name, token or parameter was refused as malformed. The
	// client also returns it, without asking the server, for empty names.
	ErrInvalid = errors.New("invalid request")
	// ErrUnauthorized: unknown user or admin, wrong token, or (native API)
	// no credential.
	ErrUnauthorized = errors.New("authentication failed")
	// ErrForbidden: the caller is authenticated but may not do this: a user
	// on an admin route, or naming another owner with [Client.ForOwner].
	ErrForbidden = errors.New("permission denied")
	// ErrThrottled: too many failed authentication attempts from this
	// client; retry later (after the Retry-After header's delay).
	ErrThrottled = errors.New("too many failed attempts")
	// ErrUnavailable: the server, or its store, is temporarily unavailable.
	// The client also wraps connection failures (refused, reset, DNS) in
	// it, but not TLS certificate failures or the caller's context expiring.
	ErrUnavailable = errors.New("service unavailable")
	// ErrTooLarge: the request was larger than the server accepts.
	ErrTooLarge = errors.New("request too large")
	// ErrMalformedResponse: a successful response whose body is not what the
	// API promises, e.g. a data key that is not 24 characters of base64.
	ErrMalformedResponse = errors.New("malformed response")
	// ErrConflict: the key changed concurrently (two rotations at once);
	// re-read it and retry if still wanted.
	ErrConflict = errors.New("conflict")
	// ErrDisabled: the key is disabled or scheduled for deletion, or the
	// user is disabled. A destroyed key is [ErrNotFound].
	ErrDisabled = errors.New("disabled")
	// ErrSealed: the server holds no root key yet and waits for unseal
	// shares. It wraps [ErrUnavailable] (the server answers 503), but the
	// client does not retry it: unsealing takes an operator.
	ErrSealed = fmt.Errorf("sealed: %w", ErrUnavailable)
	// ErrDecrypt: a ciphertext did not decrypt: wrong key, wrong
	// encryption context, modified or truncated bytes. The server never
	// says which. A ciphertext below the key's minimum decryption version
	// is [ErrInvalid] instead, with a message that says so.
	ErrDecrypt = errors.New("decryption failed")
)

// codes maps error codes (api.Code*) to sentinels.
var codes = map[string]error{
	api.CodeNotFound:     ErrNotFound,
	api.CodeExists:       ErrExists,
	api.CodeInvalid:      ErrInvalid,
	api.CodeUnauthorized: ErrUnauthorized,
	api.CodeForbidden:    ErrForbidden,
	api.CodeThrottled:    ErrThrottled,
	api.CodeTooLarge:     ErrTooLarge,
	api.CodeUnavailable:  ErrUnavailable,
	api.CodeConflict:     ErrConflict,
	api.CodeDisabled:     ErrDisabled,
	api.CodeSealed:       ErrSealed,
	api.CodeDecrypt:      ErrDecrypt,
}

// statusCodes is the fallback when a response carries no X-Kms-Error
// header, e.g. from a proxy in front of kmsd.
var statusCodes = map[int]string{
	http.StatusBadRequest:            api.CodeInvalid,
	http.StatusUnauthorized:          api.CodeUnauthorized,
	http.StatusForbidden:             api.CodeForbidden,
	http.StatusNotFound:              api.CodeNotFound,
	http.StatusConflict:              api.CodeExists,
	http.StatusRequestEntityTooLarge: api.CodeTooLarge,
	http.StatusTooManyRequests:       api.CodeThrottled,
	http.StatusBadGateway:            api.CodeUnavailable,
	http.StatusServiceUnavailable:    api.CodeUnavailable,
	http.StatusGatewayTimeout:        api.CodeUnavailable,
}

// Error is an error response from the server. It unwraps to the sentinel
// of its code (nil for codes without one, such as "internal"), so
//
//	errors.Is(err, client.ErrNotFound)
//
// works through any wrapping. Code is part of the API; Message is for
// people and may change.
type Error struct {
	// Status is the HTTP status code; 0 for the error of one item of a
	// batch.
	Status int
	// Code is the api.Code* value from the native API's JSON error body or
	// the BigDL API's X-Kms-Error header, or derived from Status when there
	// is neither (an answer from a proxy).
	Code string
	// Message is the server's message without BigDL's usage line.
	Message string
	// RequestID is the server's X-Request-Id for the request, which its
	// logs and audit records carry; "" if absent.
	RequestID string
}

// Error returns "kms: <message> (<code>, HTTP <status>)", or without the
// status for a batch item.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status == 0 {
		return fmt.Sprintf("kms: %s (%s)", msg, e.Code)
	}
	return fmt.Sprintf("kms: %s (%s, HTTP %d)", msg, e.Code, e.Status)
}

// Unwrap returns the sentinel error for e.Code, or nil.
func (e *Error) Unwrap() error { return codes[e.Code] }

// maxMessageLen bounds the message kept from an error body.
const maxMessageLen = 1024

// newError builds an *Error from a failed response's status, headers and
// body. BigDL-route bodies are "<message>\n please <verb> like: <usage>";
// only the first line, the message, is kept.
func newError(status int, h http.Header, body []byte) *Error {
	code := h.Get(api.HeaderError)
	if code == "" {
		code = statusCodes[status]
	}
	if code == "" {
		code = api.CodeInternal
	}
	msg, _, _ := strings.Cut(string(body), "\n")
	return &Error{Status: status, Code: code, Message: cleanMessage(msg), RequestID: requestID(h)}
}

// newNativeError builds an *Error from a failed native API response: a
// JSON api.Error body, or, from a proxy in front of kmsd, anything else.
func newNativeError(status int, h http.Header, body []byte) *Error {
	var e api.Error
	if json.Unmarshal(body, &e) != nil || e.Code == "" {
		return newError(status, h, body)
	}
	return &Error{Status: status, Code: e.Code, Message: cleanMessage(e.Message), RequestID: requestID(h)}
}

func cleanMessage(msg string) string {
	msg = strings.TrimSpace(strings.ToValidUTF8(msg, "\uFFFD"))
	if len(msg) > maxMessageLen {
		msg = strings.ToValidUTF8(msg[:maxMessageLen], "") + "…"
	}
	return msg
}

// requestID returns the X-Request-Id header, if it is a plausible id.
func requestID(h http.Header) string {
	id := h.Get("X-Request-Id")
	if len(id) > 64 {
		return ""
	}
	return id
}
