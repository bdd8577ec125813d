package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ppmlkms/kms/api"
)

// Administration: users and the seal. Every method but SealStatus needs an
// admin credential ([WithAdminToken]); a user's credential gets
// [ErrForbidden], none or a wrong one [ErrUnauthorized].

// ListUsers returns every user, ordered by name; never tokens or hashes.
func (c *Client) ListUsers(ctx context.Context) ([]api.User, error) {
	var l api.UserList
	if err := c.call(ctx, http.MethodGet, api.PathV1Users, false, nil, &l); err != nil {
		return nil, wrap(err, "list users")
	}
	return l.Users, nil
}

// DisableUser disables user name: its token is refused (with
// [ErrDisabled]) at once on the server that answered, and on other
// replicas within their authentication cache's lifetime. Its keys stay.
// It returns an error wrapping [ErrNotFound] for an unknown user.
func (c *Client) DisableUser(ctx context.Context, name string) (*api.User, error) {
	return c.userOp(ctx, name, "/disable", "disable")
}

// EnableUser re-enables a disabled user.
func (c *Client) EnableUser(ctx context.Context, name string) (*api.User, error) {
	return c.userOp(ctx, name, "/enable", "enable")
}

func (c *Client) userOp(ctx context.Context, name, suffix, what string) (*api.User, error) {
	if err := validName("user name", name); err != nil {
		return nil, err
	}
	var u api.User
	if err := c.call(ctx, http.MethodPost, api.PathV1Users+"/"+url.PathEscape(name)+suffix, false, nil, &u); err != nil {
		return nil, fmt.Errorf("%s user %q: %w", what, name, err)
	}
	return &u, nil
}

// RotateUserToken gives user name a new random token and returns it; the
// server keeps only its hash, so this is the one chance to read it. The old
// token stops working (see [Client.DisableUser] for replicas). Use it to
// revoke a leaked token.
func (c *Client) RotateUserToken(ctx context.Context, name string) (string, error) {
	if err := validName("user name", name); err != nil {
		return "", err
	}
	var t api.TokenResponse
	if err := c.call(ctx, http.MethodPost, api.PathV1Users+"/"+url.PathEscape(name)+"/token", false, nil, &t); err != nil {
		return "", fmt.Errorf("rotate token of user %q: %w", name, err)
	}
	if t.Token == "" {
		return "", fmt.Errorf("kms: rotate token of user %q: %w: no token", name, ErrMalformedResponse)
	}
	return t.Token, nil
}

// SealStatus returns whether the server is initialised and sealed, the
// Shamir threshold and the shares received so far, and the root key
// version. It needs no credential (it reveals nothing secret and operators
// need it to unseal), and works while sealed.
func (c *Client) SealStatus(ctx context.Context) (*api.SealStatus, error) {
	var st api.SealStatus
	if err := c.call(ctx, http.MethodGet, api.PathV1Sys+"/seal-status", false, nil, &st); err != nil {
		return nil, wrap(err, "seal status")
	}
	return &st, nil
}

// Init initialises a server started with -seal shamir: it creates the
// root key, splits it into shares of which threshold recover it (0, 0
// means 5 and 3), unseals the server and returns the shares. They are
// shown this once and never stored: hand them to their keepers. It
// returns an error wrapping [ErrExists] if the server is initialised.
func (c *Client) Init(ctx context.Context, shares, threshold int) (*api.InitResponse, error) {
	var r api.InitResponse
	if err := c.call(ctx, http.MethodPost, api.PathV1Sys+"/init", false, api.InitRequest{Shares: shares, Threshold: threshold}, &r); err != nil {
		return nil, wrap(err, "init")
	}
	return &r, nil
}

// Unseal submits one share and returns the seal status after it: Sealed
// false once the threshold is reached with the right shares. It returns an
// error wrapping [ErrInvalid], without counting the share, for a
// malformed share or one whose index was already submitted; and, when the
// threshold is reached with shares that do not recover the root key (one
// from another initialisation), ErrInvalid after discarding every share
// submitted: start again. On an unsealed server it does nothing.
func (c *Client) Unseal(ctx context.Context, share api.Share) (*api.SealStatus, error) {
	var st api.SealStatus
	if err := c.call(ctx, http.MethodPost, api.PathV1Sys+"/unseal", false, share, &st); err != nil {
		return nil, fmt.Errorf("unseal with share %d: %w", share.Index, err)
	}
	return &st, nil
}

// RotateRootResult describes a root key rotation.
type RotateRootResult struct {
	// From and To are the root key versions rotated from and to.
	From int `json:"from"`
	To   int `json:"to"`
	// Rewrapped counts the primary key versions this call re-wrapped.
	Rewrapped int `json:"rewrapped"`
	// Resumed is true if the call finished a rotation already in progress
	// (left by a crash or started by another replica).
	Resumed bool `json:"resumed"`
}

// RotateRoot rotates the root key online: every primary key is re-wrapped
// under a new root key version while the server keeps serving, and the
// unseal shares (or key file) stay the same. It may take minutes for many
// keys; the context bounds how long the caller waits, and a rotation cut
// short resumes at the next call or start. It is never retried. It
// returns an error wrapping [ErrSealed] while sealed.
func (c *Client) RotateRoot(ctx context.Context) (*RotateRootResult, error) {
	var r RotateRootResult
	if err := c.call(ctx, http.MethodPost, api.PathV1Sys+"/rotate-root", false, nil, &r); err != nil {
		return nil, wrap(err, "rotate root key")
	}
	return &r, nil
}
