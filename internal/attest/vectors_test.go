package attest

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The real Intel-signed vectors live outside the repository (see
// ../shared/testdata/dcap/PROVENANCE.md); they are read in place, never
// copied. KMS_DCAP_TESTDATA overrides the location.
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

func dcap(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dcapDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Pinned verification times of PROVENANCE.md.
var (
	timeSGX      = time.Unix(1671497404, 0) // 2022-12-20T00:50:04Z
	timeTDX      = time.Unix(1725263032, 0) // 2024-09-02T07:43:52Z
	timeTDXOld   = time.Unix(1687091776, 0) // 2023-06-18T12:36:16Z
	timeSPRE4    = time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)
	tcbChainFile = "tcb_info_v3_fmspc_00606A000000_certs.pem"
)

func sgxCollateral(t testing.TB) Collateral {
	return Collateral{
		TCBInfo:      dcap(t, "tcb_info_v3_fmspc_00606A000000.json"),
		TCBInfoChain: dcap(t, tcbChainFile),
		QEIdentity:   dcap(t, "qe_identity_v2.json"),
	}
}

func tdxCollateral(t testing.TB) Collateral {
	return Collateral{
		TCBInfo:      dcap(t, "tcb_info_v3_tdx_fmspc_C0806F000000.json"),
		TCBInfoChain: dcap(t, tcbChainFile),
		QEIdentity:   dcap(t, "qe_identity_v2_tdx2.json"),
	}
}

func tdxOldCollateral(t testing.TB) Collateral {
	return Collateral{
		TCBInfo:      dcap(t, "tcb_info_v3_tdx_fmspc_50806F000000.json"),
		TCBInfoChain: dcap(t, tcbChainFile),
		QEIdentity:   dcap(t, "qe_identity_v2_tdx.json"),
		RootCRL:      dcap(t, "root_ca_crl_2023-04.der"),
		PCKCRL:       dcap(t, "pck_platform_crl_2023-06.der"),
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealSGXv3(t *testing.T) {
	r, err := Verify(dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin"), sgxCollateral(t), Options{Now: timeSGX})
	if err != nil {
		t.Fatal(err)
	}
	if r.TEE != TEESGX || r.Version != 3 || r.SGX == nil || r.TDX != nil || r.Insecure {
		t.Fatalf("result shape: %+v", r)
	}
	if r.PlatformTCBStatus != StatusSWHardeningNeeded || r.QEStatus != StatusUpToDate || r.TCBStatus != StatusSWHardeningNeeded {
		t.Errorf("statuses platform %q qe %q overall %q", r.PlatformTCBStatus, r.QEStatus, r.TCBStatus)
	}
	if got := r.AdvisoryIDs; len(got) != 2 || got[0] != "INTEL-SA-00615" || got[1] != "INTEL-SA-00657" {
		t.Errorf("advisory ids %v", got)
	}
	if !bytes.HasPrefix(r.SGX.MREnclave[:], mustHex(t, "68823bc6")) || !bytes.HasSuffix(r.SGX.MREnclave[:], mustHex(t, "8e8f")) {
		t.Errorf("mrenclave %x", r.SGX.MREnclave)
	}
	if !bytes.HasPrefix(r.SGX.MRSigner[:], mustHex(t, "9affcfae")) || !bytes.HasSuffix(r.SGX.MRSigner[:], mustHex(t, "8d1a")) {
		t.Errorf("mrsigner %x", r.SGX.MRSigner)
	}
	if r.SGX.ISVProdID != 0 || r.SGX.ISVSVN != 0 || r.Debug {
		t.Errorf("isvprodid %d isvsvn %d debug %v", r.SGX.ISVProdID, r.SGX.ISVSVN, r.Debug)
	}
	if hex.EncodeToString(r.FMSPC[:]) != "00606a000000" || r.TCBEvaluationDataNumber != 13 {
		t.Errorf("fmspc %x tcb eval %d", r.FMSPC, r.TCBEvaluationDataNumber)
	}
	if !r.TCBInfoNextUpdate.Equal(time.Date(2023, 1, 18, 9, 40, 10, 0, time.UTC)) ||
		!r.QEIdentityIssueDate.Equal(time.Date(2022, 12, 16, 12, 45, 36, 0, time.UTC)) {
		t.Errorf("collateral dates %v %v", r.TCBInfoNextUpdate, r.QEIdentityIssueDate)
	}
}

func TestRealTDXv4(t *testing.T) {
	r, err := Verify(dcap(t, "quote_v4_tdx_ecdsa_p256.bin"), tdxCollateral(t), Options{Now: timeTDX})
	if err != nil {
		t.Fatal(err)
	}
	if r.TEE != TEETDX || r.Version != 4 || r.TDX == nil || r.SGX != nil {
		t.Fatalf("result shape: %+v", r)
	}
	if r.TCBStatus != StatusUpToDate || r.PlatformTCBStatus != StatusUpToDate || r.QEStatus != StatusUpToDate || r.TDXModuleStatus != StatusUpToDate {
		t.Errorf("statuses %q %q %q %q", r.TCBStatus, r.PlatformTCBStatus, r.QEStatus, r.TDXModuleStatus)
	}
	if want := sha512.Sum512(nil); r.ReportData != want {
		t.Errorf("report data %x, want SHA-512(\"\")", r.ReportData)
	}
	if r.Debug || hex.EncodeToString(r.FMSPC[:]) != "c0806f000000" || len(r.AdvisoryIDs) != 0 {
		t.Errorf("debug %v fmspc %x advisories %v", r.Debug, r.FMSPC, r.AdvisoryIDs)
	}
}

// TestRealNegative: every case asserts its specific reason.
func TestRealNegative(t *testing.T) {
	sgxQuote := func(t *testing.T) []byte { return dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin") }
	tdxQuote := func(t *testing.T) []byte { return dcap(t, "quote_v4_tdx_ecdsa_p256.bin") }
	flip := func(b []byte, off int) []byte { b = bytes.Clone(b); b[off] ^= 0x01; return b }
	tests := []struct {
		name  string
		quote func(t *testing.T) []byte
		col   func(t *testing.T) Collateral
		opts  Options
		want  Reason
	}{
		{"unsupported cert data/eppid", func(t *testing.T) []byte { return dcap(t, "quote_v3_ecdsa_p256_eppid.bin") }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonUnsupportedCertData},
		{"tcb level not found/out-of-date tdx", func(t *testing.T) []byte { return dcap(t, "quote_v4_tdx_ecdsa_p256_out_of_date.bin") }, func(t *testing.T) Collateral { return tdxOldCollateral(t) }, Options{Now: timeTDXOld, RequireCRLs: true}, ReasonTCBLevelNotFound},
		{"tcb level not found/SPR E4 without its trailing bytes", func(t *testing.T) []byte { return dcap(t, "tdx_prod_quote_SPR_E4.dat")[:4935] }, func(t *testing.T) Collateral { return tdxOldCollateral(t) }, Options{Now: timeSPRE4}, ReasonTCBLevelNotFound},
		{"parse/trailing bytes", func(t *testing.T) []byte { return dcap(t, "quote_v4_tdx_ecdsa_p256_trailing.bin") }, func(t *testing.T) Collateral { return tdxCollateral(t) }, Options{Now: timeTDX}, ReasonParse},
		{"parse/SPR E4 trailing bytes", func(t *testing.T) []byte { return dcap(t, "tdx_prod_quote_SPR_E4.dat") }, func(t *testing.T) Collateral { return tdxOldCollateral(t) }, Options{Now: timeSPRE4}, ReasonParse},
		{"tcb signing chain/pck ca chain as tcb info chain", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.TCBInfoChain = dcap(t, "tcb_info_v3_fmspc_00606A000000_certs_bad.pem")
			return c
		}, Options{Now: timeSGX}, ReasonTCBSigningChain},
		{"collateral expired/after next update", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: time.Date(2023, 1, 19, 0, 0, 0, 0, time.UTC)}, ReasonCollateralExpired},
		{"collateral expired/qe identity after next update", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: time.Date(2023, 1, 16, 0, 0, 0, 0, time.UTC)}, ReasonCollateralExpired},
		{"collateral expired/before issue date", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: time.Date(2022, 12, 18, 0, 0, 0, 0, time.UTC)}, ReasonCollateralExpired},
		{"cert expired/tcb signing certificate in 2026", tdxQuote, func(t *testing.T) Collateral { return tdxCollateral(t) }, Options{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), CollateralGrace: 10 * 365 * 24 * time.Hour}, ReasonCertExpired},
		{"cert expired/pck not yet valid", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: time.Date(2022, 12, 1, 0, 0, 0, 0, time.UTC)}, ReasonCertExpired},
		{"quote signature/flipped mrenclave bit", func(t *testing.T) []byte { return flip(sgxQuote(t), 112) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQuoteSig},
		{"quote signature/flipped mrtd bit", func(t *testing.T) []byte { return flip(tdxQuote(t), 184) }, func(t *testing.T) Collateral { return tdxCollateral(t) }, Options{Now: timeTDX}, ReasonQuoteSig},
		{"quote signature/flipped header user data", func(t *testing.T) []byte { return flip(sgxQuote(t), 40) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQuoteSig},
		{"quote signature/flipped signature", func(t *testing.T) []byte { return flip(sgxQuote(t), 436+10) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQuoteSig},
		{"qe binding/flipped attestation key", func(t *testing.T) []byte { return flip(sgxQuote(t), 436+64+5) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQEBinding},
		{"qe report signature/flipped qe report", func(t *testing.T) []byte { return flip(sgxQuote(t), 436+128+100) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQEReportSig},
		{"qe binding/flipped qe auth data", func(t *testing.T) []byte { return flip(sgxQuote(t), 436+128+384+64+2+3) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonQEBinding},
		{"tcb info signature/edited status", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"tcbStatus":"SWHardeningNeeded"`), []byte(`"tcbStatus":"UpToDate"`), 1)
			return c
		}, Options{Now: timeSGX}, ReasonTCBInfoSig},
		{"tcb info signature/re-serialised with whitespace", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"version":3,`), []byte(`"version": 3,`), 1)
			return c
		}, Options{Now: timeSGX}, ReasonTCBInfoSig},
		{"qe identity signature/edited isvsvn", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.QEIdentity = bytes.Replace(c.QEIdentity, []byte(`{"isvsvn":6}`), []byte(`{"isvsvn":5}`), 1)
			return c
		}, Options{Now: timeSGX}, ReasonQEIdentitySig},
		{"collateral/tdx tcb info for an sgx quote", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.TCBInfo = dcap(t, "tcb_info_v3_tdx_fmspc_C0806F000000.json")
			return c
		}, Options{Now: timeSGX, CollateralGrace: 1000 * 24 * time.Hour}, ReasonCollateral},
		{"collateral/td_qe identity for an sgx quote", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.QEIdentity = dcap(t, "qe_identity_v2_tdx2.json")
			return c
		}, Options{Now: timeSGX}, ReasonCollateral},
		{"collateral/missing tcb info", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.TCBInfo = nil
			return c
		}, Options{Now: timeSGX}, ReasonCollateral},
		{"root not pinned/other pin", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX, TrustedRootSHA256: [][32]byte{{1}}}, ReasonRootNotPinned},
		{"crl expired/root crl of 2023 at 2022", sgxQuote, func(t *testing.T) Collateral {
			c := sgxCollateral(t)
			c.RootCRL = dcap(t, "root_ca_crl_2023-04.der")
			return c
		}, Options{Now: timeSGX}, ReasonCRLExpired},
		{"crl expired/pck crl of 2023 at 2024", tdxQuote, func(t *testing.T) Collateral {
			c := tdxCollateral(t)
			c.PCKCRL = dcap(t, "pck_platform_crl_2023-06.der")
			return c
		}, Options{Now: timeTDX}, ReasonCRLExpired},
		{"crl/root crl given as pck crl", func(t *testing.T) []byte { return dcap(t, "quote_v4_tdx_ecdsa_p256_out_of_date.bin") }, func(t *testing.T) Collateral {
			c := tdxOldCollateral(t)
			c.PCKCRL = c.RootCRL
			return c
		}, Options{Now: timeTDXOld}, ReasonCRL},
		{"crl/required but missing", sgxQuote, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX, RequireCRLs: true}, ReasonCRL},
		{"mock not allowed", func(t *testing.T) []byte { return NewMockSGXQuote(&EnclaveReport{}) }, func(t *testing.T) Collateral { return sgxCollateral(t) }, Options{Now: timeSGX}, ReasonMockNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Verify(tt.quote(t), tt.col(t), tt.opts)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (err %v, result %+v), want %q", got, err, r, tt.want)
			}
			if r != nil {
				t.Fatal("result returned with an error")
			}
		})
	}
}

