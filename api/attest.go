package api

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"time"
)

// Attestation API. Two parts, served by kmsd when attestation is configured
// (docs/attestation.md):
//
//   - attestation-gated key release (native, JSON, bearer credentials):
//     POST [PathAttestChallenge], POST [PathAttestRelease], and
//     PUT/GET/DELETE /v1/keys/{name}/release-policy;
//   - BigDL's remote attestation service (GET /enroll, POST /registerPolicy,
//     POST /verifyQuote), under [PathAttestBigDL] on the main listener and at
//     the root of the optional attestation listener.

// Attestation paths.
const (
	PathAttestChallenge = "/v1/attest/challenge"
	PathAttestRelease   = "/v1/attest/release"
	// PathAttestBigDL prefixes the BigDL attestation service routes on
	// kmsd's main listener: /attestation/enroll, /attestation/registerPolicy,
	// /attestation/verifyQuote.
	PathAttestBigDL = "/attestation"
	// PathReleasePolicySuffix follows /v1/keys/{name}.
	PathReleasePolicySuffix = "/release-policy"
)

// Error codes of the attestation API (the "code" of an [Error]). Codes are
// API; messages are not.
const (
	// CodeNonceUnknown: the nonce was never issued to this user, or was
	// cleaned up long after it expired. Ask for a new challenge.
	CodeNonceUnknown = "nonce_unknown"
	// CodeNonceReplayed: the nonce was already used (successfully or not):
	// every nonce is good for exactly one release attempt.
	CodeNonceReplayed = "nonce_replayed"
	// CodeNonceExpired: the nonce's time to live passed.
	CodeNonceExpired = "nonce_expired"
	// CodeWrongAudience: the request names another KMS identity than this
	// server's.
	CodeWrongAudience = "wrong_audience"
	// CodeReportDataMismatch: the quote's report data is not
	// [AttestReportData] of this nonce, public key and audience (typically:
	// the public key sent is not the one the quote binds).
	CodeReportDataMismatch = "report_data_mismatch"
	// CodeAttestationFailed: the quote did not verify (signature, chain,
	// collateral, TCB, or a mock quote this server does not accept). The
	// message names the reason.
	CodeAttestationFailed = "attestation_failed"
	// CodePolicyMismatch: the quote verified but the key's release policy
	// does not accept it (measurement, SVN, debug, TCB status, TEE type).
	CodePolicyMismatch = "policy_mismatch"
	// CodeNoReleasePolicy: the key has no release policy, so it cannot be
	// released to an attested workload.
	CodeNoReleasePolicy = "no_release_policy"
	// CodeNotExportable: the request asks for a primary key itself, which
	// was not created exportable.
	CodeNotExportable = "not_exportable"
)

// AttestChallengeResponse answers POST /v1/attest/challenge: a single-use
// nonce for one release attempt by the same user before Expires.
type AttestChallengeResponse struct {
	Nonce []byte `json:"nonce"` // 32 bytes
	// Audience is the server's identity as it binds it into report data. A
	// workload should pin the audience it expects rather than trust this.
	Audience string    `json:"audience"`
	Expires  time.Time `json:"expires"`
	// Insecure is true when the server accepts the mock TEE.
	Insecure bool `json:"insecure,omitempty"`
}

// AttestKeyRef names the key to release: data key DataKey under the
// caller's primary key PrimaryKey, or, with DataKey empty, the primary key
// itself (32 bytes), which must have been created exportable. Version picks
// the primary key version to export (0: the newest); it must be 0 for a
// data key, whose version is the one that wraps it.
type AttestKeyRef struct {
	PrimaryKey string `json:"primary_key"`
	DataKey    string `json:"data_key,omitempty"`
	Version    int    `json:"version,omitempty"`
}

// AttestReleaseRequest is the body of POST /v1/attest/release.
type AttestReleaseRequest struct {
	Nonce []byte `json:"nonce"`
	// Quote is the SGX/TDX DCAP quote (or mock quote) whose report data is
	// AttestReportData(Nonce, PublicKey, Audience).
	Quote []byte `json:"quote"`
	// PublicKey is the DER SubjectPublicKeyInfo of the workload's ephemeral
	// X25519 or P-256 key; the key is released HPKE-sealed to it.
	PublicKey []byte `json:"public_key"`
	// Audience is the KMS identity the quote was made for.
	Audience string       `json:"audience"`
	Key      AttestKeyRef `json:"key"`
}

// HPKE algorithm identifiers (RFC 9180) of a release.
const (
	HPKEKEMP256   = 0x0010 // DHKEM(P-256, HKDF-SHA256)
	HPKEKEMX25519 = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	HPKEKDFSHA256 = 0x0001 // HKDF-SHA256
	HPKEAES256GCM = 0x0002 // AES-256-GCM
)

