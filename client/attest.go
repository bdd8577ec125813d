package client

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ppmlkms/kms/api"
)

// Attestation-gated key release, the workload side (docs/attestation.md).
//
//	c, _ := client.New(url, client.WithCAFile("ca.crt"), client.WithToken("alice", token))
//	rel, err := c.ReleaseDataKey(ctx, "pk", "dk", client.GramineQuoteProvider{}, nil)
//	// rel.Key is the data key; it left the server only sealed to this process.
//
// ReleaseDataKey asks for a challenge, makes an ephemeral HPKE key pair,
// has the QuoteProvider make a quote whose report data binds the nonce, the
// public key and the KMS audience ([api.AttestReportData]), sends it, and
// opens the sealed key locally with crypto/hpke. The private key never
// leaves the process.

// Attestation errors. A refused release is an [*Error] unwrapping to one
// of these, chosen by its code (api.CodeNonce*, api.CodeAttestationFailed,
// ...).
var (
	// ErrNonce: the challenge nonce is unknown, expired or already used.
	// Every nonce is good for one attempt: ask for a new challenge.
	ErrNonce = errors.New("attestation nonce refused")
	// ErrAttestation: the server refused the evidence: the quote did not
	// verify, does not bind this key and audience, the key's release policy
	// does not accept it, or the key has no release policy. It wraps
	// [ErrForbidden].
	ErrAttestation = fmt.Errorf("attestation refused: %w", ErrForbidden)
)

func init() {
	for code, err := range map[string]error{
		api.CodeNonceUnknown: ErrNonce, api.CodeNonceReplayed: ErrNonce, api.CodeNonceExpired: ErrNonce,
		api.CodeWrongAudience: ErrAttestation, api.CodeReportDataMismatch: ErrAttestation,
		api.CodeAttestationFailed: ErrAttestation, api.CodePolicyMismatch: ErrAttestation,
		api.CodeNoReleasePolicy: ErrAttestation, api.CodeNotExportable: ErrForbidden,
	} {
		codes[code] = err
	}
}

// QuoteProvider makes a quote of the calling workload (SGX enclave or TDX
// TD) whose report data is reportData. Implementations must be safe for
// concurrent use.
type QuoteProvider interface {
	Quote(ctx context.Context, reportData [64]byte) ([]byte, error)
}

// GramineQuoteProvider gets SGX DCAP quotes from Gramine's
// /dev/attestation interface: it writes the report data to
// user_report_data and reads quote. Gramine keeps one report data per
// process, so calls are serialised.
type GramineQuoteProvider struct {
	// Dir is the interface's directory; "" means /dev/attestation.
	Dir string
}

var gramineMu sync.Mutex

// Quote implements QuoteProvider.
func (g GramineQuoteProvider) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	dir := g.Dir
	if dir == "" {
		dir = "/dev/attestation"
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gramineMu.Lock()
	defer gramineMu.Unlock()
	if t, err := os.ReadFile(filepath.Join(dir, "attestation_type")); err == nil {
		if s := strings.TrimSpace(string(t)); s != "dcap" {
			return nil, fmt.Errorf("gramine: attestation type %q, want dcap (sgx.remote_attestation = \"dcap\" in the manifest)", s)
		}
	}
	if err := writeExisting(filepath.Join(dir, "user_report_data"), reportData[:]); err != nil {
		return nil, fmt.Errorf("gramine: %w (is this process running in Gramine with remote attestation?)", err)
	}
	q, err := os.ReadFile(filepath.Join(dir, "quote"))
	if err != nil {
		return nil, fmt.Errorf("gramine: read quote: %w", err)
	}
	if len(q) == 0 {
		return nil, errors.New("gramine: empty quote")
	}
	return q, nil
}

// TDXQuoteProvider gets TDX quotes from the kernel's configfs-tsm report
// interface: it creates a report entry, writes the report data to inblob
// and reads outblob, checking the entry's generation to detect a
// concurrent writer.
type TDXQuoteProvider struct {
	// Dir is the report directory; "" means /sys/kernel/config/tsm/report.
	Dir string
	// Name is the report entry to use; "" means a new entry with a random
	// name, removed afterwards. An existing entry is reused.
	Name string
}

