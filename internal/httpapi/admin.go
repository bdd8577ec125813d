package httpapi

import (
	"crypto/rand"
	"net/http"
	"strings"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/audit"
	"github.com/ppmlkms/kms/internal/kms"
)

// audit records an operation and returns err, or the audit log's error if
// the record could not be written in fail-closed mode (then the operation's
// result is withheld: nothing leaves unaudited).
func (h *Handler) audit(r *http.Request, id identity, op, owner, key string, version int, context map[string]string, err error) error {
	if h.cfg.Audit == nil {
		return err
	}
	rec := audit.Record{
		RequestID: requestID(r), Identity: id.String(), Remote: clientAddr(r), Operation: op,
		KeyVersion: version, Context: context, Result: "ok",
		// BigDL routes carry the token in the URL: recorded as insecure.
		Insecure: !strings.HasPrefix(r.URL.Path, "/v1/"),
	}
	if key != "" {
		rec.Key = owner + "/" + key
	} else if owner != "" {
		rec.Key = owner
	}
	if err != nil {
		_, code, _, _ := classify(err)
		rec.Result = code
	}
	if aerr := h.cfg.Audit.Log(r.Context(), rec); aerr != nil && err == nil {
		h.cfg.Logger.Error("audit log refused a record: refusing the operation", "op", op, "err", aerr)
		return aerr
	}
	return err
}

// requireAdmin authenticates an admin.
func (h *Handler) requireAdmin(r *http.Request) (identity, error) {
	id, err := h.bearer(r)
	if err != nil {
		return id, err
	}
	if id.admin == "" {
		return id, kms.Errorf(kms.ErrForbidden, "this operation needs an admin identity")
	}
	return id, nil
}

func (h *Handler) v1ListUsers(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.requireAdmin(r)
	if err != nil {
		return err
	}
	users, err := h.cfg.Service.ListUsers(r.Context())
	if err := h.audit(r, id, "list_users", "", "", 0, nil, err); err != nil {
		return err
	}
	out := api.UserList{Users: []api.User{}}
	for _, u := range users {
		out.Users = append(out.Users, api.User{Name: u.Name, Disabled: u.Disabled, Created: u.Created})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) v1SetUserDisabled(disabled bool) func(http.ResponseWriter, *http.Request, map[string]string) error {
	op := "enable_user"
	if disabled {
		op = "disable_user"
	}
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
		id, err := h.requireAdmin(r)
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		u, err := h.cfg.Service.SetUserDisabled(r.Context(), name, disabled)
		if err == nil {
			h.cfg.Auth.Forget(name)
		}
		if err := h.audit(r, id, op, name, "", 0, nil, err); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, api.User{Name: u.Name, Disabled: u.Disabled, Created: u.Created})
	}
}

// v1RotateUserToken gives a user a new random token, shown once; the old
// one stops working on this replica at once and on others within the
// authentication cache's lifetime.
func (h *Handler) v1RotateUserToken(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.requireAdmin(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	token := rand.Text()
	err = h.cfg.Service.SetUserToken(r.Context(), name, h.cfg.HashToken(token))
	if err == nil {
		h.cfg.Auth.Forget(name)
	}
	if err := h.audit(r, id, "rotate_user_token", name, "", 0, nil, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.TokenResponse{Token: token})
}
