package httpapi

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/seal"
	"github.com/ppmlkms/kms/internal/shamir"
)

// Seal routes: status for anyone (it reveals nothing secret and operators
// need it to unseal), everything else for admins only. BigDL's
// /rootKey/rotate and /rootKey/recover were unauthenticated and destructive
// (orphaning or wiping the root key); here they need an admin and neither
// orphans nor wipes anything.

func (h *Handler) requireSeal() error {
	if h.cfg.Seal == nil {
		return kms.Errorf(kms.ErrInvalid, "this server uses a fixed root key; sealing is not available")
	}
	return nil
}

func (h *Handler) v1SealStatus(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	if err := h.requireSeal(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sealStatus(h.cfg.Seal.Status()))
}

func (h *Handler) v1Init(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.requireAdmin(r)
	if err != nil {
		return err
	}
	if err := h.requireSeal(); err != nil {
		return err
	}
	var req api.InitRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	shares, err := h.cfg.Seal.Init(r.Context(), req.Shares, req.Threshold)
	if err := h.audit(r, id, "init", "", "", 0, nil, err); err != nil {
		return err
	}
	out := api.InitResponse{Threshold: h.cfg.Seal.Status().Threshold}
	for _, s := range shares {
		out.Shares = append(out.Shares, api.Share{Index: s.Index, Content: base64.StdEncoding.EncodeToString(s.Content)})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) unseal(r *http.Request) (api.SealStatus, error) {
	id, err := h.requireAdmin(r)
	if err != nil {
		return api.SealStatus{}, err
	}
	if err := h.requireSeal(); err != nil {
		return api.SealStatus{}, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return api.SealStatus{}, err
	}
	share, err := shamir.ParseShare(body)
	if err != nil {
		return api.SealStatus{}, kms.Errorf(kms.ErrInvalid, "malformed share: %v", err)
	}
	st, err := h.cfg.Seal.Unseal(r.Context(), share)
	if err := h.audit(r, id, "unseal", "", "", 0, nil, err); err != nil {
		return api.SealStatus{}, err
	}
	return sealStatus(st).SealStatus, nil
}

// sealStatusJSON is api.SealStatus plus the version a rotation in progress
// rewraps away from, as docs/openapi.json documents it.
type sealStatusJSON struct {
	api.SealStatus
	RotatingFrom int `json:"rotating_from,omitempty"`
}

func sealStatus(st seal.Status) sealStatusJSON {
	// Auto mode initialises at start: only a Shamir server is ever
	// uninitialised.
	mode := "shamir"
	if st.Initialized && st.Threshold == 0 {
		mode = "auto"
	}
	return sealStatusJSON{SealStatus: api.SealStatus{Initialized: st.Initialized, Sealed: st.Sealed, Mode: mode,
		Shares: st.Shares, Threshold: st.Threshold, Progress: st.Progress, RootVersion: st.RootVersion,
		Rotating: st.RotatingFrom != 0}, RotatingFrom: st.RotatingFrom}
}

func (h *Handler) v1Unseal(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	st, err := h.unseal(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (h *Handler) v1RotateRoot(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.requireAdmin(r)
	if err != nil {
		return err
	}
	if err := h.requireSeal(); err != nil {
		return err
	}
	res, err := h.cfg.Seal.RotateRoot(r.Context())
	if err == nil {
		h.cfg.Service.Forget()
	}
	if err := h.audit(r, id, "rotate_root", "", "", res.To, nil, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"from": res.From, "to": res.To, "rewrapped": res.Rewrapped, "resumed": res.Resumed})
}

// bigdlRotate serves BigDL's GET /rootKey/rotate for an admin: before
// initialisation it initialises Shamir sealing with 5 shares, 3 needed (and
// returns the shares, as BigDL did); afterwards it rotates the root key
// online, re-wrapping every primary key: nothing is orphaned and the shares
// stay the same.
func (h *Handler) bigdlRotate(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.requireAdmin(r)
	if err != nil {
		return err
	}
	if err := h.requireSeal(); err != nil {
		return err
	}
	if !h.cfg.Seal.Status().Initialized {
		shares, err := h.cfg.Seal.Init(r.Context(), 5, 3)
		if err := h.audit(r, id, "init", "", "", 0, nil, err); err != nil {
			return err
		}
		body := "root key initialised and split into 5 shares, 3 needed to unseal:\n"
		for _, s := range shares {
			body += fmt.Sprintf("{\"index\":%d,\"content\":\"%s\"}\n", s.Index, base64.StdEncoding.EncodeToString(s.Content))
		}
		return writeText(w, body)
	}
	res, err := h.cfg.Seal.RotateRoot(r.Context())
	if err == nil {
		h.cfg.Service.Forget()
	}
	if err := h.audit(r, id, "rotate_root", "", "", res.To, nil, err); err != nil {
		return err
	}
	return writeText(w, fmt.Sprintf("root key rotated from version %d to %d; %d primary keys re-wrapped, none orphaned; unseal shares unchanged", res.From, res.To, res.Rewrapped))
}

// bigdlRecover serves BigDL's PUT /rootKey/recover {"index":N,"content":...}
// for an admin: one unseal share.
func (h *Handler) bigdlRecover(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	st, err := h.unseal(r)
	if err != nil {
		return err
	}
	if st.Sealed {
		return writeText(w, fmt.Sprintf("received %d/%d shares", st.Progress, st.Threshold))
	}
	return writeText(w, "root key recovered successfully: the server is unsealed")
}
