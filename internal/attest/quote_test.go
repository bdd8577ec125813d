package attest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

var realQuotes = []string{
	"quote_v3_ecdsa_p256_pck_chain.bin",
	"quote_v3_ecdsa_p256_eppid.bin",
	"quote_v4_tdx_ecdsa_p256.bin",
	"quote_v4_tdx_ecdsa_p256_out_of_date.bin",
}

func TestParseRealQuotes(t *testing.T) {
	for _, name := range realQuotes {
		t.Run(name, func(t *testing.T) {
			b := dcap(t, name)
			q, err := ParseQuote(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(q.marshal(), b) {
				t.Fatal("parse then marshal does not give back the input")
			}
			if q.Header.QEVendorID != intelQEVendorID {
				t.Errorf("qe vendor %x", q.Header.QEVendorID)
			}
			// Every truncation is refused.
			for n := range len(b) {
				if _, err := ParseQuote(b[:n]); ReasonOf(err) != ReasonParse {
					t.Fatalf("truncated to %d: %v", n, err)
				}
			}
			if _, err := ParseQuote(append(bytes.Clone(b), 0)); ReasonOf(err) != ReasonParse {
				t.Fatalf("one trailing byte: %v", err)
			}
		})
	}
	q, err := ParseQuote(dcap(t, "quote_v3_ecdsa_p256_pck_chain.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if q.TEE() != TEESGX || q.SGX.Debug() || q.Header.QESVN != 9 || q.Header.PCESVN != 13 || q.QEReport.ISVProdID != 1 || q.CertDataType != 5 {
		t.Errorf("sgx fields: %+v", q.Header)
	}
	q, err = ParseQuote(dcap(t, "quote_v4_tdx_ecdsa_p256.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if q.TEE() != TEETDX || q.TD.Debug() || q.TD.TEETCBSVN != [16]byte{5, 1, 7} || q.QEReport.ISVProdID != 2 {
		t.Errorf("tdx fields: %x", q.TD.TEETCBSVN)
	}
}

func TestParseTrailingRealQuotes(t *testing.T) {
	for _, name := range []string{"quote_v4_tdx_ecdsa_p256_trailing.bin", "tdx_prod_quote_SPR_E4.dat"} {
		if _, err := ParseQuote(dcap(t, name)); ReasonOf(err) != ReasonParse {
			t.Errorf("%s: %v, want %q", name, err, ReasonParse)
		}
	}
}

// TestParseStrict edits fields of valid synthetic quotes.
func TestParseStrict(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	v3 := p.sign(t, p.newQuote(3, TEESGX))
	v4 := p.sign(t, p.newQuote(4, TEETDX))
	v5 := p.sign(t, p.newQuote(5, TEETDX))
	put16 := func(b []byte, off int, v uint16) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	put32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	// v4 signature data starts at 636: sig, key, then cert data type at 764.
	const v4CertType = 636 + 128
	tests := []struct {
		name  string
		quote []byte
		want  Reason
	}{
		{"version 2", put16(v3, 0, 2), ReasonParse},
		{"version 6", put16(v4, 0, 6), ReasonParse},
		{"attestation key type 3 (p-384)", put16(v3, 2, 3), ReasonParse},
		{"v3 with tdx tee type", put32(v3, 4, 0x81), ReasonParse},
		{"v4 unknown tee type", put32(v4, 4, 0x82), ReasonParse},
		{"v5 unknown body type", put16(v5, 48, 4), ReasonParse},
		{"v5 body type sgx with tdx tee", put16(v5, 48, bodyTypeSGX), ReasonParse},
		{"v5 body size", put32(v5, 50, 600), ReasonParse},
		{"v3 signature data length too long", put32(v3, 432, uint32(len(v3)-436+1)), ReasonParse},
		{"v3 signature data length too short", put32(v3, 432, uint32(len(v3)-436-1)), ReasonParse},
		{"v4 signature data length 2^32-1", put32(v4, 632, 0xffffffff), ReasonParse},
		{"v4 outer certification data type 5", put16(v4, v4CertType, 5), ReasonUnsupportedCertData},
		{"v4 outer certification data size", put32(v4, v4CertType+2, 10), ReasonParse},
		{"v3 qe auth data length", put16(v3, 436+128+384+64, 0xffff), ReasonParse},
		{"v3 cert data size", put32(v3, 436+128+384+64+2+32+2, 1), ReasonParse},
		{"empty", nil, ReasonParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseQuote(tt.quote); ReasonOf(err) != tt.want {
				t.Fatalf("%v, want %q", err, tt.want)
			}
		})
	}

	q := p.newQuote(4, TEETDX)
	q.CertDataType = CertDataQEReport
	if _, err := ParseQuote(p.sign(t, q)); ReasonOf(err) != ReasonParse {
		t.Errorf("nested type 6: %v", err)
	}
	// Trailing bytes inside the v4 QE report certification data (outer size
	// and signature data length grown to cover them).
	b := bytes.Clone(v4)
	b = append(b, 0xAA)
	binary.LittleEndian.PutUint32(b[632:], binary.LittleEndian.Uint32(b[632:])+1)
	binary.LittleEndian.PutUint32(b[v4CertType+2:], binary.LittleEndian.Uint32(b[v4CertType+2:])+1)
	if _, err := ParseQuote(b); ReasonOf(err) != ReasonParse {
		t.Errorf("trailing byte in qe report certification data: %v", err)
	}
}
