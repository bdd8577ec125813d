package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// Limits of a [kms.Doc], from its contract.
const (
	maxDocName  = 128     // bytes of Kind and of ID
	maxDocValue = 1 << 20 // bytes of Value
)

// The lifecycle statements, prepared by Open with the others.
const (
	qUpdateUser = `UPDATE users SET token_hash = ?, disabled = ? WHERE name = ?`
	qListUsers  = `SELECT name, token_hash, disabled, created FROM users ORDER BY name`

	// qNewest selects the newest version of each primary key.
	qNewest = `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys p
		WHERE version = (SELECT MAX(version) FROM primary_keys q WHERE q.owner = p.owner AND q.name = p.name)`
	qListPrimaryKeys    = qNewest + ` AND owner = ? ORDER BY name`
	qListAllPrimaryKeys = qNewest + ` ORDER BY owner, name`
	qPrimaryKeyVersions = `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys
		WHERE owner = ? AND name = ? ORDER BY version`
	qPrimaryKeysToRewrap = `SELECT owner, name, version, root_version, wrapped, created FROM primary_keys
		WHERE root_version <> ? ORDER BY owner, name, version LIMIT ?`
	qRewrap = `UPDATE primary_keys SET wrapped = ?, root_version = ?
		WHERE owner = ? AND name = ? AND version = ? AND root_version = ?`
	qRootVersion       = `SELECT root_version FROM primary_keys WHERE owner = ? AND name = ? AND version = ?`
	qDeletePrimaryKeys = `DELETE FROM primary_keys WHERE owner = ? AND name = ?`
	qDeleteDataKeysOf  = `DELETE FROM data_keys WHERE owner = ? AND primary_name = ?`

	qDoc         = `SELECT kind, id, value, revision, updated FROM docs WHERE kind = ? AND id = ?`
	qDocRevision = `SELECT revision FROM docs WHERE kind = ? AND id = ?`
	qCreateDoc   = `INSERT INTO docs (kind, id, value, revision, updated) VALUES (?, ?, ?, 1, ?)`
	qUpdateDoc   = `UPDATE docs SET value = ?, updated = ?, revision = revision + 1
		WHERE kind = ? AND id = ? AND revision = ?`
	qDeleteDoc = `DELETE FROM docs WHERE kind = ? AND id = ? AND revision = ?`
	qDocsFrom  = `SELECT kind, id, value, revision, updated FROM docs WHERE kind = ? AND id >= ? ORDER BY id`
	qDocsRange = `SELECT kind, id, value, revision, updated FROM docs WHERE kind = ? AND id >= ? AND id < ? ORDER BY id`
)

var lifecycleQueries = []string{qUpdateUser, qListUsers, qListPrimaryKeys, qListAllPrimaryKeys, qPrimaryKeyVersions,
	qPrimaryKeysToRewrap, qRewrap, qRootVersion, qDeletePrimaryKeys, qDeleteDataKeysOf,
	qDoc, qDocRevision, qCreateDoc, qUpdateDoc, qDeleteDoc, qDocsFrom, qDocsRange}

// UpdateUser replaces the token hash and disabled flag of u.Name. It returns
// an error wrapping [kms.ErrNotFound] if there is no such user.
func (s *DB) UpdateUser(ctx context.Context, u kms.User) error {
	n, err := s.exec(ctx, qUpdateUser, u.TokenHash, u.Disabled, u.Name)
	if err == nil && n == 0 { // clientFoundRows: 0 means no such row
		err = kms.ErrNotFound
	}
	return wrapIf(fmt.Sprintf("update user %q", u.Name), err)
}

// ListUsers returns every user, ordered by name (byte order).
func (s *DB) ListUsers(ctx context.Context) ([]kms.User, error) {
	us, err := query(ctx, s, qListUsers, nil, func(rows *sql.Rows) (kms.User, error) {
		var u kms.User
		err := rows.Scan(&u.Name, &u.TokenHash, &u.Disabled, &u.Created)
		return u, err
	})
	return us, wrapIf("list users", err)
}

// ListPrimaryKeys returns the newest version of each primary key of owner,
// ordered by name, or of every owner's keys, ordered by owner and name, if
// owner is "". An owner without keys, or no such owner, gives none and no
// error.
func (s *DB) ListPrimaryKeys(ctx context.Context, owner string) ([]kms.PrimaryKey, error) {
	q, args := qListAllPrimaryKeys, []any(nil)
	if owner != "" {
		q, args = qListPrimaryKeys, []any{owner}
	}
	ks, err := query(ctx, s, q, args, scanPrimaryKey)
	return ks, wrapIf(fmt.Sprintf("list primary keys of user %q", owner), err)
}

