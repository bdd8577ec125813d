package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ppmlkms/kms/internal/config"
	"github.com/ppmlkms/kms/internal/kms"
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
	return nil, fmt.Errorf("store %s: backend not supported yet", storeDescription(cfg))
}

// storeDescription names the store without any credentials.
func storeDescription(cfg *config.Config) string {
	if p := cfg.SQLitePath(); p != "" {
		return "sqlite:" + p
	}
	scheme, _, _ := cutScheme(cfg.Store)
	return scheme + "://(redacted)"
}

func cutScheme(s string) (scheme, rest string, ok bool) {
	for i := 0; i+2 < len(s); i++ {
		if s[i:i+3] == "://" {
			return s[:i], s[i+3:], true
		}
	}
	return "", s, false
}
