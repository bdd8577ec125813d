package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// Limits of a [kms.Doc], from its contract; the schema repeats them.
const (
	maxDocName  = 128     // bytes of Kind and of ID
	maxDocValue = 1 << 20 // bytes of Value
)

// UpdateUser replaces the token hash and disabled flag of u.Name. It returns
// an error wrapping kms.ErrNotFound if there is no such user, and otherwise
// fails like CreateUser. It is safe for concurrent use.
func (db *DB) UpdateUser(ctx context.Context, u kms.User) error {
	return wrapErr(db.write(ctx, opUpdateUser, u.TokenHash, u.Disabled, u.Name), "update user %q", u.Name)
}

// ListUsers returns every user, ordered by name (byte order). It returns an
// error wrapping kms.ErrUnavailable if the database cannot be read.
func (db *DB) ListUsers(ctx context.Context) ([]kms.User, error) {
	us, err := query(ctx, db, db.reads.users, nil, func(rows *sql.Rows) (kms.User, error) {
		var u kms.User
		var created int64
		err := rows.Scan(&u.Name, &u.TokenHash, &u.Disabled, &created)
		u.Created = fromUnix(created)
		return u, err
	})
	return us, wrapErr(err, "list users")
}

// ListPrimaryKeys returns the newest version of each primary key of owner,
// ordered by name, or of every owner's keys, ordered by owner and name, if
// owner is "". An owner without keys, or no such owner, gives none and no
// error.
func (db *DB) ListPrimaryKeys(ctx context.Context, owner string) ([]kms.PrimaryKey, error) {
	st, args := db.reads.primaryListAll, []any(nil)
	if owner != "" {
		st, args = db.reads.primaryList, []any{owner}
	}
	ks, err := query(ctx, db, st, args, scanPrimaryKey)
	return ks, wrapErr(err, "list primary keys of user %q", owner)
}

// PrimaryKeyVersions returns every version of a primary key, oldest first,
// or an error wrapping kms.ErrNotFound if there is none.
func (db *DB) PrimaryKeyVersions(ctx context.Context, owner, name string) ([]kms.PrimaryKey, error) {
	ks, err := query(ctx, db, db.reads.versions, []any{owner, name}, scanPrimaryKey)
	if err == nil && len(ks) == 0 {
		err = kms.ErrNotFound
	}
	return ks, wrapErr(err, "versions of primary key %q of user %q", name, owner)
}

// PrimaryKeysToRewrap returns up to limit primary key versions whose root
// version is not rootVersion, ordered by owner, name and version. It returns
// an error wrapping kms.ErrInvalid if limit is less than 1.
func (db *DB) PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) ([]kms.PrimaryKey, error) {
	if limit < 1 {
		return nil, fmt.Errorf("primary keys to rewrap: %w: limit %d", kms.ErrInvalid, limit)
	}
	ks, err := query(ctx, db, db.reads.toRewrap, []any{rootVersion, limit}, scanPrimaryKey)
	return ks, wrapErr(err, "primary keys to rewrap")
}

// RewrapPrimaryKey replaces the material and root version of version
// k.Version of a primary key if its root version is still oldRootVersion.
// It returns an error wrapping kms.ErrConflict if it is not,
// kms.ErrNotFound if there is no such version, and kms.ErrInvalid if
// k.Wrapped is empty; otherwise it fails like CreatePrimaryKey.
func (db *DB) RewrapPrimaryKey(ctx context.Context, k kms.PrimaryKey, oldRootVersion int) error {
	if len(k.Wrapped) == 0 {
		return fmt.Errorf("rewrap primary key %q: %w", k.Name, errNoMaterial)
	}
	err := db.write(ctx, opRewrap, k.Wrapped, k.RootVersion, k.Owner, k.Name, k.Version, oldRootVersion)
	return wrapErr(err, "rewrap version %d of primary key %q of user %q from root version %d",
		k.Version, k.Name, k.Owner, oldRootVersion)
}

// DestroyPrimaryKey deletes every version of a primary key and every data
// key under it, in one transaction. It returns an error wrapping
// kms.ErrNotFound if the key has no version; otherwise it fails like
// CreatePrimaryKey. The writer is busy while it runs: a key with very many
// data keys delays the other writes for as long.
func (db *DB) DestroyPrimaryKey(ctx context.Context, owner, name string) error {
	return wrapErr(db.write(ctx, opDestroy, owner, name), "destroy primary key %q of user %q", name, owner)
}

