package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// The store's statements, prepared by Open.
const (
	qCreateUser = `INSERT INTO users (name, token_hash, disabled, created) VALUES (?, ?, ?, ?)`
	qUser       = `SELECT token_hash, disabled, created FROM users WHERE name = ?`

	qCreatePrimaryKey = `INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created)
		VALUES (?, ?, ?, ?, ?, ?)`
	qPrimaryKey = `SELECT version, root_version, wrapped, created FROM primary_keys
		WHERE owner = ? AND name = ? AND version = ?`
	qLatestPrimaryKey = `SELECT version, root_version, wrapped, created FROM primary_keys
		WHERE owner = ? AND name = ? ORDER BY version DESC LIMIT 1`

	// qCreateDataKey inserts nothing when the primary key (any version) is
	// missing, and share-locks the primary key row it finds so that it
	// cannot be deleted before the insert commits.
	qCreateDataKey = `INSERT INTO data_keys (owner, primary_name, name, primary_version, wrapped, created)
		SELECT ?, ?, ?, ?, ?, ? FROM primary_keys WHERE owner = ? AND name = ?
		LIMIT 1 LOCK IN SHARE MODE`
	qDataKey = `SELECT primary_version, wrapped, created FROM data_keys
		WHERE owner = ? AND primary_name = ? AND name = ?`
)

var queries = append([]string{qCreateUser, qUser, qCreatePrimaryKey, qPrimaryKey, qLatestPrimaryKey, qCreateDataKey, qDataKey},
	lifecycleQueries...)

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
	return u, nil
}

// CreatePrimaryKey stores version k.Version of a primary key. It returns an
// error wrapping [kms.ErrExists] if that version exists and
// [kms.ErrNotFound] if the owner does not exist.
func (s *DB) CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) error {
	_, err := s.exec(ctx, qCreatePrimaryKey, k.Owner, k.Name, k.Version, k.RootVersion, k.Wrapped, dbTime(k.Created))
	if errNumber(err) == erNoReferencedRow {
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
	return k, nil
}

// CreateDataKey stores k. It returns an error wrapping [kms.ErrExists] if
// (owner, primary, name) exists, and [kms.ErrNotFound] if no version of the
// primary key exists (which includes an unknown owner).
func (s *DB) CreateDataKey(ctx context.Context, k kms.DataKey) error {
	n, err := s.exec(ctx, qCreateDataKey, k.Owner, k.Primary, k.Name, k.PrimaryVersion, k.Wrapped, dbTime(k.Created),
		k.Owner, k.Primary)
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
	return k, nil
}

// exec runs a prepared single-statement write and returns the rows it
// affected. A statement that the server rolled back (deadlock, Galera
// certification conflict) is run again, a bounded number of times.
func (s *DB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var n int64
	err := retry(ctx, isRetryableWrite, func() error {
		res, err := s.stmts[q].ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// queryRow runs a prepared query and scans its single row into dest.
// Reads are idempotent, so they are also retried after a connection error.
func (s *DB) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return retry(ctx, isRetryableRead, func() error {
		return s.stmts[q].QueryRowContext(ctx, args...).Scan(dest...)
	})
}

// dbTime converts t to what a DATETIME(6) column holds: UTC, microseconds.
// The driver writes times in UTC (Open sets loc=UTC) and reads them back so.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
