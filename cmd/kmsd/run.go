package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ppmlkms/kms/internal/audit"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/certs"
	"github.com/ppmlkms/kms/internal/config"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/ppmlsecrets"
	"github.com/ppmlkms/kms/internal/rootkey"
	"github.com/ppmlkms/kms/internal/seal"
	"github.com/ppmlkms/kms/internal/telemetry"
)

var errHelp = flag.ErrHelp

// Main is the kmsd program, split so that end-to-end tests run the real
// thing: ParseFlags, then Run (returns once listening), then Close.
type Main struct {
	Config config.Config
	Logger *slog.Logger
	// Stderr receives logs and usage; os.Stderr by default.
	Stderr io.Writer

	store    kms.Store
	server   *http.Server
	listener net.Listener
	served   chan error
	devDir   string
	getenv   func(string) string

	clientCAs       *x509.CertPool
	seal            *seal.Manager
	audit           *audit.Logger
	attest          *attestListener // -attest-addr (attest.go)
	stopMaintenance context.CancelFunc
	maintained      chan struct{}
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: config.Default(), Stderr: os.Stderr, Logger: slog.New(slog.DiscardHandler)}
}

// ParseFlags reads the configuration from args, the environment and the
// file they name, and sets up the logger.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	cfg, err := config.Parse(args, getenv, m.Stderr)
	if err != nil {
		return err
	}
	m.Config, m.getenv = cfg, getenv
	level, _ := config.ParseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: slog.Level(level)}
	if cfg.LogFormat == "json" {
		m.Logger = slog.New(slog.NewJSONHandler(m.Stderr, opts))
	} else {
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, opts))
	}
	return nil
}

// Addr is the address the server listens on, once Run returned.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run opens the store, loads the root key and the certificate, and starts
// serving. It returns once the listener is up.
func (m *Main) Run(ctx context.Context) error {
	cfg := &m.Config
	if cfg.Dev {
		if err := m.setupDev(); err != nil {
			return err
		}
	} else if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	metrics := telemetry.New()
	store, err := openStore(ctx, cfg, m.Logger)
	if err != nil {
		return err
	}
	m.store = store
	istore := telemetry.InstrumentStore(store, metrics)
	if err := m.openSeal(ctx, istore); err != nil {
		return err
	}
	svc := kms.NewService(istore, m.seal, kms.ServiceOptions{
		OnKeyOp:        func(op, result string) { metrics.KeyOps.WithLabelValues(op, result).Inc() },
		OnCache:        metrics.CacheFunc("keys"),
		OnDataKeyCache: metrics.CacheFunc("data_keys"),
	})
	authn := auth.New(istore.User, auth.Options{
		OnCacheHit: metrics.CacheFunc("auth"),
		OnFailure:  func(reason string) { metrics.AuthFailures.WithLabelValues(reason).Inc() },
	})
	admins, err := m.loadAdmins()
	if err != nil {
		return err
	}
	if err := m.openAudit(metrics); err != nil {
		return err
	}
	cert, err := m.loadCertificate()
	if err != nil {
		return err
	}
	attestMounts, err := m.setupAttest(ctx, attestDeps{svc: svc, store: istore, auth: authn, admins: admins, metrics: metrics, cert: cert})
	if err != nil {
		return err
	}
	clientIDs, err := m.loadClientIdentities()
	if err != nil {
		return err
	}
	handler := httpapi.New(httpapi.Config{Service: svc, Auth: authn, Admins: admins, Seal: m.seal, ClientIdentities: clientIDs,
		Audit: m.audit, Metrics: metrics, Logger: m.Logger, AccessLog: cfg.AccessLog, Mount: attestMounts})
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopMaintenance = cancel
	m.maintained = make(chan struct{})
	go func() {
		defer close(m.maintained)
		svc.RunMaintenance(mctx, time.Duration(cfg.Maintenance), func(err error) {
			m.Logger.Warn("maintenance", "err", err)
		})
	}()
	return m.serve(ctx, handler, cert)
}

func (m *Main) serve(ctx context.Context, h http.Handler, cert tls.Certificate) error {
	cfg := &m.Config
	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	ln := lingerListener{tcp}
	m.listener = ln
	m.server = &http.Server{
		Handler:           h,
		TLSConfig:         m.tlsConfig(cert),
		ReadHeaderTimeout: time.Duration(cfg.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.IdleTimeout),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// Handshake failures and the like are client problems: debug level.
		ErrorLog:    log.New(slogWriter{m.Logger}, "", 0),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.server.ServeTLS(ln, "", "") }()
	m.Logger.Info("kmsd listening", "addr", ln.Addr().String(), "tls", "1.2+", "store", storeDescription(cfg))
	return nil
}

