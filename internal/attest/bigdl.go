package attest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BigDL remote attestation service policy types (/registerPolicy
// "policyType").
const (
	BigDLSGXMREnclavePolicy  = "SGXMREnclavePolicy"
	BigDLSGXMRSignerPolicy   = "SGXMRSignerPolicy"
	BigDLSGXReportDataPolicy = "SGXReportDataPolicy"
	BigDLTDXMRTDPolicy       = "TDXMRTDPolicy"
	BigDLTDXReportDataPolicy = "TDXReportDataPolicy"
	BigDLTDXLaunchTimePolicy = "TDXLaunchTimePolicy"
)

// BigDLPolicy is the policy part of a BigDL /registerPolicy request body
// (appID and apiKey are the caller's business).
type BigDLPolicy struct {
	PolicyType string `json:"policyType"`
	MREnclave  string `json:"mrEnclave,omitempty"`
	MRSigner   string `json:"mrSigner,omitempty"`
	// ISVProdID is a decimal number, sent as a JSON string or number.
	ISVProdID  json.Number `json:"isvProdID,omitempty"`
	ReportData string      `json:"reportData,omitempty"`
	MRTD       string      `json:"mrTD,omitempty"`
	// RTMR is RTMR0, RTMR1, … as 96-hex-digit values, concatenated or
	// separated by commas; the first n RTMRs are pinned.
	RTMR string `json:"rtmr,omitempty"`
}

// BigDLAcceptedTCBStatus returns the statuses accepted by policies converted
// from BigDL: BigDL passed every quote that Intel's library did not reject
// ("1: pass with a TCB warning"). Only Revoked is refused. Tighten the
// converted policy's AcceptedTCBStatus for key release.
func BigDLAcceptedTCBStatus() []TCBStatus {
	return []TCBStatus{
		StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded,
		StatusConfigurationAndSWHardeningNeeded, StatusOutOfDate, StatusOutOfDateConfigurationNeeded,
	}
}

// Policy converts a BigDL policy to a validated [Policy], one to one:
//
//	SGXMREnclavePolicy{mrEnclave}         → sgx.mrenclave
//	SGXMRSignerPolicy{mrSigner,isvProdID} → sgx.mrsigner + sgx.isvprodid
//	SGXReportDataPolicy{reportData}       → report_data, allow_any_code
//	TDXMRTDPolicy{mrTD}                   → tdx.mrtd
//	TDXReportDataPolicy{reportData}       → report_data, allow_any_code
//	TDXLaunchTimePolicy{mrTD, rtmr}       → tdx.mrtd + tdx.rtmr0..n
//
// BigDL printed measurements as hex numbers without leading zeros, so
// shorter measurement strings are left-padded with zeros to full width;
// report data is a byte string, so it is right-padded to 64 bytes. All
// comparisons are then fixed-width. Errors are [*Error] with
// [ReasonPolicyInvalid].
func (b *BigDLPolicy) Policy() (*Policy, error) {
	p, err := b.policy()
	if err != nil {
		return nil, &Error{Reason: ReasonPolicyInvalid, Err: fmt.Errorf("bigdl %s: %w", b.PolicyType, err)}
	}
	p.AcceptedTCBStatus = BigDLAcceptedTCBStatus()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *BigDLPolicy) policy() (*Policy, error) {
	switch b.PolicyType {
	case BigDLSGXMREnclavePolicy:
		var m Hex32
		err := measurement(m[:], b.MREnclave)
		return &Policy{TEE: TEESGX, SGX: &SGXPolicy{MREnclave: []Hex32{m}}}, err
	case BigDLSGXMRSignerPolicy:
		var m Hex32
		if err := measurement(m[:], b.MRSigner); err != nil {
			return nil, err
		}
		id, err := strconv.ParseUint(b.ISVProdID.String(), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("isvProdID: %w", err)
		}
		return &Policy{TEE: TEESGX, SGX: &SGXPolicy{MRSigner: []Hex32{m}, ISVProdID: []uint16{uint16(id)}}}, nil
	case BigDLSGXReportDataPolicy, BigDLTDXReportDataPolicy:
		rd, err := reportData(b.ReportData)
		p := &Policy{TEE: TEESGX, SGX: &SGXPolicy{}, ReportData: &rd, AllowAnyCode: true}
		if b.PolicyType == BigDLTDXReportDataPolicy {
			p.TEE, p.SGX, p.TDX = TEETDX, nil, &TDXPolicy{}
		}
		return p, err
	case BigDLTDXMRTDPolicy, BigDLTDXLaunchTimePolicy:
		var m Hex48
		if err := measurement(m[:], b.MRTD); err != nil {
			return nil, err
		}
		t := &TDXPolicy{MRTD: []Hex48{m}}
		if b.PolicyType == BigDLTDXLaunchTimePolicy {
			if err := t.setRTMRs(b.RTMR); err != nil {
				return nil, err
			}
		}
		return &Policy{TEE: TEETDX, TDX: t}, nil
	}
	return nil, errors.New("unsupported policy type")
}

func (t *TDXPolicy) setRTMRs(s string) error {
	var parts []string
	if strings.Contains(s, ",") {
		parts = strings.Split(s, ",")
	} else {
		for len(s) > 0 && len(s)%96 == 0 {
			parts, s = append(parts, s[:96]), s[96:]
		}
		if s != "" {
			return errors.New("rtmr: want 1 to 4 values of 96 hex digits")
		}
	}
	if len(parts) == 0 || len(parts) > 4 {
		return errors.New("rtmr: want 1 to 4 values")
	}
	dst := []*[]Hex48{&t.RTMR0, &t.RTMR1, &t.RTMR2, &t.RTMR3}
	for i, part := range parts {
		var m Hex48
		if err := measurement(m[:], strings.TrimSpace(part)); err != nil {
			return fmt.Errorf("rtmr%d: %w", i, err)
		}
		*dst[i] = []Hex48{m}
	}
	return nil
}

// measurement decodes hex into dst, left-padding with zeros.
func measurement(dst []byte, s string) error {
	if s == "" || len(s) > 2*len(dst) {
		return fmt.Errorf("measurement of %d hex digits, want 1 to %d", len(s), 2*len(dst))
	}
	s = strings.Repeat("0", 2*len(dst)-len(s)) + s
	_, err := hex.Decode(dst, []byte(s))
	return err
}

// reportData decodes up to 64 hex-encoded bytes, right-padded with zeros.
func reportData(s string) (Hex64, error) {
	var rd Hex64
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > len(rd) {
		return rd, errors.New("reportData: want 1 to 64 hex-encoded bytes")
	}
	copy(rd[:], b)
	return rd, nil
}

// BigDLResult maps a verification and policy outcome to BigDL's
// /verifyQuote result: 0 pass, 1 pass with a TCB warning (status other than
// UpToDate), -1 fail (err != nil or no result).
func BigDLResult(r *Result, err error) int {
	switch {
	case err != nil || r == nil:
		return -1
	case r.TCBStatus == StatusUpToDate || r.TEE == TEEMock:
		return 0
	}
	return 1
}
