package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/attestapi"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/certs"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/telemetry"
)

// attestDeps is what the attestation API shares with the rest of kmsd.
type attestDeps struct {
	svc     *kms.Service
	store   kms.Store
	auth    *auth.Authenticator
	admins  *auth.Authenticator
	metrics *telemetry.Metrics
	cert    tls.Certificate
}

// attestListener is the optional listener of BigDL's attestation service
// (-attest-addr).
type attestListener struct {
	server   *http.Server
	listener net.Listener
	served   chan error
}

// setupAttest builds the attestation API when it is configured and returns
// the handlers to mount on the main listener (nil when it is off). With
// -attest-addr it also starts a listener serving BigDL's attestation
// service at its root, with the main listener's certificate.
func (m *Main) setupAttest(ctx context.Context, d attestDeps) (map[string]http.Handler, error) {
	cfg := &m.Config
	if !cfg.AttestEnabled() {
		return nil, nil
	}
	var src attest.CollateralSource
	switch {
	case cfg.AttestCollateralDir != "":
		src = attest.DirSource{Dir: cfg.AttestCollateralDir}
	case cfg.AttestPCCSURL != "":
		src = &attest.PCCS{BaseURL: cfg.AttestPCCSURL, Client: &http.Client{Timeout: 30 * time.Second}, TTL: time.Hour}
	}
	if cfg.AttestAllowMockTEE {
		m.Logger.Warn("INSECURE: the mock TEE is accepted (-attest-allow-mock-tee): anyone can forge a mock quote, " +
			"so keys whose release policy names the mock TEE are not protected. Development and CI only; never in production.")
	}
	h, err := attestapi.New(attestapi.Config{Service: d.svc, Docs: d.store, Auth: d.auth, Admins: d.admins,
		Collateral: src, Audience: cfg.AttestAudience, AllowMockTEE: cfg.AttestAllowMockTEE,
		Metrics: d.metrics, Logger: m.Logger.With("component", "attest"), Audit: m.audit, AccessLog: cfg.AccessLog})
	if err != nil {
		return nil, err
	}
	m.Logger.Info("attestation enabled", "audience", cfg.AttestAudience, "collateral", collateralDescription(cfg.AttestCollateralDir, cfg.AttestPCCSURL),
		"mock_tee", cfg.AttestAllowMockTEE)
	if cfg.AttestAddr != "" {
		if err := m.serveAttest(ctx, h.BigDL(), d.cert); err != nil {
			return nil, err
		}
	}
	return h.Mounts(), nil
}

func collateralDescription(dir, pccs string) string {
	switch {
	case dir != "":
		return "dir " + dir
	case pccs != "":
		return "pccs " + pccs
	}
	return "none (only mock quotes verify)"
}

// serveAttest starts the BigDL attestation service listener.
func (m *Main) serveAttest(ctx context.Context, h http.Handler, cert tls.Certificate) error {
	cfg := &m.Config
	tcp, err := net.Listen("tcp", cfg.AttestAddr)
	if err != nil {
		return err
	}
	ln := lingerListener{tcp}
	a := &attestListener{listener: ln, served: make(chan error, 1), server: &http.Server{
		Handler:           h,
		TLSConfig:         certs.ServerConfig(cert),
		ReadHeaderTimeout: time.Duration(cfg.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.IdleTimeout),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          log.New(slogWriter{m.Logger}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}}
	m.attest = a
	go func() { a.served <- a.server.ServeTLS(ln, "", "") }()
	m.Logger.Info("BigDL attestation service listening", "addr", ln.Addr().String(), "tls", "1.2+")
	return nil
}

// AttestAddr is the address of the attestation listener, or "" if there
// is none.
func (m *Main) AttestAddr() string {
	if m.attest == nil {
		return ""
	}
	return m.attest.listener.Addr().String()
}

// closeAttest shuts the attestation listener down, if any.
func (m *Main) closeAttest() error {
	a := m.attest
	if a == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(m.Config.ShutdownTimeout))
	defer cancel()
	var errs []error
	if err := a.server.Shutdown(ctx); err != nil {
		errs = append(errs, err, a.server.Close())
	}
	if err := <-a.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