// Close shuts the server down gracefully: it stops accepting, lets
// in-flight requests finish within shutdown-timeout, then closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(m.Config.ShutdownTimeout))
		defer cancel()
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, err, m.server.Close())
		}
		if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.closeAttest())
	if m.stopMaintenance != nil {
		m.stopMaintenance()
		<-m.maintained
	}
	if m.audit != nil {
		errs = append(errs, m.audit.Close())
	}
	if m.seal != nil {
		errs = append(errs, m.seal.Close())
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	if m.devDir != "" {
		errs = append(errs, os.RemoveAll(m.devDir))
	}
	return errors.Join(errs...)
}

func (m *Main) setupDev() error {
	dir, err := os.MkdirTemp("", "kmsd-dev-")
	if err != nil {
		return err
	}
	m.devDir, m.Config.DataDir = dir, dir
	m.Logger.Warn("DEVELOPMENT MODE: ephemeral root key and throw-away store; every key is lost on exit. Never use in production.", "dir", dir)
	return nil
}

// openSeal loads the root key: from the configured source in auto mode
// (verified against the store's seal document), or not at all in Shamir
// mode, where the server starts sealed and waits for shares.
func (m *Main) openSeal(ctx context.Context, store kms.Store) error {
	cfg := &m.Config
	m.seal = seal.New(store, seal.Options{Logger: m.Logger})
	if cfg.Seal == "shamir" {
		st, err := m.seal.Open(ctx)
		if err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		if !st.Initialized {
			m.Logger.Warn("SEALED AND NOT INITIALISED: an admin must POST /v1/sys/init (or GET /rootKey/rotate) to create the root key and its shares")
		} else {
			m.Logger.Warn("SEALED: key operations answer 503 until an admin submits unseal shares", "threshold", st.Threshold)
		}
		return nil
	}
	var src rootkey.Source
	switch {
	case cfg.Dev:
		src = devKey{}
	case cfg.RootKeyEnv != "":
		src = &rootkey.Value{Env: cfg.RootKeyEnv, Getenv: m.getenv}
	case cfg.RootKeyFile != "":
		src = &rootkey.Value{Path: cfg.RootKeyFile}
	default:
		src = &rootkey.File{Path: filepath.Join(cfg.DataDir, "root.key"), Create: true, Logger: m.Logger}
	}
	if err := m.seal.LoadAuto(ctx, src); err != nil {
		return fmt.Errorf("root key from %s: %w", src.Describe(), err)
	}
	m.Logger.Info("root key loaded", "source", src.Describe(), "root_version", m.seal.Status().RootVersion)
	return nil
}

// devKey is the ephemeral root key of -dev.
type devKey struct{}

func (devKey) Describe() string { return "ephemeral development key" }

func (devKey) RootKey(context.Context) ([]byte, error) {
	key := make([]byte, rootkey.Len)
	rand.Read(key)
	return key, nil
}

// loadAdmins reads the admin identities file: "<name> <argon2id hash>" per
// line, '#' comments. Admins authenticate as "admin/<name>:<token>".
func (m *Main) loadAdmins() (*auth.Authenticator, error) {
	if m.Config.AdminTokens == "" {
		return nil, nil
	}
	b, err := os.ReadFile(m.Config.AdminTokens)
	if err != nil {
		return nil, fmt.Errorf("admin tokens: %w", err)
	}
	admins := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, " ")
		hash = strings.TrimSpace(hash)
		if !ok || kms.ValidateName("admin name", name) != nil || !strings.HasPrefix(hash, "$argon2id$") {
			return nil, fmt.Errorf("admin tokens %s line %d: want \"<name> <argon2id hash>\" (kmsctl admin hash-token makes the hash)", m.Config.AdminTokens, i+1)
		}
		admins[name] = hash
	}
	if len(admins) == 0 {
		return nil, fmt.Errorf("admin tokens %s: no admin identity", m.Config.AdminTokens)
	}
	m.Logger.Info("admin identities loaded", "count", len(admins))
	return auth.New(func(_ context.Context, name string) (kms.User, error) {
		hash, ok := admins[name]
		if !ok {
			return kms.User{}, kms.ErrNotFound
		}
		return kms.User{Name: name, TokenHash: hash}, nil
	}, auth.Options{}), nil
}

