package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/kms"
)

// identity is who a native request authenticated as.
type identity struct {
	user  string // a user's name, or "" for an admin
	admin string // an admin's name, or ""
}

func (id identity) String() string {
	if id.admin != "" {
		return "admin/" + id.admin
	}
	return id.user
}

// bearer authenticates "Authorization: Bearer <principal>:<token>", where
// principal is a user name or "admin/<name>". Credentials never travel in
// the URL on the native API.
func (h *Handler) bearer(r *http.Request) (identity, error) {
	id, err := h.authenticateBearer(r)
	if err != nil {
		// Failed attempts on the native API are audited too (identity
		// empty, result the error code); the credentials never are.
		h.audit(r, identity{}, "authenticate", "", "", 0, nil, err)
	}
	return id, err
}

func (h *Handler) authenticateBearer(r *http.Request) (identity, error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		if id, ok, err := h.certIdentity(r); ok || err != nil {
			return id, err
		}
	}
	cred, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		return identity{}, kms.Errorf(kms.ErrPermission, "missing bearer credentials: send Authorization: Bearer <user>:<token>")
	}
	principal, token, ok := strings.Cut(cred, ":")
	if !ok || token == "" {
		return identity{}, kms.Errorf(kms.ErrPermission, "malformed bearer credentials: want <user>:<token>")
	}
	if name, ok := strings.CutPrefix(principal, "admin/"); ok {
		if h.cfg.Admins == nil {
			return identity{}, kms.Errorf(kms.ErrPermission, "no admin identities are configured")
		}
		if err := h.cfg.Admins.Authenticate(r.Context(), name, token, clientAddr(r)); err != nil {
			return identity{}, err
		}
		return identity{admin: name}, nil
	}
	if err := kms.ValidateName("user", principal); err != nil {
		return identity{}, err
	}
	if err := h.cfg.Auth.Authenticate(r.Context(), principal, token, clientAddr(r)); err != nil {
		return identity{}, err
	}
	return identity{user: principal}, nil
}

// certIdentity maps a client certificate that the TLS layer verified
// against -tls-client-ca to its configured principal. A user principal must
// exist and be enabled; an admin principal is configured, not stored.
func (h *Handler) certIdentity(r *http.Request) (identity, bool, error) {
	if len(h.cfg.ClientIdentities) == 0 || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return identity{}, false, nil
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	principal, ok := h.cfg.ClientIdentities[cn]
	if !ok {
		return identity{}, false, nil
	}
	if name, ok := strings.CutPrefix(principal, "admin/"); ok {
		return identity{admin: name}, true, nil
	}
	if err := h.cfg.Service.UserEnabled(r.Context(), principal); err != nil {
		return identity{}, true, err
	}
	return identity{user: principal}, true, nil
}

// owner is whose keys a request acts on: the user's own, or for an admin
// the ?owner= named.
func owner(id identity, r *http.Request) (string, error) {
	if id.admin == "" {
		if o := r.URL.Query().Get("owner"); o != "" && o != id.user {
			return "", kms.Errorf(kms.ErrForbidden, "users can act only on their own keys")
		}
		return id.user, nil
	}
	o := r.URL.Query().Get("owner")
	if o == "" {
		return "", kms.Errorf(kms.ErrInvalid, "admins name the keys' owner with ?owner=")
	}
	return o, kms.ValidateName("owner", o)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty body means all defaults
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return kms.Errorf(kms.ErrInvalid, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return kms.Errorf(kms.ErrInvalid, "malformed JSON body: data after the object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// keyJSON is the public description of a key: never key material.
func keyJSON(k kms.KeyInfo) api.Key {
	out := api.Key{
		Owner: k.Owner, Name: k.Name, State: string(k.Meta.State), LatestVersion: k.Latest(),
		MinDecryptionVersion:  max(k.Meta.MinDecryptionVersion, 1),
		RotationPeriodSeconds: int64(k.Meta.RotationPeriod / time.Second), Created: k.Created,
		Exportable: k.Meta.Exportable,
	}
	if out.State == "" {
		out.State = string(kms.KeyEnabled)
	}
	if !k.Meta.LastRotated.IsZero() {
		t := k.Meta.LastRotated
		out.LastRotated = &t
	}
	if !k.Meta.DeletionDate.IsZero() {
		t := k.Meta.DeletionDate
		out.DeletionDate = &t
	}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, api.KeyVersion{Version: v.Version, Created: v.Created,
			Encryptions: k.Meta.Encryptions[v.Version]})
	}
	return out
}

func (h *Handler) nativeKey(w http.ResponseWriter, r *http.Request, op func(owner, name string) (kms.KeyInfo, error)) error {
	id, err := h.bearer(r)
	if err != nil {
		return err
	}
	o, err := owner(id, r)
	if err != nil {
		return err
	}
	info, err := op(o, r.PathValue("name"))
	if err := h.audit(r, id, op2name(r), o, r.PathValue("name"), info.Latest(), nil, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, keyJSON(info))
}

func op2name(r *http.Request) string {
	p := r.URL.Path
	if i := strings.LastIndexByte(p, '/'); i >= 0 && strings.Count(p, "/") > 3 {
		return p[i+1:]
	}
	return strings.ToLower(r.Method) + "_key"
}

func (h *Handler) v1CreateKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.bearer(r)
	if err != nil {
		return err
	}
	o, err := owner(id, r)
	if err != nil {
		return err
	}
	var req api.CreateKeyRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	info, err := h.cfg.Service.CreateKey(r.Context(), o, req.Name,
		kms.KeyOptions{RotationPeriod: time.Duration(req.RotationPeriodSeconds) * time.Second, Exportable: req.Exportable})
	if err := h.audit(r, id, "create_key", o, req.Name, info.Latest(), nil, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, keyJSON(info))
}

