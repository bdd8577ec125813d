package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// The store's statements. pgx prepares each once per connection.
const (
	qCreateUser = `INSERT INTO users (name, token_hash, disabled, created) VALUES ($1, $2, $3, $4)`
	qUser       = `SELECT token_hash, disabled, created FROM users WHERE name = $1`

	qCreatePrimaryKey = `INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created)
		VALUES ($1, $2, $3, $4, $5, $6)`
	qPrimaryKey = `SELECT version, root_version, wrapped, created FROM primary_keys
		WHERE owner = $1 AND name = $2 AND version = $3`
	qLatestPrimaryKey = `SELECT version, root_version, wrapped, created FROM primary_keys
		WHERE owner = $1 AND name = $2 ORDER BY version DESC LIMIT 1`

	// qCreateDataKey inserts nothing when the primary key (any version) is
	// missing, and locks the primary key row it finds as a foreign key
	// check would, so that it cannot be deleted before the insert commits.
	qCreateDataKey = `WITH p AS (
			SELECT 1 FROM primary_keys WHERE owner = $1 AND name = $2 LIMIT 1 FOR KEY SHARE
		)
		INSERT INTO data_keys (owner, primary_name, name, primary_version, wrapped, created)
		SELECT $1, $2, $3::varchar, $4::integer, $5::bytea, $6::timestamptz FROM p`
	qDataKey = `SELECT primary_version, wrapped, created FROM data_keys
		WHERE owner = $1 AND primary_name = $2 AND name = $3`
)

// CreateUser stores u. It returns an error wrapping [kms.ErrExists] if a user
// with that name exists, whichever replica created it.
func (s *DB) CreateUser(ctx context.Context, u kms.User) error {
	_, err := s.exec(ctx, qCreateUser, u.Name, u.TokenHash, u.Disabled, dbTime(u.Created))
	if err != nil {
		return wrap(fmt.Sprintf("user %q", u.Name), err)
	}
	return nil
}

// User returns the user with that name, or an error wrapping
// [kms.ErrNotFound].
func (s *DB) User(ctx context.Context, name string) (kms.User, error) {
	u := kms.User{Name: name}
	err := s.queryRow(ctx, qUser, []any{name}, &u.TokenHash, &u.Disabled, &u.Created)
	if err != nil {
		return kms.User{}, wrap(fmt.Sprintf("user %q", name), err)
	}
	u.Created = u.Created.UTC()
	return u, nil
}

// CreatePrimaryKey stores version k.Version of a primary key. It returns an
// error wrapping [kms.ErrExists] if that version exists and
// [kms.ErrNotFound] if the owner does not exist.
func (s *DB) CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) error {
	_, err := s.exec(ctx, qCreatePrimaryKey, k.Owner, k.Name, k.Version, k.RootVersion, k.Wrapped, dbTime(k.Created))
	if sqlState(err) == sqlForeignKeyViolation {
		return fmt.Errorf("primary key %q: user %q: %w", k.Name, k.Owner, kms.ErrNotFound)
	}
	if err != nil {
		return wrap(fmt.Sprintf("primary key %q version %d of user %q", k.Name, k.Version, k.Owner), err)
	}
	return nil
}

// PrimaryKey returns the given version of a user's primary key; version 0
// means the newest. It returns an error wrapping [kms.ErrNotFound] if absent.
func (s *DB) PrimaryKey(ctx context.Context, owner, name string, version int) (kms.PrimaryKey, error) {
	k := kms.PrimaryKey{Owner: owner, Name: name}
	dest := []any{&k.Version, &k.RootVersion, &k.Wrapped, &k.Created}
	var err error
	switch {
	case version == 0:
		err = s.queryRow(ctx, qLatestPrimaryKey, []any{owner, name}, dest...)
	case version > 0:
		err = s.queryRow(ctx, qPrimaryKey, []any{owner, name, version}, dest...)
	default:
		err = sql.ErrNoRows
	}
	if err != nil {
		return kms.PrimaryKey{}, wrap(fmt.Sprintf("primary key %q version %d of user %q", name, version, owner), err)
	}
	k.Created = k.Created.UTC()
	return k, nil
}

// CreateDataKey stores k. It returns an error wrapping [kms.ErrExists] if
// (owner, primary, name) exists, and [kms.ErrNotFound] if no version of the
// primary key exists (which includes an unknown owner).
func (s *DB) CreateDataKey(ctx context.Context, k kms.DataKey) error {
	n, err := s.exec(ctx, qCreateDataKey, k.Owner, k.Primary, k.Name, k.PrimaryVersion, k.Wrapped, dbTime(k.Created))
	if err == nil && n == 0 {
		return fmt.Errorf("data key %q: primary key %q of user %q: %w", k.Name, k.Primary, k.Owner, kms.ErrNotFound)
	}
	if err != nil {
		return wrap(fmt.Sprintf("data key %q of primary key %q of user %q", k.Name, k.Primary, k.Owner), err)
	}
	return nil
}

// DataKey returns a data key, or an error wrapping [kms.ErrNotFound].
func (s *DB) DataKey(ctx context.Context, owner, primary, name string) (kms.DataKey, error) {
	k := kms.DataKey{Owner: owner, Primary: primary, Name: name}
	err := s.queryRow(ctx, qDataKey, []any{owner, primary, name}, &k.PrimaryVersion, &k.Wrapped, &k.Created)
	if err != nil {
		return kms.DataKey{}, wrap(fmt.Sprintf("data key %q of primary key %q of user %q", name, primary, owner), err)
	}
	k.Created = k.Created.UTC()
	return k, nil
}

// exec runs a single-statement write and returns the rows it affected. A
// statement that the server rolled back (serialization failure, deadlock)
// is run again, a bounded number of times.
func (s *DB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var n int64
	err := retry(ctx, isRetryableWrite, func() error {
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// queryRow runs a query and scans its single row into dest. Reads are
// idempotent, so they are also retried after a connection error.
func (s *DB) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return retry(ctx, isRetryableRead, func() error {
		return s.db.QueryRowContext(ctx, q, args...).Scan(dest...)
	})
}

// dbTime converts t to what a timestamptz holds: microseconds. UTC keeps
// the value the same whatever the session's TimeZone.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
