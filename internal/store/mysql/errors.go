package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ppmlkms/kms/internal/kms"
)

// MySQL and MariaDB error numbers that the store translates. Errors are
// told apart by number only, never by message text.
const (
	erDupEntry         = 1062 // ER_DUP_ENTRY: a unique key exists
	erNoReferencedRow  = 1452 // ER_NO_REFERENCED_ROW_2: foreign key parent missing
	erNoSuchTable      = 1146 // ER_NO_SUCH_TABLE
	erDupFieldName     = 1060 // ER_DUP_FIELDNAME: ADD COLUMN of a column that exists
	erDupKeyName       = 1061 // ER_DUP_KEYNAME: ADD INDEX of an index that exists
	erDataTooLong      = 1406 // ER_DATA_TOO_LONG (strict sql_mode)
	erLockDeadlock     = 1213 // ER_LOCK_DEADLOCK; also Galera certification failures
	erConCount         = 1040 // ER_CON_COUNT_ERROR: too many connections
	erUnknownComError  = 1047 // Galera: WSREP has not yet prepared node for application use
	erServerShutdown   = 1053 // ER_SERVER_SHUTDOWN
	erNetReadError     = 1158 // ER_NET_READ_ERROR … 1161 ER_NET_WRITE_INTERRUPTED
	erNetWriteInterr   = 1161
	erLockWaitTimeout  = 1205 // ER_LOCK_WAIT_TIMEOUT
	erOptionPrevents   = 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only, --super-read-only
	erQueryInterrupted = 1317 // ER_QUERY_INTERRUPTED: KILL QUERY
	erReadOnlyTx       = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	erReadOnlyMode     = 1836 // ER_READ_ONLY_MODE
	erConnectionKilled = 1927 // MariaDB ER_CONNECTION_KILLED
	erStatementTimeout = 1969 // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
	erQueryTimeout     = 3024 // MySQL ER_QUERY_TIMEOUT (max_execution_time)
	erClientTimeout    = 4031 // MySQL ER_CLIENT_INTERACTION_TIMEOUT (wait_timeout)
	erTxRollbackCommit = 3101 // ER_TRANSACTION_ROLLBACK_DURING_COMMIT: group replication certification failure
)

// class is what the store makes of a driver error.
type class int

const (
	classOther       class = iota // a bug or a misconfiguration: report as is
	classNotFound                 // no row, or a missing foreign key parent
	classExists                   // a unique key exists
	classInvalid                  // the server refused a value
	classConflict                 // the server rolled the statement back: run it again
	classUnavailable              // the server cannot be reached or cannot serve now
)

// classify tells what err means for the store, by error number and type.
func classify(err error) class {
	if errors.Is(err, sql.ErrNoRows) {
		return classNotFound
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch n := me.Number; {
		case n == erDupEntry:
			return classExists
		case n == erNoReferencedRow:
			return classNotFound
		case n == erDataTooLong:
			return classInvalid
		case n == erLockDeadlock, n == erTxRollbackCommit:
			return classConflict
		case n == erConCount, n == erUnknownComError, n == erServerShutdown,
			n >= erNetReadError && n <= erNetWriteInterr, n == erLockWaitTimeout,
			n == erOptionPrevents, n == erQueryInterrupted, n == erReadOnlyTx, n == erReadOnlyMode,
			n == erConnectionKilled, n == erStatementTimeout, n == erQueryTimeout, n == erClientTimeout:
			return classUnavailable
		}
		return classOther
	}
	for _, e := range []error{context.DeadlineExceeded, driver.ErrBadConn, sql.ErrConnDone,
		mysql.ErrInvalidConn, mysql.ErrMalformPkt, mysql.ErrPktSync, mysql.ErrPktSyncMul,
		io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return classUnavailable
		}
	}
	if ne := net.Error(nil); errors.As(err, &ne) {
		return classUnavailable // dial, DNS, reset, timeout
	}
	return classOther
}

// errNumber returns the server's error number, or 0.
func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// wrap turns a driver error into the store's error for the record named by
// what, wrapping the kms sentinel that applies.
func wrap(what string, err error) error {
	if isSentinel(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch classify(err) {
	case classNotFound:
		return fmt.Errorf("%s: %w", what, kms.ErrNotFound)
	case classExists:
		return fmt.Errorf("%s: %w", what, kms.ErrExists)
	case classInvalid:
		return fmt.Errorf("%s: %w: mysql: %v", what, kms.ErrInvalid, err)
	case classConflict, classUnavailable:
		return fmt.Errorf("%s: %w: mysql: %w", what, kms.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: mysql: %w", what, err)
}

// isSentinel reports whether err is already one of the kms errors that the
// store itself decided on (a failed compare-and-swap, a missing row, bad
// input), not a driver error to classify.
func isSentinel(err error) bool {
	return errors.Is(err, kms.ErrNotFound) || errors.Is(err, kms.ErrConflict) || errors.Is(err, kms.ErrInvalid)
}

// unavailable adds [kms.ErrUnavailable] to err if it is a connection error.
func unavailable(err error) error {
	if c := classify(err); c == classUnavailable || c == classConflict {
		return fmt.Errorf("%w: %w", kms.ErrUnavailable, err)
	}
	return err
}

// maxAttempts bounds how often a statement is run when it keeps failing
// with a retryable error.
const maxAttempts = 3

// retry calls f until it succeeds, fails with an error that retryable
// rejects, ctx ends, or it has been called maxAttempts times. It returns
// f's last error.
func retry(ctx context.Context, retryable func(error) bool, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt == maxAttempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		// Jittered backoff (2–4 ms, then 4–8 ms), so that the writers of a
		// conflict do not meet again at once.
		d := time.Duration(1<<attempt) * time.Millisecond
		t := time.NewTimer(d + rand.N(d))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// isRetryableWrite reports whether a write failed without effect, so that
// running it again is safe: the server rolled it back. A connection lost
// mid-statement is not retried, since the write may have committed.
func isRetryableWrite(err error) bool {
	return classify(err) == classConflict
}

// isRetryableRead reports whether a read may succeed if run again, on
// another connection. A timeout is not retried: the time is up.
func isRetryableRead(err error) bool {
	c := classify(err)
	return c == classConflict || c == classUnavailable && !errors.Is(err, context.DeadlineExceeded)
}
