package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ppmlkms/kms/internal/kms"
)

// SQLSTATE codes that the store translates. Errors are told apart by code
// only, never by message text.
const (
	sqlUniqueViolation     = "23505"
	sqlForeignKeyViolation = "23503"
	sqlStringTooLong       = "22001" // string_data_right_truncation
	sqlBadEncoding         = "22021" // character_not_in_repertoire (e.g. NUL)
	sqlSerialization       = "40001" // serialization_failure
	sqlDeadlock            = "40P01" // deadlock_detected
	sqlReadOnlyTx          = "25006" // read_only_sql_transaction: a standby
	sqlLockNotAvailable    = "55P03"
	sqlUndefinedTable      = "42P01"
)

// class is what the store makes of a driver error.
type class int

const (
	classOther       class = iota // a bug or a misconfiguration: report as is
	classNotFound                 // no row, or a missing foreign key parent
	classExists                   // a unique key exists
	classInvalid                  // the server refused a value
	classConflict                 // the server rolled the transaction back: run it again
	classUnavailable              // the server cannot be reached or cannot serve now
)

// classify tells what err means for the store, by SQLSTATE and type.
func classify(err error) class {
	if errors.Is(err, sql.ErrNoRows) {
		return classNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case sqlUniqueViolation:
			return classExists
		case sqlForeignKeyViolation:
			return classNotFound
		case sqlStringTooLong, sqlBadEncoding:
			return classInvalid
		case sqlSerialization, sqlDeadlock:
			return classConflict
		case sqlReadOnlyTx, sqlLockNotAvailable:
			return classUnavailable
		}
		switch pe.Code[:min(2, len(pe.Code))] {
		case "08", // connection exception
			"53", // insufficient resources: too many connections, disk full
			"57": // operator intervention: shutdown, terminated, statement_timeout
			return classUnavailable
		}
		return classOther
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return classUnavailable
	}
	for _, e := range []error{context.DeadlineExceeded, driver.ErrBadConn, sql.ErrConnDone,
		pgconn.ErrConnClosed, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return classUnavailable
		}
	}
	if ne := net.Error(nil); errors.As(err, &ne) {
		return classUnavailable // dial, DNS, reset, timeout
	}
	return classOther
}

// sqlState returns the server's SQLSTATE, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
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
		return fmt.Errorf("%s: %w: postgres: %v", what, kms.ErrInvalid, err)
	case classConflict, classUnavailable:
		return fmt.Errorf("%s: %w: postgres: %w", what, kms.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: postgres: %w", what, err)
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

// redact removes the DSN's password from msg. pgx already masks passwords
// in its parse errors on a best-effort basis; this also covers what it
// cannot recognize. It errs on the side of removing too much.
func redact(msg, dsn string) string {
	var secrets []string
	// URL form: scheme://user:password@host/..., even if it does not parse.
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				secrets = append(secrets, pw)
				if u, err := url.PathUnescape(pw); err == nil {
					secrets = append(secrets, u)
				}
			}
		}
	}
	// Keyword/value form, or a password query parameter.
	for rest := dsn; ; {
		_, after, ok := strings.Cut(rest, "password=")
		if !ok {
			break
		}
		end := strings.IndexAny(after, " &\t\n")
		if end < 0 {
			end = len(after)
		}
		secrets = append(secrets, strings.Trim(after[:end], `'"`))
		rest = after
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
