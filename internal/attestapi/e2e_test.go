package attestapi

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/kmstest"
)

const adminToken = "admin-token-0123456789"

// kmsd is a real kmsd (kmstest) with the attestation API.
type kmsd struct {
	s     *kmstest.Server
	audit string
	hc    *http.Client
}

func startKMSD(t *testing.T, args ...string) *kmsd {
	t.Helper()
	dir := t.TempDir()
	admins := filepath.Join(dir, "admins")
	if err := os.WriteFile(admins, []byte("root "+auth.HashToken(adminToken)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditLog := filepath.Join(dir, "audit.log")
	s := kmstest.Start(t, append([]string{"-admin-tokens", admins, "-audit-log", auditLog, "-attest-audience", testAudience}, args...)...)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool}}}
	return &kmsd{s: s, audit: auditLog, hc: hc}
}

func (k *kmsd) sdk(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(k.s.URL, append([]client.Option{client.WithRootCAs(k.s.CAPool)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seed creates user with primary keys (each with data key "dk") through
// the BigDL API, as PPML does, and returns the data keys' plaintext.
func (k *kmsd) seed(t *testing.T, user string, pks ...string) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	c := k.sdk(t)
	if err := c.CreateUser(ctx, user, userToken); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	for _, pk := range pks {
		if err := c.CreatePrimaryKey(ctx, user, userToken, pk); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateDataKey(ctx, user, userToken, pk, "dk"); err != nil {
			t.Fatal(err)
		}
		key, err := c.DataKey(ctx, user, userToken, pk, "dk")
		if err != nil {
			t.Fatal(err)
		}
		keys[pk] = key
	}
	return keys
}

func wantAPIError(t *testing.T, err error, code string, sentinel error) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != code || (sentinel != nil && !errors.Is(err, sentinel)) {
		t.Fatalf("got %v, want code %s (%v)", err, code, sentinel)
	}
	return ce
}

// TestReleaseEndToEnd runs the whole release flow against a real kmsd
// with the mock TEE, through the public client.
func TestReleaseEndToEnd(t *testing.T) {
	k := startKMSD(t, "-attest-allow-mock-tee")
	ctx := t.Context()
	before := k.seed(t, "alice", "pk", "nopolicy", "sgxonly")
	alice := k.sdk(t, client.WithToken("alice", userToken))
	admin := k.sdk(t, client.WithAdminToken("root", adminToken)).ForOwner("alice")
	if _, err := alice.SetReleasePolicy(ctx, "pk", mockPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetReleasePolicy(ctx, "sgxonly", sgxPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	good := client.MockQuoteProvider{MREnclave: mrGood}
	raw := &caller{base: k.s.URL, hc: k.hc, bearer: "Bearer alice:" + userToken}

	t.Run("403/BigDL GET of a data key under a key with a release policy", func(t *testing.T) {
		_, err := k.sdk(t).DataKey(ctx, "alice", userToken, "pk", "dk")
		ce := wantAPIError(t, err, api.CodeForbidden, client.ErrForbidden)
		contains(t, ce.Message, "attested release is required")
	})
	t.Run("200/mock release gives the data key, marked insecure", func(t *testing.T) {
		for _, curve := range []ecdh.Curve{ecdh.X25519(), ecdh.P256()} {
			rel, err := alice.ReleaseDataKey(ctx, "pk", "dk", good, &client.ReleaseOptions{Curve: curve})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rel.Key, before["pk"]) || !rel.Insecure || rel.TEE != "mock" || rel.KeyVersion != 1 {
				t.Fatalf("released %x %+v, want the data key %x, insecure, mock", rel.Key, rel, before["pk"])
			}
		}
	})
	t.Run("409/replayed nonce", func(t *testing.T) {
		_, spki := ephemeral(t)
		req := releaseReq(raw.challenge(t), spki, testAudience, "pk", mrGood)
		if status, b := raw.post(t, api.PathAttestRelease, req); status != 200 {
			t.Fatalf("first use: %d %s", status, b)
		}
		status, b := raw.post(t, api.PathAttestRelease, req)
		wantCode(t, status, b, http.StatusConflict, api.CodeNonceReplayed)
	})
	t.Run("403/wrong public key", func(t *testing.T) {
		_, spki := ephemeral(t)
		_, other := ephemeral(t)
		req := releaseReq(raw.challenge(t), spki, testAudience, "pk", mrGood)
		req.PublicKey = other
		status, b := raw.post(t, api.PathAttestRelease, req)
		wantCode(t, status, b, http.StatusForbidden, api.CodeReportDataMismatch)
	})
	t.Run("400/wrong audience", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "pk", "dk", good, &client.ReleaseOptions{Audience: "https://other-kms:9876"})
		wantAPIError(t, err, api.CodeWrongAudience, client.ErrAttestation)
	})
	t.Run("403/quote bound to another audience", func(t *testing.T) {
		_, spki := ephemeral(t)
		nonce := raw.challenge(t)
		req := releaseReq(nonce, spki, "https://other-kms:9876", "pk", mrGood)
		req.Audience = testAudience
		status, b := raw.post(t, api.PathAttestRelease, req)
		wantCode(t, status, b, http.StatusForbidden, api.CodeReportDataMismatch)
	})
	t.Run("403/policy mismatch: other MRENCLAVE", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "pk", "dk", client.MockQuoteProvider{MREnclave: mrOther}, nil)
		ce := wantAPIError(t, err, api.CodePolicyMismatch, client.ErrAttestation)
		contains(t, ce.Message, string(attest.ReasonPolicyMeasurement))
	})
	t.Run("403/debug enclave", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "pk", "dk", client.MockQuoteProvider{MREnclave: mrGood, Debug: true}, nil)
		ce := wantAPIError(t, err, api.CodePolicyMismatch, client.ErrAttestation)
		contains(t, ce.Message, string(attest.ReasonPolicyDebug))
	})
	t.Run("403/key without a release policy", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "nopolicy", "dk", good, nil)
		wantAPIError(t, err, api.CodeNoReleasePolicy, client.ErrAttestation)
	})
	t.Run("403/a policy that does not name the mock TEE refuses mock evidence", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "sgxonly", "dk", good, nil)
		ce := wantAPIError(t, err, api.CodePolicyMismatch, client.ErrAttestation)
		contains(t, ce.Message, string(attest.ReasonPolicyTEE))
	})
	t.Run("404/missing data key", func(t *testing.T) {
		_, err := alice.ReleaseDataKey(ctx, "pk", "nosuchdk", good, nil)
		wantAPIError(t, err, api.CodeNotFound, client.ErrNotFound)
	})
	t.Run("400/unknown nonce, another user's nonce", func(t *testing.T) {
		_, spki := ephemeral(t)
		status, b := raw.post(t, api.PathAttestRelease, releaseReq(bytes.Repeat([]byte{1}, 32), spki, testAudience, "pk", mrGood))
		wantCode(t, status, b, http.StatusBadRequest, api.CodeNonceUnknown)
		k.seed(t, "bob")
		bob := &caller{base: k.s.URL, hc: k.hc, bearer: "Bearer bob:" + userToken}
		status, b = raw.post(t, api.PathAttestRelease, releaseReq(bob.challenge(t), spki, testAudience, "pk", mrGood))
		wantCode(t, status, b, http.StatusBadRequest, api.CodeNonceUnknown)
	})
	t.Run("401/no credentials", func(t *testing.T) {
		anon := &caller{base: k.s.URL, hc: k.hc}
		status, b := anon.post(t, api.PathAttestChallenge, struct{}{})
		wantCode(t, status, b, http.StatusUnauthorized, api.CodeUnauthorized)
	})
	t.Run("gramine and tdx interfaces", func(t *testing.T) {
		for _, qp := range []client.QuoteProvider{fakeGramine(t, mrGood), fakeTSM(t, mrGood)} {
			rel, err := alice.ReleaseDataKey(ctx, "pk", "dk", qp, nil)
			if err != nil {
				t.Fatalf("%T: %v", qp, err)
			}
			if !bytes.Equal(rel.Key, before["pk"]) {
				t.Fatalf("%T: wrong key", qp)
			}
		}
	})
	t.Run("owner cannot loosen a policy; an admin can", func(t *testing.T) {
		_, err := alice.SetReleasePolicy(ctx, "pk", mockPolicy(mrOther))
		wantAPIError(t, err, api.CodeExists, client.ErrExists)
		wantAPIError(t, alice.DeleteReleasePolicy(ctx, "pk"), api.CodeForbidden, client.ErrForbidden)
		if _, err := admin.SetReleasePolicy(ctx, "pk", mockPolicy(mrOther)); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ReleaseDataKey(ctx, "pk", "dk", client.MockQuoteProvider{MREnclave: mrOther}, nil); err != nil {
			t.Fatal(err)
		}
		if err := admin.DeleteReleasePolicy(ctx, "pk"); err != nil {
			t.Fatal(err)
		}
		// Without a policy the BigDL route serves the key again (this
		// replica forgot its cached guard at once).
		key, err := k.sdk(t).DataKey(ctx, "alice", userToken, "pk", "dk")
		if err != nil || !bytes.Equal(key, before["pk"]) {
			t.Fatalf("BigDL GET after the policy was removed: %v", err)
		}
	})
	t.Run("BigDL AS under /attestation/ with a mock quote", func(t *testing.T) {
		b := &bigdlClient{t: t, base: k.s.URL + api.PathAttestBigDL, hc: k.hc}
		app, key := b.enroll()
		id := b.registerMREnclave(app, key, hex.EncodeToString(mrGood[:]))
		bad := b.registerMREnclave(app, key, hex.EncodeToString(mrOther[:]))
		_, out := b.do("POST", "/registerPolicy", map[string]string{"appID": app, "apiKey": key,
			"policyType": "SGXMREnclavePolicy", "mrEnclave": "zz"})
		if out["result"] != -1.0 {
			t.Fatalf("bad measurement: %v", out)
		}
		// Mock quotes are accepted only by mock policies: a BigDL policy is
		// an SGX policy, so the mock quote fails it but passes without one.
		q := mockQuote(mrGood, [64]byte{})
		if got, out := b.verify(app, key, q, ""); got != 0 || out["insecure"] != true {
			t.Fatalf("no policy: %v", out)
		}
		for _, p := range []string{id, bad} {
			if got, _ := b.verify(app, key, q, p); got != -1 {
				t.Fatalf("mock quote with an SGX policy: %d", got)
			}
		}
	})
	t.Run("audit and metrics mark the mock TEE insecure", func(t *testing.T) {
		log, err := os.ReadFile(k.audit)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `"operation":"attest_release"`) && strings.Contains(line, `"result":"ok"`) {
				found = true
				contains(t, line, `"insecure":true`)
				contains(t, line, `"key":"alice/pk/dk"`)
			}
		}
		if !found {
			t.Fatalf("no attest_release record in the audit log:\n%s", log)
		}
		for _, secret := range [][]byte{before["pk"], []byte(hex.EncodeToString(before["pk"]))} {
			if bytes.Contains(log, secret) || strings.Contains(k.s.Logs(), string(secret)) {
				t.Fatal("the data key appears in the audit or operational log")
			}
		}
		resp, err := k.hc.Get(k.s.URL + api.PathMetrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m bytes.Buffer
		m.ReadFrom(resp.Body)
		contains(t, m.String(), `kms_attest_operations_total{api="release",insecure="true",result="ok",tee="mock"}`)
	})
	if !strings.Contains(k.s.Logs(), "INSECURE: the mock TEE is accepted") {
		t.Error("no warning about the mock TEE at start")
	}
}

