package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/storetest"
)

// envDSN names the variable with the DSN of a server the tests may create
// and drop schemas on, e.g.
// "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".
const envDSN = "KMS_TEST_POSTGRES_DSN"

// testDSN returns the test server's DSN, or skips the test.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		t.Skipf("%s is not set; set it to a PostgreSQL DSN (see scripts/ci-databases.sh) to run this test", envDSN)
	}
	return dsn
}

// adminDB connects to the test server, or skips the test.
func adminDB(t testing.TB) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(testDSN(t))
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	db := sql.OpenDB(stdlib.GetConnector(*cfg))
	t.Cleanup(func() { db.Close() })
	return db
}

// newSchema creates an empty schema that the test's cleanup drops, and
// returns its name and a DSN whose search_path and application_name are
// that name.
func newSchema(t testing.TB) (name, dsn string) {
	t.Helper()
	admin := adminDB(t)
	name = "kms_test_" + randomHex(6)
	if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name, withParams(t, testDSN(t), map[string]string{"search_path": name, "application_name": name})
}

// withParams adds connection parameters to a URL or keyword/value DSN.
func withParams(t testing.TB, dsn string, params map[string]string) string {
	if !strings.Contains(dsn, "://") {
		for k, v := range params {
			dsn += " " + k + "=" + v
		}
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
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
		_, dsn := newSchema(t)
		return openStore(t, dsn, Options{})
	})
}

func TestShared(t *testing.T) {
	t.Parallel()
	_, dsn := newSchema(t)
	storetest.RunShared(t, openStore(t, dsn, Options{}), openStore(t, dsn, Options{}))
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	storetest.RunLifecycle(t, func(t *testing.T) storetest.LifecycleStore {
		_, dsn := newSchema(t)
		return openStore(t, dsn, Options{})
	})
}

func TestSharedLifecycle(t *testing.T) {
	t.Parallel()
	_, dsn := newSchema(t)
	storetest.RunSharedLifecycle(t, openStore(t, dsn, Options{}), openStore(t, dsn, Options{}))
}

// TestMigrateFromVersion1 opens a schema at version 1 with a user and a key
// in it, as a kmsd of that schema left it: Open migrates it, the data is
// still there, and the lifecycle methods work.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	name, dsn := newSchema(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	raw := sql.OpenDB(stdlib.GetConnector(*cfg))
	defer raw.Close()
	for _, q := range []string{createVersionTable, migrations[0].sql,
		"INSERT INTO schema_version (version) VALUES (1)",
		"INSERT INTO users (name, token_hash, created) VALUES ('alice', 'h', '2024-01-02 03:04:05Z')",
		"INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created) VALUES ('alice', 'pk', 1, 1, '\\x01', now())",
	} {
		if _, err := raw.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	var version int
	if err := adminDB(t).QueryRow("SELECT MAX(version) FROM " + name + ".schema_version").Scan(&version); err != nil || version != len(migrations) {
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

// TestConcurrentOpen starts several replicas on an empty schema at once:
// all of them succeed, and the schema is migrated once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	name, dsn := newSchema(t)
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
	var rows, version int
	err := adminDB(t).QueryRow("SELECT COUNT(*), MAX(version) FROM "+name+".schema_version").Scan(&rows, &version)
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
	name, dsn := newSchema(t)
	openStore(t, dsn, Options{})
	if _, err := adminDB(t).Exec("INSERT INTO " + name + ".schema_version (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), dsn, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer") {
		t.Fatalf("open with a newer schema: got %v, want an error about version 999", err)
	}
}

// TestForeignTable checks that a table of another application in the
// store's schema stops the migration instead of being used.
func TestForeignTable(t *testing.T) {
	t.Parallel()
	name, dsn := newSchema(t)
	if _, err := adminDB(t).Exec("CREATE TABLE " + name + ".users (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), dsn, Options{}, nil); err == nil || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("open over a foreign users table: got %v, want a migration error", err)
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
