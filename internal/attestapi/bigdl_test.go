package attestapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
)

// The real Intel-signed vectors live outside the repository
// (../shared/testdata/dcap, see its PROVENANCE.md); they are read in
// place, never copied. KMS_DCAP_TESTDATA overrides the location.
const dcapRel = "../../../shared/testdata/dcap"

func dcapDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KMS_DCAP_TESTDATA")
	if dir == "" {
		dir = dcapRel
	}
	if _, err := os.Stat(filepath.Join(dir, "PROVENANCE.md")); err != nil {
		t.Skipf("real DCAP vectors not found in %s (set KMS_DCAP_TESTDATA to ../shared/testdata/dcap): %v", dir, err)
	}
	return dir
}

func dcap(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Pinned verification times of PROVENANCE.md.
var (
	timeSGX    = time.Unix(1671497404, 0) // 2022-12-20T00:50:04Z
	timeTDX    = time.Unix(1725263032, 0) // 2024-09-02T07:43:52Z
	timeTDXOld = time.Unix(1687091776, 0) // 2023-06-18T12:36:16Z
)

// vectorSource serves the vectors' collateral by platform, read in place.
type vectorSource struct{ dir string }

func (v vectorSource) Collateral(_ context.Context, req attest.CollateralRequest) (attest.Collateral, error) {
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(v.dir, name))
		return b
	}
	chain := read("tcb_info_v3_fmspc_00606A000000_certs.pem")
	switch fmspc := hex.EncodeToString(req.FMSPC[:]); {
	case req.TEE == attest.TEESGX && fmspc == "00606a000000":
		return attest.Collateral{TCBInfo: read("tcb_info_v3_fmspc_00606A000000.json"), TCBInfoChain: chain,
			QEIdentity: read("qe_identity_v2.json")}, nil
	case req.TEE == attest.TEETDX && fmspc == "c0806f000000":
		return attest.Collateral{TCBInfo: read("tcb_info_v3_tdx_fmspc_C0806F000000.json"), TCBInfoChain: chain,
			QEIdentity: read("qe_identity_v2_tdx2.json")}, nil
	case req.TEE == attest.TEETDX && fmspc == "50806f000000":
		return attest.Collateral{TCBInfo: read("tcb_info_v3_tdx_fmspc_50806F000000.json"), TCBInfoChain: chain,
			QEIdentity: read("qe_identity_v2_tdx.json"), RootCRL: read("root_ca_crl_2023-04.der"),
			PCKCRL: read("pck_platform_crl_2023-06.der")}, nil
	}
	return attest.Collateral{}, attest.ErrCollateralUnavailable
}

// bigdlClient speaks to the BigDL AS exactly as PPML's clients do: JSON
// bodies with Content-Type application/json, the status ignored, the
// answer parsed as JSON (org.json / Python json.loads).
type bigdlClient struct {
	t    *testing.T
	base string // e.g. https://host:port/attestation
	hc   *http.Client
}

