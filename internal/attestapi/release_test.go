package attestapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/attest"
)

// TestRouteTable pins the limits of every attestation route.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	want := map[string]struct {
		maxBody int64
		timeout time.Duration
		bigdl   bool
	}{
		"GET /{$}":                              {4096, 5 * time.Second, true},
		"GET /enroll":                           {4096, 10 * time.Second, true},
		"POST /registerPolicy":                  {64 << 10, 10 * time.Second, true},
		"POST /verifyQuote":                     {256 << 10, 30 * time.Second, true},
		"POST /v1/attest/challenge":             {4096, 10 * time.Second, false},
		"POST /v1/attest/release":               {256 << 10, 30 * time.Second, false},
		"PUT /v1/keys/{name}/release-policy":    {64 << 10, 10 * time.Second, false},
		"GET /v1/keys/{name}/release-policy":    {4096, 10 * time.Second, false},
		"DELETE /v1/keys/{name}/release-policy": {4096, 10 * time.Second, false},
	}
	routes := (&Handler{}).routes()
	if len(routes) != len(want) {
		t.Errorf("%d routes, want %d", len(routes), len(want))
	}
	for _, rt := range routes {
		w, ok := want[rt.method+" "+rt.pattern]
		if !ok {
			t.Errorf("unexpected route %s %s", rt.method, rt.pattern)
			continue
		}
		if rt.maxBody != w.maxBody || rt.timeout != w.timeout || rt.bigdl != w.bigdl {
			t.Errorf("%s %s: maxBody %d timeout %v bigdl %v, want %d %v %v", rt.method, rt.pattern,
				rt.maxBody, rt.timeout, rt.bigdl, w.maxBody, w.timeout, w.bigdl)
		}
	}
}

