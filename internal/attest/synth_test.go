package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"slices"
	"testing"
)

// fixture is a synthetic quote with its collateral, built on demand so that
// tests can change any part before signing.
type fixture struct {
	pki *testPKI
	q   *Quote
	tcb map[string]any
	qe  map[string]any
}

func newFixture(t testing.TB, version uint16, tee TEE) *fixture {
	t.Helper()
	p := newTestPKI(t)
	f := &fixture{pki: p, q: p.newQuote(version, tee), qe: p.qeIdentityObject(tee)}
	if tee == TEETDX {
		f.tcb = p.tcbInfoObject(tee, tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate))
	} else {
		f.tcb = p.tcbInfoObject(tee, sgxLevel(5, 10, StatusUpToDate))
	}
	return f
}

// build signs the quote and collateral.
func (f *fixture) build(t testing.TB) ([]byte, Collateral, Options) {
	t.Helper()
	return f.pki.sign(t, f.q), f.pki.collateral(t, f.tcb, f.qe), f.pki.opts()
}

func (f *fixture) verify(t testing.TB) (*Result, error) {
	t.Helper()
	quote, col, opts := f.build(t)
	return Verify(quote, col, opts)
}

func TestSynthVerifies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		version uint16
		tee     TEE
		tdx15   bool
	}{
		{"sgx v3", 3, TEESGX, false},
		{"sgx v4", 4, TEESGX, false},
		{"sgx v5", 5, TEESGX, false},
		{"tdx v4", 4, TEETDX, false},
		{"tdx v5 1.0 body", 5, TEETDX, false},
		{"tdx v5 1.5 body", 5, TEETDX, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.version, tt.tee)
			if tt.tdx15 {
				f.q.BodyType, f.q.TD.V15 = bodyTypeTDX15, true
				copy(f.q.TD.MRServiceTD[:], "service td")
			}
			quote, col, opts := f.build(t)
			r, err := Verify(quote, col, opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.TEE != tt.tee || r.Version != tt.version || r.TCBStatus != StatusUpToDate || r.QEStatus != StatusUpToDate {
				t.Fatalf("result %+v", r)
			}
			if r.ReportData != f.q.ReportData() || r.TCBEvaluationDataNumber != 42 || r.FMSPC != f.pki.ext.FMSPC {
				t.Errorf("result fields %+v", r)
			}
			if tt.tdx15 && (r.TDX.MRServiceTD != f.q.TD.MRServiceTD || !r.TDX.V15) {
				t.Error("tdx 1.5 fields lost")
			}
			q, err := ParseQuote(quote)
			if err != nil || !bytes.Equal(q.marshal(), quote) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

func TestSynthCRLAndChainVariants(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, TEESGX)
	quote, col, opts := f.build(t)
	p := f.pki
	col.RootCRL = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: currentCRL(t, p.root)})
	col.PCKCRL = []byte(hex.EncodeToString(currentCRL(t, p.pckCA, p.tcbSigner.cert.SerialNumber /* another CA's serial */)))
	col.QEIdentityChain = p.tcbChain()
	opts.RequireCRLs = true
	if _, err := Verify(quote, col, opts); err != nil {
		t.Fatalf("pem root crl, hex pck crl, explicit qe identity chain: %v", err)
	}
}