// PrimaryKeyVersions returns every version of a primary key, oldest first,
// or an error wrapping [kms.ErrNotFound] if there is none.
func (s *DB) PrimaryKeyVersions(ctx context.Context, owner, name string) ([]kms.PrimaryKey, error) {
	ks, err := query(ctx, s, qPrimaryKeyVersions, []any{owner, name}, scanPrimaryKey)
	if err == nil && len(ks) == 0 {
		err = kms.ErrNotFound
	}
	return ks, wrapIf(fmt.Sprintf("versions of primary key %q of user %q", name, owner), err)
}

// PrimaryKeysToRewrap returns up to limit primary key versions whose root
// version is not rootVersion, ordered by owner, name and version. It returns
// an error wrapping [kms.ErrInvalid] if limit is less than 1.
func (s *DB) PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) ([]kms.PrimaryKey, error) {
	if limit < 1 {
		return nil, fmt.Errorf("primary keys to rewrap: %w: limit %d", kms.ErrInvalid, limit)
	}
	ks, err := query(ctx, s, qPrimaryKeysToRewrap, []any{rootVersion, limit}, scanPrimaryKey)
	return ks, wrapIf("primary keys to rewrap", err)
}

// RewrapPrimaryKey replaces the material and root version of version
// k.Version of a primary key if its root version is still oldRootVersion.
// It returns an error wrapping [kms.ErrConflict] if it is not,
// [kms.ErrNotFound] if there is no such version, and [kms.ErrInvalid] if
// k.Wrapped is empty. Of concurrent rewraps from one root version, on any
// replica, exactly one succeeds.
func (s *DB) RewrapPrimaryKey(ctx context.Context, k kms.PrimaryKey, oldRootVersion int) error {
	what := fmt.Sprintf("rewrap version %d of primary key %q of user %q from root version %d",
		k.Version, k.Name, k.Owner, oldRootVersion)
	if len(k.Wrapped) == 0 {
		return fmt.Errorf("%s: %w: no wrapped key material", what, kms.ErrInvalid)
	}
	err := s.swap(ctx, qRewrap, []any{k.Wrapped, k.RootVersion, k.Owner, k.Name, k.Version, oldRootVersion},
		qRootVersion, []any{k.Owner, k.Name, k.Version}, int64(oldRootVersion))
	return wrapIf(what, err)
}

// DestroyPrimaryKey deletes every version of a primary key and every data
// key under it, in one transaction. It returns an error wrapping
// [kms.ErrNotFound] if the key has no version.
//
// Deleting the versions first locks them, so a concurrent CreateDataKey
// (which share-locks a version) either commits first, and its data key is
// deleted too, or finds no version. That holds on one server and on a
// single-primary group; on Galera and multi-primary group replication a
// data key created through another node at the same moment can survive its
// primary key (see the package doc). Such an orphan is unreadable, and
// DestroyPrimaryKey deletes the data keys under the name even when it
// finds no version, so that calling it again sweeps them.
func (s *DB) DestroyPrimaryKey(ctx context.Context, owner, name string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var n int64
	err := retry(ctx, isRetryableWrite, func() (err error) {
		n, err = s.destroy(ctx, owner, name)
		return err
	})
	if err == nil && n == 0 {
		err = kms.ErrNotFound
	}
	return wrapIf(fmt.Sprintf("destroy primary key %q of user %q", name, owner), err)
}

// destroy runs one attempt of DestroyPrimaryKey and returns the number of
// versions it deleted.
func (s *DB) destroy(ctx context.Context, owner, name string) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.StmtContext(ctx, s.stmts[qDeletePrimaryKeys]).ExecContext(ctx, owner, name)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.StmtContext(ctx, s.stmts[qDeleteDataKeysOf]).ExecContext(ctx, owner, name); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// Doc returns a document, or an error wrapping [kms.ErrNotFound].
func (s *DB) Doc(ctx context.Context, kind, id string) (kms.Doc, error) {
	var d kms.Doc
	err := s.queryRow(ctx, qDoc, []any{kind, id}, &d.Kind, &d.ID, &d.Value, &d.Revision, &d.Updated)
	if err != nil {
		return kms.Doc{}, wrap(fmt.Sprintf("doc %q of kind %q", id, kind), err)
	}
	return d, nil
}

// PutDoc creates d if d.Revision is 0, failing with an error wrapping
// [kms.ErrExists] if it exists; otherwise it replaces d if its stored
// revision is d.Revision, failing with [kms.ErrConflict] if it is not and
// [kms.ErrNotFound] if there is no such doc. It returns d with its new
// revision and update time. A kind or id longer than 128 bytes, or a value
// longer than 1 MiB, fails with [kms.ErrInvalid].
func (s *DB) PutDoc(ctx context.Context, d kms.Doc) (kms.Doc, error) {
	if err := checkDoc(d); err != nil {
		return kms.Doc{}, err
	}
	if d.Value == nil {
		d.Value = []byte{} // the column is NOT NULL: nil is an empty value
	}
	d.Updated = dbTime(time.Now())
	if d.Revision == 0 {
		if _, err := s.exec(ctx, qCreateDoc, d.Kind, d.ID, d.Value, d.Updated); err != nil {
			return kms.Doc{}, wrap(fmt.Sprintf("create doc %q of kind %q", d.ID, d.Kind), err)
		}
		d.Revision = 1
		return d, nil
	}
	err := s.swap(ctx, qUpdateDoc, []any{d.Value, d.Updated, d.Kind, d.ID, d.Revision},
		qDocRevision, []any{d.Kind, d.ID}, d.Revision)
	if err != nil {
		return kms.Doc{}, wrap(fmt.Sprintf("update doc %q of kind %q from revision %d", d.ID, d.Kind, d.Revision), err)
	}
	d.Revision++
	return d, nil
}