func (h *Handler) v1ListKeys(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	id, err := h.bearer(r)
	if err != nil {
		return err
	}
	o := id.user
	if id.admin != "" {
		o = r.URL.Query().Get("owner") // "" lists every owner's keys
	} else if q := r.URL.Query().Get("owner"); q != "" && q != o {
		return kms.Errorf(kms.ErrForbidden, "users can list only their own keys")
	}
	keys, err := h.cfg.Service.ListKeys(r.Context(), o)
	if err := h.audit(r, id, "list_keys", o, "", 0, nil, err); err != nil {
		return err
	}
	out := api.KeyList{Keys: []api.Key{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyJSON(k))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) v1DescribeKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) { return h.cfg.Service.DescribeKey(r.Context(), o, n) })
}

func (h *Handler) v1RotateKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) { return h.cfg.Service.RotateKey(r.Context(), o, n) })
}

func (h *Handler) v1EnableKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) { return h.cfg.Service.SetKeyEnabled(r.Context(), o, n, true) })
}

func (h *Handler) v1DisableKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) { return h.cfg.Service.SetKeyEnabled(r.Context(), o, n, false) })
}

func (h *Handler) v1CancelDeletion(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) { return h.cfg.Service.CancelKeyDeletion(r.Context(), o, n) })
}

// The bodies are decoded after authentication (in the op), so that a
// caller without credentials always gets 401.

func (h *Handler) v1ScheduleDeletion(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) {
		var req api.ScheduleDeletionRequest
		if err := decodeJSON(r, &req); err != nil {
			return kms.KeyInfo{}, err
		}
		return h.cfg.Service.ScheduleKeyDeletion(r.Context(), o, n, req.PendingWindowDays)
	})
}

func (h *Handler) v1ConfigureKey(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return h.nativeKey(w, r, func(o, n string) (kms.KeyInfo, error) {
		var req api.ConfigureKeyRequest
		if err := decodeJSON(r, &req); err != nil {
			return kms.KeyInfo{}, err
		}
		var c kms.KeyConfig
		c.MinDecryptionVersion = req.MinDecryptionVersion
		if req.RotationPeriodSeconds != nil {
			d := time.Duration(*req.RotationPeriodSeconds) * time.Second
			c.RotationPeriod = &d
		}
		return h.cfg.Service.ConfigureKey(r.Context(), o, n, c)
	})
}

// crypto runs a native cryptographic operation on the caller's key.
func (h *Handler) crypto(r *http.Request, op string, req any, do func(o, n string) (int, map[string]string, error)) error {
	id, err := h.bearer(r)
	if err != nil {
		return err
	}
	o, err := owner(id, r)
	if err != nil {
		return err
	}
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	v, ctx, err := do(o, r.PathValue("name"))
	return h.audit(r, id, op, o, r.PathValue("name"), v, ctx, err)
}

