package attest

import (
	"encoding/binary"
	"fmt"
)

// Header field values understood by [ParseQuote].
const (
	// AttestationKeyECDSAP256 is att_key_type 2: ECDSA-256-with-P-256. It is
	// the only attestation key type accepted.
	AttestationKeyECDSAP256 = 2

	teeTypeSGX uint32 = 0x00000000
	teeTypeTDX uint32 = 0x00000081

	// CertDataPCKChain is certification data type 5: a PEM PCK certificate
	// chain (PCK leaf, PCK platform/processor CA, root CA). It is the only
	// type [Verify] accepts.
	CertDataPCKChain = 5
	// CertDataQEReport is certification data type 6: the v4/v5 wrapper
	// holding the QE report, its signature, the QE auth data and the inner
	// certification data.
	CertDataQEReport = 6

	// v5 body descriptor types.
	bodyTypeSGX   = 1
	bodyTypeTDX10 = 2
	bodyTypeTDX15 = 3
)

// intelQEVendorID is the QE vendor id of Intel's quoting enclaves
// (939A7233-F79C-4CA9-940A-0DB3957F0607).
var intelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Header is the 48-byte quote header.
type Header struct {
	Version            uint16
	AttestationKeyType uint16
	// TEEType is 0 for SGX, 0x81 for TDX (reserved and zero in v3).
	TEEType uint32
	// QESVN and PCESVN are the QE and PCE SVNs in v3 quotes; the same bytes
	// are reserved in v4 and v5. They are informational: the TCB evaluation
	// uses the PCK certificate and the QE report instead.
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
}

func (h *Header) decode(b []byte) {
	h.Version = binary.LittleEndian.Uint16(b[0:2])
	h.AttestationKeyType = binary.LittleEndian.Uint16(b[2:4])
	h.TEEType = binary.LittleEndian.Uint32(b[4:8])
	h.QESVN = binary.LittleEndian.Uint16(b[8:10])
	h.PCESVN = binary.LittleEndian.Uint16(b[10:12])
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
}

func (h *Header) appendTo(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, h.Version)
	b = binary.LittleEndian.AppendUint16(b, h.AttestationKeyType)
	b = binary.LittleEndian.AppendUint32(b, h.TEEType)
	b = binary.LittleEndian.AppendUint16(b, h.QESVN)
	b = binary.LittleEndian.AppendUint16(b, h.PCESVN)
	b = append(b, h.QEVendorID[:]...)
	return append(b, h.UserData[:]...)
}

// Quote is a parsed SGX (v3, v4 or v5) or TDX (v4 or v5) ECDSA-P256 quote.
// Exactly one of SGX and TD is set. A Quote returned by [ParseQuote] is
// structurally valid but NOT verified: use [Verify].
type Quote struct {
	Header Header
	// BodyType is the v5 body descriptor type (1 SGX, 2 TDX 1.0, 3 TDX 1.5);
	// 0 for v3 and v4 quotes.
	BodyType uint16
	SGX      *EnclaveReport
	TD       *TDReport

	// Signature is the ECDSA signature (r‖s) over header‖body by AttestationKey.
	Signature [64]byte
	// AttestationKey is the raw P-256 public key X‖Y of the QE's attestation key.
	AttestationKey [64]byte
	// QEReport is the quoting enclave's report; its report data binds
	// AttestationKey and QEAuthData.
	QEReport EnclaveReport
	// QEReportSignature is the ECDSA signature (r‖s) over QEReport by the PCK key.
	QEReportSignature [64]byte
	QEAuthData        []byte
	// CertDataType and CertData are the (inner, for v4/v5) certification
	// data: type 5 is a PEM PCK certificate chain.
	CertDataType uint16
	CertData     []byte
}

// TEE returns the quote's TEE type: [TEESGX] or [TEETDX].
func (q *Quote) TEE() TEE {
	if q.TD != nil {
		return TEETDX
	}
	return TEESGX
}