// TestSynthTCBLevels covers every branch of the platform TCB level
// evaluation for SGX (platform: all components 5, PCE SVN 10).
func TestSynthTCBLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		levels     []map[string]any
		want       TCBStatus
		advisories []string
		reason     Reason
	}{
		{"UpToDate", []map[string]any{sgxLevel(5, 10, StatusUpToDate)}, StatusUpToDate, nil, ""},
		{"SWHardeningNeeded/second level", []map[string]any{sgxLevel(6, 10, StatusUpToDate), sgxLevel(5, 10, StatusSWHardeningNeeded, "INTEL-SA-1")}, StatusSWHardeningNeeded, []string{"INTEL-SA-1"}, ""},
		{"ConfigurationNeeded", []map[string]any{sgxLevel(4, 10, StatusConfigurationNeeded, "INTEL-SA-2")}, StatusConfigurationNeeded, []string{"INTEL-SA-2"}, ""},
		{"ConfigurationAndSWHardeningNeeded", []map[string]any{sgxLevel(5, 9, StatusConfigurationAndSWHardeningNeeded)}, StatusConfigurationAndSWHardeningNeeded, nil, ""},
		{"OutOfDate/pce svn decides", []map[string]any{sgxLevel(5, 11, StatusUpToDate), sgxLevel(5, 10, StatusOutOfDate, "INTEL-SA-3", "INTEL-SA-4")}, StatusOutOfDate, []string{"INTEL-SA-3", "INTEL-SA-4"}, ""},
		{"OutOfDateConfigurationNeeded", []map[string]any{sgxLevel(1, 1, StatusOutOfDateConfigurationNeeded)}, StatusOutOfDateConfigurationNeeded, nil, ""},
		{"first satisfied level wins", []map[string]any{sgxLevel(5, 10, StatusSWHardeningNeeded), sgxLevel(0, 0, StatusUpToDate)}, StatusSWHardeningNeeded, nil, ""},
		{"tcb revoked", []map[string]any{sgxLevel(6, 10, StatusUpToDate), sgxLevel(5, 10, StatusRevoked)}, "", nil, ReasonTCBRevoked},
		{"tcb level not found/components", []map[string]any{sgxLevel(6, 10, StatusUpToDate), sgxLevel(6, 1, StatusOutOfDate)}, "", nil, ReasonTCBLevelNotFound},
		{"tcb level not found/pce svn", []map[string]any{sgxLevel(5, 11, StatusUpToDate)}, "", nil, ReasonTCBLevelNotFound},
		{"collateral/unknown status", []map[string]any{sgxLevel(5, 10, "Fine")}, "", nil, ReasonCollateral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 3, TEESGX)
			f.tcb["tcbLevels"] = tt.levels
			r, err := f.verify(t)
			if got := ReasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.reason)
			}
			if err != nil {
				return
			}
			if r.TCBStatus != tt.want || r.PlatformTCBStatus != tt.want || !slices.Equal(r.AdvisoryIDs, tt.advisories) {
				t.Errorf("status %q/%q advisories %v, want %q %v", r.TCBStatus, r.PlatformTCBStatus, r.AdvisoryIDs, tt.want, tt.advisories)
			}
		})
	}
}

