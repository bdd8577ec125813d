package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ppmlkms/kms/api"
)

// Key management of the native API. Every method needs a credential
// ([WithToken], or [WithAdminToken] with [Client.ForOwner]) and returns the
// key's description after the change. Descriptions never carry key
// material.
//
// Errors common to all of them: [ErrUnauthorized] without a valid
// credential, [ErrForbidden] for a user naming another owner,
// [ErrNotFound] for a key the owner does not have (also another user's:
// keys live in their owner's namespace), [ErrInvalid] for a malformed
// name or setting, and [ErrSealed] while the server is sealed.

// CreateKeyOptions are the optional settings of [Client.CreateKey].
type CreateKeyOptions struct {
	// RotationPeriod, if not zero, makes the server add a key version
	// every period (at least one hour; whole seconds).
	RotationPeriod time.Duration
	// Exportable lets an attested workload receive the key itself
	// ([Client.ReleasePrimaryKey]) once it has a release policy. It can be
	// set only at creation.
	Exportable bool
}

// CreateKey creates primary key name (version 1, enabled); opts may be
// nil. It returns an error wrapping [ErrExists] if the name is taken, also
// by a destroyed key: names are never reused.
func (c *Client) CreateKey(ctx context.Context, name string, opts *CreateKeyOptions) (*api.Key, error) {
	if err := validName("key name", name); err != nil {
		return nil, err
	}
	req := api.CreateKeyRequest{Name: name}
	if opts != nil {
		req.RotationPeriodSeconds = int64(opts.RotationPeriod / time.Second)
		req.Exportable = opts.Exportable
	}
	var k api.Key
	if err := c.call(ctx, http.MethodPost, api.PathV1Keys, true, req, &k); err != nil {
		return nil, wrap(err, "create key %q", name)
	}
	return &k, nil
}

// DescribeKey returns key name's state and versions.
func (c *Client) DescribeKey(ctx context.Context, name string) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodGet, name, "", nil, "describe")
}

// ListKeys returns the owner's keys, ordered by name: the caller's own, or
// with an admin client every owner's (ordered by owner, then name) unless
// [Client.ForOwner] names one. Destroyed keys are not listed.
func (c *Client) ListKeys(ctx context.Context) ([]api.Key, error) {
	var l api.KeyList
	if err := c.call(ctx, http.MethodGet, api.PathV1Keys, true, nil, &l); err != nil {
		return nil, wrap(err, "list keys")
	}
	return l.Keys, nil
}

// RotateKey adds a new version to key name: new ciphertexts and data keys
// use it, older versions keep decrypting down to the key's minimum
// decryption version. It returns an error wrapping [ErrConflict] if
// another rotation of the key won a race, and [ErrDisabled] for a key
// that is disabled or scheduled for deletion.
func (c *Client) RotateKey(ctx context.Context, name string) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodPost, name, "/rotate", nil, "rotate")
}

// KeyConfig holds the changes of [Client.ConfigureKey]; zero fields stay
// as they are.
type KeyConfig struct {
	// MinDecryptionVersion, if not zero, refuses ciphertexts of older
	// versions from now on. It can only be raised, up to the newest
	// version.
	MinDecryptionVersion int
	// RotationPeriod, if not nil, sets the scheduled rotation period: 0
	// turns it off, otherwise at least one hour (whole seconds).
	RotationPeriod *time.Duration
}

// ConfigureKey changes key name's minimum decryption version or rotation
// period. It returns an error wrapping [ErrInvalid] for a version out of
// range or lower than the current one.
func (c *Client) ConfigureKey(ctx context.Context, name string, cfg KeyConfig) (*api.Key, error) {
	var req api.ConfigureKeyRequest
	if cfg.MinDecryptionVersion != 0 {
		v := cfg.MinDecryptionVersion
		req.MinDecryptionVersion = &v
	}
	if cfg.RotationPeriod != nil {
		s := int64(*cfg.RotationPeriod / time.Second)
		req.RotationPeriodSeconds = &s
	}
	return c.keyOp(ctx, http.MethodPost, name, "/config", req, "configure")
}

// EnableKey re-enables a disabled key (also one whose deletion was
// cancelled). It returns an error wrapping [ErrDisabled] for a key
// scheduled for deletion: cancel the deletion first.
func (c *Client) EnableKey(ctx context.Context, name string) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodPost, name, "/enable", nil, "enable")
}

// DisableKey disables key name: it no longer encrypts, decrypts or opens
// data keys (BigDL API included) until enabled again. Nothing is deleted.
func (c *Client) DisableKey(ctx context.Context, name string) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodPost, name, "/disable", nil, "disable")
}

// ScheduleKeyDeletion makes key name unusable now and destroys its
// material, and with it every data key and ciphertext under it, after
// pendingDays days (7 to 30; 0 means 30) unless cancelled. Api.Key's
// DeletionDate says when. It returns an error wrapping [ErrInvalid] for a
// window out of range and [ErrDisabled] if the deletion is already
// scheduled.
func (c *Client) ScheduleKeyDeletion(ctx context.Context, name string, pendingDays int) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodPost, name, "/schedule-deletion",
		api.ScheduleDeletionRequest{PendingWindowDays: pendingDays}, "schedule deletion of")
}

// CancelKeyDeletion cancels a scheduled deletion. The key becomes
// disabled, as in AWS KMS: enabling it is a separate, deliberate step. It
// returns an error wrapping [ErrInvalid] if no deletion is scheduled.
func (c *Client) CancelKeyDeletion(ctx context.Context, name string) (*api.Key, error) {
	return c.keyOp(ctx, http.MethodPost, name, "/cancel-deletion", nil, "cancel deletion of")
}

// keyOp runs a key route that answers with the key's description.
func (c *Client) keyOp(ctx context.Context, method, name, suffix string, in any, what string) (*api.Key, error) {
	if err := validName("key name", name); err != nil {
		return nil, err
	}
	var k api.Key
	if err := c.call(ctx, method, keyPath(name, suffix), true, in, &k); err != nil {
		return nil, fmt.Errorf("%s key %q: %w", what, name, err)
	}
	return &k, nil
}
