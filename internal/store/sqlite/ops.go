package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/ppmlkms/kms/internal/kms"
)

// Write operations. The writer runs each queued operation in a savepoint of
// its own inside the batch's transaction (see batch.go): whatever an
// operation returns is its caller's outcome, and a non-nil error undoes
// everything the operation did, and nothing else. Because the writer is the
// only one writing (other processes wait for the file's write lock), an
// operation that reads and then writes sees no change in between: a
// compare-and-swap that matches no row can look up why and tell a stale
// revision (kms.ErrConflict) from a missing row (kms.ErrNotFound).
const (
	opUser       = iota // name, token_hash, disabled, created
	opPrimary           // owner, name, version, root_version, wrapped, created
	opData              // owner, primary_name, name, primary_version, wrapped, created
	opUpdateUser        // token_hash, disabled, name
	opRewrap            // wrapped, root_version, owner, name, version, old root_version
	opDestroy           // owner, name
	opCreateDoc         // kind, id, value, updated
	opUpdateDoc         // value, updated, kind, id, revision
	opDeleteDoc         // kind, id, revision
	numOps
)

// The writer's statements.
const (
	qInsertUser    = "INSERT INTO users (name, token_hash, disabled, created) VALUES (?, ?, ?, ?)"
	qInsertPrimary = "INSERT INTO primary_keys (owner, name, version, root_version, wrapped, created) VALUES (?, ?, ?, ?, ?, ?)"
	qInsertData    = "INSERT INTO data_keys (owner, primary_name, name, primary_version, wrapped, created) VALUES (?, ?, ?, ?, ?, ?)"
	qUpdateUser    = "UPDATE users SET token_hash = ?, disabled = ? WHERE name = ?"

	qRewrap = `UPDATE primary_keys SET wrapped = ?, root_version = ?
		WHERE owner = ? AND name = ? AND version = ? AND root_version = ?`
	qRootVersion      = "SELECT root_version FROM primary_keys WHERE owner = ? AND name = ? AND version = ?"
	qDeletePrimary    = "DELETE FROM primary_keys WHERE owner = ? AND name = ?"
	qDeleteDataKeysOf = "DELETE FROM data_keys WHERE owner = ? AND primary_name = ?"

	qInsertDoc   = "INSERT INTO docs (kind, id, value, revision, updated) VALUES (?, ?, ?, 1, ?)"
	qUpdateDoc   = "UPDATE docs SET value = ?, updated = ?, revision = revision + 1 WHERE kind = ? AND id = ? AND revision = ?"
	qDeleteDoc   = "DELETE FROM docs WHERE kind = ? AND id = ? AND revision = ?"
	qDocRevision = "SELECT revision FROM docs WHERE kind = ? AND id = ?"
)

// writeSQL lists the statements that newWriter prepares.
var writeSQL = []string{qInsertUser, qInsertPrimary, qInsertData, qUpdateUser, qRewrap, qRootVersion,
	qDeletePrimary, qDeleteDataKeysOf, qInsertDoc, qUpdateDoc, qDeleteDoc, qDocRevision}

// ops runs each operation with its arguments (listed next to the op
// constants) on the writer's connection. Errors are driver errors, which
// the writer translates, or kms sentinels.
var ops = [numOps]func(ctx context.Context, w *writer, args []any) error{
	opUser:    func(ctx context.Context, w *writer, args []any) error { return w.insert(ctx, qInsertUser, args) },
	opPrimary: func(ctx context.Context, w *writer, args []any) error { return w.insert(ctx, qInsertPrimary, args) },
	opData:    func(ctx context.Context, w *writer, args []any) error { return w.insert(ctx, qInsertData, args) },
	opUpdateUser: func(ctx context.Context, w *writer, args []any) error {
		n, err := w.exec(ctx, qUpdateUser, args)
		if err == nil && n == 0 {
			return kms.ErrNotFound
		}
		return err
	},
	opRewrap: func(ctx context.Context, w *writer, args []any) error {
		return w.swap(ctx, qRewrap, args, qRootVersion, args[2:5])
	},
	opDestroy: func(ctx context.Context, w *writer, args []any) error {
		n, err := w.exec(ctx, qDeletePrimary, args)
		switch {
		case err != nil:
			return err
		case n == 0:
			return kms.ErrNotFound
		}
		_, err = w.exec(ctx, qDeleteDataKeysOf, args)
		return err
	},
	opCreateDoc: func(ctx context.Context, w *writer, args []any) error { return w.insert(ctx, qInsertDoc, args) },
	opUpdateDoc: func(ctx context.Context, w *writer, args []any) error {
		return w.swap(ctx, qUpdateDoc, args, qDocRevision, args[2:4])
	},
	opDeleteDoc: func(ctx context.Context, w *writer, args []any) error {
		return w.swap(ctx, qDeleteDoc, args, qDocRevision, args[0:2])
	},
}

func (w *writer) insert(ctx context.Context, q string, args []any) error {
	_, err := w.stmts[q].ExecContext(ctx, args...)
	return err
}

// exec runs q and returns the number of rows it changed (for an UPDATE,
// SQLite counts every row that the WHERE clause matched).
func (w *writer) exec(ctx context.Context, q string, args []any) (int64, error) {
	res, err := w.stmts[q].ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// swap runs the compare-and-swap q, which changes one row or none. If none,
// it runs lookup with the row's key: no row means kms.ErrNotFound, a row
// means that the compared value differs, kms.ErrConflict.
func (w *writer) swap(ctx context.Context, q string, args []any, lookup string, key []any) error {
	n, err := w.exec(ctx, q, args)
	if err != nil || n > 0 {
		return err
	}
	var current int64
	err = w.stmts[lookup].QueryRowContext(ctx, key...).Scan(&current)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return kms.ErrNotFound
	case err != nil:
		return err
	}
	return kms.ErrConflict
}
