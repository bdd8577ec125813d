package attest

import (
	"bytes"
	"time"
)

// The mock TEE quote format, for development and CI on machines without SGX
// or TDX. It is INSECURE: nothing signs it, anyone can forge any
// measurement. [Verify] refuses it unless [Options.AllowMockTEE], and a
// [Policy] accepts it only if the policy's TEE is [TEEMock].
//
//	magic   "KMS-MOCK-TEE-INSECURE" (21 bytes)
//	version 0x01
//	kind    0x01 SGX report body (384 bytes) | 0x02 TD report body 1.0 (584)
//	        | 0x03 TD report body 1.5 (648)
//	body    the report body, laid out as in a DCAP quote; nothing follows
const mockMagic = "KMS-MOCK-TEE-INSECURE"

const (
	mockVersion  = 1
	mockKindSGX  = 1
	mockKindTD10 = 2
	mockKindTD15 = 3
)

// NewMockSGXQuote returns an INSECURE mock quote carrying an SGX report body
// (measurements and report data chosen by the caller, signed by nothing).
func NewMockSGXQuote(r *EnclaveReport) []byte {
	return r.appendTo(mockPrefix(mockKindSGX))
}

// NewMockTDXQuote returns an INSECURE mock quote carrying a TD report body
// (TDX 1.5 layout when r.V15).
func NewMockTDXQuote(r *TDReport) []byte {
	kind := byte(mockKindTD10)
	if r.V15 {
		kind = mockKindTD15
	}
	return r.appendTo(mockPrefix(kind))
}

func mockPrefix(kind byte) []byte {
	return append([]byte(mockMagic), mockVersion, kind)
}

func isMockQuote(b []byte) bool { return bytes.HasPrefix(b, []byte(mockMagic)) }

// verifyMock parses a mock quote. It checks only the format.
func verifyMock(b []byte, opts Options) (*Result, error) {
	if !opts.AllowMockTEE {
		return nil, errorf(ReasonMockNotAllowed, "mock tee quotes are not accepted by this verifier")
	}
	body := b[len(mockMagic):]
	if len(body) < 2 || body[0] != mockVersion {
		return nil, errorf(ReasonParse, "unsupported mock quote version")
	}
	kind, body := body[1], body[2:]
	r := &Result{TEE: TEEMock, Insecure: true, VerifiedAt: opts.Now}
	if r.VerifiedAt.IsZero() {
		r.VerifiedAt = time.Now()
	}
	switch {
	case kind == mockKindSGX && len(body) == sgxReportLen:
		r.SGX = new(EnclaveReport)
		r.SGX.decode(body)
		r.ReportData, r.Debug = r.SGX.ReportData, r.SGX.Debug()
	case (kind == mockKindTD10 && len(body) == tdReport10Len) || (kind == mockKindTD15 && len(body) == tdReport15Len):
		r.TDX = new(TDReport)
		r.TDX.decode(body)
		r.ReportData, r.Debug = r.TDX.ReportData, r.TDX.Debug()
	default:
		return nil, errorf(ReasonParse, "mock quote of kind %d with a %d-byte body", kind, len(body))
	}
	return r, nil
}
