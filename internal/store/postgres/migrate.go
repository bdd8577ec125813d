package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded migrations/NNNN_name.sql file. PostgreSQL runs
// it whole (several statements in one simple-protocol call) inside the
// migration transaction. Statements of the store name their columns, so
// the statements that pgx cached on other replicas' connections survive a
// migration that adds columns.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations holds the embedded migrations, versions 1, 2, … in order.
var migrations = mustLoadMigrations(migrationFiles)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic("postgres: embedded migrations: " + err.Error())
	}
	return ms
}

// loadMigrations reads migrations/NNNN_name.sql (fs.Glob sorts them) and
// checks that their versions run 1, 2, … without a gap.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for i, p := range names {
		base := strings.TrimSuffix(path.Base(p), ".sql")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("%s: want version %d", p, i+1)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(data)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

const (
	// lockMigrations serializes migrations of one schema until the end of
	// the transaction. The key is derived from the schema, so stores in
	// different schemas of one database do not wait for each other.
	lockMigrations = `SELECT pg_advisory_xact_lock(hashtextextended('kms.migrate.' || coalesce(current_schema(), ''), 0))`

	createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
		version integer     PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now()
	)`
)

// migrate brings the schema up to the newest embedded migration, in one
// transaction under a transaction-scoped advisory lock: replicas starting
// at once wait for the first, then find nothing left to do. Nothing is
// held after the transaction ends.
func (s *DB) migrate(ctx context.Context) error {
	latest := migrations[len(migrations)-1].version
	v, err := schemaVersion(ctx, s.db)
	if err != nil || v == latest {
		return err
	}
	if v > latest {
		return tooNew(v, latest)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{lockMigrations, createVersionTable} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// Read again under the lock: another replica may have migrated.
	if v, err = schemaVersion(ctx, tx); err != nil {
		return err
	}
	if v > latest {
		return tooNew(v, latest)
	}
	for _, m := range migrations[v:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, m := range migrations[v:] {
		s.log.Info("applied schema migration", "store", "postgres", "version", m.version, "name", m.name)
	}
	return nil
}

func tooNew(v, latest int) error {
	return fmt.Errorf("database schema version %d is newer than this kmsd supports (%d): upgrade kmsd", v, latest)
}

// schemaVersion returns the newest applied migration, 0 for an empty
// schema. It only reads, so a replica whose schema is current needs no DDL
// privilege.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var exists bool
	err := q.QueryRowContext(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists)
	if err != nil || !exists {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// serverSettings reads the settings that Open checks (session values, so
// DSN parameters count).
func (s *DB) serverSettings(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT name, setting FROM pg_settings WHERE name IN
		('server_version', 'server_version_num', 'synchronous_commit', 'fsync', 'idle_session_timeout')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	settings := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		settings[k] = v
	}
	return settings, rows.Err()
}

// checkServerVersion accepts PostgreSQL 12 or newer; older releases are out
// of upstream support (and lack hashtextextended for the migration lock).
func checkServerVersion(settings map[string]string) error {
	num, err := strconv.Atoi(settings["server_version_num"])
	if err != nil {
		return fmt.Errorf("cannot parse server version %q", settings["server_version_num"])
	}
	if num < 120000 {
		return fmt.Errorf("server version %s is too old: the store needs PostgreSQL 12 or newer", settings["server_version"])
	}
	return nil
}

// idleTime returns the pool's idle timeout: want, or half the server's
// idle_session_timeout (PostgreSQL 14 or newer, in milliseconds) if that is
// set and shorter, so that the pool closes an idle connection first.
func (s *DB) idleTime(want time.Duration, settings map[string]string) time.Duration {
	ms, err := strconv.Atoi(settings["idle_session_timeout"])
	if err != nil || ms <= 0 {
		return want
	}
	if half := time.Duration(ms) * time.Millisecond / 2; half < want {
		s.log.Info("connection idle time lowered below the server's idle_session_timeout", "store", "postgres",
			"idle_session_timeout", time.Duration(ms)*time.Millisecond, "idle_time", half)
		return half
	}
	return want
}

// warnDurability logs server settings under which an acknowledged create
// could be lost in a crash.
func (s *DB) warnDurability(settings map[string]string) {
	for _, name := range []string{"synchronous_commit", "fsync"} {
		if settings[name] == "off" {
			s.log.Warn(name+" is off: a crash of the database server can lose acknowledged keys", "store", "postgres")
		}
	}
}
