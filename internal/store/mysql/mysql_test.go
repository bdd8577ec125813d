package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/storetest"
)

// envDSN names the variable with the DSN of a server the tests may create
// and drop databases on, e.g. "root@tcp(127.0.0.1:3306)/test".
const envDSN = "KMS_TEST_MYSQL_DSN"

// adminDB connects to the test server, or skips the test.
func adminDB(t testing.TB) (*sql.DB, *mysql.Config) {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		t.Skipf("%s is not set; set it to a MySQL/MariaDB DSN (see scripts/ci-databases.sh) to run this test", envDSN)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, cfg
}

// newDatabase creates an empty database that the test's cleanup drops, and
// returns its name and a DSN for it.
func newDatabase(t testing.TB) (name, dsn string) {
	t.Helper()
	admin, cfg := adminDB(t)
	name = "kms_test_" + randomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg = cfg.Clone()
	cfg.DBName = name
	return name, cfg.FormatDSN()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// openStore opens dsn and closes the store in the test's cleanup.
func openStore(t testing.TB, dsn string, opts Options) *DB {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) kms.Store {
		_, dsn := newDatabase(t)
		return openStore(t, dsn, Options{})
	})
}

func TestShared(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	storetest.RunShared(t, openStore(t, dsn, Options{}), openStore(t, dsn, Options{}))
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	storetest.RunLifecycle(t, func(t *testing.T) storetest.LifecycleStore {
		_, dsn := newDatabase(t)
		return openStore(t, dsn, Options{})
	})
}

func TestSharedLifecycle(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	storetest.RunSharedLifecycle(t, openStore(t, dsn, Options{}), openStore(t, dsn, Options{}))
}

// TestMigrateFromVersion1 opens a database at schema version 1 with a user
// and a key in it, as a kmsd of that schema left it, and where a run of
// migration 2 stopped after its first statement: Open finishes the
// migration, the data is still there, and the lifecycle methods work.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	name, dsn := newDatabase(t)
	admin, _ := adminDB(t)
	conn, err := admin.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stmts := append([]string{"USE " + name, createVersionTable}, migrations[0].stmts...)
	stmts = append(stmts, "INSERT INTO schema_version (version) VALUES (1)",
		"INSERT INTO users (name, token_hash, created) VALUES ('alice', 'h', '2024-01-02 03:04:05')",
		"INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created) VALUES ('alice', 'pk', 1, 1, x'01', NOW())",
		migrations[1].stmts[0])
	for _, q := range stmts {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	var version int
	if err := admin.QueryRow("SELECT MAX(version) FROM " + name + ".schema_version").Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version after open: %d, %v; want %d", version, err, len(migrations))
	}
	want := kms.User{Name: "alice", TokenHash: "h", Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	if got, err := s.User(ctx, "alice"); err != nil || got != want {
		t.Fatalf("user from version 1: got %+v, %v; want %+v", got, err, want)
	}
	want.Disabled = true
	if err := s.UpdateUser(ctx, want); err != nil {
		t.Fatal(err)
	}
	if us, err := s.ListUsers(ctx); err != nil || len(us) != 1 || us[0] != want {
		t.Fatalf("users after update: got %+v, %v; want %+v", us, err, want)
	}
	if ks, err := s.ListPrimaryKeys(ctx, "alice"); err != nil || len(ks) != 1 {
		t.Fatalf("primary keys from version 1: got %+v, %v", ks, err)
	}
	if _, err := s.PutDoc(ctx, kms.Doc{Kind: "k", ID: "a", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentOpen starts several replicas on an empty database at once:
// all of them migrate, all succeed, and the schema is recorded once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	name, dsn := newDatabase(t)
	const n = 8
	stores := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn, Options{}, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	admin, _ := adminDB(t)
	var rows, version int
	err := admin.QueryRow("SELECT COUNT(*), MAX(version) FROM "+name+".schema_version").Scan(&rows, &version)
	if err != nil {
		t.Fatal(err)
	}
	if latest := len(migrations); rows != latest || version != latest {
		t.Fatalf("schema_version has %d rows up to version %d, want %d", rows, version, latest)
	}
	storetest.RunShared(t, stores[0], stores[n-1])
}

func TestSchemaNewerThanCode(t *testing.T) {
	t.Parallel()
	name, dsn := newDatabase(t)
	openStore(t, dsn, Options{})
	admin, _ := adminDB(t)
	if _, err := admin.Exec("INSERT INTO " + name + ".schema_version (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), dsn, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer") {
		t.Fatalf("open with a newer schema: got %v, want an error about version 999", err)
	}
}

// TestCaseSensitiveNames checks byte-for-byte names even where the
// database's default collation is case-insensitive.
func TestCaseSensitiveNames(t *testing.T) {
	t.Parallel()
	name, dsn := newDatabase(t)
	admin, _ := adminDB(t)
	if _, err := admin.Exec("ALTER DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	for _, n := range []string{"bob", "Bob", "BOB"} {
		if err := s.CreateUser(ctx, kms.User{Name: n, TokenHash: "h-" + n, Created: time.Now()}); err != nil {
			t.Fatalf("create %q: %v", n, err)
		}
	}
	u, err := s.User(ctx, "Bob")
	if err != nil || u.TokenHash != "h-Bob" {
		t.Fatalf("User(Bob) = %+v, %v", u, err)
	}
	if _, err := s.User(ctx, "bOb"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("User(bOb): want ErrNotFound, got %v", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.MaxOpenConns != DefaultMaxOpenConns || o.MaxIdleConns != o.MaxOpenConns ||
		o.ConnMaxLifetime != DefaultConnMaxLifetime || o.ConnMaxIdleTime != DefaultConnMaxIdleTime ||
		o.QueryTimeout != DefaultQueryTimeout {
		t.Fatalf("defaults: %+v", o)
	}
	if o := (Options{MaxOpenConns: 4, MaxIdleConns: 9, QueryTimeout: -1}).withDefaults(); o.MaxIdleConns != 4 || o.QueryTimeout != -1 {
		t.Fatalf("explicit values: %+v", o)
	}
}