func (b *bigdlClient) do(method, path string, body any) (int, map[string]any) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		b.t.Fatalf("%s %s: answer is not JSON (BigDL's clients would crash): %d %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// enroll is GET /enroll (curl in PPML's docs).
func (b *bigdlClient) enroll() (appID, apiKey string) {
	b.t.Helper()
	_, out := b.do("GET", "/enroll", nil)
	appID, _ = out["appID"].(string)
	apiKey, _ = out["apiKey"].(string)
	if len(appID) != 36 || len(apiKey) != 32 {
		b.t.Fatalf("enroll: %v", out)
	}
	return appID, apiKey
}

// registerMREnclave is bigdl_attestation_service_register of PPML's
// Python helper: it sends mrEnclave and mrSigner whatever the type.
func (b *bigdlClient) registerMREnclave(appID, apiKey, mrEnclave string) string {
	b.t.Helper()
	_, out := b.do("POST", "/registerPolicy", map[string]string{"appID": appID, "apiKey": apiKey,
		"policyType": "SGXMREnclavePolicy", "mrEnclave": mrEnclave, "mrSigner": ""})
	id, _ := out["policyID"].(string)
	if len(id) != 36 {
		b.t.Fatalf("registerPolicy: %v", out)
	}
	return id
}

// verify is BigDLAttestationService.attestWithServer (Scala) /
// bigdl_attestation_service (Python): the result field only.
func (b *bigdlClient) verify(appID, apiKey string, quote []byte, policyID string) (int, map[string]any) {
	b.t.Helper()
	body := map[string]string{"appID": appID, "apiKey": apiKey, "quote": base64.StdEncoding.EncodeToString(quote)}
	if policyID != "" {
		body["policyID"] = policyID
	}
	_, out := b.do("POST", "/verifyQuote", body)
	r, ok := out["result"].(float64)
	if !ok {
		b.t.Fatalf("verifyQuote: no numeric result: %v", out)
	}
	return int(r), out
}

// TestBigDLIntelVectors drives the BigDL AS API with real Intel quotes at
// their pinned times.
func TestBigDLIntelVectors(t *testing.T) {
	t.Parallel()
	dir := dcapDir(t)
	sgxQuote := dcap(t, dir, "quote_v3_ecdsa_p256_pck_chain.bin")
	q, err := attest.ParseQuote(sgxQuote)
	if err != nil {
		t.Fatal(err)
	}
	mrEnclave := hex.EncodeToString(q.SGX.MREnclave[:])

	t.Run("SGX/SWHardeningNeeded is a TCB warning", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{now: timeSGX}
		e := newEnv(t, func(c *Config) { c.Collateral, c.Now, c.AllowMockTEE = vectorSource{dir}, clock.Now, false })
		b := &bigdlClient{t: t, base: e.srv.URL + api.PathAttestBigDL, hc: e.srv.Client()}
		app, key := b.enroll()
		good := b.registerMREnclave(app, key, mrEnclave)
		other := b.registerMREnclave(app, key, strings.Repeat("ab", 32))
		// BigDL printed measurements without leading zeros; we pad them.
		short := b.registerMREnclave(app, key, strings.TrimLeft(mrEnclave, "0"))
		for _, tc := range []struct {
			name     string
			policyID string
			want     int
		}{
			{"no policy", "", 1},
			{"its MRENCLAVE", good, 1},
			{"its MRENCLAVE without leading zeros", short, 1},
			{"another MRENCLAVE", other, -1},
		} {
			if got, out := b.verify(app, key, sgxQuote, tc.policyID); got != tc.want {
				t.Errorf("%s: result %d (%v), want %d", tc.name, got, out, tc.want)
			}
		}
		// Scala's later client sends snake_case names.
		_, out := b.do("POST", "/verifyQuote", map[string]string{"app_id": app, "api_key": key,
			"quote": base64.StdEncoding.EncodeToString(sgxQuote), "policy_id": good})
		if out["result"] != 1.0 {
			t.Errorf("snake_case request: %v", out)
		}
		// A different time: the collateral has expired.
		clock.Add(60 * 24 * time.Hour)
		if got, out := b.verify(app, key, sgxQuote, good); got != -1 || out["code"] != api.CodeAttestationFailed {
			t.Errorf("expired collateral: %v", out)
		}
	})

	t.Run("TDX/UpToDate passes", func(t *testing.T) {
		t.Parallel()
		tdx := dcap(t, dir, "quote_v4_tdx_ecdsa_p256.bin")
		tq, err := attest.ParseQuote(tdx)
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, func(c *Config) { c.Collateral, c.Now = vectorSource{dir}, func() time.Time { return timeTDX } })
		b := &bigdlClient{t: t, base: e.srv.URL + api.PathAttestBigDL, hc: e.srv.Client()}
		app, key := b.enroll()
		_, out := b.do("POST", "/registerPolicy", map[string]string{"appID": app, "apiKey": key,
			"policyType": "TDXMRTDPolicy", "mrTD": hex.EncodeToString(tq.TD.MRTD[:])})
		id, _ := out["policyID"].(string)
		if got, out := b.verify(app, key, tdx, id); got != 0 {
			t.Errorf("TDX with its MRTD: %v", out)
		}
		if got, _ := b.verify(app, key, tdx, ""); got != 0 {
			t.Errorf("TDX without policy: %d", got)
		}
	})

	t.Run("TDX/unsupported TCB fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(c *Config) { c.Collateral, c.Now = vectorSource{dir}, func() time.Time { return timeTDXOld } })
		b := &bigdlClient{t: t, base: e.srv.URL + api.PathAttestBigDL, hc: e.srv.Client()}
		app, key := b.enroll()
		got, out := b.verify(app, key, dcap(t, dir, "quote_v4_tdx_ecdsa_p256_out_of_date.bin"), "")
		if got != -1 || out["code"] != api.CodeAttestationFailed || !strings.Contains(out["message"].(string), string(attest.ReasonTCBLevelNotFound)) {
			t.Errorf("out-of-date TDX: %v", out)
		}
	})
}