func (h *Handler) v1Encrypt(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.EncryptRequest
	var resp api.CiphertextResponse
	err := h.crypto(r, "encrypt", &req, func(o, n string) (int, map[string]string, error) {
		ct, v, err := h.cfg.Service.Encrypt(r.Context(), o, n, req.Plaintext, req.Context)
		resp = api.CiphertextResponse{Ciphertext: ct, KeyVersion: v}
		return v, req.Context, err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) v1Decrypt(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.DecryptRequest
	var resp api.PlaintextResponse
	err := h.crypto(r, "decrypt", &req, func(o, n string) (int, map[string]string, error) {
		pt, v, err := h.cfg.Service.Decrypt(r.Context(), o, n, req.Ciphertext, req.Context)
		resp = api.PlaintextResponse{Plaintext: pt, KeyVersion: v}
		return v, req.Context, err
	})
	if err != nil {
		return err
	}
	defer clear(resp.Plaintext)
	return writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) v1GenerateDataKey(withPlaintext bool) func(http.ResponseWriter, *http.Request, map[string]string) error {
	op := "generate_data_key"
	if !withPlaintext {
		op = "generate_data_key_without_plaintext"
	}
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
		var req api.GenerateDataKeyRequest
		var resp api.DataKeyResponse
		err := h.crypto(r, op, &req, func(o, n string) (int, map[string]string, error) {
			size, err := req.Size()
			if err != nil {
				return 0, req.Context, kms.Errorf(kms.ErrInvalid, "%v", err)
			}
			pt, ct, v, err := h.cfg.Service.GenerateDataKey(r.Context(), o, n, size, req.Context, withPlaintext)
			resp = api.DataKeyResponse{Plaintext: pt, Ciphertext: ct, KeyVersion: v}
			return v, req.Context, err
		})
		if err != nil {
			return err
		}
		defer clear(resp.Plaintext)
		return writeJSON(w, http.StatusOK, resp)
	}
}

func (h *Handler) v1ReEncrypt(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.ReEncryptRequest
	var resp api.CiphertextResponse
	err := h.crypto(r, "reencrypt", &req, func(o, n string) (int, map[string]string, error) {
		dst := req.DestinationKey
		if dst == "" {
			dst = n
		}
		dctx := req.DestinationContext
		if dctx == nil {
			dctx = req.Context
		}
		ct, v, err := h.cfg.Service.ReEncrypt(r.Context(), o, n, req.Ciphertext, req.Context, dst, dctx)
		resp = api.CiphertextResponse{Ciphertext: ct, KeyVersion: v}
		return v, req.Context, err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// batchItemError renders an item's error with the same code table as
// whole requests.
func batchItemError(err error) *api.Error {
	_, code, msg, internal := classify(err)
	if internal {
		msg = "internal error"
	}
	return &api.Error{Code: code, Message: msg}
}

// batch runs one operation per item on the caller's key, after checking
// the batch as a whole (size, key usable), so that a batch on a missing or
// disabled key fails like a single request; item errors are reported per
// item, through the same code table.
func batch[T any](h *Handler, w http.ResponseWriter, r *http.Request, op string, items func() []T,
	do func(owner, name string, item T) (api.BatchItem, error), req any) error {
	var resp api.BatchResponse
	err := h.crypto(r, op, req, func(o, n string) (int, map[string]string, error) {
		its := items()
		if len(its) == 0 || len(its) > kms.MaxBatch {
			return 0, nil, kms.Errorf(kms.ErrInvalid, "a batch holds 1 to %d items", kms.MaxBatch)
		}
		if err := h.cfg.Service.CheckUsable(r.Context(), o, n); err != nil {
			return 0, nil, err
		}
		for _, it := range its {
			item, err := do(o, n, it)
			if err != nil {
				item = api.BatchItem{Error: batchItemError(err)}
			}
			resp.Results = append(resp.Results, item)
		}
		return 0, nil, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) v1EncryptBatch(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.EncryptBatchRequest
	return batch(h, w, r, "encrypt_batch", func() []api.EncryptRequest { return req.Items },
		func(o, n string, it api.EncryptRequest) (api.BatchItem, error) {
			ct, v, err := h.cfg.Service.Encrypt(r.Context(), o, n, it.Plaintext, it.Context)
			return api.BatchItem{Ciphertext: ct, KeyVersion: v}, err
		}, &req)
}

func (h *Handler) v1DecryptBatch(w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.DecryptBatchRequest
	return batch(h, w, r, "decrypt_batch", func() []api.DecryptRequest { return req.Items },
		func(o, n string, it api.DecryptRequest) (api.BatchItem, error) {
			pt, v, err := h.cfg.Service.Decrypt(r.Context(), o, n, it.Ciphertext, it.Context)
			return api.BatchItem{Plaintext: pt, KeyVersion: v}, err
		}, &req)
}
