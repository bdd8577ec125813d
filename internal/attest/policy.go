package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// TEE is a trusted execution environment type.
type TEE string

// TEE types. TEEMock is the INSECURE mock TEE (see [NewMockSGXQuote]).
const (
	TEESGX  TEE = "sgx"
	TEETDX  TEE = "tdx"
	TEEMock TEE = "mock"
)

// Hex16, Hex32, Hex48 and Hex64 are fixed-width byte strings that encode as
// lower-case hex in JSON and decode only from exactly 2×width hex digits
// (either case), so that measurements are always compared at full width.
type (
	Hex16 [16]byte
	Hex32 [32]byte
	Hex48 [48]byte
	Hex64 [64]byte
)

// MarshalText encodes h as lower-case hex.
func (h Hex16) MarshalText() ([]byte, error) { return hexText(h[:]), nil }

// MarshalText encodes h as lower-case hex.
func (h Hex32) MarshalText() ([]byte, error) { return hexText(h[:]), nil }

// MarshalText encodes h as lower-case hex.
func (h Hex48) MarshalText() ([]byte, error) { return hexText(h[:]), nil }

// MarshalText encodes h as lower-case hex.
func (h Hex64) MarshalText() ([]byte, error) { return hexText(h[:]), nil }

// UnmarshalText decodes exactly 32 hex digits.
func (h *Hex16) UnmarshalText(t []byte) error { return fixedHex(h[:], t) }

// UnmarshalText decodes exactly 64 hex digits.
func (h *Hex32) UnmarshalText(t []byte) error { return fixedHex(h[:], t) }

// UnmarshalText decodes exactly 96 hex digits.
func (h *Hex48) UnmarshalText(t []byte) error { return fixedHex(h[:], t) }

// UnmarshalText decodes exactly 128 hex digits.
func (h *Hex64) UnmarshalText(t []byte) error { return fixedHex(h[:], t) }

func hexText(b []byte) []byte { return []byte(hex.EncodeToString(b)) }

func fixedHex(dst []byte, t []byte) error {
	if len(t) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(t))
	}
	_, err := hex.Decode(dst, t)
	return err
}

// Policy says which attested workloads are accepted, for one TEE type (the
// spec's "Policy model"). Within a list any value matches (OR); across
// fields all constraints must hold (AND); empty lists do not constrain.
// Policies are JSON-encoded for storage; see [ParsePolicy].
type Policy struct {
	// TEE is required: "sgx", "tdx" or "mock". A mock result is only ever
	// accepted by a policy naming "mock", and a mock policy accepts nothing
	// else.
	TEE TEE `json:"tee"`
	// SGX constrains SGX enclaves (TEE "sgx", or "mock" with SGX-shaped
	// mock quotes).
	SGX *SGXPolicy `json:"sgx,omitempty"`
	// TDX constrains TDX TDs (TEE "tdx", or "mock" with TDX-shaped mock
	// quotes).
	TDX *TDXPolicy `json:"tdx,omitempty"`
	// ReportData, when set, must equal the quote's 64 bytes of report data.
	ReportData *Hex64 `json:"report_data,omitempty"`
	// AcceptedTCBStatus lists the accepted overall TCB statuses; empty means
	// only UpToDate. Revoked cannot be accepted. Ignored for mock results,
	// which have no TCB.
	AcceptedTCBStatus []TCBStatus `json:"accepted_tcb_status,omitempty"`
	// AllowAnyCode permits a policy that pins no code identity (no
	// MRENCLAVE, MRSIGNER+ISVPRODID or MRTD), as BigDL's report-data policy
	// types do. Such a policy must never gate key release.
	AllowAnyCode bool `json:"allow_any_code,omitempty"`
}

// SGXPolicy constrains SGX enclaves.
type SGXPolicy struct {
	MREnclave []Hex32  `json:"mrenclave,omitempty"`
	MRSigner  []Hex32  `json:"mrsigner,omitempty"`
	ISVProdID []uint16 `json:"isvprodid,omitempty"`
	// MinISVSVN is the minimum enclave security version.
	MinISVSVN uint16 `json:"min_isvsvn,omitempty"`
	// AllowDebug accepts debug enclaves, whose memory the host can read.
	AllowDebug bool `json:"allow_debug,omitempty"`
}

// TDXPolicy constrains TDX trust domains.
type TDXPolicy struct {
	MRTD  []Hex48 `json:"mrtd,omitempty"`
	RTMR0 []Hex48 `json:"rtmr0,omitempty"`
	RTMR1 []Hex48 `json:"rtmr1,omitempty"`
	RTMR2 []Hex48 `json:"rtmr2,omitempty"`
	RTMR3 []Hex48 `json:"rtmr3,omitempty"`
	// MRSEAM lists accepted TDX module measurements.
	MRSEAM []Hex48 `json:"mrseam,omitempty"`
	// MinTEETCBSVN is a component-wise minimum of the 16 TEE_TCB_SVN bytes.
	MinTEETCBSVN *Hex16 `json:"min_tee_tcb_svn,omitempty"`
	// AllowDebug accepts debuggable TDs, whose state the host can read.
	AllowDebug bool `json:"allow_debug,omitempty"`
}