// TestSynthTDXLevels covers the TDX rules: TEE_TCB_SVN against
// tdxtcbcomponents, the TDX module check and the module identities.
func TestSynthTDXLevels(t *testing.T) {
	t.Parallel()
	module := func(id string, levels ...map[string]any) map[string]any {
		return map[string]any{"id": id, "mrsigner": hex.EncodeToString(make([]byte, 48)), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF", "tcbLevels": levels}
	}
	tests := []struct {
		name       string
		teeTCBSVN  [16]byte
		levels     []map[string]any
		modules    []map[string]any
		mutate     func(*fixture)
		want       TCBStatus
		wantModule TCBStatus
		reason     Reason
	}{
		{name: "tdx 1.0/UpToDate", teeTCBSVN: [16]byte{3, 0, 5}, levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)}, want: StatusUpToDate},
		{name: "tdx 1.0/second level by tee svn", teeTCBSVN: [16]byte{3, 0, 4}, levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate), tdxLevel(5, 10, []int{3, 0, 4}, StatusOutOfDate)}, want: StatusOutOfDate},
		{name: "tdx 1.0/module svn byte 0 compared", teeTCBSVN: [16]byte{2, 0, 5}, levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)}, reason: ReasonTCBLevelNotFound},
		{name: "tdx 1.0/tee svn too low", teeTCBSVN: [16]byte{3, 0, 4}, levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)}, reason: ReasonTCBLevelNotFound},
		{name: "tdx 1.0/sgx components too low", teeTCBSVN: [16]byte{3, 0, 5}, levels: []map[string]any{tdxLevel(6, 10, []int{3, 0, 5}, StatusUpToDate)}, reason: ReasonTCBLevelNotFound},
		{name: "tdx 1.0/revoked", teeTCBSVN: [16]byte{3, 0, 5}, levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusRevoked)}, reason: ReasonTCBRevoked},
		{
			name: "module identity/first two components skipped", teeTCBSVN: [16]byte{5, 1, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{9, 9, 7}, StatusUpToDate)},
			modules: []map[string]any{module("TDX_03", qeLevel(0, StatusOutOfDate)), module("TDX_01", qeLevel(4, StatusUpToDate))},
			want:    StatusUpToDate, wantModule: StatusUpToDate,
		},
		{
			name: "module identity/out of date module", teeTCBSVN: [16]byte{3, 1, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{0, 0, 7}, StatusUpToDate)},
			modules: []map[string]any{module("TDX_01", qeLevel(4, StatusUpToDate), qeLevel(2, StatusOutOfDate, "INTEL-SA-9"))},
			want:    StatusOutOfDate, wantModule: StatusOutOfDate,
		},
		{
			name: "module identity/out of date module, configuration needed", teeTCBSVN: [16]byte{3, 1, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{0, 0, 7}, StatusConfigurationNeeded)},
			modules: []map[string]any{module("TDX_01", qeLevel(2, StatusOutOfDate))},
			want:    StatusOutOfDateConfigurationNeeded, wantModule: StatusOutOfDate,
		},
		{
			name: "module identity/module svn below every level", teeTCBSVN: [16]byte{1, 1, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{0, 0, 7}, StatusUpToDate)},
			modules: []map[string]any{module("TDX_01", qeLevel(2, StatusOutOfDate))},
			reason:  ReasonTCBLevelNotFound,
		},
		{
			name: "module identity/missing", teeTCBSVN: [16]byte{5, 2, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{0, 0, 7}, StatusUpToDate)},
			modules: []map[string]any{module("TDX_01", qeLevel(2, StatusUpToDate))},
			reason:  ReasonTCBLevelNotFound,
		},
		{
			name: "module identity/revoked module", teeTCBSVN: [16]byte{5, 1, 7},
			levels:  []map[string]any{tdxLevel(5, 10, []int{0, 0, 7}, StatusUpToDate)},
			modules: []map[string]any{module("TDX_01", qeLevel(2, StatusRevoked))},
			reason:  ReasonTCBRevoked,
		},
		{
			name: "tdx module mismatch/mrsignerseam", teeTCBSVN: [16]byte{3, 0, 5},
			levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)},
			mutate: func(f *fixture) { f.q.TD.MRSignerSEAM[0] = 1 },
			reason: ReasonTDXModuleMismatch,
		},
		{
			name: "tdx module mismatch/seam attributes", teeTCBSVN: [16]byte{3, 0, 5},
			levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)},
			mutate: func(f *fixture) { f.q.TD.SEAMAttributes[7] = 0x80 },
			reason: ReasonTDXModuleMismatch,
		},
		{
			name: "collateral/tdx level without tdx components", teeTCBSVN: [16]byte{3, 0, 5},
			levels: []map[string]any{sgxLevel(5, 10, StatusUpToDate)},
			reason: ReasonCollateral,
		},
		{
			name: "collateral/no tdxModule", teeTCBSVN: [16]byte{3, 0, 5},
			levels: []map[string]any{tdxLevel(5, 10, []int{3, 0, 5}, StatusUpToDate)},
			mutate: func(f *fixture) { delete(f.tcb, "tdxModule") },
			reason: ReasonCollateral,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 4, TEETDX)
			f.q.TD.TEETCBSVN = tt.teeTCBSVN
			f.tcb["tcbLevels"] = tt.levels
			if tt.modules != nil {
				f.tcb["tdxModuleIdentities"] = tt.modules
			}
			if tt.mutate != nil {
				tt.mutate(f)
			}
			r, err := f.verify(t)
			if got := ReasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.reason)
			}
			if err == nil && (r.TCBStatus != tt.want || r.TDXModuleStatus != tt.wantModule) {
				t.Errorf("status %q module %q, want %q %q", r.TCBStatus, r.TDXModuleStatus, tt.want, tt.wantModule)
			}
		})
	}
}