func (m *Main) openAudit(metrics *telemetry.Metrics) error {
	if m.Config.AuditLog == "off" {
		m.Logger.Warn("audit log is off")
		return nil
	}
	l, err := audit.New(audit.Options{Path: m.Config.AuditLog, FailClosed: m.Config.AuditFailClosed, Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	m.audit = l
	metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: audit.DroppedMetric, Help: "Audit records dropped because the audit sink was full or failing (fail-open mode).",
	}, func() float64 { return float64(l.Dropped()) }))
	return nil
}

func (m *Main) loadCertificate() (tls.Certificate, error) {
	cfg := &m.Config
	switch {
	case cfg.TLSCert != "":
		return certs.LoadPEM(cfg.TLSCert, cfg.TLSKey)
	case cfg.TLSPKCS12 != "":
		pw, err := pkcs12Password(cfg, m.getenv)
		if err != nil {
			return tls.Certificate{}, err
		}
		return certs.LoadPKCS12(cfg.TLSPKCS12, pw)
	}
	c, created, err := certs.SelfSigned(cfg.DataDir)
	if err != nil {
		return c, fmt.Errorf("self-signed certificate: %w", err)
	}
	msg := "using self-signed certificate"
	if created {
		msg = "generated self-signed certificate"
	}
	m.Logger.Warn(msg, "cert", filepath.Join(cfg.DataDir, "tls.crt"), "sha256", certs.Fingerprint(c))
	return c, nil
}

func pkcs12Password(cfg *config.Config, getenv func(string) string) (string, error) {
	if cfg.TLSPKCS12PassRSAKey != "" {
		keyTxt, err := os.ReadFile(cfg.TLSPKCS12PassRSAKey)
		if err != nil {
			return "", fmt.Errorf("PKCS#12 password key: %w", err)
		}
		enc, err := os.ReadFile(cfg.TLSPKCS12PassEncrypted)
		if err != nil {
			return "", fmt.Errorf("PKCS#12 encrypted password: %w", err)
		}
		pw, err := ppmlsecrets.RecoverPassword(keyTxt, enc)
		if err != nil {
			return "", fmt.Errorf("PKCS#12 password from %s: %w", cfg.TLSPKCS12PassEncrypted, err)
		}
		return string(pw), nil
	}
	if cfg.TLSPKCS12PassEnv != "" {
		pw := getenv(cfg.TLSPKCS12PassEnv)
		if pw == "" {
			return "", fmt.Errorf("PKCS#12 password: environment variable %s is not set", cfg.TLSPKCS12PassEnv)
		}
		return pw, nil
	}
	b, err := os.ReadFile(cfg.TLSPKCS12Password)
	if err != nil {
		return "", fmt.Errorf("PKCS#12 password: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// slogWriter sends http.Server's own log lines to slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)), "component", "http")
	return len(p), nil
}

// tlsConfig is the server's TLS configuration, with optional mutual TLS:
// client certificates are requested, verified against -tls-client-ca when
// given, and never required (token clients keep working).
func (m *Main) tlsConfig(cert tls.Certificate) *tls.Config {
	c := certs.ServerConfig(cert)
	if m.clientCAs != nil {
		c.ClientCAs = m.clientCAs
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

// loadClientIdentities reads -tls-client-ca and -tls-client-identities:
// "<certificate common name> <user>" or "<common name> admin/<name>" per
// line, '#' comments.
func (m *Main) loadClientIdentities() (map[string]string, error) {
	cfg := &m.Config
	if cfg.TLSClientCA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(cfg.TLSClientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	m.clientCAs = x509.NewCertPool()
	if !m.clientCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate", cfg.TLSClientCA)
	}
	b, err := os.ReadFile(cfg.ClientIdentities)
	if err != nil {
		return nil, fmt.Errorf("client identities: %w", err)
	}
	ids := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		j := strings.LastIndexByte(line, ' ')
		if j < 0 {
			return nil, fmt.Errorf("client identities %s line %d: want \"<common name> <user or admin/name>\"", cfg.ClientIdentities, i+1)
		}
		cn, principal := strings.TrimSpace(line[:j]), line[j+1:]
		name := strings.TrimPrefix(principal, "admin/")
		if cn == "" || kms.ValidateName("identity", name) != nil {
			return nil, fmt.Errorf("client identities %s line %d: bad common name or identity", cfg.ClientIdentities, i+1)
		}
		ids[cn] = principal
	}
	m.Logger.Info("mutual TLS enabled", "client_identities", len(ids))
	return ids, nil
}