// ParsePolicy decodes a JSON policy, refusing unknown fields and trailing
// data, and validates it. Errors are [*Error] with [ReasonPolicyInvalid].
func ParsePolicy(data []byte) (*Policy, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var p Policy
	if err := d.Decode(&p); err != nil {
		return nil, errorf(ReasonPolicyInvalid, "decode policy: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errorf(ReasonPolicyInvalid, "trailing data after policy")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that the policy is well formed and pins code identity:
// MRENCLAVE, or MRSIGNER and ISVPRODID (SGX), or MRTD (TDX), unless
// AllowAnyCode. It returns an [*Error] with [ReasonPolicyInvalid].
func (p *Policy) Validate() error {
	if err := p.validate(); err != nil {
		return &Error{Reason: ReasonPolicyInvalid, Err: err}
	}
	return nil
}

func (p *Policy) validate() error {
	switch p.TEE {
	case TEESGX:
		if p.SGX == nil || p.TDX != nil {
			return errors.New("an sgx policy needs an sgx section and no tdx section")
		}
	case TEETDX:
		if p.TDX == nil || p.SGX != nil {
			return errors.New("a tdx policy needs a tdx section and no sgx section")
		}
	case TEEMock:
		if (p.SGX == nil) == (p.TDX == nil) {
			return errors.New("a mock policy needs exactly one of the sgx and tdx sections")
		}
	default:
		return fmt.Errorf("unknown tee %q", p.TEE)
	}
	for _, s := range p.AcceptedTCBStatus {
		if err := s.validate(); err != nil {
			return err
		}
		if s == StatusRevoked {
			return errors.New("a revoked tcb cannot be accepted")
		}
	}
	if p.AllowAnyCode {
		return nil
	}
	if s := p.SGX; s != nil && len(s.MREnclave) == 0 && (len(s.MRSigner) == 0 || len(s.ISVProdID) == 0) {
		return errors.New("an sgx policy must pin mrenclave, or mrsigner and isvprodid")
	}
	if t := p.TDX; t != nil && len(t.MRTD) == 0 {
		return errors.New("a tdx policy must pin mrtd")
	}
	return nil
}

// Evaluate checks a verification result against the policy: TEE type,
// debug mode, measurements (fixed-width byte comparison), minimum SVNs,
// report data and TCB status. It returns nil when the result is accepted,
// otherwise an [*Error] whose Reason names the failed check. Evaluate does
// not modify p or r and is safe for concurrent use.
func (p *Policy) Evaluate(r *Result) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if r == nil {
		return errorf(ReasonPolicyInvalid, "no result")
	}
	if r.TEE != p.TEE || r.Insecure != (p.TEE == TEEMock) {
		return errorf(ReasonPolicyTEE, "result is for tee %q, policy for %q", r.TEE, p.TEE)
	}
	switch {
	case p.SGX != nil && r.SGX != nil:
		if err := p.SGX.evaluate(r.SGX); err != nil {
			return err
		}
	case p.TDX != nil && r.TDX != nil:
		if err := p.TDX.evaluate(r.TDX); err != nil {
			return err
		}
	default:
		return errorf(ReasonPolicyTEE, "result and policy are for different report types")
	}
	if p.ReportData != nil && *p.ReportData != r.ReportData {
		return errorf(ReasonPolicyReportData, "report data %x is not the policy's", r.ReportData)
	}
	if r.TEE == TEEMock {
		return nil
	}
	accepted := p.AcceptedTCBStatus
	if len(accepted) == 0 {
		accepted = []TCBStatus{StatusUpToDate}
	}
	if r.TCBStatus == StatusRevoked || !slices.Contains(accepted, r.TCBStatus) {
		return errorf(ReasonPolicyTCBStatus, "tcb status %q is not accepted (accepted: %v)", r.TCBStatus, accepted)
	}
	return nil
}

func (s *SGXPolicy) evaluate(r *EnclaveReport) error {
	if r.Debug() && !s.AllowDebug {
		return errorf(ReasonPolicyDebug, "debug enclave")
	}
	if len(s.MREnclave) > 0 && !slices.Contains(s.MREnclave, Hex32(r.MREnclave)) {
		return errorf(ReasonPolicyMeasurement, "mrenclave %x is not accepted", r.MREnclave)
	}
	if len(s.MRSigner) > 0 && !slices.Contains(s.MRSigner, Hex32(r.MRSigner)) {
		return errorf(ReasonPolicyMeasurement, "mrsigner %x is not accepted", r.MRSigner)
	}
	if len(s.ISVProdID) > 0 && !slices.Contains(s.ISVProdID, r.ISVProdID) {
		return errorf(ReasonPolicyMeasurement, "isvprodid %d is not accepted", r.ISVProdID)
	}
	if r.ISVSVN < s.MinISVSVN {
		return errorf(ReasonPolicySVN, "isvsvn %d is below the minimum %d", r.ISVSVN, s.MinISVSVN)
	}
	return nil
}

func (t *TDXPolicy) evaluate(r *TDReport) error {
	if r.Debug() && !t.AllowDebug {
		return errorf(ReasonPolicyDebug, "debuggable td")
	}
	for _, m := range []struct {
		name string
		list []Hex48
		got  [48]byte
	}{
		{"mrtd", t.MRTD, r.MRTD}, {"mrseam", t.MRSEAM, r.MRSEAM},
		{"rtmr0", t.RTMR0, r.RTMR[0]}, {"rtmr1", t.RTMR1, r.RTMR[1]},
		{"rtmr2", t.RTMR2, r.RTMR[2]}, {"rtmr3", t.RTMR3, r.RTMR[3]},
	} {
		if len(m.list) > 0 && !slices.Contains(m.list, Hex48(m.got)) {
			return errorf(ReasonPolicyMeasurement, "%s %x is not accepted", m.name, m.got)
		}
	}
	if t.MinTEETCBSVN != nil {
		for i, min := range t.MinTEETCBSVN {
			if r.TEETCBSVN[i] < min {
				return errorf(ReasonPolicySVN, "tee tcb svn %x is below the minimum %x", r.TEETCBSVN, *t.MinTEETCBSVN)
			}
		}
	}
	return nil
}
