package attest

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestMockTEE(t *testing.T) {
	t.Parallel()
	sgx := &EnclaveReport{ISVProdID: 3, ISVSVN: 4}
	sgx.MREnclave[0] = 0xaa
	sgx.ReportData[0] = 0x42
	td := &TDReport{V15: true}
	td.MRTD[0] = 0xbb
	td.TDAttributes[0] = tdDebugFlag
	sgxQuote, tdQuote := NewMockSGXQuote(sgx), NewMockTDXQuote(td)
	if !bytes.HasPrefix(sgxQuote, []byte("KMS-MOCK-TEE-INSECURE")) {
		t.Fatal("mock quotes must be labelled insecure")
	}

	if _, err := Verify(sgxQuote, Collateral{}, Options{}); ReasonOf(err) != ReasonMockNotAllowed {
		t.Fatalf("default options: %v", err)
	}
	if _, err := ParseQuote(sgxQuote); ReasonOf(err) != ReasonParse {
		t.Fatalf("a mock quote is not a dcap quote: %v", err)
	}
	opts := Options{AllowMockTEE: true}
	r, err := Verify(sgxQuote, Collateral{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.TEE != TEEMock || !r.Insecure || r.SGX == nil || *r.SGX != *sgx || r.ReportData != sgx.ReportData || r.TCBStatus != "" {
		t.Fatalf("sgx mock result %+v", r)
	}
	rt, err := Verify(tdQuote, Collateral{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rt.TEE != TEEMock || rt.TDX == nil || rt.TDX.MRTD != td.MRTD || !rt.Debug || !rt.TDX.V15 {
		t.Fatalf("tdx mock result %+v", rt)
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("attested", "result", r)
	if !strings.Contains(logged.String(), `"insecure":true`) || !strings.Contains(logged.String(), `"mrenclave":"aa00`) {
		t.Errorf("log %s", logged.String())
	}

	// Only a policy naming the mock TEE accepts it.
	real := &Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{sgx.MREnclave}}}
	if ReasonOf(real.Evaluate(r)) != ReasonPolicyTEE {
		t.Error("an sgx policy accepted a mock result")
	}
	mock := &Policy{TEE: TEEMock, SGX: &SGXPolicy{MREnclave: []Hex32{sgx.MREnclave}}}
	if err := mock.Evaluate(r); err != nil {
		t.Errorf("mock policy: %v", err)
	}
	mockTD := &Policy{TEE: TEEMock, TDX: &TDXPolicy{MRTD: []Hex48{td.MRTD}}}
	if ReasonOf(mockTD.Evaluate(rt)) != ReasonPolicyDebug {
		t.Error("debug mock td accepted")
	}

	for name, b := range map[string][]byte{
		"truncated":       sgxQuote[:len(sgxQuote)-1],
		"trailing":        append(bytes.Clone(sgxQuote), 0),
		"unknown kind":    append(mockPrefix(9), make([]byte, sgxReportLen)...),
		"unknown version": append([]byte(mockMagic), 2, mockKindSGX),
		"magic only":      []byte(mockMagic),
	} {
		if _, err := Verify(b, Collateral{}, opts); ReasonOf(err) != ReasonParse {
			t.Errorf("%s: %v", name, err)
		}
	}
}
