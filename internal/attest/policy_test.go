package attest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func h32(b byte) Hex32 { var h Hex32; h[0], h[31] = b, b; return h }
func h48(b byte) Hex48 { var h Hex48; h[0], h[47] = b, b; return h }

func samplePolicies() []*Policy {
	min := Hex16{1, 0, 3}
	rd := Hex64{9}
	return []*Policy{
		{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{h32(1), h32(2)}, MinISVSVN: 2}},
		{TEE: TEESGX, SGX: &SGXPolicy{MRSigner: []Hex32{h32(3)}, ISVProdID: []uint16{7}, AllowDebug: true}, AcceptedTCBStatus: []TCBStatus{StatusUpToDate, StatusSWHardeningNeeded}},
		{TEE: TEETDX, TDX: &TDXPolicy{MRTD: []Hex48{h48(4)}, RTMR0: []Hex48{h48(5)}, RTMR3: []Hex48{h48(6)}, MRSEAM: []Hex48{h48(7)}, MinTEETCBSVN: &min}, ReportData: &rd},
		{TEE: TEEMock, SGX: &SGXPolicy{MREnclave: []Hex32{h32(8)}}},
		{TEE: TEETDX, TDX: &TDXPolicy{}, ReportData: &rd, AllowAnyCode: true},
	}
}

func TestPolicyJSON(t *testing.T) {
	t.Parallel()
	for _, p := range samplePolicies() {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParsePolicy(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %s", b)
		}
	}
	b, _ := json.Marshal(samplePolicies()[0])
	if !strings.Contains(string(b), `"mrenclave":["01000000000000000000000000000000000000000000000000000000000000`) {
		t.Errorf("measurements must encode as hex: %s", b)
	}
}

func TestPolicyInvalid(t *testing.T) {
	t.Parallel()
	m := `"0101010101010101010101010101010101010101010101010101010101010101"`
	tests := map[string]string{
		"unknown field":            `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]},"extra":1}`,
		"unknown tee":              `{"tee":"sev","sgx":{"mrenclave":[` + m + `]}}`,
		"short measurement":        `{"tee":"sgx","sgx":{"mrenclave":["0101"]}}`,
		"long measurement":         `{"tee":"sgx","sgx":{"mrenclave":["00` + m[1:] + `]}}`,
		"non-hex measurement":      `{"tee":"sgx","sgx":{"mrenclave":["zz` + m[3:] + `]}}`,
		"nothing pinned":           `{"tee":"sgx","sgx":{"min_isvsvn":1}}`,
		"mrsigner without prod id": `{"tee":"sgx","sgx":{"mrsigner":[` + m + `]}}`,
		"tdx without mrtd":         `{"tee":"tdx","tdx":{"rtmr0":["` + strings.Repeat("00", 48) + `"]}}`,
		"sgx policy with tdx":      `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]},"tdx":{}}`,
		"tdx policy without tdx":   `{"tee":"tdx","sgx":{"mrenclave":[` + m + `]}}`,
		"mock with both sections":  `{"tee":"mock","sgx":{"mrenclave":[` + m + `]},"tdx":{"mrtd":[]}}`,
		"mock with no section":     `{"tee":"mock"}`,
		"revoked accepted":         `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]},"accepted_tcb_status":["Revoked"]}`,
		"unknown status":           `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]},"accepted_tcb_status":["Fine"]}`,
		"isvprodid out of range":   `{"tee":"sgx","sgx":{"mrsigner":[` + m + `],"isvprodid":[65536]}}`,
		"trailing data":            `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]}} {}`,
		"trailing brace":           `{"tee":"sgx","sgx":{"mrenclave":[` + m + `]}}}`,
		"not json":                 `tee: sgx`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePolicy([]byte(in)); ReasonOf(err) != ReasonPolicyInvalid {
				t.Fatalf("%v, want %q", err, ReasonPolicyInvalid)
			}
		})
	}
}

func sgxResult() *Result {
	r := &Result{TEE: TEESGX, SGX: &EnclaveReport{MREnclave: h32(1), MRSigner: h32(3), ISVProdID: 7, ISVSVN: 2}, TCBStatus: StatusUpToDate}
	r.ReportData = Hex64{9}
	return r
}

func tdxResult() *Result {
	r := &Result{TEE: TEETDX, TDX: &TDReport{MRTD: h48(4), MRSEAM: h48(7), TEETCBSVN: [16]byte{1, 0, 3}}, TCBStatus: StatusUpToDate}
	r.TDX.RTMR[0], r.TDX.RTMR[3] = h48(5), h48(6)
	r.ReportData = Hex64{9}
	return r
}

