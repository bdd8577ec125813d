// Package mysql is a [kms.Store] on MySQL (8.0 or newer) or MariaDB (10.5
// or newer), so that several kmsd replicas can share one database and any
// replica can answer any request. It uses github.com/go-sql-driver/mysql
// through database/sql.
//
// # Schema and migrations
//
// Open applies the embedded migrations (migrations/*.sql) and records each
// in a schema_version table. Several replicas may start at once: MySQL
// commits every DDL statement on its own, so instead of a lock the
// migrations are idempotent (CREATE TABLE IF NOT EXISTS, and the version row
// is inserted with ON DUPLICATE KEY UPDATE once a file has run). Racing
// replicas run the same statements and all succeed. There is no GET_LOCK
// leadership, neither during migration nor afterwards: the lock that Vault's
// MySQL HA backend holds for the process lifetime flaps with wait_timeout
// and does not replicate on Galera. A replica whose schema is current only
// reads schema_version, so it needs no DDL privilege. Open fails with a
// clear error if the database's schema is newer than this code, or if the
// server is older than MySQL 8.0 or MariaDB 10.5.
//
// MySQL has no IF NOT EXISTS for ALTER TABLE ... ADD COLUMN, so the
// migrations count error 1060 (duplicate column) and 1061 (duplicate key
// name) as "already applied".
//
// Use a database of its own for the store: the tables are called users,
// primary_keys, data_keys, docs and schema_version.
//
// # Concurrency
//
// Every create is a single INSERT statement, so it is atomic without an
// explicit transaction. Uniqueness comes from primary keys, so of several
// replicas creating one name exactly one succeeds and the others get an error
// wrapping [kms.ErrExists]. A primary key's owner is checked by a foreign key;
// a data key's primary key (any version) is checked by the INSERT ... SELECT
// itself, which takes a shared lock on the primary key row so that a
// concurrent delete cannot leave a data key behind; DestroyPrimaryKey
// deletes the versions and then the data keys in one transaction.
//
// Compare-and-swaps (RewrapPrimaryKey, PutDoc of an existing doc, DeleteDoc)
// are single UPDATE or DELETE statements that name the expected root
// version or revision: the row lock lets exactly one of several concurrent
// writers match the row. When none matched, a second statement looks the
// row up to tell [kms.ErrConflict] (another value) from [kms.ErrNotFound]
// (no row). Open sets clientFoundRows, so that an UPDATE counts the rows it
// matched, not only those whose values changed. The store keeps no cache:
// every read goes to the database, so a replica sees other replicas' writes
// as soon as they commit.
//
// Names are VARBINARY and compare byte for byte. Open sets sql_mode to
// TRADITIONAL (unless the DSN sets sql_mode), so the server rejects values
// that would otherwise be truncated.
//
// # Faults
//
// Driver errors are translated by error number, never by message text:
// 1062 (duplicate entry) wraps [kms.ErrExists], 1452 (no referenced row)
// wraps [kms.ErrNotFound]. Connection failures, timeouts, a server that is
// shutting down, read-only or out of connections wrap [kms.ErrUnavailable],
// so that callers answer 503 at once. Every call is bounded by
// [Options.QueryTimeout]. The pool closes connections before the server's
// wait_timeout does ([Options.ConnMaxIdleTime] is lowered below it), and the
// driver checks a pooled connection for a server-side close before reusing
// it, so the store reconnects by itself after wait_timeout, KILL or a server
// restart. Reads are retried a few times after a connection error.
//
// # Durability
//
// A create returns after COMMIT, which InnoDB makes durable with its default
// innodb_flush_log_at_trx_commit=1 (and sync_binlog=1 when the binary log
// is on). Open logs a warning if innodb_flush_log_at_trx_commit is not 1.
//
// # Galera and group replication
//
// On Galera (MariaDB Galera Cluster, Percona XtraDB Cluster) and MySQL group
// replication, writes on different nodes are certified at commit; the loser
// of a conflict gets error 1213 (deadlock; 3101 on group replication) and its
// transaction is rolled back. The store retries such a create a bounded
// number of times (3 attempts in all); if the conflict was with a create of
// the same name, the retry fails with [kms.ErrExists], so exactly one writer
// still wins. If all attempts conflict, the error wraps [kms.ErrUnavailable].
// Galera does not replicate locks and certifies only the rows written (and
// foreign key parents): the shared lock that a data key insert takes on its
// primary key row holds on its own node only, so a data key created on one
// node while its primary key is destroyed through another can outlive it
// (see [DB.DestroyPrimaryKey]). Callers keep creates away by making a key
// unusable (scheduled deletion) well before they destroy it.
// Compare-and-swaps are safe: both writers change the same row, so
// certification aborts one, which then matches no row when it is run again.
// Reads on one node may lag writes made through another: add
// wsrep_sync_wait=1 to the DSN (the driver sets it as a session variable) so
// that a read waits for the node to catch up; Open logs a warning when wsrep
// is on and wsrep_sync_wait is 0. A node that is not part of the primary
// component answers 1047, and a read-only group replication secondary 1290;
// both wrap [kms.ErrUnavailable].
// Galera clusters often run innodb_flush_log_at_trx_commit=2 and rely on
// replication to other nodes for durability.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ppmlkms/kms/internal/kms"
)

