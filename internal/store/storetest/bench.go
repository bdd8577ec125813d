package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// benchParallelism is goroutines per GOMAXPROCS in the parallel benchmarks:
// kmsd serves many requests at once, and durable commits only reach their
// throughput when the store can group them.
const benchParallelism = 16

// seedBench creates user "bench" with primary key "pk" in s.
func seedBench(b *testing.B, s kms.Store) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	if err := s.CreateUser(ctx, kms.User{Name: "bench", TokenHash: "h", Created: now}); err != nil {
		b.Fatal(err)
	}
	pk := kms.PrimaryKey{Owner: "bench", Name: "pk", Version: 1, RootVersion: 1, Wrapped: make([]byte, 65), Created: now}
	if err := s.CreatePrimaryKey(ctx, pk); err != nil {
		b.Fatal(err)
	}
}

// BenchCreateDataKeys measures durable data key creates from many
// goroutines on an empty store s. Adapters call it from their own
// benchmarks.
func BenchCreateDataKeys(b *testing.B, s kms.Store) {
	seedBench(b, s)
	var n atomic.Int64
	wrapped := make([]byte, 61)
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			k := kms.DataKey{Owner: "bench", Primary: "pk", Name: fmt.Sprint("dk", n.Add(1)),
				PrimaryVersion: 1, Wrapped: wrapped, Created: time.Now()}
			if err := s.CreateDataKey(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchReadDataKeys measures data key reads from many goroutines on an
// empty store s, which it first fills with 1000 data keys.
func BenchReadDataKeys(b *testing.B, s kms.Store) {
	seedBench(b, s)
	ctx := context.Background()
	const keys = 1000
	for i := range keys {
		k := kms.DataKey{Owner: "bench", Primary: "pk", Name: fmt.Sprint("dk", i), PrimaryVersion: 1,
			Wrapped: make([]byte, 61), Created: time.Now()}
		if err := s.CreateDataKey(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.DataKey(ctx, "bench", "pk", fmt.Sprint("dk", n.Add(1)%keys)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