func TestPolicyEvaluate(t *testing.T) {
	t.Parallel()
	ps := samplePolicies()
	sgxEnclave, sgxSigner, tdx, mock, tdxAny := ps[0], ps[1], ps[2], ps[3], ps[4]
	tests := []struct {
		name   string
		p      *Policy
		result func() *Result
		want   Reason
	}{
		{"sgx/mrenclave accepted", sgxEnclave, sgxResult, ""},
		{"sgx/mrsigner and prod id accepted", sgxSigner, sgxResult, ""},
		{"sgx/mrenclave not listed", sgxEnclave, func() *Result { r := sgxResult(); r.SGX.MREnclave[31] = 0; return r }, ReasonPolicyMeasurement},
		{"sgx/mrsigner not listed", sgxSigner, func() *Result { r := sgxResult(); r.SGX.MRSigner[0] = 0; return r }, ReasonPolicyMeasurement},
		{"sgx/prod id not listed", sgxSigner, func() *Result { r := sgxResult(); r.SGX.ISVProdID = 0x0700; return r }, ReasonPolicyMeasurement},
		{"sgx/isvsvn below minimum", sgxEnclave, func() *Result { r := sgxResult(); r.SGX.ISVSVN = 1; return r }, ReasonPolicySVN},
		{"sgx/debug refused", sgxEnclave, func() *Result { r := sgxResult(); r.SGX.Attributes[0] = 0x07; r.Debug = true; return r }, ReasonPolicyDebug},
		{"sgx/debug allowed", sgxSigner, func() *Result { r := sgxResult(); r.SGX.Attributes[0] = 0x07; r.Debug = true; return r }, ""},
		{"sgx/tcb status not accepted by default", sgxEnclave, func() *Result { r := sgxResult(); r.TCBStatus = StatusSWHardeningNeeded; return r }, ReasonPolicyTCBStatus},
		{"sgx/tcb status accepted", sgxSigner, func() *Result { r := sgxResult(); r.TCBStatus = StatusSWHardeningNeeded; return r }, ""},
		{"sgx/out of date not accepted", sgxSigner, func() *Result { r := sgxResult(); r.TCBStatus = StatusOutOfDate; return r }, ReasonPolicyTCBStatus},
		{"sgx/tdx result", sgxEnclave, tdxResult, ReasonPolicyTEE},
		{"sgx/mock result with the same measurements", sgxEnclave, func() *Result { r := sgxResult(); r.TEE, r.Insecure = TEEMock, true; return r }, ReasonPolicyTEE},
		{"tdx/accepted", tdx, tdxResult, ""},
		{"tdx/mrtd not listed", tdx, func() *Result { r := tdxResult(); r.TDX.MRTD[47] = 0; return r }, ReasonPolicyMeasurement},
		{"tdx/rtmr3 not listed", tdx, func() *Result { r := tdxResult(); r.TDX.RTMR[3][1] = 1; return r }, ReasonPolicyMeasurement},
		{"tdx/mrseam not listed", tdx, func() *Result { r := tdxResult(); r.TDX.MRSEAM[1] = 1; return r }, ReasonPolicyMeasurement},
		{"tdx/tee tcb svn below minimum", tdx, func() *Result { r := tdxResult(); r.TDX.TEETCBSVN[2] = 2; return r }, ReasonPolicySVN},
		{"tdx/report data differs", tdx, func() *Result { r := tdxResult(); r.ReportData[63] = 1; return r }, ReasonPolicyReportData},
		{"tdx/debug refused", tdx, func() *Result { r := tdxResult(); r.TDX.TDAttributes[0] = 1; return r }, ReasonPolicyDebug},
		{"tdx/sgx result", tdx, sgxResult, ReasonPolicyTEE},
		{"tdx any code/report data only", tdxAny, tdxResult, ""},
		{"mock/accepts a mock result", mock, func() *Result {
			r := sgxResult()
			r.TEE, r.Insecure, r.SGX.MREnclave, r.TCBStatus = TEEMock, true, h32(8), ""
			return r
		}, ""},
		{"mock/refuses a real result", mock, func() *Result { r := sgxResult(); r.SGX.MREnclave = h32(8); return r }, ReasonPolicyTEE},
		{"mock/refuses other measurements", mock, func() *Result { r := sgxResult(); r.TEE, r.Insecure = TEEMock, true; return r }, ReasonPolicyMeasurement},
		{"invalid policy", &Policy{TEE: TEESGX, SGX: &SGXPolicy{}}, sgxResult, ReasonPolicyInvalid},
		{"nil result", sgxEnclave, func() *Result { return nil }, ReasonPolicyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReasonOf(tt.p.Evaluate(tt.result())); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPolicySynthDebugEnclave verifies a synthetic debug enclave end to end:
// the quote verifies, the policy decides.
func TestPolicySynthDebugEnclave(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, TEESGX)
	f.q.SGX.Attributes[0] |= sgxDebugFlag
	r, err := f.verify(t)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Debug {
		t.Fatal("debug not reported")
	}
	p := &Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{r.SGX.MREnclave}}}
	if got := ReasonOf(p.Evaluate(r)); got != ReasonPolicyDebug {
		t.Fatalf("reason %q, want %q", got, ReasonPolicyDebug)
	}
	p.SGX.AllowDebug = true
	if err := p.Evaluate(r); err != nil {
		t.Fatal(err)
	}
}

