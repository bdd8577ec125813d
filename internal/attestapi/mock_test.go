package attestapi

import (
	"bytes"
	"testing"

	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/attest"
)

// TestClientMockMatchesVerifier: the SDK's mock quote encoder (which may
// import only ./api) produces exactly attest's mock format.
func TestClientMockMatchesVerifier(t *testing.T) {
	t.Parallel()
	rd := [64]byte{1, 2, 3, 63: 0xff}
	sgx := client.MockQuoteProvider{MREnclave: [32]byte{0xaa, 31: 0xab}, MRSigner: [32]byte{0xbb}, ISVProdID: 0x0102, ISVSVN: 0x0304, Debug: true}
	wantSGX := &attest.EnclaveReport{MREnclave: sgx.MREnclave, MRSigner: sgx.MRSigner, ISVProdID: 0x0102, ISVSVN: 0x0304, ReportData: rd}
	wantSGX.Attributes[0] = 0x02
	tdx := client.MockQuoteProvider{TEE: "tdx", MRTD: [48]byte{0xcc, 47: 0xcd}, RTMR: [4][48]byte{{1}, {2}, {3}, {4, 47: 5}}, Debug: true}
	wantTDX := &attest.TDReport{MRTD: tdx.MRTD, RTMR: tdx.RTMR, ReportData: rd}
	wantTDX.TDAttributes[0] = 0x01
	for _, tc := range []struct {
		name string
		qp   client.MockQuoteProvider
		want []byte
	}{
		{"sgx", sgx, attest.NewMockSGXQuote(wantSGX)},
		{"tdx", tdx, attest.NewMockTDXQuote(wantTDX)},
	} {
		got, err := tc.qp.Quote(t.Context(), rd)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: client mock quote differs from attest's", tc.name)
		}
		res, err := attest.Verify(got, attest.Collateral{}, attest.Options{AllowMockTEE: true})
		if err != nil || res.ReportData != rd || !res.Debug || !res.Insecure {
			t.Errorf("%s: verify: %+v %v", tc.name, res, err)
		}
	}
}
