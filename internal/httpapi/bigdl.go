package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/kms"
)

func writeText(w http.ResponseWriter, body string) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, err := w.Write([]byte(body))
	return err
}

func requireParams(q map[string]string, names ...string) error {
	var missing []string
	for _, n := range names {
		if q[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return kms.Errorf(kms.ErrInvalid, "missing query parameter %s", strings.Join(missing, ", "))
	}
	return nil
}

func (h *Handler) welcome(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return writeText(w, api.Welcome)
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, q map[string]string) error {
	name := r.PathValue("name")
	if err := kms.ValidateName("user name", name); err != nil {
		return err
	}
	if err := requireParams(q, api.ParamToken); err != nil {
		return err
	}
	token := q[api.ParamToken]
	if len(token) > auth.MaxTokenLen {
		return kms.Errorf(kms.ErrInvalid, "token longer than %d bytes", auth.MaxTokenLen)
	}
	err := h.cfg.Service.CreateUser(r.Context(), name, h.cfg.HashToken(token))
	if err := h.audit(r, identity{user: name}, "create_user", name, "", 0, nil, err); err != nil {
		return err
	}
	return writeText(w, api.UserCreated(name))
}

func (h *Handler) createPrimaryKey(w http.ResponseWriter, r *http.Request, q map[string]string) error {
	name, user := r.PathValue("name"), q[api.ParamUser]
	err := h.cfg.Service.CreatePrimaryKey(r.Context(), user, name)
	if err := h.audit(r, identity{user: user}, "create_primary_key", user, name, 1, nil, err); err != nil {
		return err
	}
	return writeText(w, api.PrimaryKeyCreated(name))
}

func (h *Handler) createDataKey(w http.ResponseWriter, r *http.Request, q map[string]string) error {
	if err := requireParams(q, api.ParamPrimaryKeyName); err != nil {
		return err
	}
	name, user, pk := r.PathValue("name"), q[api.ParamUser], q[api.ParamPrimaryKeyName]
	err := h.cfg.Service.CreateDataKey(r.Context(), user, pk, name)
	if err := h.audit(r, identity{user: user}, "create_data_key", user, pk+"/"+name, 0, nil, err); err != nil {
		return err
	}
	return writeText(w, api.DataKeyCreated(name))
}

// getDataKey answers with the bare base64 of the data key and nothing else:
// BigDL's Scala client ignores the status and takes the body as the key.
func (h *Handler) getDataKey(w http.ResponseWriter, r *http.Request, q map[string]string) error {
	if err := requireParams(q, api.ParamPrimaryKeyName); err != nil {
		return err
	}
	user, pk, name := q[api.ParamUser], q[api.ParamPrimaryKeyName], r.PathValue("name")
	key, err := h.cfg.Service.DataKey(r.Context(), user, pk, name)
	// Audited before the key leaves: in fail-closed mode an unwritable
	// record withholds the key.
	if err := h.audit(r, identity{user: user}, "get_data_key", user, pk+"/"+name, 0, nil, err); err != nil {
		clear(key)
		return err
	}
	var buf [24]byte
	base64.StdEncoding.Encode(buf[:], key)
	clear(key)
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=UTF-8")
	hd.Set("Cache-Control", "no-store")
	_, err = w.Write(buf[:])
	clear(buf[:])
	return err
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return writeText(w, "ok\n")
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	if h.cfg.Seal != nil && h.cfg.Seal.Status().Sealed {
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeSealed, Msg: "sealed: waiting for unseal shares"}
	}
	if err := h.cfg.Service.Ready(r.Context()); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Msg: "store unavailable", Err: err}
	}
	return writeText(w, "ready\n")
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	for _, rt := range h.routes() {
		prefix := strings.TrimSuffix(rt.pattern, "{name}")
		if rt.usage != "" && strings.HasPrefix(r.URL.Path, prefix) && prefix != rt.pattern {
			if r.URL.Path == prefix {
				return &Error{Status: http.StatusBadRequest, Code: api.CodeInvalid,
					Msg: "missing name in path\n please " + rt.verb + " like: " + rt.usage}
			}
			return &Error{Status: http.StatusMethodNotAllowed, Code: api.CodeInvalid,
				Msg: "method " + r.Method + " is not supported on " + prefix + "\n please " + rt.verb + " like: " + rt.usage}
		}
	}
	return &Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Msg: "no such route\n" + api.Welcome}
}