// Doc returns a document, or an error wrapping kms.ErrNotFound.
func (db *DB) Doc(ctx context.Context, kind, id string) (kms.Doc, error) {
	if db.closed.Load() {
		return kms.Doc{}, errClosed
	}
	var d kms.Doc
	var updated int64
	err := db.reads.doc.QueryRowContext(ctx, kind, id).Scan(&d.Kind, &d.ID, &d.Value, &d.Revision, &updated)
	if err != nil {
		return kms.Doc{}, readErr(err, "doc %q of kind %q", id, kind)
	}
	d.Updated = fromUnix(updated)
	return d, nil
}

// PutDoc creates d if d.Revision is 0, failing with an error wrapping
// kms.ErrExists if it exists; otherwise it replaces d if its stored revision
// is d.Revision, failing with kms.ErrConflict if it is not and kms.ErrNotFound
// if there is no such doc. It returns d with its new revision and update
// time (whole seconds). A kind or id longer than 128 bytes, or a value
// longer than 1 MiB, fails with kms.ErrInvalid.
func (db *DB) PutDoc(ctx context.Context, d kms.Doc) (kms.Doc, error) {
	if err := checkDoc(d); err != nil {
		return kms.Doc{}, err
	}
	if d.Value == nil {
		d.Value = []byte{} // the column is NOT NULL: nil is an empty value
	}
	d.Updated = time.Now().UTC().Truncate(time.Second)
	if d.Revision == 0 {
		err := db.write(ctx, opCreateDoc, d.Kind, d.ID, d.Value, toUnix(d.Updated))
		if err != nil {
			return kms.Doc{}, fmt.Errorf("create doc %q of kind %q: %w", d.ID, d.Kind, err)
		}
		d.Revision = 1
		return d, nil
	}
	err := db.write(ctx, opUpdateDoc, d.Value, toUnix(d.Updated), d.Kind, d.ID, d.Revision)
	if err != nil {
		return kms.Doc{}, fmt.Errorf("update doc %q of kind %q from revision %d: %w", d.ID, d.Kind, d.Revision, err)
	}
	d.Revision++
	return d, nil
}

// checkDoc refuses a doc over the limits before it is queued.
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
// wrapping kms.ErrConflict if it is not, and kms.ErrNotFound if there is no
// such doc. Of several concurrent deleters of one revision, in this process
// or another, exactly one succeeds: the writers take turns.
func (db *DB) DeleteDoc(ctx context.Context, kind, id string, revision int64) error {
	return wrapErr(db.write(ctx, opDeleteDoc, kind, id, revision), "delete doc %q of kind %q at revision %d", id, kind, revision)
}

// ListDocs returns the docs of kind whose id starts with prefix (byte for
// byte), ordered by id. It reads a range of the primary key index.
func (db *DB) ListDocs(ctx context.Context, kind, prefix string) ([]kms.Doc, error) {
	st, args := db.reads.docsFrom, []any{kind, prefix}
	if end, ok := prefixEnd(prefix); ok {
		st, args = db.reads.docsRange, []any{kind, prefix, end}
	}
	ds, err := query(ctx, db, st, args, func(rows *sql.Rows) (kms.Doc, error) {
		var d kms.Doc
		var updated int64
		err := rows.Scan(&d.Kind, &d.ID, &d.Value, &d.Revision, &updated)
		d.Updated = fromUnix(updated)
		return d, err
	})
	return ds, wrapErr(err, "list docs of kind %q", kind)
}

// prefixEnd returns the least string that is greater than every string
// starting with prefix, or false if there is none (prefix is empty or all
// 0xff bytes). It may not be valid UTF-8, which TEXT in SQLite need not be:
// the BINARY collation compares bytes.
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

func scanPrimaryKey(rows *sql.Rows) (kms.PrimaryKey, error) {
	var k kms.PrimaryKey
	var created int64
	err := rows.Scan(&k.Owner, &k.Name, &k.Version, &k.RootVersion, &k.Wrapped, &created)
	k.Created = fromUnix(created)
	return k, err
}

// query runs st on the read pool and scans every row. Errors are
// translated; the caller adds what was read.
func query[T any](ctx context.Context, db *DB, st *sql.Stmt, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	if db.closed.Load() {
		return nil, errClosed
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}