// ReportData returns the 64 bytes of report data chosen by the enclave or TD.
func (q *Quote) ReportData() [64]byte {
	if q.TD != nil {
		return q.TD.ReportData
	}
	return q.SGX.ReportData
}

// ParseQuote parses a quote strictly: known version (3, 4, 5), attestation
// key type ECDSA-P256, known TEE type and v5 body type, every length field
// consistent with the data, and no trailing bytes anywhere. It returns an
// [*Error] with [ReasonParse], or [ReasonUnsupportedCertData] when a v4/v5
// quote's outer certification data is not the QE report wrapper (type 6).
// ParseQuote verifies nothing cryptographically. It does not retain b.
func ParseQuote(b []byte) (*Quote, error) {
	r := &reader{b: b}
	var q Quote
	h := r.next(headerLen)
	if h == nil {
		return nil, errorf(ReasonParse, "quote of %d bytes is shorter than its header", len(b))
	}
	q.Header.decode(h)
	if q.Header.AttestationKeyType != AttestationKeyECDSAP256 {
		return nil, errorf(ReasonParse, "unsupported attestation key type %d", q.Header.AttestationKeyType)
	}
	if err := q.parseBody(r); err != nil {
		return nil, err
	}
	sigLen := r.u32()
	sig := r.next64(sigLen)
	if r.err != nil {
		return nil, errorf(ReasonParse, "truncated quote: signature data length %d, %d bytes left", sigLen, len(r.b)-r.off)
	}
	if rest := len(r.b) - r.off; rest != 0 {
		return nil, errorf(ReasonParse, "%d trailing bytes after the signature data", rest)
	}
	if err := q.parseSignatureData(sig); err != nil {
		return nil, err
	}
	return &q, nil
}

func (q *Quote) parseBody(r *reader) error {
	h := &q.Header
	switch h.Version {
	case 3:
		if h.TEEType != teeTypeSGX {
			return errorf(ReasonParse, "v3 quote with tee type %#x", h.TEEType)
		}
		return q.decodeBody(r, sgxReportLen)
	case 4:
		switch h.TEEType {
		case teeTypeSGX:
			return q.decodeBody(r, sgxReportLen)
		case teeTypeTDX:
			return q.decodeBody(r, tdReport10Len)
		}
		return errorf(ReasonParse, "unsupported tee type %#x", h.TEEType)
	case 5:
		q.BodyType = r.u16()
		size := r.u32()
		want, tee := 0, uint32(0)
		switch q.BodyType {
		case bodyTypeSGX:
			want, tee = sgxReportLen, teeTypeSGX
		case bodyTypeTDX10:
			want, tee = tdReport10Len, teeTypeTDX
		case bodyTypeTDX15:
			want, tee = tdReport15Len, teeTypeTDX
		default:
			return errorf(ReasonParse, "unsupported v5 body type %d", q.BodyType)
		}
		if h.TEEType != tee || uint64(size) != uint64(want) {
			return errorf(ReasonParse, "v5 body type %d with tee type %#x and size %d", q.BodyType, h.TEEType, size)
		}
		return q.decodeBody(r, want)
	}
	return errorf(ReasonParse, "unsupported quote version %d", h.Version)
}

func (q *Quote) decodeBody(r *reader, n int) error {
	b := r.next(n)
	if b == nil {
		return errorf(ReasonParse, "truncated quote body")
	}
	if n == sgxReportLen {
		q.SGX = new(EnclaveReport)
		q.SGX.decode(b)
	} else {
		q.TD = new(TDReport)
		q.TD.decode(b)
	}
	return nil
}

