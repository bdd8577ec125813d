package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema migrations, named NNNN_what.sql. Version N is
// the file with prefix N; versions start at 1 and have no gaps. Never edit a
// migration that has shipped: add the next one.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names { // fs.Glob returns sorted names
		base := path.Base(name)
		prefix, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want version %d in the name", base, len(ms)+1)
		}
		b, err := migrationFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	return ms, nil
}

// schemaVersionDDL creates the table that records applied migrations. Its
// shape is fixed forever: every build, old or new, must be able to read the
// version from it.
const schemaVersionDDL = `CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER NOT NULL PRIMARY KEY,
	applied INTEGER NOT NULL
) STRICT`

// migrate applies, in one transaction, the migrations that the database on
// conn lacks. Several processes may race here: conn begins transactions with
// BEGIN IMMEDIATE, so the first takes the write lock and the others wait and
// then find nothing to do. A database newer than this build is refused with
// an error wrapping errSchemaTooNew.
func migrate(ctx context.Context, conn *sql.Conn, logger *slog.Logger) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, schemaVersionDDL); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&current); err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("%w: the database is at schema version %d, this build knows versions up to %d; run a newer kmsd or restore a backup",
			errSchemaTooNew, current, latest)
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
			m.version, time.Now().Unix()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if current < latest {
		logger.Info("sqlite schema migrated", "from", current, "to", latest)
	}
	return nil
}
