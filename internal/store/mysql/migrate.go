package mysql

import (
	"bufio"
	"context"
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

// migration is one embedded migrations/NNNN_name.sql file, split into
// statements.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations holds the embedded migrations, versions 1, 2, … in order.
var migrations = mustLoadMigrations(migrationFiles)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic("mysql: embedded migrations: " + err.Error())
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
		ms = append(ms, migration{version: v, name: base, stmts: splitStatements(string(data))})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// splitStatements splits a migration into statements: each ends with ';'
// at the end of a line, and lines starting with "--" are comments. The
// driver runs one statement per call (multiStatements stays off).
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(line, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	version INT         NOT NULL,
	applied DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (version)
) ENGINE = InnoDB`

// migrate brings the schema up to the newest embedded migration. Replicas
// may run it at the same time: every statement is idempotent, and the
// version row of a file is inserted only after all its statements ran, so
// a migration that stopped half-way runs again from its start.
func (s *DB) migrate(ctx context.Context) error {
	latest := migrations[len(migrations)-1].version
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > latest {
		return fmt.Errorf("database schema version %d is newer than this kmsd supports (%d): upgrade kmsd", v, latest)
	}
	if v == latest {
		return nil
	}
	if err := s.execDDL(ctx, createVersionTable); err != nil {
		return err
	}
	for _, m := range migrations[v:] {
		for _, st := range m.stmts {
			if err := s.execDDL(ctx, st); err != nil && !alreadyApplied(err) {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		err := s.execDDL(ctx, `INSERT INTO schema_version (version) VALUES (?)
			ON DUPLICATE KEY UPDATE version = version`, m.version)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		s.log.Info("applied schema migration", "store", "mysql", "version", m.version, "name", m.name)
	}
	return nil
}

// alreadyApplied reports whether a migration statement failed because
// what it adds is there: a run of the same migration that stopped half-way,
// or another replica's run, added it. It stands in for the IF NOT EXISTS
// that MySQL lacks on ALTER TABLE ... ADD COLUMN and ADD INDEX.
func alreadyApplied(err error) bool {
	n := errNumber(err)
	return n == erDupFieldName || n == erDupKeyName
}

// schemaVersion returns the newest applied migration, 0 for an empty
// database. It only reads, so a replica whose schema is current needs no
// DDL privilege.
func (s *DB) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	if errNumber(err) == erNoSuchTable {
		return 0, nil
	}
	return v, err
}

// execDDL runs one migration statement, again if a concurrent migration
// made it fail with a deadlock.
func (s *DB) execDDL(ctx context.Context, stmt string, args ...any) error {
	return retry(ctx, isRetryableWrite, func() error {
		_, err := s.db.ExecContext(ctx, stmt, args...)
		return err
	})
}

// serverVars reads the server variables that Open checks (session values,
// so DSN parameters such as wait_timeout=… count). Missing variables (no
// Galera) are absent from the map.
func (s *DB) serverVars(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SHOW VARIABLES WHERE Variable_name IN
		('version', 'wait_timeout', 'innodb_flush_log_at_trx_commit', 'wsrep_on', 'wsrep_sync_wait')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		vars[strings.ToLower(k)] = v
	}
	return vars, rows.Err()
}

// checkServerVersion accepts MySQL 8.0 or newer (and servers that claim to
// be, such as TiDB) and MariaDB 10.5 or newer. Older releases are out of
// upstream support, and the store's DDL and error numbers are not checked
// against them.
func checkServerVersion(v string) error {
	maria := strings.Contains(v, "MariaDB")
	// MariaDB behind some proxies, and before 11.0 in the handshake, reports
	// "5.5.5-10.x.y-MariaDB".
	num := strings.TrimPrefix(v, "5.5.5-")
	if !maria {
		num = v
	}
	var major, minor int
	if _, err := fmt.Sscanf(num, "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("cannot parse server version %q", v)
	}
	if maria && (major < 10 || major == 10 && minor < 5) {
		return fmt.Errorf("server version %s is too old: the store needs MariaDB 10.5 or newer", v)
	}
	if !maria && major < 8 {
		return fmt.Errorf("server version %s is too old: the store needs MySQL 8.0 or newer", v)
	}
	return nil
}

// idleTime returns the pool's idle timeout: want, or half the server's
// wait_timeout if that is shorter, so that the pool closes an idle
// connection before the server does.
func (s *DB) idleTime(want time.Duration, vars map[string]string) time.Duration {
	secs, err := strconv.Atoi(vars["wait_timeout"])
	if err != nil || secs <= 0 {
		return want
	}
	if half := time.Duration(secs) * time.Second / 2; half < want {
		s.log.Info("connection idle time lowered below the server's wait_timeout", "store", "mysql",
			"wait_timeout", time.Duration(secs)*time.Second, "idle_time", half)
		return half
	}
	return want
}

// warnDurability logs server settings under which an acknowledged create
// could be lost or not yet visible on another node.
func (s *DB) warnDurability(vars map[string]string) {
	if v, ok := vars["innodb_flush_log_at_trx_commit"]; ok && v != "1" {
		s.log.Warn("innodb_flush_log_at_trx_commit is not 1: a crash of the database server can lose acknowledged keys",
			"store", "mysql", "innodb_flush_log_at_trx_commit", v)
	}
	if strings.EqualFold(vars["wsrep_on"], "ON") && vars["wsrep_sync_wait"] == "0" {
		s.log.Warn("Galera without wsrep_sync_wait: a replica may not yet see a key created through another node; add wsrep_sync_wait=1 to the DSN",
			"store", "mysql")
	}
}
