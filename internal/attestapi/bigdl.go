package attestapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/kms"
)

// BigDL's remote attestation service (BigDLRemoteAttestationService, port
// 9875), as PPML's AttestationCLI, BigDLAttestationService (Scala) and the
// Python helpers call it: JSON bodies with camelCase fields, every answer
// JSON. Differences, all deliberate:
//
//   - enrolled apps and policies live in the store (BigDL: a file
//     encrypted with a default secret), API keys only as argon2id hashes;
//   - measurements are compared at full width, ISVPRODID in the right byte
//     order, and the quote is fully verified offline (package attest);
//   - a verdict is answered with status 200 and {"result":0|1|-1} (BigDL
//     used 400 for -1 and sometimes quoted the number); every error
//     carries "result":-1 too, so BigDL's clients, which read only
//     "result", fail closed;
//   - the snake_case aliases app_id, api_key and policy_id that one BigDL
//     client version sends are accepted.
//
// Enrollment is open, as in BigDL, and bounded (Config.MaxApps,
// MaxPoliciesPerApp). A BigDL policy only answers /verifyQuote: it can
// never release a key (that takes a key's own release policy).

const (
	docApp    = "attest-app"    // id appID
	docPolicy = "attest-policy" // id appID + "/" + policyID
)

type appDoc struct {
	APIKeyHash string    `json:"api_key_hash"`
	Created    time.Time `json:"created"`
}

type policyDoc struct {
	PolicyType string          `json:"policy_type"`
	Policy     json.RawMessage `json:"policy"`
	Created    time.Time       `json:"created"`
}

// bigdlRequest is the union of the BigDL AS request bodies.
type bigdlRequest struct {
	AppID    string `json:"appID"`
	APIKey   string `json:"apiKey"`
	PolicyID string `json:"policyID"`
	Quote    string `json:"quote"`

	AppIDSnake    string `json:"app_id"`
	APIKeySnake   string `json:"api_key"`
	PolicyIDSnake string `json:"policy_id"`

	PolicyType string          `json:"policyType"`
	MREnclave  string          `json:"mrEnclave"`
	MRSigner   string          `json:"mrSigner"`
	ISVProdID  json.RawMessage `json:"isvProdID"`
	ReportData string          `json:"reportData"`
	MRTD       string          `json:"mrTD"`
	RTMR       string          `json:"rtmr"`
}

func (q *bigdlRequest) normalize() {
	alias := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	alias(&q.AppID, q.AppIDSnake)
	alias(&q.APIKey, q.APIKeySnake)
	alias(&q.PolicyID, q.PolicyIDSnake)
}

// welcomeText is the body of GET / (BigDL printed its usage there).
const welcomeText = "Welcome to BigDL Remote Attestation Service (served by kmsd)\n\n" +
	"enroll an account like: GET <address>/enroll\n" +
	"register a policy like: POST <address>/registerPolicy\n" +
	`  {"appID":"your_app_id","apiKey":"your_api_key","policyType":"SGXMREnclavePolicy","mrEnclave":"<64 hex>"}` + "\n" +
	"verify your quote like: POST <address>/verifyQuote\n" +
	`  {"appID":"your_app_id","apiKey":"your_api_key","quote":"<base64>","policyID":"a_policy_id"}` + "\n"

func (h *Handler) welcome(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=UTF-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	_, err := w.Write([]byte(welcomeText))
	return err
}