// TestBigDLRefusals: every refusal still answers JSON with result -1.
func TestBigDLRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := &bigdlClient{t: t, base: e.srv.URL + api.PathAttestBigDL, hc: e.srv.Client()}
	app, key := b.enroll()
	quote := mockQuote(mrGood, [64]byte{1})
	for _, tc := range []struct {
		name       string
		body       map[string]string
		wantStatus int
		wantCode   string
	}{
		{"401/wrong apiKey", map[string]string{"appID": app, "apiKey": strings.Repeat("x", 32), "quote": "AAAA"}, 401, api.CodeUnauthorized},
		{"401/unknown app", map[string]string{"appID": "00000000-0000-4000-8000-000000000000", "apiKey": key, "quote": "AAAA"}, 401, api.CodeUnauthorized},
		{"401/no credentials", map[string]string{"quote": "AAAA"}, 401, api.CodeUnauthorized},
		{"400/quote not base64", map[string]string{"appID": app, "apiKey": key, "quote": "%%%"}, 400, api.CodeInvalid},
		{"404/unknown policy", map[string]string{"appID": app, "apiKey": key, "policyID": "00000000-0000-4000-8000-000000000000",
			"quote": base64.StdEncoding.EncodeToString(quote)}, 404, api.CodeNotFound},
		{"400/unknown policy type", map[string]string{"appID": app, "apiKey": key, "policyType": "NoSuchPolicy"}, 400, api.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/verifyQuote"
			if tc.body["policyType"] != "" {
				path = "/registerPolicy"
			}
			status, out := b.do("POST", path, tc.body)
			if status != tc.wantStatus || out["result"] != -1.0 || out["code"] != tc.wantCode {
				t.Fatalf("got %d %v, want %d result -1 code %s", status, out, tc.wantStatus, tc.wantCode)
			}
		})
	}
	// Another app cannot use this app's policy.
	id := b.registerMREnclave(app, key, hex.EncodeToString(mrGood[:]))
	app2, key2 := b.enroll()
	if got, out := b.verify(app2, key2, quote, id); got != -1 || out["code"] != api.CodeNotFound {
		t.Fatalf("policy of another app: %v", out)
	}
	// A mock quote passes (insecure, labelled) with the mock TEE allowed;
	// a real-quote policy refuses it.
	if got, out := b.verify(app, key, quote, ""); got != 0 || out["insecure"] != true {
		t.Fatalf("mock quote without policy: %v", out)
	}
	if got, out := b.verify(app, key, quote, id); got != -1 || out["code"] != api.CodePolicyMismatch {
		t.Fatalf("mock quote against an SGX policy: %v", out)
	}
	// No collateral source: a real-looking quote is a 503, not a verdict.
	if _, err := os.Stat(filepath.Join(dcapRel, "PROVENANCE.md")); err == nil {
		status, out := b.do("POST", "/verifyQuote", map[string]string{"appID": app, "apiKey": key,
			"quote": base64.StdEncoding.EncodeToString(dcap(t, dcapRel, "quote_v3_ecdsa_p256_pck_chain.bin"))})
		if status != 503 || out["result"] != -1.0 {
			t.Fatalf("no collateral: %d %v", status, out)
		}
	}
	// The welcome page and the root listener's "//" paths.
	resp, err := e.srv.Client().Get(e.srv.URL + "/attestation/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	contains(t, string(body), "BigDL Remote Attestation Service")
}