func TestBigDLPolicy(t *testing.T) {
	t.Parallel()
	full := strings.Repeat("ab", 32)
	mrtd := strings.Repeat("cd", 48)
	rtmrs := strings.Repeat("01", 48) + strings.Repeat("02", 48)
	tests := []struct {
		in   string
		want *Policy
	}{
		{`{"policyType":"SGXMREnclavePolicy","mrEnclave":"` + full + `"}`,
			&Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{fill32(0xab)}}}},
		{`{"policyType":"SGXMREnclavePolicy","mrEnclave":"1` + strings.Repeat("0", 62) + `"}`, // leading zero stripped
			&Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{{0x01}}}}},
		{`{"policyType":"SGXMRSignerPolicy","mrSigner":"` + full + `","isvProdID":"7"}`,
			&Policy{TEE: TEESGX, SGX: &SGXPolicy{MRSigner: []Hex32{fill32(0xab)}, ISVProdID: []uint16{7}}}},
		{`{"policyType":"SGXMRSignerPolicy","mrSigner":"` + full + `","isvProdID":258}`,
			&Policy{TEE: TEESGX, SGX: &SGXPolicy{MRSigner: []Hex32{fill32(0xab)}, ISVProdID: []uint16{258}}}},
		{`{"policyType":"SGXReportDataPolicy","reportData":"0102"}`,
			&Policy{TEE: TEESGX, SGX: &SGXPolicy{}, ReportData: &Hex64{1, 2}, AllowAnyCode: true}},
		{`{"policyType":"TDXMRTDPolicy","mrTD":"` + mrtd + `"}`,
			&Policy{TEE: TEETDX, TDX: &TDXPolicy{MRTD: []Hex48{fill48(0xcd)}}}},
		{`{"policyType":"TDXReportDataPolicy","reportData":"ff"}`,
			&Policy{TEE: TEETDX, TDX: &TDXPolicy{}, ReportData: &Hex64{0xff}, AllowAnyCode: true}},
		{`{"policyType":"TDXLaunchTimePolicy","mrTD":"` + mrtd + `","rtmr":"` + rtmrs + `"}`,
			&Policy{TEE: TEETDX, TDX: &TDXPolicy{MRTD: []Hex48{fill48(0xcd)}, RTMR0: []Hex48{fill48(1)}, RTMR1: []Hex48{fill48(2)}}}},
		{`{"policyType":"TDXLaunchTimePolicy","mrTD":"` + mrtd + `","rtmr":"` + rtmrs[:96] + `,` + rtmrs[96:] + `"}`,
			&Policy{TEE: TEETDX, TDX: &TDXPolicy{MRTD: []Hex48{fill48(0xcd)}, RTMR0: []Hex48{fill48(1)}, RTMR1: []Hex48{fill48(2)}}}},
	}
	for _, tt := range tests {
		var b BigDLPolicy
		if err := json.Unmarshal([]byte(tt.in), &b); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		got, err := b.Policy()
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		tt.want.AcceptedTCBStatus = BigDLAcceptedTCBStatus()
		if !reflect.DeepEqual(got, tt.want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			t.Errorf("%s:\n got %s\nwant %s", tt.in, gj, wj)
		}
	}
	for _, bad := range []BigDLPolicy{
		{PolicyType: "SGXMREnclavePolicy"},
		{PolicyType: "SGXMREnclavePolicy", MREnclave: full + "00"},
		{PolicyType: "SGXMREnclavePolicy", MREnclave: "xyz"},
		{PolicyType: "SGXMRSignerPolicy", MRSigner: full, ISVProdID: "65536"},
		{PolicyType: "SGXMRSignerPolicy", MRSigner: full},
		{PolicyType: "SGXReportDataPolicy", ReportData: strings.Repeat("00", 65)},
		{PolicyType: "TDXLaunchTimePolicy", MRTD: mrtd, RTMR: rtmrs[:95]},
		{PolicyType: "TDXLaunchTimePolicy", MRTD: mrtd},
		{PolicyType: "TDXLaunchTimePolicy", MRTD: mrtd, RTMR: strings.Repeat(rtmrs, 3)},
		{PolicyType: "SEVPolicy"},
	} {
		if _, err := bad.Policy(); ReasonOf(err) != ReasonPolicyInvalid {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func fill32(b byte) (h Hex32) {
	for i := range h {
		h[i] = b
	}
	return h
}

func fill48(b byte) (h Hex48) {
	for i := range h {
		h[i] = b
	}
	return h
}