func TestRealGraceAndCRLs(t *testing.T) {
	// Past next update, accepted within the grace period.
	late := time.Date(2023, 1, 19, 0, 0, 0, 0, time.UTC)
	if _, err := Verify(dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin"), sgxCollateral(t), Options{Now: late, CollateralGrace: 5 * 24 * time.Hour}); err != nil {
		t.Fatalf("with grace: %v", err)
	}
	// The CRLs of 2023 are current for the out-of-date TDX quote: verification
	// gets past them (and then finds no TCB level), as checked in
	// TestRealNegative; with a grace they are also accepted a little late.
	late = time.Date(2023, 7, 10, 0, 0, 0, 0, time.UTC)
	quote := dcap(t, "quote_v4_tdx_ecdsa_p256_out_of_date.bin")
	if _, err := Verify(quote, tdxOldCollateral(t), Options{Now: late}); ReasonOf(err) != ReasonCRLExpired {
		t.Fatalf("without grace: %v", err)
	}
	_, err := Verify(quote, tdxOldCollateral(t), Options{Now: late, CollateralGrace: 3 * 24 * time.Hour})
	if ReasonOf(err) != ReasonTCBLevelNotFound {
		t.Fatalf("with grace: %v", err)
	}
}

func TestRealPolicy(t *testing.T) {
	r, err := Verify(dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin"), sgxCollateral(t), Options{Now: timeSGX})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{r.SGX.MREnclave}}}
	if got := ReasonOf(p.Evaluate(r)); got != ReasonPolicyTCBStatus {
		t.Errorf("default policy (UpToDate only): %q, want %q", got, ReasonPolicyTCBStatus)
	}
	p.AcceptedTCBStatus = []TCBStatus{StatusUpToDate, StatusSWHardeningNeeded}
	if err := p.Evaluate(r); err != nil {
		t.Errorf("accepting SWHardeningNeeded: %v", err)
	}
	signer := &Policy{TEE: TEESGX, SGX: &SGXPolicy{MRSigner: []Hex32{r.SGX.MRSigner}, ISVProdID: []uint16{1}}, AcceptedTCBStatus: p.AcceptedTCBStatus}
	if got := ReasonOf(signer.Evaluate(r)); got != ReasonPolicyMeasurement {
		t.Errorf("wrong isvprodid: %q", got)
	}

	rt, err := Verify(dcap(t, "quote_v4_tdx_ecdsa_p256.bin"), tdxCollateral(t), Options{Now: timeTDX})
	if err != nil {
		t.Fatal(err)
	}
	tp := &Policy{TEE: TEETDX, TDX: &TDXPolicy{MRTD: []Hex48{rt.TDX.MRTD}, RTMR0: []Hex48{rt.TDX.RTMR[0]}}}
	if err := tp.Evaluate(rt); err != nil {
		t.Errorf("tdx policy: %v", err)
	}
	if got := ReasonOf(tp.Evaluate(r)); got != ReasonPolicyTEE {
		t.Errorf("tdx policy on sgx result: %q", got)
	}
	if BigDLResult(r, nil) != 1 || BigDLResult(rt, nil) != 0 || BigDLResult(nil, ErrCollateralUnavailable) != -1 {
		t.Error("BigDLResult")
	}
}

func TestRealRequestFor(t *testing.T) {
	req, err := RequestFor(dcap(t, "quote_v4_tdx_ecdsa_p256.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if req.TEE != TEETDX || hex.EncodeToString(req.FMSPC[:]) != "c0806f000000" || req.PCKCA != "platform" {
		t.Errorf("request %+v", req)
	}
	if _, err := RequestFor(dcap(t, "quote_v3_ecdsa_p256_eppid.bin")); ReasonOf(err) != ReasonUnsupportedCertData {
		t.Errorf("eppid: %v", err)
	}
}