// enroll creates an app and answers its id and API key (shown once).
func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	apps, err := h.cfg.Docs.ListDocs(ctx, docApp, "")
	if err == nil && len(apps) >= h.cfg.MaxApps {
		err = kms.Errorf(kms.ErrForbidden, "enrollment limit of %d apps reached", h.cfg.MaxApps)
	}
	var resp api.BigDLEnrollResponse
	if err == nil {
		resp = api.BigDLEnrollResponse{AppID: newUUID(), APIKey: newAPIKey()}
		b, _ := json.Marshal(appDoc{APIKeyHash: h.cfg.HashToken(resp.APIKey), Created: h.cfg.Now().UTC()})
		_, err = h.cfg.Docs.PutDoc(ctx, kms.Doc{Kind: docApp, ID: resp.AppID, Value: b, Updated: h.cfg.Now().UTC()})
	}
	if err := h.auditRecord(r, w, "app/"+resp.AppID, "attest_enroll", "", 0, false, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// registerPolicy stores a BigDL policy of the caller's app.
func (h *Handler) registerPolicy(w http.ResponseWriter, r *http.Request) error {
	var req bigdlRequest
	if err := decodeLenient(r, &req); err != nil {
		return err
	}
	if err := h.authenticateApp(r, &req); err != nil {
		return h.auditRecord(r, w, "app/"+req.AppID, "attest_register_policy", "", 0, false, err)
	}
	policyID, err := h.storePolicy(r.Context(), &req)
	if err := h.auditRecord(r, w, "app/"+req.AppID, "attest_register_policy", policyID, 0, false, err); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.BigDLRegisterPolicyResponse{PolicyID: policyID})
}

func (h *Handler) storePolicy(ctx context.Context, req *bigdlRequest) (string, error) {
	bp := attest.BigDLPolicy{PolicyType: req.PolicyType, MREnclave: req.MREnclave, MRSigner: req.MRSigner,
		ISVProdID: isvProdID(req.ISVProdID), ReportData: req.ReportData, MRTD: req.MRTD, RTMR: req.RTMR}
	p, err := bp.Policy()
	if err != nil {
		return "", kms.Errorf(kms.ErrInvalid, "%v", err)
	}
	existing, err := h.cfg.Docs.ListDocs(ctx, docPolicy, req.AppID+"/")
	if err != nil {
		return "", err
	}
	if len(existing) >= h.cfg.MaxPoliciesPerApp {
		return "", kms.Errorf(kms.ErrForbidden, "limit of %d policies per app reached", h.cfg.MaxPoliciesPerApp)
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(policyDoc{PolicyType: req.PolicyType, Policy: pj, Created: h.cfg.Now().UTC()})
	id := newUUID()
	_, err = h.cfg.Docs.PutDoc(ctx, kms.Doc{Kind: docPolicy, ID: req.AppID + "/" + id, Value: b, Updated: h.cfg.Now().UTC()})
	return id, err
}

// isvProdID accepts BigDL's isvProdID as a JSON number or string.
func isvProdID(raw json.RawMessage) json.Number {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return json.Number(strings.TrimSpace(s))
	}
	return json.Number(strings.TrimSpace(string(raw)))
}

