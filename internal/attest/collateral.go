package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Collateral is the Intel-signed data a quote is verified against. It is
// plain bytes as received from Intel PCS, a PCCS or files, so that signatures
// are checked over exactly what was signed.
type Collateral struct {
	// TCBInfo is the JSON {"tcbInfo":{...},"signature":"<hex>"} for the
	// platform's FMSPC (SGX or TDX TCB info, version 3).
	TCBInfo []byte
	// TCBInfoChain is the PEM issuer chain of TCBInfo: Intel SGX TCB Signing
	// certificate, then the root CA.
	TCBInfoChain []byte
	// QEIdentity is the JSON {"enclaveIdentity":{...},"signature":"<hex>"}
	// (QE identity for SGX, TD_QE identity for TDX, version 2).
	QEIdentity []byte
	// QEIdentityChain is the PEM issuer chain of QEIdentity; when empty,
	// TCBInfoChain is used (Intel signs both with the same certificate).
	QEIdentityChain []byte
	// RootCRL is the Intel SGX Root CA CRL (DER, PEM or hex). Optional
	// unless Options.RequireCRLs.
	RootCRL []byte
	// PCKCRL is the CRL of the PCK platform or processor CA that issued the
	// quote's PCK certificate (DER, PEM or hex). Optional unless
	// Options.RequireCRLs.
	PCKCRL []byte
}

// CollateralFiles names the files of a [Collateral]; empty names are skipped.
type CollateralFiles struct {
	TCBInfo, TCBInfoChain, QEIdentity, QEIdentityChain, RootCRL, PCKCRL string
}

// LoadCollateral reads the named files. It returns the first read error.
func LoadCollateral(f CollateralFiles) (Collateral, error) {
	var c Collateral
	for _, x := range []struct {
		path string
		dst  *[]byte
	}{
		{f.TCBInfo, &c.TCBInfo}, {f.TCBInfoChain, &c.TCBInfoChain},
		{f.QEIdentity, &c.QEIdentity}, {f.QEIdentityChain, &c.QEIdentityChain},
		{f.RootCRL, &c.RootCRL}, {f.PCKCRL, &c.PCKCRL},
	} {
		if x.path == "" {
			continue
		}
		b, err := os.ReadFile(x.path)
		if err != nil {
			return Collateral{}, fmt.Errorf("load collateral: %w", err)
		}
		*x.dst = b
	}
	return c, nil
}

// hexBytes decodes a JSON hex string (either case).
type hexBytes []byte

// UnmarshalText decodes hex of any even length.
func (h *hexBytes) UnmarshalText(t []byte) error {
	b, err := hex.DecodeString(string(t))
	if err != nil {
		return err
	}
	*h = b
	return nil
}

