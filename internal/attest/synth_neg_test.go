package attest

import (
	"bytes"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// TestSynthNegative: chain, CRL, signature, binding and collateral failures,
// each asserting its specific reason.
func TestSynthNegative(t *testing.T) {
	t.Parallel()
	type built struct {
		quote []byte
		col   Collateral
		opts  Options
	}
	// def builds the default SGX v3 fixture after mutating it.
	def := func(mut func(t *testing.T, f *fixture)) func(t *testing.T) built {
		return func(t *testing.T) built {
			f := newFixture(t, 3, TEESGX)
			if mut != nil {
				mut(t, f)
			}
			q, c, o := f.build(t)
			return built{q, c, o}
		}
	}
	// post builds the default fixture and then changes the result.
	post := func(mut func(t *testing.T, f *fixture, b *built)) func(t *testing.T) built {
		return func(t *testing.T) built {
			f := newFixture(t, 3, TEESGX)
			q, c, o := f.build(t)
			b := built{q, c, o}
			mut(t, f, &b)
			return b
		}
	}
	// manual signs the quote by hand (after mut) for binding/re-signing attacks.
	manual := func(mut func(t *testing.T, f *fixture)) func(t *testing.T) built {
		return func(t *testing.T) built {
			f := newFixture(t, 3, TEESGX)
			mut(t, f)
			return built{f.q.marshal(), f.pki.collateral(t, f.tcb, f.qe), f.pki.opts()}
		}
	}
	tests := []struct {
		name  string
		build func(t *testing.T) built
		want  Reason
	}{
		{"root not pinned/synthetic root with default options", post(func(t *testing.T, f *fixture, b *built) {
			b.opts.TrustedRootSHA256 = nil
		}), ReasonRootNotPinned},
		{"root not pinned/rogue root signs the whole pck chain", def(func(t *testing.T, f *fixture) {
			rogue := newTestPKI(t)
			f.q.CertData = rogue.pckChain()
			f.pki.pck = rogue.pck
		}), ReasonRootNotPinned},
		{"root not pinned/tcb info chain from a rogue root", post(func(t *testing.T, f *fixture, b *built) {
			rogue := newTestPKI(t)
			b.col.TCBInfo = signed(t, "tcbInfo", f.tcb, rogue.tcbSigner.key)
			b.col.TCBInfoChain = rogue.tcbChain()
		}), ReasonRootNotPinned},
		{"tcb signing chain/another trusted root than the pck chain's", post(func(t *testing.T, f *fixture, b *built) {
			other := newTestPKI(t)
			b.col.TCBInfo = signed(t, "tcbInfo", f.tcb, other.tcbSigner.key)
			b.col.TCBInfoChain = other.tcbChain()
			b.opts.TrustedRootSHA256 = append(b.opts.TrustedRootSHA256, other.pin())
		}), ReasonTCBSigningChain},
		{"pck revoked", post(func(t *testing.T, f *fixture, b *built) {
			b.col.PCKCRL = currentCRL(t, f.pki.pckCA, big.NewInt(99), f.pki.pck.cert.SerialNumber)
		}), ReasonPCKRevoked},
		{"cert revoked/pck ca by root crl", post(func(t *testing.T, f *fixture, b *built) {
			b.col.RootCRL = currentCRL(t, f.pki.root, f.pki.pckCA.cert.SerialNumber)
		}), ReasonCertRevoked},
		{"cert revoked/tcb signer by root crl", post(func(t *testing.T, f *fixture, b *built) {
			b.col.RootCRL = currentCRL(t, f.pki.root, f.pki.tcbSigner.cert.SerialNumber)
		}), ReasonCertRevoked},
		{"crl/signed by an impostor ca of the same name", post(func(t *testing.T, f *fixture, b *built) {
			impostor := issue(t, certSpec{cn: "Test SGX PCK Platform CA", ca: true, serial: 2}, &f.pki.root)
			b.col.PCKCRL = currentCRL(t, impostor)
		}), ReasonCRL},
		{"crl/issued by another ca", post(func(t *testing.T, f *fixture, b *built) {
			b.col.PCKCRL = currentCRL(t, f.pki.root)
		}), ReasonCRL},
		{"crl/garbage", post(func(t *testing.T, f *fixture, b *built) { b.col.RootCRL = []byte{0x30, 1, 2} }), ReasonCRL},
		{"crl expired/next update passed", post(func(t *testing.T, f *fixture, b *built) {
			b.col.PCKCRL = crl(t, f.pki.pckCA, synthNow.AddDate(0, 0, -40), synthNow.AddDate(0, 0, -10))
		}), ReasonCRLExpired},
		{"cert expired/pck", post(func(t *testing.T, f *fixture, b *built) { b.opts.Now = synthNow.AddDate(6, 0, 0) }), ReasonCertExpired},
		{"cert expired/tcb signer not yet valid", def(func(t *testing.T, f *fixture) {
			f.pki.tcbSigner = issue(t, certSpec{cn: "Test SGX TCB Signing", serial: 4, notBefore: synthNow.Add(time.Hour)}, &f.pki.root)
		}), ReasonCertExpired},
		{"pck chain/two certificates", def(func(t *testing.T, f *fixture) {
			f.q.CertData = pemChain(f.pki.pck.cert, f.pki.root.cert)
		}), ReasonPCKChain},
		{"pck chain/pck signed by an impostor ca", def(func(t *testing.T, f *fixture) {
			impostor := issue(t, certSpec{cn: "Test SGX PCK Platform CA", ca: true, serial: 2}, &f.pki.root)
			f.pki.pck = issue(t, certSpec{cn: "Test SGX PCK Certificate", serial: 3, sgxExt: &f.pki.ext}, &impostor)
			f.q.CertData = f.pki.pckChain()
		}), ReasonPCKChain},
		{"pck chain/pck is a ca", def(func(t *testing.T, f *fixture) {
			f.pki.pck = issue(t, certSpec{cn: "Test SGX PCK Certificate", ca: true, serial: 3, sgxExt: &f.pki.ext}, &f.pki.pckCA)
			f.q.CertData = f.pki.pckChain()
		}), ReasonPCKChain},
		{"pck chain/junk before the pem", def(func(t *testing.T, f *fixture) {
			f.q.CertData = append([]byte("junk\n"), f.q.CertData...)
		}), ReasonPCKChain},
		{"pck chain/pck without the digital signature usage", def(func(t *testing.T, f *fixture) {
			f.pki.pck = issue(t, certSpec{cn: "Test SGX PCK Certificate", serial: 3, sgxExt: &f.pki.ext, keyUsage: x509.KeyUsageKeyAgreement}, &f.pki.pckCA)
			f.q.CertData = f.pki.pckChain()
		}), ReasonPCKChain},
		{"pck chain/pck ca is not a ca", def(func(t *testing.T, f *fixture) {
			f.pki.pckCA = issue(t, certSpec{cn: "Test SGX PCK Platform CA", serial: 2}, &f.pki.root)
			f.pki.pck = issue(t, certSpec{cn: "Test SGX PCK Certificate", serial: 3, sgxExt: &f.pki.ext}, &f.pki.pckCA)
			f.q.CertData = f.pki.pckChain()
		}), ReasonPCKChain},
		{"pck extension/missing", def(func(t *testing.T, f *fixture) {
			f.pki.pck = issue(t, certSpec{cn: "Test SGX PCK Certificate", serial: 3}, &f.pki.pckCA)
			f.q.CertData = f.pki.pckChain()
		}), ReasonPCKExtension},
		{"unsupported qe vendor", def(func(t *testing.T, f *fixture) { f.q.Header.QEVendorID[0] ^= 1 }), ReasonUnsupportedQE},
		{"unsupported cert data/v3 type 3", def(func(t *testing.T, f *fixture) {
			f.q.CertDataType, f.q.CertData = 3, make([]byte, 404)
		}), ReasonUnsupportedCertData},
		{"qe report signature/qe report rebound and signed by an attacker key", manual(func(t *testing.T, f *fixture) {
			ak := newKey(t)
			f.q.AttestationKey = rawPub(ak)
			bindQE(f.q)
			f.q.QEReportSignature = rawSign(t, newKey(t), f.q.QEReport.appendTo(nil))
			f.q.Signature = rawSign(t, ak, f.q.signedData())
		}), ReasonQEReportSig},
		{"qe binding/report data hashes another key", manual(func(t *testing.T, f *fixture) {
			ak, other := newKey(t), newKey(t)
			f.q.AttestationKey = rawPub(other)
			bindQE(f.q)
			f.q.AttestationKey = rawPub(ak)
			f.q.QEReportSignature = rawSign(t, f.pki.pck.key, f.q.QEReport.appendTo(nil))
			f.q.Signature = rawSign(t, ak, f.q.signedData())
		}), ReasonQEBinding},
		{"qe binding/non-zero upper half", manual(func(t *testing.T, f *fixture) {
			ak := newKey(t)
			f.q.AttestationKey = rawPub(ak)
			bindQE(f.q)
			f.q.QEReport.ReportData[63] = 1
			f.q.QEReportSignature = rawSign(t, f.pki.pck.key, f.q.QEReport.appendTo(nil))
			f.q.Signature = rawSign(t, ak, f.q.signedData())
		}), ReasonQEBinding},
		{"qe binding/tampered body re-signed with an attacker attestation key", post(func(t *testing.T, f *fixture, b *built) {
			ak := newKey(t)
			f.q.SGX.MREnclave[0] ^= 1
			f.q.AttestationKey = rawPub(ak)
			f.q.Signature = rawSign(t, ak, f.q.signedData())
			b.quote = f.q.marshal()
		}), ReasonQEBinding},
		{"quote signature/tampered body", post(func(t *testing.T, f *fixture, b *built) {
			f.q.SGX.ISVSVN++
			b.quote = f.q.marshal()
		}), ReasonQuoteSig},
		{"quote signature/attestation key not on the curve", manual(func(t *testing.T, f *fixture) {
			for i := range f.q.AttestationKey {
				f.q.AttestationKey[i] = 1
			}
			bindQE(f.q)
			f.q.QEReportSignature = rawSign(t, f.pki.pck.key, f.q.QEReport.appendTo(nil))
		}), ReasonQuoteSig},
		{"tcb info signature/re-signed by an attacker key", post(func(t *testing.T, f *fixture, b *built) {
			b.col.TCBInfo = signed(t, "tcbInfo", f.tcb, newKey(t))
		}), ReasonTCBInfoSig},
		{"qe identity signature/re-signed by an attacker key", post(func(t *testing.T, f *fixture, b *built) {
			b.col.QEIdentity = signed(t, "enclaveIdentity", f.qe, newKey(t))
		}), ReasonQEIdentitySig},
		{"tcb signing chain/signer is a ca", post(func(t *testing.T, f *fixture, b *built) {
			b.col.TCBInfo = signed(t, "tcbInfo", f.tcb, f.pki.pckCA.key)
			b.col.TCBInfoChain = pemChain(f.pki.pckCA.cert, f.pki.root.cert)
		}), ReasonTCBSigningChain},
		{"tcb signing chain/only the signer", post(func(t *testing.T, f *fixture, b *built) {
			b.col.TCBInfoChain = pemChain(f.pki.tcbSigner.cert)
		}), ReasonTCBSigningChain},
		{"fmspc mismatch", def(func(t *testing.T, f *fixture) { f.tcb["fmspc"] = "00906ed50001" }), ReasonFMSPCMismatch},
		{"pceid mismatch", def(func(t *testing.T, f *fixture) { f.tcb["pceId"] = "0100" }), ReasonPCEIDMismatch},
		{"collateral expired/tcb info", def(func(t *testing.T, f *fixture) { f.tcb["nextUpdate"] = synthNow.Add(-time.Second) }), ReasonCollateralExpired},
		{"collateral expired/qe identity not yet issued", def(func(t *testing.T, f *fixture) { f.qe["issueDate"] = synthNow.Add(time.Second) }), ReasonCollateralExpired},
		{"collateral/tcb info version 2", def(func(t *testing.T, f *fixture) { f.tcb["version"] = 2 }), ReasonCollateral},
		{"collateral/tcb info for tdx", def(func(t *testing.T, f *fixture) { f.tcb["id"] = "TDX" }), ReasonCollateral},
		{"collateral/15 components", def(func(t *testing.T, f *fixture) {
			l := sgxLevel(5, 10, StatusUpToDate)
			l["tcb"].(map[string]any)["sgxtcbcomponents"] = comps(all(5)...)[:15]
			f.tcb["tcbLevels"] = []map[string]any{l}
		}), ReasonCollateral},
		{"collateral/missing pcesvn", def(func(t *testing.T, f *fixture) {
			l := sgxLevel(5, 10, StatusUpToDate)
			delete(l["tcb"].(map[string]any), "pcesvn")
			f.tcb["tcbLevels"] = []map[string]any{l}
		}), ReasonCollateral},
		{"collateral/extra envelope member", post(func(t *testing.T, f *fixture, b *built) {
			b.col.TCBInfo = bytes.Replace(b.col.TCBInfo, []byte(`,"signature"`), []byte(`,"x":1,"signature"`), 1)
		}), ReasonCollateral},
		{"collateral/missing qe identity", post(func(t *testing.T, f *fixture, b *built) { b.col.QEIdentity = nil }), ReasonCollateral},
		{"collateral/tdx quote with sgx tcb info", func(t *testing.T) built {
			f := newFixture(t, 4, TEETDX)
			f.tcb = f.pki.tcbInfoObject(TEESGX, sgxLevel(5, 10, StatusUpToDate))
			q, c, o := f.build(t)
			return built{q, c, o}
		}, ReasonCollateral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.build(t)
			r, err := Verify(b.quote, b.col, b.opts)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
			if r != nil {
				t.Fatal("result returned with an error")
			}
		})
	}
}

// TestSynthGrace: collateral past next update is accepted within the grace
// period, certificates never.
func TestSynthGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, TEESGX)
	f.tcb["nextUpdate"] = synthNow.Add(-time.Hour)
	quote, col, opts := f.build(t)
	col.PCKCRL = crl(t, f.pki.pckCA, synthNow.AddDate(0, 0, -31), synthNow.Add(-time.Hour))
	if _, err := Verify(quote, col, opts); ReasonOf(err) != ReasonCRLExpired {
		t.Fatalf("without grace: %v", err)
	}
	opts.CollateralGrace = 2 * time.Hour
	if _, err := Verify(quote, col, opts); err != nil {
		t.Fatalf("with grace: %v", err)
	}
	opts.Now = f.pki.pck.cert.NotAfter.Add(time.Second)
	opts.CollateralGrace = 100 * 365 * 24 * time.Hour
	if _, err := Verify(quote, col, opts); ReasonOf(err) != ReasonCertExpired {
		t.Fatalf("grace must not extend certificates: %v", err)
	}
}
