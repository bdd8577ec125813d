package attest

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestDirSource(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 4, TEETDX)
	quote, col, opts := f.build(t)
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tcbinfo-tdx-00906ed50000.json", col.TCBInfo)
	write("tcbinfo-chain.pem", col.TCBInfoChain)
	write("qeidentity-tdx.json", col.QEIdentity)
	write("pckcrl-platform.crl", currentCRL(t, f.pki.pckCA))

	req, err := RequestFor(quote)
	if err != nil {
		t.Fatal(err)
	}
	if req != (CollateralRequest{TEE: TEETDX, FMSPC: f.pki.ext.FMSPC, PCKCA: "platform"}) {
		t.Fatalf("request %+v", req)
	}
	src := DirSource{Dir: dir}
	got, err := src.Collateral(t.Context(), req)
	if err != nil || got.PCKCRL == nil || got.RootCRL != nil {
		t.Fatalf("collateral %v (pck crl %d bytes)", err, len(got.PCKCRL))
	}
	if _, err := VerifyWithSource(t.Context(), quote, src, opts); err != nil {
		t.Fatal(err)
	}

	// Revocation through the directory.
	write("pckcrl-platform.crl", currentCRL(t, f.pki.pckCA, f.pki.pck.cert.SerialNumber))
	if _, err := VerifyWithSource(t.Context(), quote, src, opts); ReasonOf(err) != ReasonPCKRevoked {
		t.Fatalf("revoked: %v", err)
	}
	// Missing collateral is unavailability, not a verdict.
	os.Remove(filepath.Join(dir, "qeidentity-tdx.json"))
	_, err = VerifyWithSource(t.Context(), quote, src, opts)
	if !errors.Is(err, ErrCollateralUnavailable) || !errors.Is(err, fs.ErrNotExist) || ReasonOf(err) != "" {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := (DirSource{Dir: dir}).Collateral(t.Context(), CollateralRequest{TEE: "../x", PCKCA: "platform"}); !errors.Is(err, ErrCollateralUnavailable) {
		t.Fatalf("bad request: %v", err)
	}
}

// fakePCCS serves synthetic collateral with the PCCS v4 API.
func fakePCCS(t *testing.T, f *fixture, col Collateral) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	fmspc := "00906ed50000"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sgx/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Query().Get("fmspc") != fmspc {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("TCB-Info-Issuer-Chain", url.PathEscape(string(col.TCBInfoChain)))
		w.Write(col.TCBInfo)
	})
	mux.HandleFunc("GET /sgx/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", url.PathEscape(string(col.TCBInfoChain)))
		w.Write(col.QEIdentity)
	})
	mux.HandleFunc("GET /sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ca") != "platform" || r.URL.Query().Get("encoding") != "der" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		w.Write(currentCRL(t, f.pki.pckCA))
	})
	mux.HandleFunc("GET /sgx/certification/v4/rootcacrl", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(hexString(currentCRL(t, f.pki.root))))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &hits
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestPCCS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, TEESGX)
	quote, col, opts := f.build(t)
	srv, hits := fakePCCS(t, f, col)
	now := synthNow
	p := &PCCS{BaseURL: srv.URL + "/", Client: srv.Client(), TTL: time.Hour, testOnlyNow: func() time.Time { return now }}
	opts.RequireCRLs = true
	for range 3 {
		if _, err := VerifyWithSource(t.Context(), quote, p, opts); err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("tcb info fetched %d times, want 1 (cached per fmspc)", n)
	}
	now = now.Add(2 * time.Hour)
	if _, err := VerifyWithSource(t.Context(), quote, p, opts); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("tcb info fetched %d times after the ttl, want 2", n)
	}

	// Another FMSPC is a cache miss and an unavailability error.
	_, err := p.Collateral(t.Context(), CollateralRequest{TEE: TEESGX, FMSPC: [6]byte{1}, PCKCA: "platform"})
	if !errors.Is(err, ErrCollateralUnavailable) {
		t.Fatalf("unknown fmspc: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p2 := &PCCS{BaseURL: srv.URL, Client: srv.Client()}
	if _, err := p2.Collateral(ctx, CollateralRequest{TEE: TEESGX, FMSPC: f.pki.ext.FMSPC, PCKCA: "platform"}); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCollateralUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestLoadCollateral(t *testing.T) {
	t.Parallel()
	dir := dcapDir(t)
	c, err := LoadCollateral(CollateralFiles{
		TCBInfo:      filepath.Join(dir, "tcb_info_v3_fmspc_00606A000000.json"),
		TCBInfoChain: filepath.Join(dir, tcbChainFile),
		QEIdentity:   filepath.Join(dir, "qe_identity_v2.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin"), c, Options{Now: timeSGX}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCollateral(CollateralFiles{TCBInfo: filepath.Join(dir, "missing.json")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
