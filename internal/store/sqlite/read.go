package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// readStmts are prepared once on the read pool; database/sql prepares each
// on a connection the first time it runs there and keeps it for the life of
// the connection (the pool keeps its connections idle rather than closing
// them).
type readStmts struct {
	user, primaryNewest, primary, data, ping *sql.Stmt
	// Lifecycle reads, see lifecycle.go.
	users, primaryList, primaryListAll, versions, toRewrap, doc, docsFrom, docsRange *sql.Stmt
}

// newest selects the newest version of each primary key.
const newest = `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys p
	WHERE version = (SELECT max(version) FROM primary_keys q WHERE q.owner = p.owner AND q.name = p.name)`

func (s *readStmts) queries() []struct {
	dst   **sql.Stmt
	query string
} {
	return []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.user, "SELECT token_hash, disabled, created FROM users WHERE name = ?"},
		{&s.primaryNewest, `SELECT version, root_version, wrapped, created FROM primary_keys
			WHERE owner = ? AND name = ? ORDER BY version DESC LIMIT 1`},
		{&s.primary, `SELECT version, root_version, wrapped, created FROM primary_keys
			WHERE owner = ? AND name = ? AND version = ?`},
		{&s.data, `SELECT primary_version, wrapped, created FROM data_keys
			WHERE owner = ? AND primary_name = ? AND name = ?`},
		{&s.ping, "SELECT coalesce(max(version), 0) FROM schema_version"},

		{&s.users, "SELECT name, token_hash, disabled, created FROM users ORDER BY name"},
		{&s.primaryList, newest + " AND owner = ? ORDER BY name"},
		{&s.primaryListAll, newest + " ORDER BY owner, name"},
		{&s.versions, `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys
			WHERE owner = ? AND name = ? ORDER BY version`},
		{&s.toRewrap, `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys
			WHERE root_version <> ? ORDER BY owner, name, version LIMIT ?`},
		{&s.doc, "SELECT kind, id, value, revision, updated FROM docs WHERE kind = ? AND id = ?"},
		{&s.docsFrom, "SELECT kind, id, value, revision, updated FROM docs WHERE kind = ? AND id >= ? ORDER BY id"},
		{&s.docsRange, `SELECT kind, id, value, revision, updated FROM docs
			WHERE kind = ? AND id >= ? AND id < ? ORDER BY id`},
	}
}

func (s *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range s.queries() {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return err
		}
		*p.dst = st
	}
	return nil
}

func (s *readStmts) close() error {
	var errs []error
	for _, p := range s.queries() {
		if *p.dst != nil {
			errs = append(errs, (*p.dst).Close())
		}
	}
	return errors.Join(errs...)
}

// User returns the user with that name. It returns an error wrapping
// kms.ErrNotFound if there is none, and kms.ErrUnavailable if the database
// cannot be read. It is safe for concurrent use.
func (db *DB) User(ctx context.Context, name string) (kms.User, error) {
	if db.closed.Load() {
		return kms.User{}, errClosed
	}
	u := kms.User{Name: name}
	var created int64
	err := db.reads.user.QueryRowContext(ctx, name).Scan(&u.TokenHash, &u.Disabled, &created)
	if err != nil {
		return kms.User{}, readErr(err, "user %q", name)
	}
	u.Created = fromUnix(created)
	return u, nil
}

// PrimaryKey returns the given version of a user's primary key; version 0
// means the newest. It returns an error wrapping kms.ErrNotFound if there is
// no such key or version, kms.ErrInvalid for a negative version, and
// kms.ErrUnavailable if the database cannot be read. It is safe for
// concurrent use.
func (db *DB) PrimaryKey(ctx context.Context, owner, name string, version int) (kms.PrimaryKey, error) {
	if db.closed.Load() {
		return kms.PrimaryKey{}, errClosed
	}
	var row *sql.Row
	switch {
	case version < 0:
		return kms.PrimaryKey{}, fmt.Errorf("primary key %q: %w: negative version %d", name, kms.ErrInvalid, version)
	case version == 0:
		row = db.reads.primaryNewest.QueryRowContext(ctx, owner, name)
	default:
		row = db.reads.primary.QueryRowContext(ctx, owner, name, version)
	}
	k := kms.PrimaryKey{Owner: owner, Name: name}
	var created int64
	if err := row.Scan(&k.Version, &k.RootVersion, &k.Wrapped, &created); err != nil {
		if version == 0 {
			return kms.PrimaryKey{}, readErr(err, "primary key %q of user %q", name, owner)
		}
		return kms.PrimaryKey{}, readErr(err, "version %d of primary key %q of user %q", version, name, owner)
	}
	k.Created = fromUnix(created)
	return k, nil
}

// DataKey returns a data key. It returns an error wrapping kms.ErrNotFound if
// there is none, and kms.ErrUnavailable if the database cannot be read. It is
// safe for concurrent use.
func (db *DB) DataKey(ctx context.Context, owner, primary, name string) (kms.DataKey, error) {
	if db.closed.Load() {
		return kms.DataKey{}, errClosed
	}
	k := kms.DataKey{Owner: owner, Primary: primary, Name: name}
	var created int64
	err := db.reads.data.QueryRowContext(ctx, owner, primary, name).Scan(&k.PrimaryVersion, &k.Wrapped, &created)
	if err != nil {
		return kms.DataKey{}, readErr(err, "data key %q of primary key %q of user %q", name, primary, owner)
	}
	k.Created = fromUnix(created)
	return k, nil
}

// readErr turns sql.ErrNoRows into kms.ErrNotFound and translates the rest;
// what and args name the thing that was read.
func readErr(err error, what string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf(what+": %w", append(args, kms.ErrNotFound)...)
	}
	return fmt.Errorf("read "+what+": %w", append(args, translate(err))...)
}

// Times are stored as unix seconds: that is all the precision the domain
// needs, and unlike nanoseconds it covers every time.Time, including zero.
func toUnix(t time.Time) int64     { return t.Unix() }
func fromUnix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
