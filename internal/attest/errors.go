package attest

import (
	"errors"
	"fmt"
)

// Reason is a stable, machine-readable code saying which check of quote
// verification or policy evaluation failed. Codes are API (they may be logged,
// counted and mapped to responses); the text of an [Error] is not.
type Reason string

// Reasons of quote parsing and verification, in the order of the verification
// steps (docs/attestation.md, "Verification steps").
const (
	// ReasonParse: the quote is malformed (unknown version, attestation key
	// type or TEE type, inconsistent lengths, trailing bytes).
	ReasonParse Reason = "parse"
	// ReasonUnsupportedQE: the quote was produced by a quoting enclave of an
	// unknown vendor.
	ReasonUnsupportedQE Reason = "unsupported_qe"
	// ReasonUnsupportedCertData: the certification data is not a PCK
	// certificate chain (type 5), for example an encrypted PPID (type 3).
	ReasonUnsupportedCertData Reason = "unsupported_cert_data"
	// ReasonPCKChain: the PCK certificate chain is malformed or does not chain
	// (bad signature, wrong issuer, CA flags, unknown critical extension).
	ReasonPCKChain Reason = "pck_chain"
	// ReasonPCKExtension: the PCK certificate lacks a well-formed SGX
	// extension (OID 1.2.840.113741.1.13.1).
	ReasonPCKExtension Reason = "pck_extension"
	// ReasonRootNotPinned: a chain ends in a root certificate whose SHA-256
	// is not one of the trusted root fingerprints.
	ReasonRootNotPinned Reason = "root_not_pinned"
	// ReasonCertExpired: a certificate is not valid at the verification time.
	ReasonCertExpired Reason = "cert_expired"
	// ReasonCRL: a CRL is malformed, missing while required, or not signed by
	// the expected issuer.
	ReasonCRL Reason = "crl"
	// ReasonCRLExpired: a CRL is not current at the verification time.
	ReasonCRLExpired Reason = "crl_expired"
	// ReasonPCKRevoked: the PCK certificate is listed in the PCK CRL.
	ReasonPCKRevoked Reason = "pck_revoked"
	// ReasonCertRevoked: a CA or TCB-signing certificate is listed in the
	// root CA CRL.
	ReasonCertRevoked Reason = "cert_revoked"
	// ReasonQEReportSig: the QE report is not signed by the PCK key.
	ReasonQEReportSig Reason = "qe_report_signature"
	// ReasonQEBinding: the QE report data does not bind the attestation key
	// and the QE authentication data.
	ReasonQEBinding Reason = "qe_binding"
	// ReasonQuoteSig: the quote is not signed by the attestation key.
	ReasonQuoteSig Reason = "quote_signature"
	// ReasonCollateral: collateral is missing, malformed, of an unsupported
	// version, or for another TEE.
	ReasonCollateral Reason = "collateral"
	// ReasonTCBSigningChain: the TCB-info or QE-identity issuer chain is
	// malformed or does not chain to the root.
	ReasonTCBSigningChain Reason = "tcb_signing_chain"
	// ReasonTCBInfoSig: the TCB info signature does not verify.
	ReasonTCBInfoSig Reason = "tcb_info_signature"
	// ReasonQEIdentitySig: the QE identity signature does not verify.
	ReasonQEIdentitySig Reason = "qe_identity_signature"
	// ReasonCollateralExpired: the verification time is outside the
	// issue-date/next-update window of the TCB info or QE identity.
	ReasonCollateralExpired Reason = "collateral_expired"
	// ReasonFMSPCMismatch: the TCB info is for another FMSPC than the PCK
	// certificate's.
	ReasonFMSPCMismatch Reason = "fmspc_mismatch"
	// ReasonPCEIDMismatch: the TCB info is for another PCE id than the PCK
	// certificate's.
	ReasonPCEIDMismatch Reason = "pceid_mismatch"
	// ReasonQEIdentityMismatch: the QE report does not match the QE identity
	// (MRSIGNER, ISVPRODID, masked MISCSELECT or attributes).
	ReasonQEIdentityMismatch Reason = "qe_identity_mismatch"
	// ReasonQETCBLevelNotFound: the QE ISVSVN is lower than every QE
	// identity TCB level.
	ReasonQETCBLevelNotFound Reason = "qe_tcb_level_not_found"
	// ReasonQERevoked: the QE's TCB level is Revoked.
	ReasonQERevoked Reason = "qe_revoked"
	// ReasonTDXModuleMismatch: the TDX module (MRSIGNERSEAM, SEAM attributes)
	// does not match the TCB info.
	ReasonTDXModuleMismatch Reason = "tdx_module_mismatch"
	// ReasonTCBLevelNotFound: no platform (or TDX module) TCB level is
	// satisfied by the platform's SVNs: the TCB is not supported.
	ReasonTCBLevelNotFound Reason = "tcb_level_not_found"
	// ReasonTCBRevoked: the platform or TDX module TCB level is Revoked.
	ReasonTCBRevoked Reason = "tcb_revoked"
	// ReasonMockNotAllowed: a mock TEE quote was presented but
	// [Options.AllowMockTEE] is not set.
	ReasonMockNotAllowed Reason = "mock_not_allowed"
)

// Reasons of policy validation and evaluation.
const (
	// ReasonPolicyInvalid: the policy itself is invalid (see [Policy.Validate]).
	ReasonPolicyInvalid Reason = "policy_invalid"
	// ReasonPolicyTEE: the result is for another TEE type than the policy's.
	ReasonPolicyTEE Reason = "policy_tee"
	// ReasonPolicyDebug: the enclave or TD is in debug mode and the policy
	// does not allow it.
	ReasonPolicyDebug Reason = "policy_debug"
	// ReasonPolicyMeasurement: a measurement or product id is not one the
	// policy lists.
	ReasonPolicyMeasurement Reason = "policy_measurement"
	// ReasonPolicySVN: an SVN is below the policy's minimum.
	ReasonPolicySVN Reason = "policy_svn"
	// ReasonPolicyReportData: the report data differs from the policy's.
	ReasonPolicyReportData Reason = "policy_report_data"
	// ReasonPolicyTCBStatus: the TCB status is not one the policy accepts.
	ReasonPolicyTCBStatus Reason = "policy_tcb_status"
)

// Error is the error returned by every function of this package that rejects
// a quote, collateral or policy. Callers switch on Reason (see [ReasonOf]);
// the message is for logs only.
type Error struct {
	Reason Reason
	Err    error
}

// Error returns "attest: <reason>: <detail>".
func (e *Error) Error() string {
	if e.Err == nil {
		return "attest: " + string(e.Reason)
	}
	return "attest: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the [Reason] of the first [*Error] in err's chain, or ""
// when there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// errorf returns an *Error with the given reason and a formatted detail; %w
// verbs wrap as with fmt.Errorf.
func errorf(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}
