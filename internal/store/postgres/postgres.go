// Package postgres is a [kms.Store] on PostgreSQL 12 or newer, so that
// several kmsd replicas can share one database and any replica can answer
// any request. It uses github.com/jackc/pgx/v5 under database/sql's pool.
//
// # Schema and migrations
//
// Open applies the embedded migrations (migrations/*.sql) and records each
// in a schema_version table. Several replicas may start at once: the
// migrations run in one transaction that first takes a transaction-scoped
// advisory lock (pg_advisory_xact_lock, keyed by the schema), so one replica
// migrates while the others wait, then find the schema current. The lock
// ends with the transaction; there is no session-level lock and no
// leadership held for the process lifetime. A replica whose schema is
// current only reads schema_version, so it needs no DDL privilege. Open
// fails with a clear error if the database's schema is newer than this code,
// or if the server is older than PostgreSQL 12.
//
// The tables (users, primary_keys, data_keys, docs, schema_version) are
// created in the first schema of the search_path; select a schema of the
// store's own with the DSN parameter search_path.
//
// # Concurrency
//
// Every create is a single INSERT statement, atomic without an explicit
// transaction. Uniqueness comes from primary keys, so of several replicas
// creating one name exactly one succeeds and the others get an error
// wrapping [kms.ErrExists]. A primary key's owner is checked by a foreign
// key; a data key's primary key (any version) is checked by the INSERT
// itself, which locks the primary key row (FOR KEY SHARE, as a foreign key
// would) so that a concurrent delete cannot leave a data key behind;
// DestroyPrimaryKey deletes the versions and then the data keys in one
// transaction. Compare-and-swaps (RewrapPrimaryKey, PutDoc of an existing
// doc, DeleteDoc) are single UPDATE or DELETE statements that name the
// expected root version or revision: the row lock lets exactly one of
// several concurrent writers match the row. When none matched, a second
// statement looks the row up to tell [kms.ErrConflict] (another value) from
// [kms.ErrNotFound] (no row). The store keeps no cache: a replica sees
// other replicas' writes as soon as they commit. Names and doc ids use the
// "C" collation and compare byte for byte.
//
// # Faults
//
// Driver errors are translated by SQLSTATE, never by message text: 23505
// wraps [kms.ErrExists], 23503 wraps [kms.ErrNotFound]. Connection failures,
// timeouts and server states such as shutdown, too many connections or a
// read-only standby wrap [kms.ErrUnavailable], so that callers answer 503 at
// once. Every call is bounded by [Options.QueryTimeout]. Before reusing a
// pooled connection the store checks, without a round trip, whether the
// server closed it (restart, pg_terminate_backend, idle_session_timeout),
// and takes another; so it reconnects by itself when the server returns.
// Reads are retried a few times after a connection error; serialization
// failures and deadlocks (40001, 40P01) are retried for writes too.
//
// # Durability
//
// A create returns after COMMIT, which PostgreSQL makes durable with its
// default synchronous_commit=on (and fsync=on). Open logs a warning if
// either is off. With synchronous replication (Patroni and the like), set
// synchronous_commit as the cluster requires; the store does not override it.
//
// # Poolers
//
// pgx caches prepared statements per connection. Behind PgBouncer in
// transaction mode before 1.21, add default_query_exec_mode=exec to the DSN.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

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
	// idle_session_timeout if that is set and shorter.
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

// DB is a [kms.Store] on a PostgreSQL database. It is safe for concurrent
// use by many goroutines, and several processes may share one database.
type DB struct {
	db      *sql.DB
	log     *slog.Logger
	timeout time.Duration
}

// Open connects to the database named by dsn (a URL such as
// "postgres://kms:secret@db:5432/kms?sslmode=verify-full&search_path=kms",
// or keyword/value pairs), checks the server version, and applies pending
// migrations. It honours ctx; give it a deadline. It sets application_name
// to "kmsd" unless the DSN sets it.
//
// Errors never contain the password. An unreachable server gives an error
// wrapping [kms.ErrUnavailable]; a server that is too old, or a schema newer
// than this code, gives an error saying so. A nil logger discards.
func Open(ctx context.Context, dsn string, opts Options, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// %v: the parse error keeps the whole DSN in a field.
		return nil, fmt.Errorf("postgres: %v", redact(err.Error(), dsn))
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "kmsd"
	}
	where := fmt.Sprintf("database %q at %s:%d as user %q", cfg.Database, cfg.Host, cfg.Port, cfg.User)
	opts = opts.withDefaults()
	s := &DB{db: sql.OpenDB(stdlib.GetConnector(*cfg)), log: logger, timeout: opts.QueryTimeout}
	s.db.SetMaxOpenConns(opts.MaxOpenConns)
	s.db.SetMaxIdleConns(opts.MaxIdleConns)
	s.db.SetConnMaxLifetime(opts.ConnMaxLifetime)
	if err := s.start(ctx, opts); err != nil {
		s.Close()
		// pgx's connection errors name the user and database, never the
		// password; only its parse errors hold the DSN.
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	return s, nil
}

// start checks the server and migrates; Open closes s if it fails.
func (s *DB) start(ctx context.Context, opts Options) error {
	settings, err := s.serverSettings(ctx)
	if err != nil {
		return fmt.Errorf("cannot connect: %w", unavailable(err))
	}
	if err := checkServerVersion(settings); err != nil {
		return err
	}
	s.db.SetConnMaxIdleTime(s.idleTime(opts.ConnMaxIdleTime, settings))
	s.warnDurability(settings)
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", unavailable(err))
	}
	return nil
}

// Ping reports whether the server answers within the query timeout. It
// returns an error wrapping [kms.ErrUnavailable] if not.
func (s *DB) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", unavailable(err))
	}
	return nil
}

// Close closes the connection pool. Calls in progress finish first; later
// calls fail.
func (s *DB) Close() error {
	return s.db.Close()
}

// withTimeout applies the per-call timeout to ctx.
func (s *DB) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}
