package mysql

import (
	"testing"

	"github.com/ppmlkms/kms/internal/store/storetest"
)

// benchStore opens a store on a fresh database.
func benchStore(b *testing.B) *DB {
	_, dsn := newDatabase(b)
	return openStore(b, dsn, Options{MaxOpenConns: 64})
}

// BenchmarkCreateDataKeyParallel measures durable data key creates from
// many goroutines, each one committed by the server.
func BenchmarkCreateDataKeyParallel(b *testing.B) { storetest.BenchCreateDataKeys(b, benchStore(b)) }

// BenchmarkDataKeyRead measures data key reads from many goroutines.
func BenchmarkDataKeyRead(b *testing.B) { storetest.BenchReadDataKeys(b, benchStore(b)) }