func (q *Quote) parseSignatureData(sig []byte) error {
	r := &reader{b: sig}
	copy(q.Signature[:], r.next(ecdsaSigLen))
	copy(q.AttestationKey[:], r.next(ecdsaPubKeyLen))
	if r.err != nil {
		return errorf(ReasonParse, "truncated signature data")
	}
	if q.Header.Version == 3 {
		return q.parseQEBlock(r, "signature data")
	}
	typ := r.u16()
	data := r.next64(r.u32())
	if r.err != nil {
		return errorf(ReasonParse, "truncated certification data")
	}
	if len(r.b) != r.off {
		return errorf(ReasonParse, "%d trailing bytes after the certification data", len(r.b)-r.off)
	}
	if typ != CertDataQEReport {
		return errorf(ReasonUnsupportedCertData, "v%d certification data type %d, want %d", q.Header.Version, typ, CertDataQEReport)
	}
	return q.parseQEBlock(&reader{b: data}, "qe report certification data")
}

// parseQEBlock parses QE report ‖ QE report signature ‖ QE auth data ‖
// certification data, which must fill r exactly.
func (q *Quote) parseQEBlock(r *reader, what string) error {
	qe := r.next(sgxReportLen)
	copy(q.QEReportSignature[:], r.next(ecdsaSigLen))
	auth := r.next(int(r.u16()))
	q.CertDataType = r.u16()
	cert := r.next64(r.u32())
	if r.err != nil {
		return errorf(ReasonParse, "truncated %s", what)
	}
	if len(r.b) != r.off {
		return errorf(ReasonParse, "%d trailing bytes after the %s", len(r.b)-r.off, what)
	}
	if q.CertDataType == CertDataQEReport {
		return errorf(ReasonParse, "nested qe report certification data")
	}
	q.QEReport.decode(qe)
	q.QEAuthData = append([]byte(nil), auth...)
	q.CertData = append([]byte(nil), cert...)
	return nil
}

// signedData returns header‖body (with the v5 body descriptor), the bytes
// the attestation key signs. It is re-encoded from the parsed fields, so the
// signature covers exactly what is interpreted.
func (q *Quote) signedData() []byte {
	b := q.Header.appendTo(make([]byte, 0, headerLen+6+tdReport15Len))
	var body []byte
	if q.TD != nil {
		body = q.TD.appendTo(nil)
	} else {
		body = q.SGX.appendTo(nil)
	}
	if q.Header.Version == 5 {
		b = binary.LittleEndian.AppendUint16(b, q.BodyType)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	}
	return append(b, body...)
}

// marshal re-encodes the quote. For a quote returned by ParseQuote it
// returns the parsed bytes (the parser is strict, so encoding is unique).
func (q *Quote) marshal() []byte {
	qe := q.QEReport.appendTo(nil)
	qe = append(qe, q.QEReportSignature[:]...)
	qe = binary.LittleEndian.AppendUint16(qe, uint16(len(q.QEAuthData)))
	qe = append(qe, q.QEAuthData...)
	qe = binary.LittleEndian.AppendUint16(qe, q.CertDataType)
	qe = binary.LittleEndian.AppendUint32(qe, uint32(len(q.CertData)))
	qe = append(qe, q.CertData...)

	sig := append(q.Signature[:len(q.Signature):len(q.Signature)], q.AttestationKey[:]...)
	if q.Header.Version == 3 {
		sig = append(sig, qe...)
	} else {
		sig = binary.LittleEndian.AppendUint16(sig, CertDataQEReport)
		sig = binary.LittleEndian.AppendUint32(sig, uint32(len(qe)))
		sig = append(sig, qe...)
	}
	b := q.signedData()
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sig)))
	return append(b, sig...)
}

// reader is a bounds-checked little-endian cursor. After the first short
// read err is set and every later read returns zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		if r.err == nil {
			r.err = fmt.Errorf("need %d bytes at offset %d, have %d", n, r.off, len(r.b)-r.off)
		}
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

// next64 is next for a length read from the input, which may exceed int on
// 32-bit platforms.
func (r *reader) next64(n uint32) []byte {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return r.next(len(r.b) - r.off + 1) // fails
	}
	return r.next(int(n))
}

func (r *reader) u16() uint16 {
	if b := r.next(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