// TestExpiredNonce uses a short TTL and a clock the test moves.
func TestExpiredNonce(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := newEnv(t, func(c *Config) { c.Now, c.NonceTTL = clock.Now, 2*time.Second })
	e.seedUser(t, "alice", "pk")
	if _, err := e.sdk(t, "alice").SetReleasePolicy(t.Context(), "pk", mockPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	c := &caller{base: e.srv.URL, hc: e.srv.Client(), bearer: "Bearer alice:" + userToken}
	nonce := c.challenge(t)
	_, spki := ephemeral(t)
	clock.Add(3 * time.Second)
	req := releaseReq(nonce, spki, testAudience, "pk", mrGood)
	for range 2 { // stays "expired": an expired nonce is not burnt
		status, b := c.post(t, api.PathAttestRelease, req)
		wantCode(t, status, b, http.StatusBadRequest, api.CodeNonceExpired)
	}
	// Just within the TTL it works.
	nonce = c.challenge(t)
	clock.Add(1900 * time.Millisecond)
	if status, b := c.post(t, api.PathAttestRelease, releaseReq(nonce, spki, testAudience, "pk", mrGood)); status != 200 {
		t.Fatalf("release within the TTL: %d %s", status, b)
	}
	// The sweep removes expired nonces and tombstones an hour after expiry.
	clock.Add(2 * time.Hour)
	if err := e.h.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{docNonce, docNonceUsed} {
		if docs, err := e.store.ListDocs(t.Context(), kind, ""); err != nil || len(docs) != 0 {
			t.Errorf("%s after sweep: %d docs, %v", kind, len(docs), err)
		}
	}
	status, b := c.post(t, api.PathAttestRelease, req)
	wantCode(t, status, b, http.StatusBadRequest, api.CodeNonceUnknown)
}

// TestConcurrentReplay: of many concurrent releases with one nonce,
// exactly one succeeds (the compare-and-swap delete of the nonce).
func TestConcurrentReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.seedUser(t, "alice", "pk")
	if _, err := e.sdk(t, "alice").SetReleasePolicy(t.Context(), "pk", mockPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	c := &caller{base: e.srv.URL, hc: e.srv.Client(), bearer: "Bearer alice:" + userToken}
	_, spki := ephemeral(t)
	req := releaseReq(c.challenge(t), spki, testAudience, "pk", mrGood)
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	bodies := make([][]byte, n)
	for i := range n {
		wg.Go(func() { statuses[i], bodies[i] = c.post(t, api.PathAttestRelease, req) })
	}
	wg.Wait()
	ok := 0
	for i := range n {
		switch statuses[i] {
		case 200:
			ok++
		default:
			wantCode(t, statuses[i], bodies[i], http.StatusConflict, api.CodeNonceReplayed)
		}
	}
	if ok != 1 {
		t.Fatalf("%d releases succeeded with one nonce, want exactly 1", ok)
	}
}

// TestReleasePolicyRules: what a release policy may say, and who may
// change it.
func TestReleasePolicyRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.seedUser(t, "alice", "pk")
	c := &caller{base: e.srv.URL, hc: e.srv.Client(), bearer: "Bearer alice:" + userToken}
	path := "/v1/keys/pk/release-policy"
	for _, tc := range []struct {
		name, policy string
	}{
		{"400/allow_any_code", `{"tee":"sgx","sgx":{},"report_data":"` + hexN(64) + `","allow_any_code":true}`},
		{"400/report data pinned", `{"tee":"sgx","sgx":{"mrenclave":["` + hexN(32) + `"]},"report_data":"` + hexN(64) + `"}`},
		{"400/no code identity", `{"tee":"sgx","sgx":{"isvprodid":[1]}}`},
		{"400/unknown field", `{"tee":"sgx","sgx":{"mrenclave":["` + hexN(32) + `"]},"extra":1}`},
		{"400/short measurement", `{"tee":"sgx","sgx":{"mrenclave":["abcd"]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := c.send(t, "PUT", path, json.RawMessage(tc.policy))
			wantCode(t, status, b, http.StatusBadRequest, api.CodeInvalid)
		})
	}
	status, b := c.send(t, "PUT", "/v1/keys/nokey/release-policy", json.RawMessage(mockPolicy(mrGood)))
	wantCode(t, status, b, http.StatusNotFound, api.CodeNotFound)
	if status, b := c.send(t, "PUT", path, json.RawMessage(mockPolicy(mrGood))); status != 200 {
		t.Fatalf("set: %d %s", status, b)
	}
	status, b = c.send(t, "PUT", path, json.RawMessage(mockPolicy(mrOther)))
	wantCode(t, status, b, http.StatusConflict, api.CodeExists)
	status, b = c.send(t, "DELETE", path, nil)
	wantCode(t, status, b, http.StatusForbidden, api.CodeForbidden)
	status, b = c.send(t, "GET", path, nil)
	if status != 200 || !bytes.Contains(b, []byte(`"tee":"mock"`)) {
		t.Fatalf("get: %d %s", status, b)
	}
}

func hexN(n int) string { return string(bytes.Repeat([]byte("ab"), n)) }

// TestMockOff: without AllowMockTEE a mock quote is refused even for a
// key with a policy, and mock policies cannot be set.
func TestMockOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AllowMockTEE = false })
	e.seedUser(t, "alice", "pk")
	cl := e.sdk(t, "alice")
	if _, err := cl.SetReleasePolicy(t.Context(), "pk", mockPolicy(mrGood)); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("mock policy on a server without mock TEE: %v, want ErrInvalid", err)
	}
	if _, err := cl.SetReleasePolicy(t.Context(), "pk", sgxPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	_, err := cl.ReleaseDataKey(t.Context(), "pk", "dk", client.MockQuoteProvider{MREnclave: mrGood}, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != api.CodeAttestationFailed || !errors.Is(err, client.ErrAttestation) {
		t.Fatalf("mock quote without the mock option: %v, want %s", err, api.CodeAttestationFailed)
	}
	contains(t, ce.Message, string(attest.ReasonMockNotAllowed))
}

// TestRealQuoteInRelease: a genuine Intel quote verifies in the release
// path (at its pinned time) but cannot bind a nonce it was not made for.
func TestRealQuoteInRelease(t *testing.T) {
	t.Parallel()
	dir := dcapDir(t)
	e := newEnv(t, func(c *Config) { c.Collateral, c.Now = vectorSource{dir}, func() time.Time { return timeSGX } })
	e.seedUser(t, "alice", "pk")
	quote := dcap(t, dir, "quote_v3_ecdsa_p256_pck_chain.bin")
	q, err := attest.ParseQuote(quote)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk(t, "alice").SetReleasePolicy(t.Context(), "pk", sgxPolicy(q.SGX.MREnclave)); err != nil {
		t.Fatal(err)
	}
	c := &caller{base: e.srv.URL, hc: e.srv.Client(), bearer: "Bearer alice:" + userToken}
	_, spki := ephemeral(t)
	req := api.AttestReleaseRequest{Nonce: c.challenge(t), Quote: quote, PublicKey: spki, Audience: testAudience,
		Key: api.AttestKeyRef{PrimaryKey: "pk", DataKey: "dk"}}
	status, b := c.post(t, api.PathAttestRelease, req)
	wantCode(t, status, b, http.StatusForbidden, api.CodeReportDataMismatch)
}