// TestReleaseWithoutMockTEE: a kmsd without -attest-allow-mock-tee refuses
// mock evidence and mock policies.
func TestReleaseWithoutMockTEE(t *testing.T) {
	k := startKMSD(t, "-attest-collateral-dir", t.TempDir())
	ctx := t.Context()
	k.seed(t, "alice", "pk")
	alice := k.sdk(t, client.WithToken("alice", userToken))
	_, err := alice.SetReleasePolicy(ctx, "pk", mockPolicy(mrGood))
	ce := wantAPIError(t, err, api.CodeInvalid, client.ErrInvalid)
	contains(t, ce.Message, "mock TEE")
	if _, err := alice.SetReleasePolicy(ctx, "pk", sgxPolicy(mrGood)); err != nil {
		t.Fatal(err)
	}
	_, err = alice.ReleaseDataKey(ctx, "pk", "dk", client.MockQuoteProvider{MREnclave: mrGood}, nil)
	ce = wantAPIError(t, err, api.CodeAttestationFailed, client.ErrAttestation)
	contains(t, ce.Message, string(attest.ReasonMockNotAllowed))
	b := &bigdlClient{t: t, base: k.s.URL + api.PathAttestBigDL, hc: k.hc}
	app, key := b.enroll()
	if got, out := b.verify(app, key, mockQuote(mrGood, [64]byte{}), ""); got != -1 || out["insecure"] != nil {
		t.Fatalf("mock quote: %v", out)
	}
}

