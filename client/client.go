// Package client is the Go SDK of kmsd. It speaks two APIs over HTTPS:
//
//   - the BigDL KMS API, the one BigDL PPML's Scala and Python clients use:
//     users, primary keys and named data keys stored by the server;
//   - the native JSON API (/v1): primary keys with versions, rotation,
//     scheduled deletion, encryption with an encryption context, envelope
//     data keys, batches, and, for admins, users and the seal.
//
// BigDL methods take the user's credentials as arguments:
//
//	c, err := client.New("https://kms.example:9876", client.WithCAFile("ca.crt"))
//	...
//	key, err := c.DataKey(ctx, "alice", token, "pk", "dk")
//
// Native methods use the credential given to [New]:
//
//	c, err := client.New(url, client.WithCAFile("ca.crt"), client.WithToken("alice", token))
//	...
//	ct, err := c.Encrypt(ctx, "pk", plaintext, map[string]string{"file": "a.csv"})
//
// An admin client ([WithAdminToken]) manages users and the seal, and acts
// on a user's keys through [Client.ForOwner].
//
// # Security
//
// TLS certificates are verified by default, against the system roots or
// the CA given with [WithCAFile] or [WithRootCAs]. [WithInsecureSkipVerify]
// turns verification off, for throw-away development servers only.
//
// The BigDL protocol carries the user's token in the query string. The
// client never puts the request URL in the errors it returns (net/http
// would), does not follow redirects with its own *http.Client, and
// percent-encodes every value, so a token may hold any character. The
// native API sends the credential in the Authorization header only.
//
// Plaintexts and data keys returned to the caller are the caller's to
// clear; the client clears its own copies of request and response bodies
// (best effort: Go cannot guarantee erasure).
//
// # Errors
//
// Every failure the server reports is an [*Error] that unwraps to a sentinel
// ([ErrNotFound], [ErrExists], [ErrInvalid], [ErrUnauthorized],
// [ErrForbidden], [ErrDisabled], [ErrDecrypt], [ErrSealed], ...), chosen
// by the error code (the native API's JSON body, the BigDL API's
// X-Kms-Error header) and, without one, by the HTTP status. Connection
// failures wrap [ErrUnavailable]; so does [ErrSealed].
//
// # Timeouts and retries
//
// There is no hidden timeout: every method takes a context, and callers set
// deadlines there (or on their own *http.Client). Only idempotent GETs
// ([Client.DataKey], [Client.Status], [Client.DescribeKey],
// [Client.ListKeys], [Client.ListUsers], [Client.SealStatus]) are retried,
// a few times with backoff, when the server is unreachable or answers 502,
// 503 or 504 (but not when it is sealed); creating a user or key never is,
// since a retried success would come back as [ErrExists], and neither is
// any other POST.
//
// # API maturity
//
// The methods for the BigDL API are stable. The native API's methods are
// new and may still change before kmsd's first release that documents
// them as stable; new options and methods may be added.
//
// # Concurrency
//
// A [Client] is safe for concurrent use by multiple goroutines.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client is a connection to one kmsd. Create it with [New].
type Client struct {
	base      *url.URL
	hc        *http.Client
	userAgent string
	retries   int
	// bearer is the native API's Authorization header value, "" for none.
	bearer string
	// owner is the user whose keys native key calls act on (?owner=), set
	// by ForOwner; "" for the caller's own keys.
	owner string
}

// Option configures a [Client]; see the With* functions.
type Option func(*options) error

type options struct {
	hc        *http.Client
	roots     *x509.CertPool
	insecure  bool
	userAgent string
	retries   int
	bearer    string
}

// WithHTTPClient makes the client send its requests with hc, e.g. to set a
// proxy, timeouts or client certificates. It cannot be combined with the
// TLS options: configure hc's transport instead. The client's own
// *http.Client refuses redirects, since the query carries the token; give
// hc a CheckRedirect that does the same.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient(nil)")
		}
		o.hc = hc
		return nil
	}
}

// WithCAFile trusts the PEM certificates in path (e.g. kmsd's generated
// tls.crt) instead of the system roots.
func WithCAFile(path string) Option {
	return func(o *options) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("client: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client: CA file %s holds no PEM certificate", path)
		}
		o.roots = pool
		return nil
	}
}

