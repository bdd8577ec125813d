// Command kmsd is the kms server: the BigDL KMS API over HTTPS, keys sealed
// under a root key, state in an embedded SQLite store or a shared SQL
// database.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultGCPercent is kmsd's garbage collector target when GOGC is not
// set. kmsd's live heap is small (tens of MiB) and its hot path allocates
// per request, so collecting at 5× the live heap instead of 2× trades a few
// tens of MiB for about a tenth of the CPU per request (docs/benchmarks.md).
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kmsd:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("start failed", "err", err)
		m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	stop()
	m.Logger.Info("shutting down: waiting for in-flight requests")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
	m.Logger.Info("stopped")
}
