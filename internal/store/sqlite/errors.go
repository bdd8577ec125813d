package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ppmlkms/kms/internal/kms"
)

// errClosed is returned by methods called after Close.
var errClosed = fmt.Errorf("%w: sqlite store is closed", kms.ErrUnavailable)

// errSchemaTooNew reports a database migrated by a newer build.
var errSchemaTooNew = errors.New("database schema is newer than this program supports")

// translate maps a driver error to the kms sentinels by SQLite's extended
// result code, never by its message. Constraint failures become the bare
// sentinel: the driver's text names tables and columns, which callers of the
// API have no business seeing. Errors that mean the file cannot be used wrap
// both kms.ErrUnavailable and the driver error, for the log. Anything else,
// including context errors, is returned as it is.
func translate(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch code := se.Code(); code {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return kms.ErrExists
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, sqlite3.SQLITE_CONSTRAINT_TRIGGER:
		// The only foreign key is primary_keys.owner → users and the only
		// trigger is data_keys_need_primary: both mean "parent missing".
		return kms.ErrNotFound
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		return fmt.Errorf("%w: %w", kms.ErrInvalid, err)
	default:
		switch code & 0xff { // the primary result code
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_BUSY,
			sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM,
			sqlite3.SQLITE_PERM, sqlite3.SQLITE_PROTOCOL:
			return fmt.Errorf("%w: %w", kms.ErrUnavailable, err)
		}
		return err
	}
}
