package attest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedQuotes adds the real quotes (when present) and synthetic ones.
func seedQuotes(f *testing.F) {
	dir := os.Getenv("KMS_DCAP_TESTDATA")
	if dir == "" {
		dir = dcapRel
	}
	for _, name := range append(realQuotes, "quote_v4_tdx_ecdsa_p256_trailing.bin", "tdx_prod_quote_SPR_E4.dat") {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			f.Add(b)
		}
	}
	p := newTestPKI(f)
	for _, v := range []struct {
		version uint16
		tee     TEE
	}{{3, TEESGX}, {4, TEESGX}, {4, TEETDX}, {5, TEETDX}, {5, TEESGX}} {
		f.Add(p.sign(f, p.newQuote(v.version, v.tee)))
	}
	f.Add(NewMockSGXQuote(&EnclaveReport{}))
	f.Add(NewMockTDXQuote(&TDReport{}))
}

// FuzzParseQuote: never panics, and whatever parses re-encodes to the exact
// input (the parser ignores no byte).
func FuzzParseQuote(f *testing.F) {
	seedQuotes(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if (q.SGX == nil) == (q.TD == nil) {
			t.Fatal("exactly one report body must be set")
		}
		if !bytes.Equal(q.marshal(), b) {
			t.Fatal("parse then marshal does not give back the input")
		}
	})
}

// FuzzVerify runs full verification of fuzzed quotes against fixed real
// collateral (or none): never panics, every error has a reason.
func FuzzVerify(f *testing.F) {
	seedQuotes(f)
	dir := os.Getenv("KMS_DCAP_TESTDATA")
	if dir == "" {
		dir = dcapRel
	}
	read := func(name string) []byte { b, _ := os.ReadFile(filepath.Join(dir, name)); return b }
	sgx := Collateral{TCBInfo: read("tcb_info_v3_fmspc_00606A000000.json"), TCBInfoChain: read(tcbChainFile), QEIdentity: read("qe_identity_v2.json")}
	tdx := Collateral{TCBInfo: read("tcb_info_v3_tdx_fmspc_C0806F000000.json"), TCBInfoChain: read(tcbChainFile), QEIdentity: read("qe_identity_v2_tdx2.json")}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []struct {
			col Collateral
			now time.Time
		}{{sgx, timeSGX}, {tdx, timeTDX}} {
			r, err := Verify(b, c.col, Options{Now: c.now, AllowMockTEE: true})
			if err != nil && ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			if (err == nil) == (r == nil) {
				t.Fatal("want exactly one of result and error")
			}
		}
	})
}

// FuzzCollateral decodes fuzzed TCB info and QE identity objects (past the
// signature check, which fuzzing cannot satisfy) and evaluates them: never
// panics.
func FuzzCollateral(f *testing.F) {
	p := newTestPKI(f)
	for _, tee := range []TEE{TEESGX, TEETDX} {
		tcb, _ := json.Marshal(p.tcbInfoObject(tee, sgxLevel(5, 10, StatusUpToDate), tdxLevel(5, 10, []int{3, 1, 5}, StatusOutOfDate)))
		qe, _ := json.Marshal(p.qeIdentityObject(tee))
		f.Add(tcb, qe, tee == TEETDX)
	}
	dir := os.Getenv("KMS_DCAP_TESTDATA")
	if dir == "" {
		dir = dcapRel
	}
	for _, pair := range [][2]string{{"tcb_info_v3_tdx_fmspc_C0806F000000.json", "qe_identity_v2_tdx2.json"}, {"tcb_info_v3_fmspc_00606A000000.json", "qe_identity_v2.json"}} {
		tcb, err1 := os.ReadFile(filepath.Join(dir, pair[0]))
		qe, err2 := os.ReadFile(filepath.Join(dir, pair[1]))
		if err1 == nil && err2 == nil {
			tcbRaw, _, _ := splitSigned(tcb, "tcbInfo")
			qeRaw, _, _ := splitSigned(qe, "enclaveIdentity")
			f.Add([]byte(tcbRaw), []byte(qeRaw), bytes.Contains(tcb, []byte(`"TDX"`)))
		}
	}
	ext := defaultExt()
	f.Fuzz(func(t *testing.T, tcbRaw, qeRaw []byte, isTDX bool) {
		tee, q := TEESGX, p.newQuote(3, TEESGX)
		if isTDX {
			tee, q = TEETDX, p.newQuote(4, TEETDX)
			q.TD.TEETCBSVN = [16]byte{3, 1, 5}
		}
		if info, err := decodeTCBInfo(tcbRaw, tee); err == nil {
			_ = info.checkPlatform(&ext)
			if _, err := evalPlatform(info, &ext, q.TD); err != nil && ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
		}
		if id, err := decodeQEIdentity(qeRaw, tee); err == nil {
			if _, err := evalQE(id, &q.QEReport); err != nil && ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

// FuzzParsePolicy: never panics; a valid policy survives a JSON round trip.
func FuzzParsePolicy(f *testing.F) {
	for _, p := range samplePolicies() {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte(`{"tee":"sgx","sgx":{"mrenclave":["00"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if ReasonOf(err) != ReasonPolicyInvalid {
				t.Fatalf("reason %q", ReasonOf(err))
			}
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := ParsePolicy(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(p2); !bytes.Equal(out, out2) {
			t.Fatalf("round trip:\n%s\n%s", out, out2)
		}
	})
}