// verifyQuote verifies a quote, optionally against one of the app's
// policies, and answers BigDL's result: 0 pass, 1 pass with a TCB warning,
// -1 fail.
func (h *Handler) verifyQuote(w http.ResponseWriter, r *http.Request) error {
	var req bigdlRequest
	if err := decodeLenient(r, &req); err != nil {
		return err
	}
	if err := h.authenticateApp(r, &req); err != nil {
		return h.auditRecord(r, w, "app/"+req.AppID, "attest_verify_quote", "", 0, false, err)
	}
	res, verdict, err := h.bigdlVerdict(r.Context(), &req)
	if err != nil {
		// Malformed quote, unknown policy, collateral unavailable: an
		// error (with result -1), not a verdict.
		h.count("bigdl", res, err)
		return h.auditRecord(r, w, "app/"+req.AppID, "attest_verify_quote", req.PolicyID, 0, false, err)
	}
	h.count("bigdl", res, verdict)
	if verdict != nil {
		h.logRefusal(r, "bigdl verifyQuote: fail", "app/"+req.AppID, res, verdict)
	}
	out := api.BigDLVerifyQuoteResponse{Result: attest.BigDLResult(res, verdict), Insecure: res != nil && res.Insecure}
	if verdict != nil {
		_, out.Code, out.Message, _ = httpapi.Classify(verdict)
	}
	if err := h.auditRecord(r, w, "app/"+req.AppID, "attest_verify_quote", req.PolicyID, 0, out.Insecure, verdict); err != nil &&
		verdict == nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// bigdlVerdict returns the verification result and the verdict (nil:
// pass); err is a request or server failure that is not a verdict.
func (h *Handler) bigdlVerdict(ctx context.Context, req *bigdlRequest) (res *attest.Result, verdict, err error) {
	quote, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.Quote))
	if err != nil || len(quote) == 0 {
		return nil, nil, kms.Errorf(kms.ErrInvalid, "quote: want the quote in standard base64")
	}
	var policy *attest.Policy
	if req.PolicyID != "" {
		if policy, err = h.appPolicy(ctx, req.AppID, req.PolicyID); err != nil {
			return nil, nil, err
		}
	}
	res, err = h.verify(ctx, quote)
	if err != nil {
		if attest.ReasonOf(err) != "" {
			return nil, err, nil
		}
		return nil, nil, err
	}
	if policy != nil {
		if err := policy.Evaluate(res); err != nil {
			return res, fail(http.StatusForbidden, api.CodePolicyMismatch, "policy mismatch: %s", attest.ReasonOf(err)), nil
		}
	}
	return res, nil, nil
}

// appPolicy loads one of app's policies.
func (h *Handler) appPolicy(ctx context.Context, app, policyID string) (*attest.Policy, error) {
	if err := kms.ValidateName("policyID", policyID); err != nil {
		return nil, err
	}
	d, err := h.cfg.Docs.Doc(ctx, docPolicy, app+"/"+policyID)
	if errors.Is(err, kms.ErrNotFound) {
		return nil, kms.Errorf(kms.ErrNotFound, "policy %q does not exist for this app", policyID)
	}
	if err != nil {
		return nil, err
	}
	var pd policyDoc
	if err := json.Unmarshal(d.Value, &pd); err != nil {
		return nil, fmt.Errorf("policy %s: %w", d.ID, err)
	}
	return attest.ParsePolicy(pd.Policy)
}

// authenticateApp checks a request's appID and apiKey (cached and
// throttled like user tokens).
func (h *Handler) authenticateApp(r *http.Request, req *bigdlRequest) error {
	req.normalize()
	if req.AppID == "" || req.APIKey == "" {
		return kms.Errorf(kms.ErrPermission, "appID and apiKey are required (GET /enroll gives them)")
	}
	if kms.ValidateName("appID", req.AppID) != nil {
		return kms.Errorf(kms.ErrPermission, "unknown appID or wrong apiKey")
	}
	err := h.apps.Authenticate(r.Context(), req.AppID, req.APIKey, clientAddr(r))
	if errors.Is(err, kms.ErrPermission) {
		return kms.Errorf(kms.ErrPermission, "unknown appID or wrong apiKey")
	}
	return err
}

// lookupApp is the app authenticator's user lookup.
func (h *Handler) lookupApp(ctx context.Context, appID string) (kms.User, error) {
	d, err := h.cfg.Docs.Doc(ctx, docApp, appID)
	if err != nil {
		return kms.User{}, err
	}
	var a appDoc
	if err := json.Unmarshal(d.Value, &a); err != nil {
		return kms.User{}, fmt.Errorf("app %s: %w", appID, err)
	}
	return kms.User{Name: appID, TokenHash: a.APIKeyHash, Created: a.Created}, nil
}

// newUUID returns a random (version 4) UUID, as BigDL's ids.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newAPIKey returns 32 random letters and digits (about 190 bits), as
// BigDL's keys.
func newAPIKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 32)
	var buf [64]byte
	for len(out) < 32 {
		rand.Read(buf[:])
		for _, c := range buf {
			if c < 248 && len(out) < 32 { // 248 = 4 × 62: no modulo bias
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out)
}
