package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// IntelSGXRootCASHA256 is the SHA-256 of the DER encoding of the genuine
// Intel SGX Root CA certificate (valid until 2049-12-31), the default trust
// anchor of [Verify].
const IntelSGXRootCASHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

var intelRootPin = func() (p [32]byte) {
	hex.Decode(p[:], []byte(IntelSGXRootCASHA256))
	return p
}()

// Options configure [Verify]. The zero value verifies at the current time
// against the Intel SGX Root CA, with no grace period, optional CRLs and no
// mock TEE.
type Options struct {
	// Now is the verification time for certificates, CRLs and collateral;
	// zero means time.Now().
	Now time.Time
	// TrustedRootSHA256 lists the SHA-256 fingerprints of the DER of the
	// accepted root CA certificates. Nil means only the Intel SGX Root CA
	// ([IntelSGXRootCASHA256]). Roots are never trusted by name.
	TrustedRootSHA256 [][32]byte
	// CollateralGrace accepts TCB info, QE identity and CRLs up to this long
	// after their next-update date (for air-gapped clusters that refresh
	// collateral late). Certificate validity is never extended.
	CollateralGrace time.Duration
	// RequireCRLs rejects verification when the root CA CRL or the PCK CRL
	// is missing from the collateral.
	RequireCRLs bool
	// AllowMockTEE accepts the INSECURE mock TEE quotes of [NewMockSGXQuote].
	// Never set it in production.
	AllowMockTEE bool
}

// Result is the outcome of a successful [Verify]: what the quote proves. A
// Result is not an authorisation; evaluate it against a [Policy].
type Result struct {
	// TEE is TEESGX, TEETDX or TEEMock.
	TEE TEE
	// Insecure is true for mock TEE results: nothing was verified.
	Insecure bool
	// Version is the quote version (3, 4 or 5; 0 for mock quotes).
	Version uint16
	// SGX holds the enclave measurements (MRENCLAVE, MRSIGNER, ISVPRODID,
	// ISVSVN, attributes) when the quote is from an SGX enclave.
	SGX *EnclaveReport
	// TDX holds the TD measurements (MRTD, RTMR0-3, MRSEAM, TEE_TCB_SVN, TD
	// attributes) when the quote is from a TDX TD.
	TDX *TDReport
	// ReportData is the 64 bytes chosen by the enclave or TD (nonce binding).
	ReportData [64]byte
	// Debug is true for a debug enclave or TD.
	Debug bool

	// TCBStatus is the overall status: the platform status converged with
	// the TDX module and QE statuses. Policies check this value.
	TCBStatus TCBStatus
	// PlatformTCBStatus is the status of the matched platform TCB level.
	PlatformTCBStatus TCBStatus
	// TDXModuleStatus is the TDX module identity status ("" when the module
	// has no major version, i.e. TDX 1.0).
	TDXModuleStatus TCBStatus
	// QEStatus is the status of the QE's TCB level.
	QEStatus TCBStatus
	// AdvisoryIDs are the Intel security advisories of the matched platform,
	// TDX module and QE levels.
	AdvisoryIDs []string
	// TCBDate is the date of the matched platform TCB level.
	TCBDate time.Time

	// FMSPC and PCEID identify the platform (from the PCK certificate).
	FMSPC [6]byte
	PCEID [2]byte
	// TCBEvaluationDataNumber is that of the TCB info used.
	TCBEvaluationDataNumber int
	// Collateral validity windows.
	TCBInfoIssueDate, TCBInfoNextUpdate       time.Time
	QEIdentityIssueDate, QEIdentityNextUpdate time.Time
	// VerifiedAt is the verification time used.
	VerifiedAt time.Time
}

// verifier carries the state of one verification.
type verifier struct {
	opts  Options
	now   time.Time
	roots [][32]byte
	// pckRoot is the root of the verified PCK chain: the collateral must be
	// signed under the same root.
	pckRoot *x509.Certificate
}

func newVerifier(opts Options) *verifier {
	v := &verifier{opts: opts, now: opts.Now, roots: opts.TrustedRootSHA256}
	if v.now.IsZero() {
		v.now = time.Now()
	}
	if v.roots == nil {
		v.roots = [][32]byte{intelRootPin}
	}
	return v
}

// Verify parses and fully verifies an SGX or TDX ECDSA quote against the
// collateral, in the order of the verification steps of
// docs/attestation.md:
//
//  1. strict parsing (and an Intel QE vendor id);
//  2. PCK chain (type 5 only) to a pinned root, valid at opts.Now, CRLs;
//  3. QE report signature by the PCK key;
//  4. QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zeros;
//  5. quote signature by the attestation key over header‖body;
//  6. TCB info and QE identity: issuer chain, signature over the raw JSON,
//     dates, FMSPC and PCE id of the PCK certificate;
//  7. QE identity match and QE TCB level;
//  8. platform (and TDX module) TCB level.
//
// Every failure is an [*Error] whose Reason names the failed check. A TCB
// status other than Revoked is not an error: it is reported in the Result
// for the [Policy] to accept or not. Mock TEE quotes are refused with
// [ReasonMockNotAllowed] unless opts.AllowMockTEE. Verify is safe for
// concurrent use; it does not retain quote or col.
func Verify(quote []byte, col Collateral, opts Options) (*Result, error) {
	if isMockQuote(quote) {
		return verifyMock(quote, opts)
	}
	v := newVerifier(opts)
	q, err := ParseQuote(quote) // step 1
	if err != nil {
		return nil, err
	}
	if q.Header.QEVendorID != intelQEVendorID {
		return nil, errorf(ReasonUnsupportedQE, "qe vendor id %x is not intel's", q.Header.QEVendorID)
	}
	return v.verify(q, &col)
}

