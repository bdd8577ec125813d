package attestapi

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/kms"
)

// challenge issues a single-use nonce to an authenticated user.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request) error {
	id, err := h.workloadUser(r)
	if err != nil {
		return h.auditRecord(r, w, id, "attest_challenge", "", 0, false, err)
	}
	var empty struct{}
	if err := decodeStrict(r, &empty); err != nil {
		return err
	}
	nonce, expires, err := h.newNonce(r.Context(), id)
	if err := h.auditRecord(r, w, id, "attest_challenge", id, 0, h.cfg.AllowMockTEE, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.AttestChallengeResponse{Nonce: nonce, Audience: h.cfg.Audience,
		Expires: expires, Insecure: h.cfg.AllowMockTEE})
}

// workloadUser authenticates the user of a challenge or release; admins
// are refused (a release goes to the key owner's workload). On failure the
// identity is "" (authentication failed) or the admin's.
func (h *Handler) workloadUser(r *http.Request) (string, error) {
	id, err := h.bearer(r)
	switch {
	case err != nil:
		return "", err
	case id.admin != "":
		return id.String(), kms.Errorf(kms.ErrForbidden, "attested release is for the key owner's workload: authenticate as the user")
	}
	return id.user, nil
}

// release verifies a quote for a nonce and a key's release policy and
// answers the data key sealed to the quote's public key.
func (h *Handler) release(w http.ResponseWriter, r *http.Request) error {
	id, err := h.workloadUser(r)
	if err != nil {
		return h.auditRecord(r, w, id, "attest_release", "", 0, false, err)
	}
	var req api.AttestReleaseRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	keyName := id // the key, once its names are known to be valid
	if kms.ValidateName("", req.Key.PrimaryKey) == nil {
		if req.Key.DataKey == "" {
			keyName += "/" + req.Key.PrimaryKey // the primary key itself
		} else if kms.ValidateName("", req.Key.DataKey) == nil {
			keyName += "/" + req.Key.PrimaryKey + "/" + req.Key.DataKey
		}
	}
	res, out, err := h.attestedRelease(r.Context(), id, &req)
	h.count("release", res, err)
	insecure := res != nil && res.Insecure
	if err != nil {
		h.logRefusal(r, "attested release refused", keyName, res, err)
	}
	version := 0
	if out != nil {
		version = out.KeyVersion
	}
	// Audited before the (sealed) key leaves: in fail-closed mode an
	// unwritable record withholds it.
	if err := h.auditRecord(r, w, id, "attest_release", keyName, version, insecure, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// attestedRelease runs the checks of a release in order: request shape,
// nonce (burnt before anything else can fail), audience, key and policy,
// quote and collateral, report data binding, policy evaluation; then seals
// the key: the data key named, or with no data key named the (exportable)
// primary key itself. The Result is returned whenever the quote verified.
func (h *Handler) attestedRelease(ctx context.Context, user string, req *api.AttestReleaseRequest) (*attest.Result, *api.AttestReleaseResponse, error) {
	pub, kem, err := parseHPKEPublicKey(req.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	if len(req.Quote) == 0 {
		return nil, nil, kms.Errorf(kms.ErrInvalid, "quote is missing")
	}
	exportPrimary := req.Key.DataKey == ""
	if err := kms.ValidateName("key.primary_key", req.Key.PrimaryKey); err != nil {
		return nil, nil, err
	}
	switch {
	case !exportPrimary:
		if err := kms.ValidateName("key.data_key", req.Key.DataKey); err != nil {
			return nil, nil, err
		}
		if req.Key.Version != 0 {
			return nil, nil, kms.Errorf(kms.ErrInvalid, "key.version applies to an exported primary key only: a data key is released with the version that wraps it")
		}
	case req.Key.Version < 0:
		return nil, nil, kms.Errorf(kms.ErrInvalid, "key.version must be positive (or 0 for the newest)")
	}
	if err := h.burnNonce(ctx, user, req.Nonce); err != nil {
		return nil, nil, err
	}
	if req.Audience != h.cfg.Audience {
		return nil, nil, fail(http.StatusBadRequest, api.CodeWrongAudience,
			"the quote is for audience %q, this KMS is %q", req.Audience, h.cfg.Audience)
	}
	policy, err := h.keyPolicy(ctx, user, req.Key.PrimaryKey)
	if err != nil {
		return nil, nil, err
	}
	if exportPrimary {
		// Refused before the quote is verified: asking for a key that can
		// never leave is a caller's mistake, not an attestation result.
		if err := h.cfg.Service.CheckExportable(ctx, user, req.Key.PrimaryKey); err != nil {
			if errors.Is(err, kms.ErrForbidden) {
				return nil, nil, &httpapi.Error{Status: http.StatusForbidden, Code: api.CodeNotExportable, Msg: err.Error()}
			}
			return nil, nil, err
		}
	}
	res, err := h.verify(ctx, req.Quote)
	if err != nil {
		return nil, nil, err
	}
	if res.ReportData != api.AttestReportData(req.Nonce, req.PublicKey, h.cfg.Audience) {
		return res, nil, fail(http.StatusForbidden, api.CodeReportDataMismatch,
			"the quote's report data does not bind this nonce, public key and audience")
	}
	if err := policy.Evaluate(res); err != nil {
		return res, nil, &httpapi.Error{Status: http.StatusForbidden, Code: api.CodePolicyMismatch,
			Msg: "the key's release policy does not accept this workload: " + string(attest.ReasonOf(err)), Err: err}
	}
	var key []byte
	var version int
	if exportPrimary {
		key, version, err = h.cfg.Service.ReleasePrimaryKey(ctx, user, req.Key.PrimaryKey, req.Key.Version)
	} else {
		key, version, err = h.cfg.Service.ReleaseDataKey(ctx, user, req.Key.PrimaryKey, req.Key.DataKey)
	}
	if err != nil {
		return res, nil, err
	}
	info := api.AttestReleaseInfo(user, req.Key.PrimaryKey, version, req.Key.DataKey, req.Nonce)
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, key)
	clear(key)
	if err != nil {
		return res, nil, err
	}
	return res, &api.AttestReleaseResponse{WrappedKey: sealed, KEM: kem, KDF: api.HPKEKDFSHA256, AEAD: api.HPKEAES256GCM,
		KeyVersion: version, TEE: string(res.TEE), TCBStatus: string(res.TCBStatus), AdvisoryIDs: res.AdvisoryIDs,
		Insecure: res.Insecure}, nil
}

// keyPolicy returns the release policy of user's primary key, refusing a
// key that is missing, not enabled, or has no policy.
func (h *Handler) keyPolicy(ctx context.Context, user, primary string) (*attest.Policy, error) {
	if err := h.cfg.Service.CheckUsable(ctx, user, primary); err != nil {
		return nil, err
	}
	b, err := h.cfg.Service.ReleasePolicy(ctx, user, primary)
	if errors.Is(err, kms.ErrNotFound) {
		return nil, fail(http.StatusForbidden, api.CodeNoReleasePolicy,
			"primaryKey [%s] has no release policy: set one (PUT /v1/keys/%s/release-policy) before attested release", primary, primary)
	}
	if err != nil {
		return nil, err
	}
	p, err := attest.ParsePolicy(b)
	if err != nil {
		return nil, errors.Join(errors.New("stored release policy does not parse"), err)
	}
	return p, nil
}

// verify verifies a quote with the configured collateral at the
// configured time.
func (h *Handler) verify(ctx context.Context, quote []byte) (*attest.Result, error) {
	src := h.cfg.Collateral
	if src == nil {
		src = noCollateral{}
	}
	res, err := attest.VerifyWithSource(ctx, quote, src, attest.Options{Now: h.cfg.Now(),
		TrustedRootSHA256: h.cfg.TrustedRootSHA256, CollateralGrace: h.cfg.CollateralGrace, AllowMockTEE: h.cfg.AllowMockTEE})
	if err == nil {
		return res, nil
	}
	if errors.Is(err, attest.ErrCollateralUnavailable) {
		return nil, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Msg: "collateral for this platform is unavailable: retry later or ask the operator", Err: err}
	}
	reason := attest.ReasonOf(err)
	if reason == "" {
		return nil, err
	}
	return nil, &httpapi.Error{Status: http.StatusForbidden, Code: api.CodeAttestationFailed,
		Msg: "quote verification failed: " + string(reason), Err: err}
}

// noCollateral is the source when none is configured.
type noCollateral struct{}

func (noCollateral) Collateral(context.Context, attest.CollateralRequest) (attest.Collateral, error) {
	return attest.Collateral{}, errors.Join(attest.ErrCollateralUnavailable,
		errors.New("no collateral source configured (-attest-collateral-dir or -attest-pccs-url)"))
}

// parseHPKEPublicKey parses a DER SubjectPublicKeyInfo of an X25519 or
// P-256 key as an HPKE DHKEM recipient key.
func parseHPKEPublicKey(spki []byte) (hpke.PublicKey, uint16, error) {
	bad := func(why string) error { return kms.Errorf(kms.ErrInvalid, "public_key: %s", why) }
	if len(spki) == 0 {
		return nil, 0, bad("missing (DER SubjectPublicKeyInfo of an ephemeral X25519 or P-256 key)")
	}
	k, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, 0, bad("not a DER SubjectPublicKeyInfo")
	}
	var pub *ecdh.PublicKey
	switch k := k.(type) {
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.X25519() {
			return nil, 0, bad("want an X25519 or P-256 key")
		}
		pub = k
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, 0, bad("want an X25519 or P-256 key")
		}
		if pub, err = k.ECDH(); err != nil {
			return nil, 0, bad("invalid P-256 point")
		}
	default:
		return nil, 0, bad("want an X25519 or P-256 key")
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, 0, bad("unusable key")
	}
	return pk, pk.KEM().ID(), nil
}

