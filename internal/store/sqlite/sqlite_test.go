package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/storetest"
)

// openTest opens a database at path and closes it when the test ends.
func openTest(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

func newTestDB(t *testing.T) *DB {
	return openTest(t, filepath.Join(t.TempDir(), "kms.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) kms.Store { return newTestDB(t) })
}

// TestShared runs the two-replica checks on two DBs opened on one file, as
// two kmsd processes on one volume would.
func TestShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	storetest.RunShared(t, openTest(t, path), openTest(t, path))
}

func TestLifecycle(t *testing.T) {
	storetest.RunLifecycle(t, func(t *testing.T) storetest.LifecycleStore { return newTestDB(t) })
}

func TestSharedLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	storetest.RunSharedLifecycle(t, openTest(t, path), openTest(t, path))
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kms.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := kms.User{Name: "alice", TokenHash: "h", Created: now()}
	pk := kms.PrimaryKey{Owner: "alice", Name: "pk", Version: 1, RootVersion: 3, Wrapped: []byte("pk-w"), Created: now()}
	dk := kms.DataKey{Owner: "alice", Primary: "pk", Name: "dk", PrimaryVersion: 1, Wrapped: []byte("dk-w"), Created: now()}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePrimaryKey(ctx, pk); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDataKey(ctx, dk); err != nil {
		t.Fatal(err)
	}
	doc, err := db.PutDoc(ctx, kms.Doc{Kind: "key", ID: "pk", Value: []byte{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := db.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, path)
	if got, err := db.Doc(ctx, "key", "pk"); err != nil || string(got.Value) != string(doc.Value) ||
		got.Revision != 1 || !got.Updated.Equal(doc.Updated) {
		t.Errorf("doc after reopen: got %+v, %v; want %+v", got, err, doc)
	}
	if got, err := db.User(ctx, "alice"); err != nil || got != u {
		t.Errorf("user after reopen: got %+v, %v; want %+v", got, err, u)
	}
	if got, err := db.PrimaryKey(ctx, "alice", "pk", 0); err != nil || string(got.Wrapped) != "pk-w" || got.RootVersion != 3 {
		t.Errorf("primary key after reopen: got %+v, %v", got, err)
	}
	if got, err := db.DataKey(ctx, "alice", "pk", "dk"); err != nil || string(got.Wrapped) != "dk-w" || !got.Created.Equal(dk.Created) {
		t.Errorf("data key after reopen: got %+v, %v", got, err)
	}
}

// TestMigrateFromVersion1 opens a file that only migration 0001 made, with
// a user in it, as a kmsd of that schema left it: Open migrates it, the
// user is still there (enabled), and the lifecycle methods work.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kms.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{schemaVersionDDL, ms[0].sql,
		"INSERT INTO schema_version (version, applied) VALUES (1, 0)",
		"INSERT INTO users (name, token_hash, created) VALUES ('alice', 'h', 1000)",
		"INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created) VALUES ('alice', 'pk', 1, 1, x'01', 1000)",
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db := openTest(t, path)
	var v int
	if err := db.reads.ping.QueryRowContext(ctx).Scan(&v); err != nil || v != len(ms) {
		t.Fatalf("schema version after open: %d, %v; want %d", v, err, len(ms))
	}
	want := kms.User{Name: "alice", TokenHash: "h", Created: time.Unix(1000, 0).UTC()}
	if got, err := db.User(ctx, "alice"); err != nil || got != want {
		t.Fatalf("user from version 1: got %+v, %v; want %+v", got, err, want)
	}
	want.Disabled = true
	if err := db.UpdateUser(ctx, want); err != nil {
		t.Fatal(err)
	}
	if us, err := db.ListUsers(ctx); err != nil || len(us) != 1 || us[0] != want {
		t.Fatalf("users after update: got %+v, %v; want %+v", us, err, want)
	}
	if ks, err := db.ListPrimaryKeys(ctx, "alice"); err != nil || len(ks) != 1 {
		t.Fatalf("primary keys from version 1: got %+v, %v", ks, err)
	}
	if _, err := db.PutDoc(ctx, kms.Doc{Kind: "k", ID: "a", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaTooNewIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	db, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO schema_version (version, applied) VALUES (999, 0)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	_, err = Open(t.Context(), path, nil)
	if !errors.Is(err, errSchemaTooNew) {
		t.Fatalf("open of a newer schema: want errSchemaTooNew, got %v", err)
	}
	if !strings.Contains(err.Error(), "version 999") {
		t.Errorf("error does not name the version: %v", err)
	}
}

func TestMigrationsAreNumberedFromOne(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("migrations: %+v", ms)
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "kms.db")
	db := openTest(t, path)
	if err := db.CreateUser(t.Context(), kms.User{Name: "u", TokenHash: "h", Created: now()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}, {path + "-wal", 0o600}, {path + "-shm", 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestNotADatabaseIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), path, nil)
	if !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("open of a non-database: want ErrUnavailable, got %v", err)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "kms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ctx := t.Context()
	_, readErr := db.User(ctx, "u")
	_, listErr := db.ListUsers(ctx)
	_, docErr := db.Doc(ctx, "k", "i")
	_, putErr := db.PutDoc(ctx, kms.Doc{Kind: "k", ID: "i"})
	for name, err := range map[string]error{
		"ping":    db.Ping(ctx),
		"create":  db.CreateUser(ctx, kms.User{Name: "u", TokenHash: "h"}),
		"read":    readErr,
		"list":    listErr,
		"doc":     docErr,
		"put doc": putErr,
		"destroy": db.DestroyPrimaryKey(ctx, "u", "k"),
	} {
		if !errors.Is(err, kms.ErrUnavailable) {
			t.Errorf("%s after close: want ErrUnavailable, got %v", name, err)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	if err := db.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: now()}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"version 0":      db.CreatePrimaryKey(ctx, kms.PrimaryKey{Owner: "alice", Name: "pk", Version: 0, Wrapped: []byte("w")}),
		"no material":    db.CreatePrimaryKey(ctx, kms.PrimaryKey{Owner: "alice", Name: "pk", Version: 1}),
		"no dk material": db.CreateDataKey(ctx, kms.DataKey{Owner: "alice", Primary: "pk", Name: "dk"}),
	} {
		if !errors.Is(err, kms.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
	}
	if _, err := db.PrimaryKey(ctx, "alice", "pk", -1); !errors.Is(err, kms.ErrInvalid) {
		t.Errorf("negative version: want ErrInvalid, got %v", err)
	}
}

// TestConstraintErrorsHideSQL checks that the driver's message, which names
// tables and columns, does not reach the caller for expected failures.
func TestConstraintErrorsHideSQL(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	u := kms.User{Name: "alice", TokenHash: "h", Created: now()}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	err := db.CreateUser(ctx, u)
	if want := `user "alice": already exists`; err == nil || err.Error() != want {
		t.Errorf("duplicate user: got %v, want %q", err, want)
	}
	err = db.CreateDataKey(ctx, kms.DataKey{Owner: "alice", Primary: "nope", Name: "dk", Wrapped: []byte("w")})
	if err == nil || strings.Contains(err.Error(), "data_keys") || !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("data key under missing primary: got %v", err)
	}
}

// TestPragmas checks the settings that durability and integrity rest on, on
// connections made the way Open makes them.
func TestPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	openTest(t, path)
	for name, extra := range map[string]string{"writer": "_txlock=immediate", "reader": "_pragma=query_only(1)"} {
		pool := openPool(path, 1, extra)
		defer pool.Close()
		want := map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000"}
		if name == "reader" {
			want["query_only"] = "1"
		}
		for pragma, w := range want {
			var got string
			if err := pool.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Errorf("%s: %s = %s, want %s", name, pragma, got, w)
			}
		}
	}
}