func (v *verifier) verify(q *Quote, col *Collateral) (*Result, error) {
	if q.CertDataType != CertDataPCKChain { // step 2
		return nil, errorf(ReasonUnsupportedCertData, "certification data type %d, want %d (pck certificate chain)", q.CertDataType, CertDataPCKChain)
	}
	chain, err := v.verifyPCKChain(q.CertData)
	if err != nil {
		return nil, err
	}
	if err := v.checkPCKCRLs(chain, col); err != nil {
		return nil, err
	}
	v.pckRoot = chain.root
	if err := verifyQE(q, chain.leaf.PublicKey.(*ecdsa.PublicKey)); err != nil { // steps 3, 4
		return nil, err
	}
	if err := verifyQuoteSig(q); err != nil { // step 5
		return nil, err
	}
	tee := q.TEE()
	info, err := v.verifyTCBInfo(col, tee) // step 6
	if err != nil {
		return nil, err
	}
	qeID, err := v.verifyQEIdentity(col, tee)
	if err != nil {
		return nil, err
	}
	if err := info.checkPlatform(chain.ext); err != nil {
		return nil, err
	}
	qeLevel, err := evalQE(qeID, &q.QEReport) // step 7
	if err != nil {
		return nil, err
	}
	plat, err := evalPlatform(info, chain.ext, q.TD) // step 8
	if err != nil {
		return nil, err
	}
	r := &Result{
		TEE:                     tee,
		Version:                 q.Header.Version,
		SGX:                     q.SGX,
		TDX:                     q.TD,
		ReportData:              q.ReportData(),
		PlatformTCBStatus:       plat.status,
		TDXModuleStatus:         plat.moduleStatus,
		QEStatus:                qeLevel.TCBStatus,
		TCBStatus:               converge(converge(plat.status, plat.moduleStatus), qeLevel.TCBStatus),
		AdvisoryIDs:             mergeIDs(plat.advisories, qeLevel.AdvisoryIDs),
		TCBDate:                 plat.date,
		FMSPC:                   chain.ext.FMSPC,
		PCEID:                   chain.ext.PCEID,
		TCBEvaluationDataNumber: info.TCBEvaluationDataNumber,
		TCBInfoIssueDate:        info.IssueDate,
		TCBInfoNextUpdate:       info.NextUpdate,
		QEIdentityIssueDate:     qeID.IssueDate,
		QEIdentityNextUpdate:    qeID.NextUpdate,
		VerifiedAt:              v.now,
	}
	if q.TD != nil {
		r.Debug = q.TD.Debug()
	} else {
		r.Debug = q.SGX.Debug()
	}
	return r, nil
}

// verifyQE runs steps 3 and 4.
func verifyQE(q *Quote, pck *ecdsa.PublicKey) error {
	if !verifyRawSig(pck, q.QEReport.appendTo(nil), q.QEReportSignature[:]) {
		return errorf(ReasonQEReportSig, "qe report signature does not verify with the pck key")
	}
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	want := make([]byte, reportDataLen)
	copy(want, h.Sum(nil))
	if subtle.ConstantTimeCompare(want, q.QEReport.ReportData[:]) != 1 {
		return errorf(ReasonQEBinding, "qe report data does not bind the attestation key and qe auth data")
	}
	return nil
}

// verifyQuoteSig runs step 5.
func verifyQuoteSig(q *Quote) error {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestationKey[:]...))
	if err != nil {
		return errorf(ReasonQuoteSig, "attestation key: %w", err)
	}
	if !verifyRawSig(pub, q.signedData(), q.Signature[:]) {
		return errorf(ReasonQuoteSig, "quote signature does not verify with the attestation key")
	}
	return nil
}

// LogValue logs the result's TEE, TCB statuses and measurements in hex, and
// marks mock results insecure. Report data is logged too: it is a hash, not
// a secret.
func (r *Result) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("tee", string(r.TEE)),
		slog.Bool("insecure", r.Insecure),
		slog.Bool("debug", r.Debug),
		slog.String("tcb_status", string(r.TCBStatus)),
		slog.String("qe_status", string(r.QEStatus)),
		slog.Any("advisory_ids", r.AdvisoryIDs),
		slog.String("report_data", hex.EncodeToString(r.ReportData[:])),
	}
	if s := r.SGX; s != nil {
		attrs = append(attrs,
			slog.String("mrenclave", hex.EncodeToString(s.MREnclave[:])),
			slog.String("mrsigner", hex.EncodeToString(s.MRSigner[:])),
			slog.Int("isvprodid", int(s.ISVProdID)),
			slog.Int("isvsvn", int(s.ISVSVN)))
	}
	if d := r.TDX; d != nil {
		attrs = append(attrs,
			slog.String("mrtd", hex.EncodeToString(d.MRTD[:])),
			slog.String("mrseam", hex.EncodeToString(d.MRSEAM[:])),
			slog.String("tee_tcb_svn", hex.EncodeToString(d.TEETCBSVN[:])))
		for i := range d.RTMR {
			attrs = append(attrs, slog.String(fmt.Sprintf("rtmr%d", i), hex.EncodeToString(d.RTMR[i][:])))
		}
	}
	return slog.GroupValue(attrs...)
}