// Quote implements QuoteProvider.
func (p TDXQuoteProvider) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	dir, name := p.Dir, p.Name
	if dir == "" {
		dir = "/sys/kernel/config/tsm/report"
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name == "" {
		var b [8]byte
		rand.Read(b[:])
		name = "kms-" + hex.EncodeToString(b[:])
	}
	entry := filepath.Join(dir, name)
	switch err := os.Mkdir(entry, 0o700); {
	case err == nil:
		defer os.Remove(entry)
	case errors.Is(err, fs.ErrExist) && p.Name != "":
	default:
		return nil, fmt.Errorf("tdx: create report entry: %w (is configfs-tsm mounted, and is this a TD?)", err)
	}
	if prov, err := os.ReadFile(filepath.Join(entry, "provider")); err == nil {
		if s := strings.TrimSpace(string(prov)); s != "tdx_guest" {
			return nil, fmt.Errorf("tdx: report provider %q, want tdx_guest", s)
		}
	}
	if err := writeExisting(filepath.Join(entry, "inblob"), reportData[:]); err != nil {
		return nil, fmt.Errorf("tdx: write inblob: %w", err)
	}
	gen, genErr := readGeneration(entry)
	q, err := os.ReadFile(filepath.Join(entry, "outblob"))
	if err != nil {
		return nil, fmt.Errorf("tdx: read outblob: %w", err)
	}
	if after, err := readGeneration(entry); genErr == nil && (err != nil || after != gen) {
		return nil, errors.New("tdx: the report entry was written concurrently; retry")
	}
	if len(q) == 0 {
		return nil, errors.New("tdx: empty quote")
	}
	return q, nil
}

