package attestapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/kms"
)

// Challenge nonces are documents of kind docNonce, id hex(nonce), holding
// the user they were issued to and their expiry. Using one deletes it with
// a compare-and-swap on its revision, so that of several replicas (or
// requests) presenting the same nonce exactly one proceeds. A tombstone
// (docNonceUsed), written just before, remembers the nonce until
// tombstoneTTL after its expiry, so that a replay is reported as such
// rather than as an unknown nonce; losing a tombstone only changes that
// error code.
const (
	docNonce     = "attest-nonce"
	docNonceUsed = "attest-nonce-used"
	tombstoneTTL = time.Hour
	sweepEvery   = time.Minute
)

type nonceDoc struct {
	User    string    `json:"user"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// newNonce issues a nonce to user.
func (h *Handler) newNonce(ctx context.Context, user string) ([]byte, time.Time, error) {
	nonce := make([]byte, api.AttestNonceLen)
	rand.Read(nonce)
	now := h.cfg.Now().UTC()
	d := nonceDoc{User: user, Issued: now, Expires: now.Add(h.cfg.NonceTTL)}
	b, _ := json.Marshal(d)
	_, err := h.cfg.Docs.PutDoc(ctx, kms.Doc{Kind: docNonce, ID: hex.EncodeToString(nonce), Value: b, Updated: now})
	h.maybeSweep(ctx)
	return nonce, d.Expires, err
}

// burnNonce consumes nonce for user: it returns nil for exactly one caller
// of an issued, unexpired nonce of this user, and otherwise an error with
// code nonce_unknown, nonce_replayed or nonce_expired.
func (h *Handler) burnNonce(ctx context.Context, user string, nonce []byte) error {
	if len(nonce) != api.AttestNonceLen {
		return fail(http.StatusBadRequest, api.CodeNonceUnknown, "nonce must be %d bytes (from POST %s)", api.AttestNonceLen, api.PathAttestChallenge)
	}
	id := hex.EncodeToString(nonce)
	d, err := h.cfg.Docs.Doc(ctx, docNonce, id)
	if errors.Is(err, kms.ErrNotFound) {
		return h.missingNonce(ctx, user, id)
	}
	if err != nil {
		return err
	}
	var n nonceDoc
	if err := json.Unmarshal(d.Value, &n); err != nil {
		return err
	}
	if n.User != user {
		// Another user's nonce: as if it did not exist.
		return fail(http.StatusBadRequest, api.CodeNonceUnknown, "unknown nonce: ask for a new challenge")
	}
	if !h.cfg.Now().Before(n.Expires) {
		// Left in place (the sweep removes it), so that it keeps being
		// reported as expired.
		return fail(http.StatusBadRequest, api.CodeNonceExpired, "nonce expired at %s: ask for a new challenge and attest within %v",
			n.Expires.Format(time.RFC3339), h.cfg.NonceTTL)
	}
	// The tombstone goes first, so that whoever finds the nonce gone also
	// finds why; the delete decides who wins.
	b, _ := json.Marshal(n)
	if _, err := h.cfg.Docs.PutDoc(ctx, kms.Doc{Kind: docNonceUsed, ID: id, Value: b, Updated: h.cfg.Now().UTC()}); err != nil &&
		!errors.Is(err, kms.ErrExists) {
		h.cfg.Logger.Warn("attest: nonce tombstone not written; a replay will be reported as an unknown nonce", "err", err)
	}
	err = h.cfg.Docs.DeleteDoc(ctx, docNonce, id, d.Revision)
	switch {
	case errors.Is(err, kms.ErrNotFound), errors.Is(err, kms.ErrConflict):
		return fail(http.StatusConflict, api.CodeNonceReplayed, "nonce already used: every nonce is good for one release attempt")
	case err != nil:
		return err
	}
	return nil
}

// missingNonce tells a replayed nonce (tombstone of this user) from an
// unknown one.
func (h *Handler) missingNonce(ctx context.Context, user, id string) error {
	d, err := h.cfg.Docs.Doc(ctx, docNonceUsed, id)
	if err == nil {
		var n nonceDoc
		if json.Unmarshal(d.Value, &n) == nil && n.User == user {
			return fail(http.StatusConflict, api.CodeNonceReplayed, "nonce already used: every nonce is good for one release attempt")
		}
	} else if !errors.Is(err, kms.ErrNotFound) {
		return err
	}
	return fail(http.StatusBadRequest, api.CodeNonceUnknown, "unknown nonce: ask for a new challenge")
}

// maybeSweep deletes expired nonces and old tombstones, at most once a
// minute per process, in the background.
func (h *Handler) maybeSweep(ctx context.Context) {
	now := h.cfg.Now()
	last := h.sweepAt.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !h.sweepAt.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := h.sweep(ctx); err != nil {
			h.cfg.Logger.Warn("attest: nonce sweep", "err", err)
		}
	}()
}

// sweep deletes nonces and tombstones tombstoneTTL after the nonce's
// expiry (until then an expired nonce is reported as expired). Concurrent sweeps on several replicas are harmless: deletes
// are compare-and-swaps.
func (h *Handler) sweep(ctx context.Context) error {
	now := h.cfg.Now()
	var errs []error
	for _, k := range []struct {
		kind  string
		grace time.Duration
	}{{docNonce, tombstoneTTL}, {docNonceUsed, tombstoneTTL}} {
		docs, err := h.cfg.Docs.ListDocs(ctx, k.kind, "")
		if err != nil {
			return err
		}
		for _, d := range docs {
			var n nonceDoc
			if json.Unmarshal(d.Value, &n) == nil && now.Before(n.Expires.Add(k.grace)) {
				continue
			}
			if err := h.cfg.Docs.DeleteDoc(ctx, k.kind, d.ID, d.Revision); err != nil &&
				!errors.Is(err, kms.ErrNotFound) && !errors.Is(err, kms.ErrConflict) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