// TestAttestationOff: without attestation flags the routes do not exist
// and nothing changes for BigDL clients.
func TestAttestationOff(t *testing.T) {
	s := kmstest.Start(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool}}}
	for _, p := range []string{"/attestation/enroll", api.PathAttestChallenge} {
		resp, err := hc.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// fakeGramine is Gramine's /dev/attestation in a temporary directory: quote
// is a FIFO that a goroutine fills with a mock quote of the report data
// written to user_report_data, as Gramine would with a real quote.
func fakeGramine(t *testing.T, mr [32]byte) client.QuoteProvider {
	dir := t.TempDir()
	for name, content := range map[string]string{"attestation_type": "dcap\n", "user_report_data": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serveFIFO(t, filepath.Join(dir, "quote"), filepath.Join(dir, "user_report_data"), mr)
	return client.GramineQuoteProvider{Dir: dir}
}

// fakeTSM is a configfs-tsm report entry: outblob is a FIFO answering
// inblob.
func fakeTSM(t *testing.T, mr [32]byte) client.QuoteProvider {
	dir := t.TempDir()
	entry := filepath.Join(dir, "e1")
	if err := os.Mkdir(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"provider": "tdx_guest\n", "inblob": "", "generation": "1\n"} {
		if err := os.WriteFile(filepath.Join(entry, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serveFIFO(t, filepath.Join(entry, "outblob"), filepath.Join(entry, "inblob"), mr)
	return client.TDXQuoteProvider{Dir: dir, Name: "e1"}
}

// serveFIFO makes out a FIFO and, once, answers a reader with a mock quote
// of the report data in in.
func serveFIFO(t *testing.T, out, in string, mr [32]byte) {
	t.Helper()
	if err := syscall.Mkfifo(out, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		// Unblock an open that no reader will match.
		if f, err := os.OpenFile(out, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
	})
	go func() {
		defer close(done)
		f, err := os.OpenFile(out, os.O_WRONLY, 0) // blocks until the provider reads
		if err != nil || ctx.Err() != nil {
			if f != nil {
				f.Close()
			}
			return
		}
		defer f.Close()
		rd, err := os.ReadFile(in)
		if err != nil || len(rd) != 64 {
			return
		}
		f.Write(mockQuote(mr, [64]byte(rd)))
	}()
}
