package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ppmlkms/kms/api"
)

// CreateUser registers user with token (BigDL POST /user/{user}). The token
// is hashed by the server; it is the user's only credential, so pick a long
// random one. It returns an error wrapping [ErrExists] if the user exists
// and [ErrInvalid] for a malformed name or token.
func (c *Client) CreateUser(ctx context.Context, user, token string) error {
	if err := nonEmpty("user name", user, "token", token); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodPost, c.endpoint(api.PathUser, user, []param{{api.ParamToken, token}}))
	return wrap(err, "create user %q", user)
}

// CreatePrimaryKey creates the AES-256 primary key name for user (BigDL
// POST /primaryKey/{name}). The primary key never leaves the server. It
// returns an error wrapping [ErrExists] if the user already has a primary
// key of that name and [ErrUnauthorized] for a wrong user or token.
func (c *Client) CreatePrimaryKey(ctx context.Context, user, token, name string) error {
	if err := nonEmpty("user name", user, "token", token, "primary key name", name); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodPost, c.endpoint(api.PathPrimaryKey, name, credentials(user, token, "")))
	return wrap(err, "create primary key %q", name)
}

// CreateDataKey creates the 16-byte data key name under user's primary key
// primary (BigDL POST /dataKey/{name}). It returns an error wrapping
// [ErrNotFound] if the primary key does not exist and [ErrExists] if the
// data key does.
func (c *Client) CreateDataKey(ctx context.Context, user, token, primary, name string) error {
	if err := nonEmpty("user name", user, "token", token, "primary key name", primary, "data key name", name); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodPost, c.endpoint(api.PathDataKey, name, credentials(user, token, primary)))
	return wrap(err, "create data key %q", name)
}

// DataKey fetches the data key name under primary (BigDL GET
// /dataKey/{name}) and returns its api.DataKeyLen bytes. The caller owns
// the slice and should clear it after use. It returns an error wrapping
// [ErrNotFound] if either key does not exist, [ErrUnauthorized] for a wrong
// user or token, and [ErrMalformedResponse] if the server's answer is not
// exactly 24 characters of standard base64 encoding 16 bytes.
func (c *Client) DataKey(ctx context.Context, user, token, primary, name string) ([]byte, error) {
	body, err := c.dataKey(ctx, user, token, primary, name)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	key := make([]byte, api.DataKeyLen)
	base64.StdEncoding.Decode(key, body) // validated by dataKey
	return key, nil
}

// DataKeyString is [Client.DataKey] returning the key's base64 text as the
// server sends it, which is what the BigDL PPML file formats derive their
// HMAC and AES keys from. A Go string cannot be cleared: prefer DataKey
// where the bytes suffice.
func (c *Client) DataKeyString(ctx context.Context, user, token, primary, name string) (string, error) {
	body, err := c.dataKey(ctx, user, token, primary, name)
	if err != nil {
		return "", err
	}
	defer clear(body)
	return string(body), nil
}

// dataKey returns the validated base64 body of GET /dataKey/{name}.
func (c *Client) dataKey(ctx context.Context, user, token, primary, name string) ([]byte, error) {
	if err := nonEmpty("user name", user, "token", token, "primary key name", primary, "data key name", name); err != nil {
		return nil, err
	}
	body, err := c.do(ctx, http.MethodGet, c.endpoint(api.PathDataKey, name, credentials(user, token, primary)))
	if err != nil {
		return nil, wrap(err, "get data key %q", name)
	}
	if !validDataKey(body) {
		clear(body)
		// The body is (almost) a key: never put it in the error.
		return nil, fmt.Errorf("kms: get data key %q: %w: not %d bytes of standard base64",
			name, ErrMalformedResponse, api.DataKeyLen)
	}
	return body, nil
}

func validDataKey(b []byte) bool {
	// Check the length first: Decode panics if the key does not fit.
	if len(b) != base64.StdEncoding.EncodedLen(api.DataKeyLen) {
		return false
	}
	var key [api.DataKeyLen + 2]byte // 24 characters decode to up to 18 bytes
	defer clear(key[:])
	n, err := base64.StdEncoding.Strict().Decode(key[:], b)
	return err == nil && n == api.DataKeyLen
}

// Status is what [Client.Status] learnt about the server.
type Status struct {
	// Welcome is the first line of the server's welcome text,
	// "welcome to BigDL KMS Frontend" for kmsd and BigDL.
	Welcome string
	// Ready reports whether GET /readyz succeeded: the server can reach its
	// store. BigDL servers have no /readyz and are never Ready.
	Ready bool
	// Latency is the round-trip time of GET /.
	Latency time.Duration
}

// Status checks that the server answers GET / with BigDL's welcome text and
// that it is ready (GET /readyz). When the server answers but is not ready
// it returns the Status (Ready false) and the readiness error, which wraps
// [ErrUnavailable] for kmsd, and [ErrSealed] too while it waits for unseal
// shares (a BigDL server, which has no /readyz, gives another error). When the server cannot be reached it returns a nil Status
// and an error wrapping ErrUnavailable. An answer that is not BigDL's
// welcome wraps [ErrMalformedResponse].
func (c *Client) Status(ctx context.Context) (*Status, error) {
	start := time.Now()
	body, err := c.do(ctx, http.MethodGet, c.endpoint("/", "", nil))
	if err != nil {
		return nil, wrap(err, "status")
	}
	st := &Status{Latency: time.Since(start)}
	st.Welcome, _, _ = strings.Cut(string(body), "\n")
	if !bytes.HasPrefix(body, []byte("welcome to BigDL KMS Frontend")) {
		return nil, fmt.Errorf("kms: status: %w: %s does not look like a BigDL KMS", ErrMalformedResponse, c.base.Redacted())
	}
	if _, err := c.do(ctx, http.MethodGet, c.endpoint(api.PathReadyz, "", nil)); err != nil {
		return st, wrap(err, "readiness")
	}
	st.Ready = true
	return st, nil
}

func credentials(user, token, primary string) []param {
	ps := []param{{api.ParamToken, token}, {api.ParamUser, user}}
	if primary != "" {
		ps = append(ps, param{api.ParamPrimaryKeyName, primary})
	}
	return ps
}

// nonEmpty checks pairs of (what, value) and reports the first empty one
// as ErrInvalid, so that no request with a missing part is sent.
func nonEmpty(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("kms: %s is empty: %w", pairs[i], ErrInvalid)
		}
	}
	return nil
}

// wrap adds the operation to err. Server errors stay *Error underneath.
func wrap(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}
