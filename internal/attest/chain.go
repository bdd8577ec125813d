package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// pckChain is a verified PCK certificate chain.
type pckChain struct {
	leaf, ca, root *x509.Certificate
	ext            *PCKExtensions
}

// verifyPCKChain checks certification data type 5 (step 2): exactly leaf,
// PCK CA and root; the root pinned by the SHA-256 of its DER; each
// certificate issued and signed by the next; all valid at the verification
// time; and the leaf's SGX extension well formed. CRLs are checked by the
// caller.
func (v *verifier) verifyPCKChain(data []byte) (*pckChain, error) {
	certs, err := parsePEMChain(data)
	if err != nil {
		return nil, errorf(ReasonPCKChain, "%w", err)
	}
	if len(certs) != 3 {
		return nil, errorf(ReasonPCKChain, "pck chain has %d certificates, want 3 (pck, pck ca, root)", len(certs))
	}
	c := &pckChain{leaf: certs[0], ca: certs[1], root: certs[2]}
	if err := v.checkPinned(c.root); err != nil {
		return nil, err
	}
	for _, link := range [][2]*x509.Certificate{{c.root, c.root}, {c.ca, c.root}, {c.leaf, c.ca}} {
		if err := checkIssued(link[0], link[1]); err != nil {
			return nil, errorf(ReasonPCKChain, "%w", err)
		}
	}
	if c.leaf.BasicConstraintsValid && c.leaf.IsCA {
		return nil, errorf(ReasonPCKChain, "pck certificate is a ca")
	}
	if c.leaf.KeyUsage != 0 && c.leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, errorf(ReasonPCKChain, "pck certificate lacks the digital signature key usage")
	}
	if !isP256(c.leaf) {
		return nil, errorf(ReasonPCKChain, "pck key is not ecdsa p-256")
	}
	if err := v.checkValidity(certs...); err != nil {
		return nil, err
	}
	if c.ext, err = parsePCKExtensions(c.leaf); err != nil {
		return nil, errorf(ReasonPCKExtension, "%w", err)
	}
	return c, nil
}

// checkPCKCRLs checks the root CA CRL (revoking the PCK CA) and the PCK CRL
// (revoking the PCK certificate) when provided, or when required.
func (v *verifier) checkPCKCRLs(c *pckChain, col *Collateral) error {
	if err := v.checkCRL("root ca crl", col.RootCRL, c.root, c.ca, ReasonCertRevoked); err != nil {
		return err
	}
	return v.checkCRL("pck crl", col.PCKCRL, c.ca, c.leaf, ReasonPCKRevoked)
}

// verifySigningChain checks a TCB-info or QE-identity issuer chain (step 6):
// exactly the signing certificate and the pinned root; signed, valid, not a
// CA, not revoked by the root CA CRL. It returns the signing key.
func (v *verifier) verifySigningChain(what string, data []byte, col *Collateral) (*ecdsa.PublicKey, error) {
	certs, err := parsePEMChain(data)
	if err != nil {
		return nil, errorf(ReasonTCBSigningChain, "%s: %w", what, err)
	}
	if len(certs) != 2 {
		return nil, errorf(ReasonTCBSigningChain, "%s has %d certificates, want 2 (signer, root)", what, len(certs))
	}
	signer, root := certs[0], certs[1]
	if err := v.checkPinned(root); err != nil {
		return nil, err
	}
	if v.pckRoot != nil && !bytes.Equal(root.Raw, v.pckRoot.Raw) {
		return nil, errorf(ReasonTCBSigningChain, "%s ends in another root than the pck chain", what)
	}
	if err := checkIssued(root, root); err != nil {
		return nil, errorf(ReasonTCBSigningChain, "%s: %w", what, err)
	}
	if err := checkIssued(signer, root); err != nil {
		return nil, errorf(ReasonTCBSigningChain, "%s: %w", what, err)
	}
	if signer.BasicConstraintsValid && signer.IsCA {
		return nil, errorf(ReasonTCBSigningChain, "%s: signer %q is a ca, not a tcb signing certificate", what, signer.Subject.CommonName)
	}
	if signer.KeyUsage != 0 && signer.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, errorf(ReasonTCBSigningChain, "%s: signer lacks the digital signature key usage", what)
	}
	if !isP256(signer) {
		return nil, errorf(ReasonTCBSigningChain, "%s: signer key is not ecdsa p-256", what)
	}
	if err := v.checkValidity(certs...); err != nil {
		return nil, err
	}
	if err := v.checkCRL("root ca crl", col.RootCRL, root, signer, ReasonCertRevoked); err != nil {
		return nil, err
	}
	return signer.PublicKey.(*ecdsa.PublicKey), nil
}

