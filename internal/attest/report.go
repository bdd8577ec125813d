package attest

import "encoding/binary"

// Sizes of the fixed-size structures of a DCAP quote.
const (
	headerLen       = 48
	sgxReportLen    = 384
	tdReport10Len   = 584
	tdReport15Len   = 648
	ecdsaSigLen     = 64
	ecdsaPubKeyLen  = 64
	sgxDebugFlag    = 0x02 // attributes.flags bit 1
	tdDebugFlag     = 0x01 // td_attributes bit 0 (TUD.DEBUG)
	reportDataLen   = 64
	sgxMeasureLen   = 32
	tdxMeasureLen   = 48
	teeTCBSVNLength = 16
)

// EnclaveReport is an SGX report body (384 bytes): the body of an SGX quote
// and the QE report. Reserved fields are kept so that the report
// re-encodes to the signed bytes.
type EnclaveReport struct {
	CPUSVN       [16]byte
	MiscSelect   uint32
	reserved1    [12]byte
	ISVExtProdID [16]byte
	// Attributes are the SECS attributes: flags (8 bytes, bit 1 = DEBUG) then XFRM.
	Attributes  [16]byte
	MREnclave   [32]byte
	reserved2   [32]byte
	MRSigner    [32]byte
	reserved3   [32]byte
	ConfigID    [64]byte
	ISVProdID   uint16
	ISVSVN      uint16
	ConfigSVN   uint16
	reserved4   [42]byte
	ISVFamilyID [16]byte
	ReportData  [64]byte
}

// Debug reports whether the enclave was launched in debug mode, in which its
// memory is readable by the host: such an enclave protects nothing.
func (r *EnclaveReport) Debug() bool { return r.Attributes[0]&sgxDebugFlag != 0 }

func (r *EnclaveReport) decode(b []byte) {
	_ = b[sgxReportLen-1]
	copy(r.CPUSVN[:], b[0:16])
	r.MiscSelect = binary.LittleEndian.Uint32(b[16:20])
	copy(r.reserved1[:], b[20:32])
	copy(r.ISVExtProdID[:], b[32:48])
	copy(r.Attributes[:], b[48:64])
	copy(r.MREnclave[:], b[64:96])
	copy(r.reserved2[:], b[96:128])
	copy(r.MRSigner[:], b[128:160])
	copy(r.reserved3[:], b[160:192])
	copy(r.ConfigID[:], b[192:256])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:258])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:260])
	r.ConfigSVN = binary.LittleEndian.Uint16(b[260:262])
	copy(r.reserved4[:], b[262:304])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
}

func (r *EnclaveReport) appendTo(b []byte) []byte {
	b = append(b, r.CPUSVN[:]...)
	b = binary.LittleEndian.AppendUint32(b, r.MiscSelect)
	b = append(b, r.reserved1[:]...)
	b = append(b, r.ISVExtProdID[:]...)
	b = append(b, r.Attributes[:]...)
	b = append(b, r.MREnclave[:]...)
	b = append(b, r.reserved2[:]...)
	b = append(b, r.MRSigner[:]...)
	b = append(b, r.reserved3[:]...)
	b = append(b, r.ConfigID[:]...)
	b = binary.LittleEndian.AppendUint16(b, r.ISVProdID)
	b = binary.LittleEndian.AppendUint16(b, r.ISVSVN)
	b = binary.LittleEndian.AppendUint16(b, r.ConfigSVN)
	b = append(b, r.reserved4[:]...)
	b = append(b, r.ISVFamilyID[:]...)
	return append(b, r.ReportData[:]...)
}

// TDReport is a TD report body: 584 bytes for TDX 1.0 (quote v4, v5 body
// type 2) or 648 bytes for TDX 1.5 (v5 body type 3, which adds TEETCBSVN2 and
// MRServiceTD).
type TDReport struct {
	// TEETCBSVN is the TDX module's TCB SVN: [0] module SVN (minor),
	// [1] module major version (0 for TDX 1.0), [2..] other TDX components.
	TEETCBSVN      [16]byte
	MRSEAM         [48]byte
	MRSignerSEAM   [48]byte
	SEAMAttributes [8]byte
	// TDAttributes: bit 0 = DEBUG.
	TDAttributes  [8]byte
	XFAM          [8]byte
	MRTD          [48]byte
	MRConfigID    [48]byte
	MROwner       [48]byte
	MROwnerConfig [48]byte
	RTMR          [4][48]byte
	ReportData    [64]byte

	// TDX 1.5 only (V15 set).
	V15         bool
	TEETCBSVN2  [16]byte
	MRServiceTD [48]byte
}

// Debug reports whether the TD is debuggable (its state readable by the
// host): such a TD protects nothing.
func (r *TDReport) Debug() bool { return r.TDAttributes[0]&tdDebugFlag != 0 }

func (r *TDReport) decode(b []byte) {
	_ = b[tdReport10Len-1]
	copy(r.TEETCBSVN[:], b[0:16])
	copy(r.MRSEAM[:], b[16:64])
	copy(r.MRSignerSEAM[:], b[64:112])
	copy(r.SEAMAttributes[:], b[112:120])
	copy(r.TDAttributes[:], b[120:128])
	copy(r.XFAM[:], b[128:136])
	copy(r.MRTD[:], b[136:184])
	copy(r.MRConfigID[:], b[184:232])
	copy(r.MROwner[:], b[232:280])
	copy(r.MROwnerConfig[:], b[280:328])
	for i := range r.RTMR {
		copy(r.RTMR[i][:], b[328+48*i:376+48*i])
	}
	copy(r.ReportData[:], b[520:584])
	if len(b) == tdReport15Len {
		r.V15 = true
		copy(r.TEETCBSVN2[:], b[584:600])
		copy(r.MRServiceTD[:], b[600:648])
	}
}

func (r *TDReport) appendTo(b []byte) []byte {
	b = append(b, r.TEETCBSVN[:]...)
	b = append(b, r.MRSEAM[:]...)
	b = append(b, r.MRSignerSEAM[:]...)
	b = append(b, r.SEAMAttributes[:]...)
	b = append(b, r.TDAttributes[:]...)
	b = append(b, r.XFAM[:]...)
	b = append(b, r.MRTD[:]...)
	b = append(b, r.MRConfigID[:]...)
	b = append(b, r.MROwner[:]...)
	b = append(b, r.MROwnerConfig[:]...)
	for i := range r.RTMR {
		b = append(b, r.RTMR[i][:]...)
	}
	b = append(b, r.ReportData[:]...)
	if r.V15 {
		b = append(b, r.TEETCBSVN2[:]...)
		b = append(b, r.MRServiceTD[:]...)
	}
	return b
}
