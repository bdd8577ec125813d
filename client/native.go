package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ppmlkms/kms/api"
)

// The native API (/v1) speaks JSON and authenticates with a bearer
// credential in the Authorization header, never in the URL. This file holds
// its credentials and transport; keys.go, crypto.go and sys.go its
// operations.

// WithToken sets the credential of the native API methods: user's name and
// token (the ones CreateUser registered). The BigDL methods take their
// credentials as arguments and ignore it. It returns an error wrapping
// [ErrInvalid] from [New] for an empty name or token, a name with ':' or
// starting with "admin/", or a token with control characters.
func WithToken(user, token string) Option {
	return func(o *options) error {
		if strings.HasPrefix(user, "admin/") {
			return fmt.Errorf("client: WithToken: user name %q starts with admin/; use WithAdminToken: %w", user, ErrInvalid)
		}
		return o.setBearer(user, token)
	}
}

// WithAdminToken sets an admin credential for the native API: name is an
// admin identity from kmsd's -admin-tokens file. Admins manage users and
// the seal, and act on a user's keys through [Client.ForOwner]. It returns
// an error wrapping [ErrInvalid] from [New] for an empty name or token, a
// name with ':', or a token with control characters.
func WithAdminToken(name, token string) Option {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("client: WithAdminToken: empty admin name: %w", ErrInvalid)
		}
		return o.setBearer("admin/"+name, token)
	}
}

func (o *options) setBearer(principal, token string) error {
	if principal == "" || token == "" {
		return fmt.Errorf("client: empty user name or token: %w", ErrInvalid)
	}
	if strings.Contains(principal, ":") {
		return fmt.Errorf("client: user name %q contains ':': %w", principal, ErrInvalid)
	}
	for _, b := range []byte(token) {
		if b < 0x20 || b == 0x7f {
			// Never echo the token itself.
			return fmt.Errorf("client: token contains a control character: %w", ErrInvalid)
		}
	}
	o.bearer = "Bearer " + principal + ":" + token
	return nil
}

// ForOwner returns a client, sharing c's connections and credential, whose
// native key methods act on owner's keys (the ?owner= parameter). Only an
// admin may name another user; for a user, the server refuses any owner
// but itself with [ErrForbidden]. ListKeys of an admin client without
// ForOwner lists every owner's keys. The user and seal methods ignore the
// owner.
func (c *Client) ForOwner(owner string) *Client {
	cc := *c
	cc.owner = owner
	return &cc
}

// nativeMaxBody bounds a native response body: a batch of 100 decrypted
// 4 KiB items is about 550 KiB of JSON.
const nativeMaxBody = 4 << 20

// keyPath is the path of owner-scoped key route name (+ suffix).
func keyPath(name, suffix string) string {
	return api.PathV1Keys + "/" + url.PathEscape(name) + suffix
}

// call sends a native request to path (escaped, as keyPath makes it): in
// (if not nil) as the JSON body, the response decoded into out (if not
// nil). ownerScoped adds ?owner= when the client has one. GETs are retried
// as the BigDL GETs are.
func (c *Client) call(ctx context.Context, method, path string, ownerScoped bool, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		// The body may hold plaintext: clear it once sent (best effort).
		defer clear(body)
	}
	// path is escaped (keyPath); the URL wants both forms.
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	u := *c.base
	u.Path = c.base.Path + unescaped
	u.RawPath = c.base.EscapedPath() + path
	if ownerScoped && c.owner != "" {
		u.RawQuery = "owner=" + escape(c.owner)
	}
	return c.retry(ctx, method, func() error { return c.callOnce(ctx, method, &u, body, out) })
}

func (c *Client) callOnce(ctx context.Context, method string, u *url.URL, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("client: %w", redact(err))
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", c.bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, nativeMaxBody+1))
	// Responses may hold plaintext or data keys: clear them once decoded.
	defer clear(b)
	if err != nil {
		return transportError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newNativeError(resp.StatusCode, resp.Header, b)
	}
	if len(b) > nativeMaxBody {
		return fmt.Errorf("kms: response longer than %d bytes: %w", nativeMaxBody, ErrMalformedResponse)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		// The error names a type or offset, never the body's content.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("kms: response is not JSON: %w", ErrMalformedResponse)
		}
		return fmt.Errorf("kms: unexpected response: %v: %w", err, ErrMalformedResponse)
	}
	return nil
}

// validName reports an empty key or user name as ErrInvalid before any
// request is sent (an empty path segment would hit another route).
func validName(what, name string) error {
	if name == "" {
		return fmt.Errorf("kms: %s is empty: %w", what, ErrInvalid)
	}
	return nil
}
