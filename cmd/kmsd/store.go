package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ppmlkms/kms/internal/config"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/mysql"
	"github.com/ppmlkms/kms/internal/store/postgres"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// openStore opens the store the configuration selects. Adding a backend is
// one case here.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (kms.Store, error) {
	if p := cfg.SQLitePath(); p != "" {
		s, err := sqlite.Open(ctx, p, logger)
		if err != nil {
			return nil, fmt.Errorf("open SQLite store %s: %w", p, err)
		}
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	scheme, rest, _ := strings.Cut(cfg.Store, "://")
	switch scheme {
	case "mysql":
		dsn, err := mysqlDSN(rest)
		if err != nil {
			return nil, err
		}
		return mysql.Open(ctx, dsn, mysql.Options{MaxOpenConns: cfg.StoreMaxConns,
			ConnMaxLifetime: time.Duration(cfg.StoreConnMaxLifetime), QueryTimeout: time.Duration(cfg.StoreQueryTimeout)}, logger)
	case "postgres", "postgresql":
		return postgres.Open(ctx, cfg.Store, postgres.Options{MaxOpenConns: cfg.StoreMaxConns,
			ConnMaxLifetime: time.Duration(cfg.StoreConnMaxLifetime), QueryTimeout: time.Duration(cfg.StoreQueryTimeout)}, logger)
	}
	return nil, fmt.Errorf("store %s: unknown backend", storeDescription(cfg))
}

// mysqlDSN accepts after "mysql://" either a go-sql-driver DSN
// (user:pass@tcp(host:3306)/db?opts) or URL form (user:pass@host:3306/db?opts).
// Errors never contain the password.
func mysqlDSN(rest string) (string, error) {
	if strings.Contains(rest, "@tcp(") || strings.Contains(rest, "@unix(") || strings.HasPrefix(rest, "tcp(") {
		return rest, nil
	}
	u, err := url.Parse("mysql://" + rest)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("store: malformed mysql URL; want mysql://user:password@host:3306/database")
	}
	host := u.Host
	if u.Port() == "" {
		host += ":3306"
	}
	var userinfo string
	if u.User != nil {
		userinfo = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			userinfo += ":" + pw
		}
		userinfo += "@"
	}
	dsn := userinfo + "tcp(" + host + ")" + u.Path
	if u.RawQuery != "" {
		dsn += "?" + u.RawQuery
	}
	return dsn, nil
}

// storeDescription names the store without any credentials.
func storeDescription(cfg *config.Config) string {
	if p := cfg.SQLitePath(); p != "" {
		return "sqlite:" + p
	}
	scheme, _, _ := strings.Cut(cfg.Store, "://")
	return scheme + "://(redacted)"
}
