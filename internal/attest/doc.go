// Package attest verifies Intel SGX and TDX DCAP quotes offline and
// evaluates the results against attestation policies, so that the KMS can
// release keys only to attested workloads.
//
// Pure Go and standard-library crypto: one verifier written from the quote
// layouts and verification steps of docs/attestation.md serves SGX (quote
// v3, and v4/v5 with an SGX body) and TDX (quote v4, v5 with TDX 1.0 or 1.5
// bodies), with the same pinned root, CRL handling, collateral checks and
// [Reason] codes for both.
//
// # Verification
//
// [Verify] takes the quote, its [Collateral] and [Options] (verification
// time, trusted root fingerprints, grace period, CRL requirement) and runs
// every step in order: strict parsing ([ParseQuote]); the PCK certificate
// chain to the Intel SGX Root CA pinned by the SHA-256 of its DER, valid at
// the verification time, with CRLs; the QE report signature; the binding of
// the attestation key in the QE report; the quote signature; the TCB info
// and QE identity signatures over their raw JSON, dates, FMSPC and PCE id;
// the QE identity and its TCB level; the platform (and TDX module) TCB
// level. The [Result] carries the measurements, the TCB statuses, the
// advisory ids and the collateral dates. Every failure is an [*Error] with a
// [Reason]; [ReasonOf] extracts it.
//
// # Collateral
//
// [Collateral] is plain bytes as Intel signed them, loaded from files
// ([LoadCollateral], [DirSource]) or from a PCCS ([PCCS], cached per FMSPC),
// behind the [CollateralSource] interface used by [VerifyWithSource].
//
// # Policies
//
// A [Policy] pins code identity (MRENCLAVE, or MRSIGNER and ISVPRODID for
// SGX; MRTD for TDX), optionally RTMRs, MRSEAM, minimum SVNs, report data,
// debug mode and the accepted TCB statuses. [Policy.Evaluate] checks a
// [Result]. Policies encode to JSON for storage ([ParsePolicy] decodes
// strictly). [BigDLPolicy] converts the six policy types of BigDL's remote
// attestation service.
//
// # Mock TEE
//
// [NewMockSGXQuote] and [NewMockTDXQuote] build INSECURE, unsigned quotes
// for development and CI. [Verify] refuses them unless
// [Options.AllowMockTEE], and only a policy whose TEE is [TEEMock] accepts
// their results, which are marked Insecure.
//
// # Limits
//
// Only ECDSA P-256 attestation keys and certification data type 5 (PCK
// chain) are supported; TCB info v3 and QE identity v2 (Intel PCS API v4)
// only. The TDX rules follow Intel's QVL: the TDX module must match
// tdxModule; with a module major version (TEE_TCB_SVN[1] > 0) it is also
// evaluated against tdxModuleIdentities and TEE_TCB_SVN[0..1] are skipped in
// the platform level comparison. Not evaluated: the platform configuration
// (PCK extension member 7: dynamic platform, cached keys, SMT), TEE_TCB_SVN2
// and MRSERVICETD of TDX 1.5 bodies, and TCB dates against a policy. See
// docs/attestation.md.
package attest
