package attest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxCollateralSize bounds every PCCS response body.
const maxCollateralSize = 1 << 20

// PCCS fetches collateral from an Intel PCCS (or PCS) with the v4 API and
// caches it per request (TEE, FMSPC, PCK CA). A cache entry lives for TTL
// and never past the next-update date of its TCB info or QE identity.
// Collateral is not verified here: [Verify] does that on every use, so a
// compromised PCCS can deny service but not forge collateral.
//
// PCCS is safe for concurrent use. Concurrent misses for the same request
// may fetch twice; the last one is cached.
type PCCS struct {
	// BaseURL is the PCCS root, e.g. "https://pccs.internal:8081"; the
	// paths /sgx/certification/v4/... and /tdx/certification/v4/... are
	// appended.
	BaseURL string
	// Client is the HTTP client; nil means http.DefaultClient. Set its
	// timeout or pass a deadline in ctx.
	Client *http.Client
	// TTL bounds the life of a cache entry; zero means one hour.
	TTL time.Duration

	mu          sync.Mutex
	cache       map[CollateralRequest]pccsEntry
	testOnlyNow func() time.Time // test seam; nil means time.Now
}

type pccsEntry struct {
	col     Collateral
	expires time.Time
}

var _ CollateralSource = (*PCCS)(nil)

// Collateral returns cached collateral for req or fetches it: TCB info and
// QE identity with their issuer chains, the root CA CRL and the PCK CRL.
// Errors wrap [ErrCollateralUnavailable].
func (p *PCCS) Collateral(ctx context.Context, req CollateralRequest) (Collateral, error) {
	if req.TEE != TEESGX && req.TEE != TEETDX || (req.PCKCA != "platform" && req.PCKCA != "processor") {
		return Collateral{}, fmt.Errorf("%w: bad request %+v", ErrCollateralUnavailable, req)
	}
	now := p.clock()
	p.mu.Lock()
	e, ok := p.cache[req]
	p.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.col, nil
	}
	col, err := p.fetch(ctx, req)
	if err != nil {
		return Collateral{}, fmt.Errorf("%w: pccs: %w", ErrCollateralUnavailable, err)
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	expires := now.Add(ttl)
	for _, next := range []time.Time{nextUpdate(col.TCBInfo, "tcbInfo"), nextUpdate(col.QEIdentity, "enclaveIdentity")} {
		if next.Before(expires) {
			expires = next
		}
	}
	p.mu.Lock()
	if p.cache == nil {
		p.cache = make(map[CollateralRequest]pccsEntry)
	}
	p.cache[req] = pccsEntry{col: col, expires: expires}
	p.mu.Unlock()
	return col, nil
}

func (p *PCCS) clock() time.Time {
	if p.testOnlyNow != nil {
		return p.testOnlyNow()
	}
	return time.Now()
}

func (p *PCCS) fetch(ctx context.Context, req CollateralRequest) (Collateral, error) {
	tee := string(req.TEE)
	var c Collateral
	var err error
	q := url.Values{"fmspc": {hex.EncodeToString(req.FMSPC[:])}}
	if c.TCBInfo, c.TCBInfoChain, err = p.get(ctx, "/"+tee+"/certification/v4/tcb", q,
		"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"); err != nil {
		return c, err
	}
	if c.QEIdentity, c.QEIdentityChain, err = p.get(ctx, "/"+tee+"/certification/v4/qe/identity", nil,
		"SGX-Enclave-Identity-Issuer-Chain", "Enclave-Identity-Issuer-Chain"); err != nil {
		return c, err
	}
	if c.PCKCRL, _, err = p.get(ctx, "/sgx/certification/v4/pckcrl", url.Values{"ca": {req.PCKCA}, "encoding": {"der"}}); err != nil {
		return c, err
	}
	if c.RootCRL, _, err = p.get(ctx, "/sgx/certification/v4/rootcacrl", nil); err != nil {
		return c, err
	}
	return c, nil
}

// get fetches path and returns the body and, when chainHeaders are given,
// the first present one URL-decoded (PCS percent-encodes PEM chains).
func (p *PCCS) get(ctx context.Context, path string, query url.Values, chainHeaders ...string) (body, chain []byte, err error) {
	u := strings.TrimRight(p.BaseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("get %s: %s", path, resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxCollateralSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("get %s: %w", path, err)
	}
	if len(body) > maxCollateralSize {
		return nil, nil, fmt.Errorf("get %s: response larger than %d bytes", path, maxCollateralSize)
	}
	if len(chainHeaders) == 0 {
		return body, nil, nil
	}
	for _, h := range chainHeaders {
		if v := resp.Header.Get(h); v != "" {
			pemChain, err := url.PathUnescape(v)
			if err != nil {
				return nil, nil, fmt.Errorf("get %s: header %s: %w", path, h, err)
			}
			return body, []byte(pemChain), nil
		}
	}
	return nil, nil, fmt.Errorf("get %s: no issuer chain header", path)
}

// nextUpdate reads the (unverified) nextUpdate of signed collateral, only to
// bound caching. On failure it returns the Unix epoch, so that a malformed
// response expires at once instead of being cached for the whole TTL.
func nextUpdate(data []byte, field string) time.Time {
	raw, _, err := splitSigned(data, field)
	var v struct {
		NextUpdate time.Time `json:"nextUpdate"`
	}
	if err != nil || json.Unmarshal(raw, &v) != nil || v.NextUpdate.IsZero() {
		return time.Unix(0, 0)
	}
	return v.NextUpdate
}