// TestSynthQE covers the QE identity match and the QE TCB level.
func TestSynthQE(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		platform TCBStatus
		mutate   func(f *fixture)
		want     TCBStatus
		wantQE   TCBStatus
		reason   Reason
	}{
		{name: "qe out of date makes the result out of date", platform: StatusUpToDate,
			mutate: func(f *fixture) {
				f.qe["tcbLevels"] = []map[string]any{qeLevel(9, StatusUpToDate), qeLevel(8, StatusOutOfDate, "INTEL-SA-QE")}
			}, want: StatusOutOfDate, wantQE: StatusOutOfDate},
		{name: "qe out of date with configuration needed", platform: StatusConfigurationNeeded,
			mutate: func(f *fixture) { f.qe["tcbLevels"] = []map[string]any{qeLevel(2, StatusOutOfDate)} },
			want:   StatusOutOfDateConfigurationNeeded, wantQE: StatusOutOfDate},
		{name: "qe up to date keeps SWHardeningNeeded", platform: StatusSWHardeningNeeded, want: StatusSWHardeningNeeded, wantQE: StatusUpToDate},
		{name: "qe revoked", platform: StatusUpToDate,
			mutate: func(f *fixture) {
				f.qe["tcbLevels"] = []map[string]any{qeLevel(9, StatusUpToDate), qeLevel(8, StatusRevoked)}
			},
			reason: ReasonQERevoked},
		{name: "qe tcb level not found", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.qe["tcbLevels"] = []map[string]any{qeLevel(9, StatusUpToDate)} },
			reason: ReasonQETCBLevelNotFound},
		{name: "qe identity mismatch/mrsigner", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.q.QEReport.MRSigner[31] ^= 1 }, reason: ReasonQEIdentityMismatch},
		{name: "qe identity mismatch/isvprodid", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.q.QEReport.ISVProdID = 2 }, reason: ReasonQEIdentityMismatch},
		{name: "qe identity mismatch/debug attribute", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.q.QEReport.Attributes[0] |= sgxDebugFlag }, reason: ReasonQEIdentityMismatch},
		{name: "qe identity masked attribute ignored", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.q.QEReport.Attributes[0] |= 0x04; f.q.QEReport.Attributes[12] = 0xff }, want: StatusUpToDate, wantQE: StatusUpToDate},
		{name: "qe identity mismatch/miscselect", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.q.QEReport.MiscSelect = 1 }, reason: ReasonQEIdentityMismatch},
		{name: "collateral/qe identity version 1", platform: StatusUpToDate,
			mutate: func(f *fixture) { f.qe["version"] = 1 }, reason: ReasonCollateral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 3, TEESGX)
			f.tcb["tcbLevels"] = []map[string]any{sgxLevel(5, 10, tt.platform)}
			if tt.mutate != nil {
				tt.mutate(f)
			}
			r, err := f.verify(t)
			if got := ReasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.reason)
			}
			if err == nil && (r.TCBStatus != tt.want || r.QEStatus != tt.wantQE || r.PlatformTCBStatus != tt.platform) {
				t.Errorf("status %q qe %q platform %q, want %q %q", r.TCBStatus, r.QEStatus, r.PlatformTCBStatus, tt.want, tt.wantQE)
			}
			if tt.wantQE == StatusOutOfDate && tt.platform == StatusUpToDate && !slices.Contains(r.AdvisoryIDs, "INTEL-SA-QE") {
				t.Errorf("qe advisories missing: %v", r.AdvisoryIDs)
			}
		})
	}
}