// checkPinned accepts a root only by the SHA-256 of its DER encoding, never
// by its name.
func (v *verifier) checkPinned(root *x509.Certificate) error {
	sum := sha256.Sum256(root.Raw)
	for _, pin := range v.roots {
		if pin == sum {
			return nil
		}
	}
	return errorf(ReasonRootNotPinned, "root %q (sha256 %x) is not a trusted root", root.Subject.CommonName, sum)
}

func (v *verifier) checkValidity(certs ...*x509.Certificate) error {
	for _, c := range certs {
		if v.now.Before(c.NotBefore) || v.now.After(c.NotAfter) {
			return errorf(ReasonCertExpired, "certificate %q is valid from %s to %s, not at %s",
				c.Subject.CommonName, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), v.now.Format(time.RFC3339))
		}
	}
	return nil
}

// checkIssued checks that parent issued and signed child. CheckSignatureFrom
// also requires parent to be a CA allowed to sign certificates.
func checkIssued(child, parent *x509.Certificate) error {
	if len(child.UnhandledCriticalExtensions) != 0 {
		return fmt.Errorf("certificate %q has an unknown critical extension", child.Subject.CommonName)
	}
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("certificate %q is not issued by %q", child.Subject.CommonName, parent.Subject.CommonName)
	}
	if err := child.CheckSignatureFrom(parent); err != nil {
		return fmt.Errorf("certificate %q: %w", child.Subject.CommonName, err)
	}
	return nil
}

func isP256(c *x509.Certificate) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P256()
}

// checkCRL checks, when data is non-empty, that the CRL is signed by issuer
// and current, and that cert is not listed (listed → reason). An empty CRL is
// an error only when Options.RequireCRLs is set.
func (v *verifier) checkCRL(what string, data []byte, issuer, cert *x509.Certificate, reason Reason) error {
	if len(data) == 0 {
		if v.opts.RequireCRLs {
			return errorf(ReasonCRL, "%s is required but missing", what)
		}
		return nil
	}
	crl, err := parseCRL(data)
	if err != nil {
		return errorf(ReasonCRL, "%s: %w", what, err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return errorf(ReasonCRL, "%s is not issued by %q", what, issuer.Subject.CommonName)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return errorf(ReasonCRL, "%s: %w", what, err)
	}
	if v.now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && v.now.After(crl.NextUpdate.Add(v.opts.CollateralGrace))) {
		return errorf(ReasonCRLExpired, "%s is current from %s to %s, not at %s", what,
			crl.ThisUpdate.Format(time.RFC3339), crl.NextUpdate.Format(time.RFC3339), v.now.Format(time.RFC3339))
	}
	if listed(crl, cert.SerialNumber) {
		return errorf(reason, "certificate %q (serial %x) is revoked by the %s", cert.Subject.CommonName, cert.SerialNumber, what)
	}
	return nil
}

func listed(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// parseCRL accepts a CRL as DER, PEM ("X509 CRL") or hex-encoded DER (as
// some PCCS versions serve it).
func parseCRL(data []byte) (*x509.RevocationList, error) {
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("pem crl must be a single X509 CRL block")
		}
		data = block.Bytes
	} else if t := bytes.TrimSpace(data); len(t) > 0 && t[0] != 0x30 {
		der, err := hex.DecodeString(string(t))
		if err != nil {
			return nil, errors.New("crl is neither der, pem nor hex")
		}
		data = der
	}
	return x509.ParseRevocationList(data)
}