// putReleasePolicy sets a key's release policy: its owner may create one,
// only an admin may replace it (a stolen user token must not be able to
// loosen it).
func (h *Handler) putReleasePolicy(w http.ResponseWriter, r *http.Request) error {
	id, o, err := h.policyCaller(r)
	if err != nil {
		return h.auditRecord(r, w, id.String(), "set_release_policy", "", 0, false, err)
	}
	name := r.PathValue("name")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	p, err := h.releasePolicy(body)
	if err == nil {
		var canon []byte
		canon, err = json.Marshal(p)
		if err == nil {
			err = h.cfg.Service.SetReleasePolicy(r.Context(), o, name, canon, id.admin != "")
		}
	}
	insecure := p != nil && p.TEE == attest.TEEMock
	if err := h.auditRecord(r, w, id.String(), "set_release_policy", o+"/"+name, 0, insecure, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// releasePolicy parses and checks a policy for key release.
func (h *Handler) releasePolicy(body []byte) (*attest.Policy, error) {
	p, err := attest.ParsePolicy(body)
	switch {
	case err != nil:
		return nil, kms.Errorf(kms.ErrInvalid, "release policy: %v", err)
	case p.AllowAnyCode:
		return nil, kms.Errorf(kms.ErrInvalid, "release policy: allow_any_code is refused: a release policy must pin the workload's code (MRENCLAVE, MRSIGNER+ISVPRODID or MRTD)")
	case p.ReportData != nil:
		return nil, kms.Errorf(kms.ErrInvalid, "release policy: report_data cannot be pinned: the server binds report data to the nonce, public key and audience")
	case p.TEE == attest.TEEMock && !h.cfg.AllowMockTEE:
		return nil, kms.Errorf(kms.ErrInvalid, "release policy: this server does not accept the mock TEE (-attest-allow-mock-tee is off)")
	}
	return p, nil
}

func (h *Handler) getReleasePolicy(w http.ResponseWriter, r *http.Request) error {
	id, o, err := h.policyCaller(r)
	if err != nil {
		return h.auditRecord(r, w, id.String(), "get_release_policy", "", 0, false, err)
	}
	name := r.PathValue("name")
	b, err := h.cfg.Service.ReleasePolicy(r.Context(), o, name)
	if err := h.auditRecord(r, w, id.String(), "get_release_policy", o+"/"+name, 0, false, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, json.RawMessage(b))
}

func (h *Handler) deleteReleasePolicy(w http.ResponseWriter, r *http.Request) error {
	id, o, err := h.policyCaller(r)
	if err == nil && id.admin == "" {
		err = kms.Errorf(kms.ErrForbidden, "only an admin can remove a release policy")
	}
	if err != nil {
		return h.auditRecord(r, w, id.String(), "delete_release_policy", "", 0, false, err)
	}
	name := r.PathValue("name")
	err = h.cfg.Service.DeleteReleasePolicy(r.Context(), o, name)
	if err := h.auditRecord(r, w, id.String(), "delete_release_policy", o+"/"+name, 0, false, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// policyCaller authenticates a release policy request and returns the
// caller and the keys' owner.
func (h *Handler) policyCaller(r *http.Request) (identity, string, error) {
	id, err := h.bearer(r)
	if err != nil {
		return id, "", err
	}
	o, err := owner(id, r)
	return id, o, err
}
