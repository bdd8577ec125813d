package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ppmlkms/kms/internal/kms"
)

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "duplicate key value"} }
	for _, c := range []struct {
		name string
		err  error
		want class
	}{
		{"not found/no rows", sql.ErrNoRows, classNotFound},
		{"exists/23505", pg("23505"), classExists},
		{"not found/23503 foreign key", fmt.Errorf("x: %w", pg("23503")), classNotFound},
		{"invalid/22001 too long", pg("22001"), classInvalid},
		{"conflict/40001 serialization", pg("40001"), classConflict},
		{"conflict/40P01 deadlock", pg("40P01"), classConflict},
		{"unavailable/57P01 terminated", pg("57P01"), classUnavailable},
		{"unavailable/53300 too many connections", pg("53300"), classUnavailable},
		{"unavailable/25006 standby", pg("25006"), classUnavailable},
		{"unavailable/08006 connection failure", pg("08006"), classUnavailable},
		{"unavailable/lost connection", pgconn.ErrConnClosed, classUnavailable},
		{"unavailable/bad conn", driver.ErrBadConn, classUnavailable},
		{"unavailable/dial refused", dial, classUnavailable},
		{"unavailable/deadline", context.DeadlineExceeded, classUnavailable},
		{"other/canceled", context.Canceled, classOther},
		{"other/28P01 auth failed", pg("28P01"), classOther},
		{"other/42601 syntax", pg("42601"), classOther},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := classify(c.err); got != c.want {
				t.Fatalf("classify(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{&pgconn.PgError{Code: "23505"}, kms.ErrExists},
		{sql.ErrNoRows, kms.ErrNotFound},
		{io.ErrUnexpectedEOF, kms.ErrUnavailable},
		{&pgconn.PgError{Code: "40001"}, kms.ErrUnavailable},
	} {
		if err := wrap("user \"a\"", c.err); !errors.Is(err, c.want) {
			t.Errorf("wrap(%v) = %v, want it to wrap %v", c.err, err, c.want)
		}
	}
	if err := wrap("x", context.Canceled); !errors.Is(err, context.Canceled) || errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("wrap(canceled) = %v", err)
	}
}

func TestRetry(t *testing.T) {
	conflict := &pgconn.PgError{Code: "40001"}
	for _, c := range []struct {
		name  string
		fails int
		err   error
		calls int
		ok    bool
	}{
		{"succeeds after two conflicts", 2, conflict, 3, true},
		{"gives up after three conflicts", 5, conflict, maxAttempts, false},
		{"duplicate is not retried", 5, &pgconn.PgError{Code: "23505"}, 1, false},
		{"lost connection is not retried", 5, io.ErrUnexpectedEOF, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := retry(t.Context(), isRetryableWrite, func() error {
				calls++
				if calls <= c.fails {
					return c.err
				}
				return nil
			})
			if calls != c.calls || (err == nil) != c.ok {
				t.Fatalf("%d calls, err %v; want %d calls, ok %v", calls, err, c.calls, c.ok)
			}
		})
	}
}

func TestCheckServerVersion(t *testing.T) {
	for num, ok := range map[string]bool{"110022": false, "120000": true, "150020": true, "170002": true, "x": false} {
		if err := checkServerVersion(map[string]string{"server_version_num": num, "server_version": num}); (err == nil) != ok {
			t.Errorf("checkServerVersion(%s) = %v, want ok=%v", num, err, ok)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	if len(migrations) == 0 || migrations[0].version != 1 || !strings.Contains(migrations[0].sql, "CREATE TABLE data_keys") {
		t.Fatalf("embedded migrations: %+v", migrations)
	}
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x int);")},
		"migrations/0003_c.sql": {Data: []byte("DROP TABLE a;")},
	}
	if _, err := loadMigrations(fsys); err == nil {
		t.Fatal("a gap in the versions was accepted")
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ dsn, secret string }{
		{"postgres://kms:pa%3Ass@db/kms", "pa:ss"},
		{"postgres://kms:pa%3Ass@db/kms", "pa%3Ass"},
		{"postgres://kms:pa:ss@db:notaport/kms", "pa:ss"},
		{"host=db password=pa:ss user=kms", "pa:ss"},
		{"postgres://db/kms?password=pa:ss&user=kms", "pa:ss"},
	} {
		if got := redact("cannot parse `"+c.dsn+"`: "+c.secret, c.dsn); strings.Contains(got, c.secret) {
			t.Errorf("redact(%q) = %q", c.dsn, got)
		}
	}
}

// TestConnAlive checks the no-round-trip check of a pooled connection: a
// quiet connection is alive; one the server closed, or one with input
// pending (a FATAL message), is not.