func readGeneration(entry string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(entry, "generation"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// writeExisting writes b to an existing (pseudo-)file in one write.
func writeExisting(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write to %s", path)
	}
	return err
}

// MockQuoteProvider makes INSECURE mock TEE quotes (unsigned; anyone can
// make one with any measurement) for development and CI against a kmsd
// started with -attest-allow-mock-tee. Only a release policy with
// "tee":"mock" accepts them.
type MockQuoteProvider struct {
	// TEE is "sgx" (default) or "tdx": which report body the quote carries.
	TEE string
	// SGX measurements.
	MREnclave, MRSigner [32]byte
	ISVProdID, ISVSVN   uint16
	// TDX measurements.
	MRTD [48]byte
	RTMR [4][48]byte
	// Debug marks the enclave or TD as debuggable.
	Debug bool
}

// Quote implements QuoteProvider.
func (m MockQuoteProvider) Quote(_ context.Context, reportData [64]byte) ([]byte, error) {
	q := append([]byte(api.MockTEEMagic), api.MockTEEVersion)
	switch m.TEE {
	case "", "sgx":
		body := make([]byte, api.MockSGXBodyLen)
		if m.Debug {
			body[api.SGXOffAttributes] |= 0x02
		}
		copy(body[api.SGXOffMREnclave:], m.MREnclave[:])
		copy(body[api.SGXOffMRSigner:], m.MRSigner[:])
		binary.LittleEndian.PutUint16(body[api.SGXOffISVProdID:], m.ISVProdID)
		binary.LittleEndian.PutUint16(body[api.SGXOffISVSVN:], m.ISVSVN)
		copy(body[api.SGXOffReportData:], reportData[:])
		return append(append(q, api.MockKindSGX), body...), nil
	case "tdx":
		body := make([]byte, api.MockTD10BodyLen)
		if m.Debug {
			body[api.TDOffTDAttributes] |= 0x01
		}
		copy(body[api.TDOffMRTD:], m.MRTD[:])
		for i, r := range m.RTMR {
			copy(body[api.TDOffRTMR0+48*i:], r[:])
		}
		copy(body[api.TDOffReportData:], reportData[:])
		return append(append(q, api.MockKindTD10), body...), nil
	}
	return nil, fmt.Errorf("mock tee: unknown TEE %q, want sgx or tdx", m.TEE)
}

// ReleaseOptions tune [Client.ReleaseDataKey]; the zero value is fine.
type ReleaseOptions struct {
	// Audience is the KMS identity to bind the quote to, as the server is
	// configured (-attest-audience). "" takes the audience the server
	// names in its challenge.
	Audience string
	// Curve is the curve of the ephemeral HPKE key: ecdh.X25519() (the
	// default) or ecdh.P256().
	Curve ecdh.Curve
}

// ReleasedKey is a data key, or an exportable primary key, released to
// this workload.
type ReleasedKey struct {
	// Key is the data key (16 bytes) or primary key (32 bytes). Clear it
	// when done.
	Key []byte
	// KeyVersion is the version of the primary key that wraps the data
	// key, or the version of the primary key released.
	KeyVersion int
	// TEE, TCBStatus and AdvisoryIDs are the server's verdict on the quote.
	TEE         string
	TCBStatus   string
	AdvisoryIDs []string
	// Insecure is true when the server released the key on a mock TEE
	// quote: nothing was attested.
	Insecure bool
}

// Challenge asks for a single-use nonce for one release attempt. It needs
// a user credential ([WithToken]).
func (c *Client) Challenge(ctx context.Context) (*api.AttestChallengeResponse, error) {
	var out api.AttestChallengeResponse
	if err := c.call(ctx, http.MethodPost, api.PathAttestChallenge, false, struct{}{}, &out); err != nil {
		return nil, err
	}
	if len(out.Nonce) != api.AttestNonceLen {
		return nil, fmt.Errorf("kms: challenge nonce of %d bytes: %w", len(out.Nonce), ErrMalformedResponse)
	}
	return &out, nil
}

// ReleaseDataKey has the server release data key dataKey under the
// caller's primary key primary to this workload, attested by qp. opts may
// be nil. It needs a user credential ([WithToken]). Besides the usual
// errors it returns errors wrapping [ErrNonce] (retry with a new call) and
// [ErrAttestation] (the server refused the evidence; the message says why).
// The release is not retried: each attempt consumes a nonce.
func (c *Client) ReleaseDataKey(ctx context.Context, primary, dataKey string, qp QuoteProvider, opts *ReleaseOptions) (*ReleasedKey, error) {
	if err := validName("data key name", dataKey); err != nil {
		return nil, err
	}
	return c.release(ctx, api.AttestKeyRef{PrimaryKey: primary, DataKey: dataKey}, qp, opts)
}

// ReleasePrimaryKey has the server release version version (0: the
// newest) of the caller's primary key primary itself to this workload,
// attested by qp. The key must have been created exportable
// ([CreateKeyOptions].Exportable) and carry a release policy; otherwise
// the error wraps [ErrForbidden] or [ErrAttestation]. It fails as
// [Client.ReleaseDataKey] does otherwise.
func (c *Client) ReleasePrimaryKey(ctx context.Context, primary string, version int, qp QuoteProvider, opts *ReleaseOptions) (*ReleasedKey, error) {
	if version < 0 {
		return nil, fmt.Errorf("client: key version %d: %w", version, ErrInvalid)
	}
	return c.release(ctx, api.AttestKeyRef{PrimaryKey: primary, Version: version}, qp, opts)
}

// release runs one challenge → quote → release round for ref.
func (c *Client) release(ctx context.Context, ref api.AttestKeyRef, qp QuoteProvider, opts *ReleaseOptions) (*ReleasedKey, error) {
	if err := validName("primary key name", ref.PrimaryKey); err != nil {
		return nil, err
	}
	user, err := c.bearerUser()
	if err != nil {
		return nil, err
	}
	var o ReleaseOptions
	if opts != nil {
		o = *opts
	}
	if o.Curve == nil {
		o.Curve = ecdh.X25519()
	}
	priv, err := o.Curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client: ephemeral key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(priv.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("client: ephemeral key: %w", err)
	}
	ch, err := c.Challenge(ctx)
	if err != nil {
		return nil, err
	}
	if o.Audience == "" {
		o.Audience = ch.Audience
	}
	quote, err := qp.Quote(ctx, api.AttestReportData(ch.Nonce, spki, o.Audience))
	if err != nil {
		return nil, fmt.Errorf("client: quote: %w", err)
	}
	req := api.AttestReleaseRequest{Nonce: ch.Nonce, Quote: quote, PublicKey: spki, Audience: o.Audience, Key: ref}
	var out api.AttestReleaseResponse
	if err := c.call(ctx, http.MethodPost, api.PathAttestRelease, false, req, &out); err != nil {
		return nil, err
	}
	if ref.Version != 0 && out.KeyVersion != ref.Version {
		return nil, fmt.Errorf("kms: asked for version %d, released version %d: %w", ref.Version, out.KeyVersion, ErrMalformedResponse)
	}
	// The info binds name and version: a key sealed as anything else does
	// not open.
	key, err := openReleased(priv, &out, api.AttestReleaseInfo(user, ref.PrimaryKey, out.KeyVersion, ref.DataKey, ch.Nonce))
	if err != nil {
		return nil, err
	}
	want := 16
	if ref.DataKey == "" {
		want = 32
	}
	if len(key) != want {
		clear(key)
		return nil, fmt.Errorf("kms: released key of %d bytes, want %d: %w", len(key), want, ErrMalformedResponse)
	}
	return &ReleasedKey{Key: key, KeyVersion: out.KeyVersion, TEE: out.TEE, TCBStatus: out.TCBStatus,
		AdvisoryIDs: out.AdvisoryIDs, Insecure: out.Insecure}, nil
}

// openReleased opens the sealed key with the ephemeral private key.
func openReleased(priv *ecdh.PrivateKey, out *api.AttestReleaseResponse, info []byte) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("client: ephemeral key: %w", err)
	}
	if out.KEM != k.KEM().ID() || out.KDF != api.HPKEKDFSHA256 || out.AEAD != api.HPKEAES256GCM {
		return nil, fmt.Errorf("kms: released key sealed with HPKE suite %#04x/%#04x/%#04x, want %#04x/%#04x/%#04x: %w",
			out.KEM, out.KDF, out.AEAD, k.KEM().ID(), api.HPKEKDFSHA256, api.HPKEAES256GCM, ErrMalformedResponse)
	}
	key, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), info, out.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("kms: released key does not open (wrong key, name, version or session): %w", ErrMalformedResponse)
	}
	return key, nil
}

