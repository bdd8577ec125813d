// Package sqlite is the default, embedded [kms.Store]: one SQLite file,
// opened with the pure-Go driver modernc.org/sqlite (no cgo).
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: when a write (a
// Create, an update, a delete) returns nil, it has been fsynced to the
// write-ahead log and survives a crash of the process or a power loss. Files
// are created with mode 0600.
//
// One outcome cannot be known: if the fsync of a commit itself fails, its
// writes return an error wrapping kms.ErrUnavailable, yet the commit record
// may have reached the disk and reappear when the file is next opened. Treat
// ErrUnavailable from a write as "outcome unknown": a retried Create may find
// the row and fail with kms.ErrExists, a retried compare-and-swap with
// kms.ErrConflict.
//
// # Concurrency
//
// Reads go to a pool of connections and run in parallel with each other and
// with the writer (WAL readers never block). All writes in this process go
// through one connection owned by one goroutine, which commits them in
// groups: concurrent writes share one transaction, and so one fsync, while
// each write (an insert, an update, a compare-and-swap, a destroy of many
// rows) runs in its own savepoint so that a duplicate or a failed
// compare-and-swap fails only its own caller. Several processes on one host may share a file; SQLite's
// locks (waited for up to busy_timeout) order their writers. WAL needs
// shared memory, so the file must not be shared over a network file system.
//
// # Schema
//
// Migrations are SQL files embedded in the binary and applied by [Open] in
// one transaction; the table schema_version records them. A database whose
// schema is newer than this build knows is refused rather than guessed at.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/ppmlkms/kms/internal/kms"
)

var (
	_ kms.Store     = (*DB)(nil)
	_ kms.Lifecycle = (*DB)(nil)
)

// busyTimeout bounds how long a statement waits for a lock held by another
// process before failing with an error wrapping kms.ErrUnavailable.
const busyTimeout = 5 * time.Second

// DB is a [kms.Store] backed by one SQLite file. It is safe for concurrent
// use by many goroutines. Create it with [Open] and release it with
// [DB.Close].
type DB struct {
	path   string
	logger *slog.Logger
	rdb    *sql.DB // read pool
	wdb    *sql.DB // exactly one connection, owned by w
	w      *writer
	reads  readStmts
	closed atomic.Bool
}

// Stats counts the work of the group-commit writer since [Open].
type Stats struct {
	// Commits is the number of write transactions committed, one fsync each.
	Commits uint64
	// Rows is the number of write operations those transactions applied
	// (a create inserts one row; a destroy may delete many).
	Rows uint64
}

// Open opens the SQLite database at path, creating the file (mode 0600) and
// its parent directory (mode 0700) if they do not exist, and migrates its
// schema to the newest version this build knows. logger may be nil.
//
// Open fails if the schema is newer than this build knows, and with an error
// wrapping kms.ErrUnavailable if the file cannot be opened or is not a
// database.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	if err := createFile(abs, logger); err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	db := &DB{path: abs, logger: logger}
	if err := db.open(ctx); err != nil {
		db.closeAll()
		return nil, fmt.Errorf("open sqlite database %q: %w", path, translate(err))
	}
	return db, nil
}

func (db *DB) open(ctx context.Context) error {
	db.wdb = openPool(db.path, 1, "_txlock=immediate")
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	if err := setWAL(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	if err := migrate(ctx, conn, db.logger); err != nil {
		conn.Close()
		return err
	}
	if db.w, err = newWriter(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	db.rdb = openPool(db.path, max(4, 2*runtime.GOMAXPROCS(0)), "_pragma=query_only(1)")
	return db.reads.prepare(ctx, db.rdb)
}

// openPool returns a pool of at most n connections to the file at path. Every
// connection waits for locks, checks foreign keys and syncs fully: readers
// may run checkpoints too, and a checkpoint must fsync like a commit.
func openPool(path string, n int, extra string) *sql.DB {
	u := url.URL{Scheme: "file", Path: path}
	dsn := u.String() + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_pragma=journal_size_limit(67108864)&" + extra
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		// sql.Open fails only for an unknown driver, and the import above
		// registers it.
		panic(err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n) // keep connections, and their prepared statements
	db.SetConnMaxLifetime(0)
	return db
}

// setWAL switches the file to WAL mode. The mode is stored in the file, so
// this is a no-op after the first Open; it cannot run inside a transaction.
func setWAL(ctx context.Context, conn *sql.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("cannot enable WAL journal mode (got %q)", mode)
	}
	return nil
}

// createFile creates path with mode 0600 and its directory with mode 0700.
// SQLite would create the file 0644 (less the umask), and it gives the -wal
// and -shm files the mode of the database file, so creating the file first
// keeps all three private. A new file's directory entry is fsynced so that
// the file itself survives a power loss.
func createFile(path string, logger *slog.Logger) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("sqlite database file is accessible to other users", "path", path, "mode", fi.Mode().Perm().String())
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Ping runs a cheap query on the read pool. It returns an error wrapping
// kms.ErrUnavailable if the database cannot be read or the DB is closed.
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return errClosed
	}
	var v int
	if err := db.reads.ping.QueryRowContext(ctx).Scan(&v); err != nil {
		return fmt.Errorf("ping sqlite database: %w", translate(err))
	}
	return nil
}

// Stats returns counters of the group-commit writer. It is safe to call at
// any time, also after Close.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.w.commits.Load(), Rows: db.w.rows.Load()}
}

// Close waits for queued writes to finish, then closes the database. Calls
// after the first return nil. Methods called after Close fail with an error
// wrapping kms.ErrUnavailable.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	return db.closeAll()
}

// closeAll closes whatever Open managed to open. The readers close first so
// that the writer's connection is the last one and checkpoints the WAL.
func (db *DB) closeAll() error {
	var errs []error
	if db.rdb != nil {
		errs = append(errs, db.reads.close(), db.rdb.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.close())
	}
	if db.wdb != nil {
		errs = append(errs, db.wdb.Close())
	}
	return errors.Join(errs...)
}
