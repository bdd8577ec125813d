package sqlite

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

func openBench(b *testing.B) *DB {
	b.Helper()
	db, err := Open(b.Context(), filepath.Join(b.TempDir(), "kms.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	seed(b, db)
	return db
}

// BenchmarkCreateDataKeyParallel measures durable creates from 16 callers
// per CPU (32 on the 2-core target machine). ns/op is wall time per create:
// 1e9/ns_op is creates per second.
func BenchmarkCreateDataKeyParallel(b *testing.B) {
	db := openBench(b)
	var seq atomic.Int64
	before := db.Stats()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := dataKey(fmt.Sprint("k", seq.Add(1)))
			if err := db.CreateDataKey(b.Context(), k); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := db.Stats()
	b.ReportMetric(float64(st.Rows-before.Rows)/float64(st.Commits-before.Commits), "rows/commit")
}

// BenchmarkCreateDataKeySerial measures one caller: each create pays a
// whole commit, the latency floor of the write path.
func BenchmarkCreateDataKeySerial(b *testing.B) {
	db := openBench(b)
	for i := 0; b.Loop(); i++ {
		if err := db.CreateDataKey(b.Context(), dataKey(fmt.Sprint("k", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDataKeyRead measures the hot path of GET /dataKey: parallel
// point reads of 10,000 existing data keys.
func BenchmarkDataKeyRead(b *testing.B) {
	db := openBench(b)
	const n = 10000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("k", i)
	}
	// Load through the batch path: 64 callers at a time.
	sem := make(chan struct{}, 64)
	for _, name := range names {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := db.CreateDataKey(b.Context(), dataKey(name)); err != nil {
				b.Error(err)
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	var seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := names[seq.Add(1)%n]
			if _, err := db.DataKey(b.Context(), "alice", "pk", name); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
