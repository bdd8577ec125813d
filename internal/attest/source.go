package attest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrCollateralUnavailable is wrapped by [CollateralSource] implementations
// when collateral cannot be obtained (missing file, PCCS down). It is an
// availability problem, not a verdict on the quote.
var ErrCollateralUnavailable = errors.New("attest: collateral unavailable")

// CollateralRequest identifies the collateral a quote needs.
type CollateralRequest struct {
	TEE TEE
	// FMSPC is the platform's family-model-stepping-platform-customSKU.
	FMSPC [6]byte
	// PCKCA is the PCK issuing CA: "platform" or "processor".
	PCKCA string
}

// CollateralSource provides collateral for a platform. Implementations must
// return the bytes exactly as Intel signed them and must be safe for
// concurrent use; errors should wrap [ErrCollateralUnavailable].
type CollateralSource interface {
	Collateral(ctx context.Context, req CollateralRequest) (Collateral, error)
}

// RequestFor returns the collateral request for a quote, read from its PCK
// certificate WITHOUT verifying it (only to select collateral; [Verify]
// checks everything). Errors are [*Error].
func RequestFor(quote []byte) (CollateralRequest, error) {
	q, err := ParseQuote(quote)
	if err != nil {
		return CollateralRequest{}, err
	}
	if q.CertDataType != CertDataPCKChain {
		return CollateralRequest{}, errorf(ReasonUnsupportedCertData, "certification data type %d", q.CertDataType)
	}
	certs, err := parsePEMChain(q.CertData)
	if err != nil || len(certs) < 2 {
		return CollateralRequest{}, errorf(ReasonPCKChain, "malformed pck chain")
	}
	ext, err := parsePCKExtensions(certs[0])
	if err != nil {
		return CollateralRequest{}, errorf(ReasonPCKExtension, "%w", err)
	}
	return CollateralRequest{TEE: q.TEE(), FMSPC: ext.FMSPC, PCKCA: pckCAKind(certs[1])}, nil
}

// VerifyWithSource is [Verify] with collateral fetched from src for the
// quote's platform. Source errors are returned wrapped (errors.Is
// [ErrCollateralUnavailable] for the provided sources); they carry no
// [Reason].
func VerifyWithSource(ctx context.Context, quote []byte, src CollateralSource, opts Options) (*Result, error) {
	if isMockQuote(quote) {
		return verifyMock(quote, opts)
	}
	req, err := RequestFor(quote)
	if err != nil {
		return nil, err
	}
	col, err := src.Collateral(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("collateral for %s fmspc %x: %w", req.TEE, req.FMSPC, err)
	}
	return Verify(quote, col, opts)
}

// DirSource serves collateral from files in a directory (air-gapped
// clusters), named:
//
//	tcbinfo-<tee>-<fmspc>.json   TCB info, e.g. tcbinfo-tdx-c0806f000000.json
//	tcbinfo-chain.pem            its issuer chain
//	qeidentity-<tee>.json        QE identity, e.g. qeidentity-sgx.json
//	qeidentity-chain.pem         optional; defaults to tcbinfo-chain.pem
//	rootca.crl                   optional root CA CRL
//	pckcrl-<ca>.crl              optional PCK CRL, <ca> platform or processor
//
// with <tee> "sgx" or "tdx" and <fmspc> in lower-case hex. Files are read on
// every call, through an [os.Root] so names cannot escape the directory.
type DirSource struct {
	Dir string
}

var _ CollateralSource = DirSource{}

// Collateral reads the files for req. A missing required file is an error
// wrapping [ErrCollateralUnavailable] and fs.ErrNotExist.
func (d DirSource) Collateral(ctx context.Context, req CollateralRequest) (Collateral, error) {
	if err := ctx.Err(); err != nil {
		return Collateral{}, fmt.Errorf("%w: %w", ErrCollateralUnavailable, err)
	}
	if req.TEE != TEESGX && req.TEE != TEETDX || (req.PCKCA != "platform" && req.PCKCA != "processor") {
		return Collateral{}, fmt.Errorf("%w: bad request %+v", ErrCollateralUnavailable, req)
	}
	root, err := os.OpenRoot(d.Dir)
	if err != nil {
		return Collateral{}, fmt.Errorf("%w: %w", ErrCollateralUnavailable, err)
	}
	defer root.Close()
	var c Collateral
	for _, f := range []struct {
		name     string
		dst      *[]byte
		optional bool
	}{
		{"tcbinfo-" + string(req.TEE) + "-" + hex.EncodeToString(req.FMSPC[:]) + ".json", &c.TCBInfo, false},
		{"tcbinfo-chain.pem", &c.TCBInfoChain, false},
		{"qeidentity-" + string(req.TEE) + ".json", &c.QEIdentity, false},
		{"qeidentity-chain.pem", &c.QEIdentityChain, true},
		{"rootca.crl", &c.RootCRL, true},
		{"pckcrl-" + req.PCKCA + ".crl", &c.PCKCRL, true},
	} {
		b, err := root.ReadFile(f.name)
		if f.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Collateral{}, fmt.Errorf("%w: %w", ErrCollateralUnavailable, err)
		}
		*f.dst = b
	}
	return c, nil
}