// checkDoc refuses a doc over the limits before it is sent.
func checkDoc(d kms.Doc) error {
	switch {
	case len(d.Kind) > maxDocName:
		return fmt.Errorf("doc: %w: kind of %d bytes, the limit is %d", kms.ErrInvalid, len(d.Kind), maxDocName)
	case len(d.ID) > maxDocName:
		return fmt.Errorf("doc of kind %q: %w: id of %d bytes, the limit is %d", d.Kind, kms.ErrInvalid, len(d.ID), maxDocName)
	case len(d.Value) > maxDocValue:
		return fmt.Errorf("doc %q of kind %q: %w: value of %d bytes, the limit is %d",
			d.ID, d.Kind, kms.ErrInvalid, len(d.Value), maxDocValue)
	}
	return nil
}

// DeleteDoc deletes a doc if its revision is revision. It returns an error
// wrapping [kms.ErrConflict] if it is not, and [kms.ErrNotFound] if there is
// no such doc. Of several concurrent deleters of one revision, on any
// replica, exactly one succeeds: the row lock (or, on Galera, certification)
// lets one DELETE match the row, and the others match none.
func (s *DB) DeleteDoc(ctx context.Context, kind, id string, revision int64) error {
	err := s.swap(ctx, qDeleteDoc, []any{kind, id, revision}, qDocRevision, []any{kind, id}, revision)
	return wrapIf(fmt.Sprintf("delete doc %q of kind %q at revision %d", id, kind, revision), err)
}

// ListDocs returns the docs of kind whose id starts with prefix (byte for
// byte), ordered by id. It reads a range of the primary key.
func (s *DB) ListDocs(ctx context.Context, kind, prefix string) ([]kms.Doc, error) {
	q, args := qDocsFrom, []any{[]byte(kind), []byte(prefix)}
	if end := prefixEnd(prefix); end != nil {
		q, args = qDocsRange, append(args, end)
	}
	ds, err := query(ctx, s, q, args, func(rows *sql.Rows) (kms.Doc, error) {
		var d kms.Doc
		err := rows.Scan(&d.Kind, &d.ID, &d.Value, &d.Revision, &d.Updated)
		return d, err
	})
	return ds, wrapIf(fmt.Sprintf("list docs of kind %q", kind), err)
}

// prefixEnd returns the least byte string that is greater than every one
// starting with prefix, or nil if there is none (prefix is empty or all
// 0xff bytes).
func prefixEnd(prefix string) []byte {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// swap runs the compare-and-swap q (an UPDATE or DELETE of one row by its
// key and the value it must still have), retrying it after a deadlock or a
// certification conflict. If it matches no row, lookup reads the row's
// current value by key: no row means [kms.ErrNotFound], another value
// [kms.ErrConflict]. The lookup is a statement of its own, so the row may
// have changed in between; if it holds the wanted value again (deleted and
// created anew), the swap runs again, so that the answer always describes a
// state the row was in.
func (s *DB) swap(ctx context.Context, q string, args []any, lookup string, key []any, want int64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	for range maxAttempts {
		n, err := s.exec(ctx, q, args...)
		if err != nil || n > 0 {
			return err
		}
		var current int64
		err = s.queryRow(ctx, lookup, key, &current)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return kms.ErrNotFound
		case err != nil:
			return err
		case current != want:
			return kms.ErrConflict
		}
	}
	return kms.ErrConflict
}

func scanPrimaryKey(rows *sql.Rows) (kms.PrimaryKey, error) {
	var k kms.PrimaryKey
	err := rows.Scan(&k.Owner, &k.Name, &k.Version, &k.RootVersion, &k.Wrapped, &k.Created)
	return k, err
}

// query runs a prepared query and scans every row. Reads are idempotent, so
// the whole query is run again after a connection error.
func query[T any](ctx context.Context, s *DB, q string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var out []T
	err := retry(ctx, isRetryableRead, func() error {
		out = nil
		rows, err := s.stmts[q].QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// wrapIf is [wrap] for an error that may be nil.
func wrapIf(what string, err error) error {
	if err == nil {
		return nil
	}
	return wrap(what, err)
}