// WithRootCAs trusts the certificates in pool instead of the system roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) error {
		o.roots = pool
		return nil
	}
}

// WithInsecureSkipVerify turns TLS certificate verification off. Anyone on
// the network path can then read the tokens and keys the client sends and
// receives. Use it only against a development server.
func WithInsecureSkipVerify() Option {
	return func(o *options) error {
		o.insecure = true
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithRetries sets how many times an idempotent GET is retried after a
// connection failure or a 502, 503 or 504 answer; 2 by default, 0 to
// disable.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return errors.New("client: negative retry count")
		}
		o.retries = n
		return nil
	}
}

// New returns a client for the kmsd at baseURL, e.g.
// "https://kms.example:9876". baseURL may carry a path prefix (a reverse
// proxy's), but no query. It returns an error for a malformed URL, an
// unreadable CA file, or conflicting options.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want https://host:port", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: server URL %q: must not have a query, fragment or user info", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	o := options{userAgent: "ppmlkms-go-client", retries: 2}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	hc := o.hc
	if hc == nil {
		hc = newHTTPClient(o.roots, o.insecure)
	} else if o.roots != nil || o.insecure {
		return nil, errors.New("client: WithHTTPClient excludes WithCAFile, WithRootCAs and WithInsecureSkipVerify; configure its transport")
	}
	return &Client{base: u, hc: hc, userAgent: o.userAgent, retries: o.retries, bearer: o.bearer}, nil
}

func newHTTPClient(roots *x509.CertPool, insecure bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		InsecureSkipVerify: insecure,
	}
	return &http.Client{
		Transport: t,
		// The query holds the token: never carry it to another location.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// param is one query parameter; order is kept as BigDL's client writes it.
type param struct{ name, value string }

// encodeQuery percent-encodes the parameters. A space becomes %20, not
// '+': kmsd, like BigDL, takes '+' literally.
func encodeQuery(ps []param) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escape(p.name))
		b.WriteByte('=')
		b.WriteString(escape(p.value))
	}
	return b.String()
}

func escape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// endpoint returns the URL of prefix + name (name path-escaped) with query.
func (c *Client) endpoint(prefix, name string, ps []param) *url.URL {
	u := *c.base
	u.Path = c.base.Path + prefix + name
	u.RawPath = c.base.EscapedPath() + prefix + url.PathEscape(name)
	u.RawQuery = encodeQuery(ps)
	return &u
}

// maxBody bounds what the client reads of any response body.
const maxBody = 64 << 10

// do sends one request and returns the body of a 200 response, or an
// *Error for any other status. GETs are retried on unavailability.
func (c *Client) do(ctx context.Context, method string, u *url.URL) ([]byte, error) {
	var body []byte
	err := c.retry(ctx, method, func() (err error) {
		body, err = c.once(ctx, method, u)
		return err
	})
	return body, err
}

// retry calls f, and for a GET calls it again, after a backoff, while it
// fails with ErrUnavailable (but not ErrSealed), up to c.retries times.
func (c *Client) retry(ctx context.Context, method string, f func() error) error {
	retries := 0
	if method == http.MethodGet {
		retries = c.retries
	}
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= retries || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrSealed) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<attempt, 2*time.Second)
}

func (c *Client) once(ctx context.Context, method string, u *url.URL) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("client: %w", redact(err))
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transportError(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newError(resp.StatusCode, resp.Header, body)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("kms: response longer than %d bytes: %w", maxBody, ErrMalformedResponse)
	}
	return body, nil
}

// transportError redacts the URL (its query holds the token) and marks
// connection failures as ErrUnavailable. Certificate failures and the
// caller's own context are left alone: retrying cannot help them.
func transportError(err error) error {
	err = redact(err)
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var ce x509.CertificateInvalidError
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &ce):
		return err
	case errors.As(err, &oe), errors.As(err, &de), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// redact removes the query from the URL that *url.Error carries.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		if i := strings.IndexByte(c.URL, '?'); i >= 0 {
			c.URL = c.URL[:i] + "?[redacted]"
		}
		return &c
	}
	return err
}