// bearerUser returns the user of the client's credential.
func (c *Client) bearerUser() (string, error) {
	principal, _, _ := strings.Cut(strings.TrimPrefix(c.bearer, "Bearer "), ":")
	switch {
	case c.bearer == "":
		return "", fmt.Errorf("client: attested release needs a user credential (WithToken): %w", ErrInvalid)
	case strings.HasPrefix(principal, "admin/"):
		return "", fmt.Errorf("client: attested release is for the key owner, not an admin: %w", ErrInvalid)
	}
	return principal, nil
}

// SetReleasePolicy sets the release policy of primary key name (JSON, see
// docs/attestation.md): its owner may set one, only an admin may replace
// one (ErrExists otherwise). A key with a release policy gives its data
// keys only to attested workloads. It returns the policy as stored.
func (c *Client) SetReleasePolicy(ctx context.Context, name string, policy []byte) (json.RawMessage, error) {
	if err := validName("key name", name); err != nil {
		return nil, err
	}
	if !json.Valid(policy) {
		return nil, fmt.Errorf("client: release policy is not JSON: %w", ErrInvalid)
	}
	var out json.RawMessage
	err := c.call(ctx, http.MethodPut, keyPath(name, api.PathReleasePolicySuffix), true, json.RawMessage(bytes.TrimSpace(policy)), &out)
	return out, err
}

// ReleasePolicy returns the release policy of primary key name, or an
// error wrapping ErrNotFound if it has none.
func (c *Client) ReleasePolicy(ctx context.Context, name string) (json.RawMessage, error) {
	if err := validName("key name", name); err != nil {
		return nil, err
	}
	var out json.RawMessage
	err := c.call(ctx, http.MethodGet, keyPath(name, api.PathReleasePolicySuffix), true, nil, &out)
	return out, err
}

// DeleteReleasePolicy removes the release policy of primary key name; it
// needs an admin credential ([WithAdminToken] and [Client.ForOwner]).
func (c *Client) DeleteReleasePolicy(ctx context.Context, name string) error {
	if err := validName("key name", name); err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, keyPath(name, api.PathReleasePolicySuffix), true, nil, nil)
}