// AttestReleaseResponse answers a successful release. The key is only ever
// carried HPKE-sealed (base mode, single shot, no AAD) to the request's
// public key, with info [AttestReleaseInfo].
type AttestReleaseResponse struct {
	// WrappedKey is the HPKE encapsulated key followed by the ciphertext.
	WrappedKey []byte `json:"wrapped_key"`
	KEM        uint16 `json:"kem"`
	KDF        uint16 `json:"kdf"`
	AEAD       uint16 `json:"aead"`
	// KeyVersion is the version of the primary key that wraps the data key,
	// or, for an exported primary key, the version exported.
	KeyVersion int `json:"key_version"`
	// TEE is "sgx", "tdx" or "mock".
	TEE         string   `json:"tee"`
	TCBStatus   string   `json:"tcb_status,omitempty"`
	AdvisoryIDs []string `json:"advisory_ids,omitempty"`
	// Insecure is true for a mock TEE release: nothing was attested.
	Insecure bool `json:"insecure"`
}

// attestLabel separates report data and HPKE info of this protocol from
// any other use of the same bytes.
const attestLabel = "KMS-ATTEST-v1"

// AttestReportData is the report data a workload puts in its quote:
//
//	SHA-512("KMS-ATTEST-v1" ‖ 0x00 ‖ nonce ‖ SHA-256(spkiDER) ‖ SHA-256(audience))
//
// It binds the server's fresh nonce (no replay), the workload's ephemeral
// public key (only the quoting workload can open the released key) and the
// KMS identity (a quote made for one KMS is refused by another). Every
// input but the nonce is hashed to a fixed width, so the encoding is
// unambiguous.
func AttestReportData(nonce, spkiDER []byte, audience string) [64]byte {
	pk := sha256.Sum256(spkiDER)
	aud := sha256.Sum256([]byte(audience))
	h := sha512.New()
	h.Write([]byte(attestLabel))
	h.Write([]byte{0})
	h.Write(nonce)
	h.Write(pk[:])
	h.Write(aud[:])
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// AttestReleaseInfo is the HPKE info of a release:
//
//	"KMS-ATTEST-v1 release" ‖ 0x00 ‖ lp(owner) ‖ lp(primary) ‖ u32(version) ‖ lp(dataKey) ‖ nonce
//
// where lp(s) is s prefixed with its length as a big-endian uint16 and
// version is the primary key version wrapping the data key, big-endian.
// For an exported primary key dataKey is "" (lp("") is 0x0000: a data key
// name is never empty) and version is the version exported.
// It binds the sealed key to its name and version and to the attestation
// session (the nonce), so a wrapped key cannot be passed off as another.
func AttestReleaseInfo(owner, primary string, version int, dataKey string, nonce []byte) []byte {
	b := append([]byte(attestLabel+" release"), 0)
	for _, s := range []string{owner, primary} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(version))
	b = binary.BigEndian.AppendUint16(b, uint16(len(dataKey)))
	b = append(b, dataKey...)
	return append(b, nonce...)
}

// AttestNonceLen is the length of a challenge nonce.
const AttestNonceLen = 32

// The INSECURE mock TEE quote format (kmsd accepts it only with
// -attest-allow-mock-tee): the magic, a version byte, a kind byte and a
// report body laid out as in a DCAP quote, nothing signed.
const (
	MockTEEMagic   = "KMS-MOCK-TEE-INSECURE"
	MockTEEVersion = 1
	MockKindSGX    = 1 // SGX report body, MockSGXBodyLen bytes
	MockKindTD10   = 2 // TD report body (TDX 1.0), MockTD10BodyLen bytes
	MockKindTD15   = 3 // TD report body (TDX 1.5), 648 bytes

	MockSGXBodyLen  = 384
	MockTD10BodyLen = 584
)

// Offsets in an SGX report body (little-endian integers).
const (
	SGXOffAttributes = 48 // 16 bytes; flags bit 1 = DEBUG
	SGXOffMREnclave  = 64 // 32 bytes
	SGXOffMRSigner   = 128
	SGXOffISVProdID  = 256 // uint16
	SGXOffISVSVN     = 258 // uint16
	SGXOffReportData = 320 // 64 bytes
)

// Offsets in a TD report body.
const (
	TDOffTDAttributes = 120 // 8 bytes; bit 0 = DEBUG
	TDOffMRTD         = 136 // 48 bytes
	TDOffRTMR0        = 328 // 4 × 48 bytes
	TDOffReportData   = 520 // 64 bytes
)

// BigDL remote attestation service wire types (port 9875 in BigDL).

// BigDLEnrollResponse answers GET /enroll. The API key is shown once.
type BigDLEnrollResponse struct {
	AppID  string `json:"appID"`
	APIKey string `json:"apiKey"`
}

// BigDLRegisterPolicyResponse answers POST /registerPolicy.
type BigDLRegisterPolicyResponse struct {
	PolicyID string `json:"policyID"`
}

// BigDLVerifyQuoteResponse answers POST /verifyQuote: 0 pass, 1 pass with
// a TCB warning, -1 fail. Every failure, even a refused apiKey, carries
// result -1 (BigDL's clients read only this field and ignore the status);
// Code and Message then say why.
type BigDLVerifyQuoteResponse struct {
	Result   int    `json:"result"`
	Insecure bool   `json:"insecure,omitempty"`
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
}