// tcbInfo is the inner "tcbInfo" object of TCB info v3 (SGX and TDX).
type tcbInfo struct {
	ID                      string              `json:"id"`
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   hexBytes            `json:"fmspc"`
	PCEID                   hexBytes            `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               *tdxModule          `json:"tdxModule"`
	TDXModuleIdentities     []tdxModuleIdentity `json:"tdxModuleIdentities"`
	TCBLevels               []tcbLevel          `json:"tcbLevels"`
}

type tcbLevel struct {
	TCB struct {
		SGX    []tcbComponent `json:"sgxtcbcomponents"`
		PCESVN *int           `json:"pcesvn"`
		TDX    []tcbComponent `json:"tdxtcbcomponents"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   TCBStatus `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

type tcbComponent struct {
	SVN *int `json:"svn"`
}

type tdxModule struct {
	MRSigner       hexBytes `json:"mrsigner"`
	Attributes     hexBytes `json:"attributes"`
	AttributesMask hexBytes `json:"attributesMask"`
}

type tdxModuleIdentity struct {
	ID string `json:"id"`
	tdxModule
	TCBLevels []identityLevel `json:"tcbLevels"`
}

// identityLevel is a TCB level of a QE identity or TDX module identity.
type identityLevel struct {
	TCB struct {
		ISVSVN *int `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   TCBStatus `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

// enclaveIdentity is the inner "enclaveIdentity" object of QE identity v2.
type enclaveIdentity struct {
	ID                      string          `json:"id"`
	Version                 int             `json:"version"`
	IssueDate               time.Time       `json:"issueDate"`
	NextUpdate              time.Time       `json:"nextUpdate"`
	TCBEvaluationDataNumber int             `json:"tcbEvaluationDataNumber"`
	MiscSelect              hexBytes        `json:"miscselect"`
	MiscSelectMask          hexBytes        `json:"miscselectMask"`
	Attributes              hexBytes        `json:"attributes"`
	AttributesMask          hexBytes        `json:"attributesMask"`
	MRSigner                hexBytes        `json:"mrsigner"`
	ISVProdID               *int            `json:"isvprodid"`
	TCBLevels               []identityLevel `json:"tcbLevels"`
}

// splitSigned splits {"<field>":{...},"signature":"<hex>"} into the raw
// bytes of the inner object exactly as received (what Intel signed; never
// re-serialised) and the 64-byte r‖s signature.
func splitSigned(data []byte, field string) (raw, sig []byte, err error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, nil, err
	}
	raw, sigJSON := env[field], env["signature"]
	if len(env) != 2 || raw == nil || sigJSON == nil {
		return nil, nil, fmt.Errorf("want exactly the members %q and \"signature\"", field)
	}
	if raw[0] != '{' {
		return nil, nil, fmt.Errorf("%q is not an object", field)
	}
	var sigHex string
	if err := json.Unmarshal(sigJSON, &sigHex); err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}
	if sig, err = hex.DecodeString(sigHex); err != nil || len(sig) != ecdsaSigLen {
		return nil, nil, errors.New("signature is not 64 hex-encoded bytes")
	}
	return raw, sig, nil
}

// verifyRawSig verifies an r‖s ECDSA-P256-SHA256 signature.
func verifyRawSig(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != ecdsaSigLen {
		return false
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// verifyTCBInfo runs step 6 for the TCB info: issuer chain, signature over
// the raw inner object, then content checks and dates.
func (v *verifier) verifyTCBInfo(col *Collateral, tee TEE) (*tcbInfo, error) {
	raw, sig, err := splitSigned(col.TCBInfo, "tcbInfo")
	if err != nil {
		return nil, errorf(ReasonCollateral, "tcb info: %w", err)
	}
	pub, err := v.verifySigningChain("tcb info issuer chain", col.TCBInfoChain, col)
	if err != nil {
		return nil, err
	}
	if !verifyRawSig(pub, raw, sig) {
		return nil, errorf(ReasonTCBInfoSig, "tcb info signature does not verify")
	}
	info, err := decodeTCBInfo(raw, tee)
	if err != nil {
		return nil, err
	}
	if err := v.checkDates("tcb info", info.IssueDate, info.NextUpdate); err != nil {
		return nil, err
	}
	return info, nil
}

// decodeTCBInfo decodes and validates the inner tcbInfo object.
func decodeTCBInfo(raw []byte, tee TEE) (*tcbInfo, error) {
	var info tcbInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, errorf(ReasonCollateral, "tcb info: %w", err)
	}
	if err := info.validate(tee); err != nil {
		return nil, errorf(ReasonCollateral, "tcb info: %w", err)
	}
	return &info, nil
}

// verifyQEIdentity runs step 6 for the QE identity.
func (v *verifier) verifyQEIdentity(col *Collateral, tee TEE) (*enclaveIdentity, error) {
	raw, sig, err := splitSigned(col.QEIdentity, "enclaveIdentity")
	if err != nil {
		return nil, errorf(ReasonCollateral, "qe identity: %w", err)
	}
	chain := col.QEIdentityChain
	if len(chain) == 0 {
		chain = col.TCBInfoChain
	}
	pub, err := v.verifySigningChain("qe identity issuer chain", chain, col)
	if err != nil {
		return nil, err
	}
	if !verifyRawSig(pub, raw, sig) {
		return nil, errorf(ReasonQEIdentitySig, "qe identity signature does not verify")
	}
	id, err := decodeQEIdentity(raw, tee)
	if err != nil {
		return nil, err
	}
	if err := v.checkDates("qe identity", id.IssueDate, id.NextUpdate); err != nil {
		return nil, err
	}
	return id, nil
}

// decodeQEIdentity decodes and validates the inner enclaveIdentity object.
func decodeQEIdentity(raw []byte, tee TEE) (*enclaveIdentity, error) {
	var id enclaveIdentity
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, errorf(ReasonCollateral, "qe identity: %w", err)
	}
	if err := id.validate(tee); err != nil {
		return nil, errorf(ReasonCollateral, "qe identity: %w", err)
	}
	return &id, nil
}

// checkDates requires issueDate ≤ now ≤ nextUpdate (+ grace).
func (v *verifier) checkDates(what string, issued, next time.Time) error {
	if v.now.Before(issued) || v.now.After(next.Add(v.opts.CollateralGrace)) {
		return errorf(ReasonCollateralExpired, "%s is valid from %s to %s, not at %s", what,
			issued.Format(time.RFC3339), next.Format(time.RFC3339), v.now.Format(time.RFC3339))
	}
	return nil
}

// checkPlatform matches the TCB info to the PCK certificate (step 6).
func (info *tcbInfo) checkPlatform(ext *PCKExtensions) error {
	if !bytes.Equal(info.FMSPC, ext.FMSPC[:]) {
		return errorf(ReasonFMSPCMismatch, "tcb info is for fmspc %x, pck certificate has %x", []byte(info.FMSPC), ext.FMSPC)
	}
	if !bytes.Equal(info.PCEID, ext.PCEID[:]) {
		return errorf(ReasonPCEIDMismatch, "tcb info is for pce id %x, pck certificate has %x", []byte(info.PCEID), ext.PCEID)
	}
	return nil
}

func (info *tcbInfo) validate(tee TEE) error {
	wantID := map[TEE]string{TEESGX: "SGX", TEETDX: "TDX"}[tee]
	switch {
	case info.ID != wantID:
		return fmt.Errorf("id %q, want %q", info.ID, wantID)
	case info.Version != 3:
		return fmt.Errorf("unsupported version %d, want 3", info.Version)
	case info.TCBType != 0:
		return fmt.Errorf("unsupported tcb type %d", info.TCBType)
	case len(info.FMSPC) != 6 || len(info.PCEID) != 2:
		return errors.New("malformed fmspc or pce id")
	case len(info.TCBLevels) == 0:
		return errors.New("no tcb levels")
	}
	for i := range info.TCBLevels {
		if err := info.TCBLevels[i].validate(tee); err != nil {
			return fmt.Errorf("tcb level %d: %w", i, err)
		}
	}
	if tee != TEETDX {
		return nil
	}
	if info.TDXModule == nil {
		return errors.New("tdx tcb info without tdxModule")
	}
	if err := info.TDXModule.validate(); err != nil {
		return fmt.Errorf("tdxModule: %w", err)
	}
	for _, m := range info.TDXModuleIdentities {
		if err := m.validate(); err != nil {
			return fmt.Errorf("tdx module identity %q: %w", m.ID, err)
		}
		if err := validateIdentityLevels(m.TCBLevels, 255); err != nil {
			return fmt.Errorf("tdx module identity %q: %w", m.ID, err)
		}
	}
	return nil
}

func (l *tcbLevel) validate(tee TEE) error {
	if err := validateComponents(l.TCB.SGX); err != nil {
		return fmt.Errorf("sgxtcbcomponents: %w", err)
	}
	if p := l.TCB.PCESVN; p == nil || *p < 0 || *p > 65535 {
		return errors.New("missing or invalid pcesvn")
	}
	if tee == TEETDX {
		if err := validateComponents(l.TCB.TDX); err != nil {
			return fmt.Errorf("tdxtcbcomponents: %w", err)
		}
	} else if l.TCB.TDX != nil {
		return errors.New("tdxtcbcomponents in sgx tcb info")
	}
	return l.TCBStatus.validate()
}

func validateComponents(c []tcbComponent) error {
	if len(c) != 16 {
		return fmt.Errorf("%d components, want 16", len(c))
	}
	for _, x := range c {
		if x.SVN == nil || *x.SVN < 0 || *x.SVN > 255 {
			return errors.New("missing or invalid svn")
		}
	}
	return nil
}

func (m *tdxModule) validate() error {
	if len(m.MRSigner) != tdxMeasureLen || len(m.Attributes) != 8 || len(m.AttributesMask) != 8 {
		return errors.New("malformed mrsigner, attributes or attributesMask")
	}
	return nil
}

func validateIdentityLevels(levels []identityLevel, maxSVN int) error {
	if len(levels) == 0 {
		return errors.New("no tcb levels")
	}
	for i, l := range levels {
		if s := l.TCB.ISVSVN; s == nil || *s < 0 || *s > maxSVN {
			return fmt.Errorf("tcb level %d: missing or invalid isvsvn", i)
		}
		if err := l.TCBStatus.validate(); err != nil {
			return fmt.Errorf("tcb level %d: %w", i, err)
		}
	}
	return nil
}

func (id *enclaveIdentity) validate(tee TEE) error {
	wantID := map[TEE]string{TEESGX: "QE", TEETDX: "TD_QE"}[tee]
	switch {
	case id.ID != wantID:
		return fmt.Errorf("id %q, want %q", id.ID, wantID)
	case id.Version != 2:
		return fmt.Errorf("unsupported version %d, want 2", id.Version)
	case len(id.MiscSelect) != 4 || len(id.MiscSelectMask) != 4:
		return errors.New("malformed miscselect or miscselectMask")
	case len(id.Attributes) != 16 || len(id.AttributesMask) != 16:
		return errors.New("malformed attributes or attributesMask")
	case len(id.MRSigner) != sgxMeasureLen:
		return errors.New("malformed mrsigner")
	case id.ISVProdID == nil || *id.ISVProdID < 0 || *id.ISVProdID > 65535:
		return errors.New("missing or invalid isvprodid")
	}
	return validateIdentityLevels(id.TCBLevels, 65535)
}
