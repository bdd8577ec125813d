package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// OIDs of the Intel SGX PCK certificate extension (Intel SGX PCK Certificate
// and CRL Profile).
var (
	oidSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB           = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType       = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
)

// PCKExtensions are the fields of a PCK certificate's SGX extension used by
// verification: the platform's TCB (as certified by Intel) and identity.
type PCKExtensions struct {
	PPID [16]byte
	// TCBComponents are the 16 SGX TCB component SVNs (TCB.1 … TCB.16).
	TCBComponents [16]byte
	PCESVN        uint16
	CPUSVN        [16]byte
	PCEID         [2]byte
	FMSPC         [6]byte
	// SGXType: 0 standard, 1 scalable, 2 scalable with integrity.
	SGXType int
}

// extEntry is one SEQUENCE { OID, value } of the SGX extension.
type extEntry struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// parsePCKExtensions extracts and strictly parses the SGX extension of a PCK
// certificate. Optional members (platform instance id, configuration) are
// ignored; required ones must appear exactly once.
func parsePCKExtensions(cert *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSGXExtensions) {
			if raw != nil {
				return nil, errors.New("duplicate sgx extension")
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, errors.New("pck certificate has no sgx extension")
	}
	return parseSGXExtension(raw)
}

// parseSGXExtension parses the DER value of the SGX extension.
func parseSGXExtension(raw []byte) (*PCKExtensions, error) {
	var entries []extEntry
	if err := unmarshalExact(raw, &entries); err != nil {
		return nil, fmt.Errorf("sgx extension: %w", err)
	}
	var p PCKExtensions
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.ID.String()
		if seen[key] {
			return nil, fmt.Errorf("duplicate sgx extension member %s", key)
		}
		seen[key] = true
		var err error
		switch {
		case e.ID.Equal(oidPPID):
			err = octets(e.Value.FullBytes, p.PPID[:])
		case e.ID.Equal(oidTCB):
			err = p.parseTCB(e.Value.FullBytes)
		case e.ID.Equal(oidPCEID):
			err = octets(e.Value.FullBytes, p.PCEID[:])
		case e.ID.Equal(oidFMSPC):
			err = octets(e.Value.FullBytes, p.FMSPC[:])
		case e.ID.Equal(oidSGXType):
			var t asn1.Enumerated
			err = unmarshalExact(e.Value.FullBytes, &t)
			p.SGXType = int(t)
		}
		if err != nil {
			return nil, fmt.Errorf("sgx extension member %s: %w", key, err)
		}
	}
	for _, oid := range []asn1.ObjectIdentifier{oidPPID, oidTCB, oidPCEID, oidFMSPC} {
		if !seen[oid.String()] {
			return nil, fmt.Errorf("sgx extension lacks %s", oid)
		}
	}
	return &p, nil
}

func (p *PCKExtensions) parseTCB(der []byte) error {
	var entries []extEntry
	if err := unmarshalExact(der, &entries); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, e := range entries {
		if len(e.ID) != len(oidTCB)+1 || !e.ID[:len(oidTCB)].Equal(oidTCB) {
			return fmt.Errorf("unknown tcb member %s", e.ID)
		}
		n := e.ID[len(oidTCB)]
		if seen[n] {
			return fmt.Errorf("duplicate tcb member %d", n)
		}
		seen[n] = true
		switch {
		case n >= 1 && n <= 16:
			v, err := asn1Int(e.Value.FullBytes, 255)
			if err != nil {
				return err
			}
			p.TCBComponents[n-1] = byte(v)
		case n == 17:
			v, err := asn1Int(e.Value.FullBytes, 65535)
			if err != nil {
				return err
			}
			p.PCESVN = uint16(v)
		case n == 18:
			if err := octets(e.Value.FullBytes, p.CPUSVN[:]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown tcb member %d", n)
		}
	}
	if len(seen) != 18 {
		return fmt.Errorf("tcb has %d of 18 members", len(seen))
	}
	return nil
}

func unmarshalExact(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data after asn.1 value")
	}
	return nil
}

func octets(der []byte, dst []byte) error {
	var b []byte
	if err := unmarshalExact(der, &b); err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("octet string of %d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func asn1Int(der []byte, max int) (int, error) {
	var v int
	if err := unmarshalExact(der, &v); err != nil {
		return 0, err
	}
	if v < 0 || v > max {
		return 0, fmt.Errorf("integer %d out of range [0, %d]", v, max)
	}
	return v, nil
}

// parsePEMChain parses a chain of PEM certificates. Only CERTIFICATE blocks
// and surrounding whitespace are allowed; the DCAP quote generator appends a
// NUL terminator, so trailing NUL bytes are tolerated too.
func parsePEMChain(data []byte) ([]*x509.Certificate, error) {
	rest := bytes.TrimRight(data, "\x00")
	var certs []*x509.Certificate
	for {
		// pem.Decode skips anything before a block: refuse that here.
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, errors.New("non-pem data in certificate chain")
		}
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("malformed pem block in certificate chain")
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			return nil, fmt.Errorf("unexpected pem block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in chain")
	}
	return certs, nil
}

// pckCAKind returns "platform" or "processor" from the PCK CA's common name.
// It is used only to pick the CRL to fetch, never for trust.
func pckCAKind(ca *x509.Certificate) string {
	if strings.Contains(strings.ToLower(ca.Subject.CommonName), "processor") {
		return "processor"
	}
	return "platform"
}