var (
	_ kms.Store     = (*DB)(nil)
	_ kms.Lifecycle = (*DB)(nil)
)

// Defaults for the zero fields of [Options].
const (
	DefaultMaxOpenConns    = 32
	DefaultConnMaxLifetime = 5 * time.Minute
	DefaultConnMaxIdleTime = time.Minute
	DefaultQueryTimeout    = 5 * time.Second
)

// Options sets the connection pool limits and timeouts. The zero value of a
// field selects its default.
type Options struct {
	// MaxOpenConns caps the connections to the server (default
	// DefaultMaxOpenConns). Size it so that replicas × MaxOpenConns stays
	// below the server's max_connections.
	MaxOpenConns int
	// MaxIdleConns caps the idle connections kept for reuse (default
	// MaxOpenConns, so that a busy pool does not reconnect all the time).
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this, which spreads
	// them over servers behind a load balancer (default
	// DefaultConnMaxLifetime).
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for longer than this (default
	// DefaultConnMaxIdleTime). Open lowers it to half the server's
	// wait_timeout if that is shorter, so that the pool, not the server,
	// closes idle connections.
	ConnMaxIdleTime time.Duration
	// QueryTimeout bounds each call of a [DB] method, connecting and retries
	// included (default DefaultQueryTimeout). A negative value means no
	// bound other than the caller's context.
	QueryTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
	}
	if o.MaxIdleConns <= 0 || o.MaxIdleConns > o.MaxOpenConns {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = DefaultConnMaxIdleTime
	}
	if o.QueryTimeout == 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	return o
}

// DB is a [kms.Store] on a MySQL or MariaDB database. It is safe for
// concurrent use by many goroutines, and several processes may share one
// database.
type DB struct {
	db      *sql.DB
	log     *slog.Logger
	timeout time.Duration
	stmts   map[string]*sql.Stmt
}

// Open connects to the database named by dsn (the go-sql-driver format,
// e.g. "kms:secret@tcp(db:3306)/kms"), checks the server version, applies
// pending migrations and prepares the store's statements. It honours ctx;
// give it a deadline. Open forces parseTime=true, loc=UTC and
// clientFoundRows=true, and sets sql_mode to TRADITIONAL unless the DSN sets
// it.
//
// Errors never contain the password. An unreachable server gives an error
// wrapping [kms.ErrUnavailable]; a server that is too old, or a schema newer
// than this code, gives an error saying so. A nil logger discards.
func Open(ctx context.Context, dsn string, opts Options, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// ParseDSN's messages name the problem, not the DSN.
		return nil, fmt.Errorf("mysql: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// An UPDATE reports the rows it matched, not only those it changed, so
	// that an update to the same values is told apart from a missing row.
	cfg.ClientFoundRows = true
	cfg.Logger = driverLogger{logger}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["sql_mode"]; !ok {
		cfg.Params["sql_mode"] = "'TRADITIONAL'"
	}
	where := fmt.Sprintf("database %q at %s(%s) as user %q", cfg.DBName, cfg.Net, cfg.Addr, cfg.User)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %s: %w", where, err)
	}
	opts = opts.withDefaults()
	s := &DB{db: sql.OpenDB(connector), log: logger, timeout: opts.QueryTimeout}
	s.db.SetMaxOpenConns(opts.MaxOpenConns)
	s.db.SetMaxIdleConns(opts.MaxIdleConns)
	s.db.SetConnMaxLifetime(opts.ConnMaxLifetime)
	if err := s.start(ctx, opts, where); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start checks the server, migrates and prepares; Open closes s if it fails.
func (s *DB) start(ctx context.Context, opts Options, where string) error {
	vars, err := s.serverVars(ctx)
	if err != nil {
		return fmt.Errorf("mysql: cannot use %s: %w", where, unavailable(err))
	}
	if err := checkServerVersion(vars["version"]); err != nil {
		return fmt.Errorf("mysql: %s: %w", where, err)
	}
	s.db.SetConnMaxIdleTime(s.idleTime(opts.ConnMaxIdleTime, vars))
	s.warnDurability(vars)
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("mysql: migrate %s: %w", where, unavailable(err))
	}
	if err := s.prepare(ctx); err != nil {
		return fmt.Errorf("mysql: prepare statements on %s: %w", where, unavailable(err))
	}
	return nil
}

// prepare prepares every statement of the store once; database/sql
// re-prepares them on new connections, so a call costs one round trip.
func (s *DB) prepare(ctx context.Context) error {
	s.stmts = make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		s.stmts[q] = st
	}
	return nil
}

// Ping reports whether the server answers within the query timeout. It
// returns an error wrapping [kms.ErrUnavailable] if not.
func (s *DB) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("mysql: ping: %w", unavailable(err))
	}
	return nil
}

// Close closes the prepared statements and the connection pool. Calls in
// progress finish first; later calls fail.
func (s *DB) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	return s.db.Close()
}

// driverLogger sends the driver's messages (such as "closing bad idle
// connection") to the store's logger at debug level, instead of stderr.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Debug(fmt.Sprint(v...), "store", "mysql")
}

// withTimeout applies the per-call timeout to ctx.
func (s *DB) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}
