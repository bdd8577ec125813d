package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/go-sql-driver/mysql"

	"github.com/ppmlkms/kms/internal/kms"
)

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name string
		err  error
		want class
	}{
		{"not found/no rows", sql.ErrNoRows, classNotFound},
		{"exists/1062", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, classExists},
		{"not found/1452 foreign key", &mysql.MySQLError{Number: 1452}, classNotFound},
		{"invalid/1406 too long", &mysql.MySQLError{Number: 1406}, classInvalid},
		{"conflict/1213 deadlock or galera certification", fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1213}), classConflict},
		{"conflict/3101 group replication certification", &mysql.MySQLError{Number: 3101}, classConflict},
		{"unavailable/1040 too many connections", &mysql.MySQLError{Number: 1040}, classUnavailable},
		{"unavailable/1047 wsrep not ready", &mysql.MySQLError{Number: 1047}, classUnavailable},
		{"unavailable/1290 read only", &mysql.MySQLError{Number: 1290}, classUnavailable},
		{"unavailable/4031 wait_timeout", &mysql.MySQLError{Number: 4031}, classUnavailable},
		{"unavailable/invalid connection", mysql.ErrInvalidConn, classUnavailable},
		{"unavailable/bad conn", driver.ErrBadConn, classUnavailable},
		{"unavailable/dial refused", dial, classUnavailable},
		{"unavailable/deadline", context.DeadlineExceeded, classUnavailable},
		{"other/canceled", context.Canceled, classOther},
		{"other/syntax error 1064", &mysql.MySQLError{Number: 1064}, classOther},
		// The message text says "Duplicate entry" but the number does not:
		// only the number counts.
		{"other/message text ignored", &mysql.MySQLError{Number: 1105, Message: "Duplicate entry"}, classOther},
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
		{&mysql.MySQLError{Number: 1062}, kms.ErrExists},
		{sql.ErrNoRows, kms.ErrNotFound},
		{mysql.ErrInvalidConn, kms.ErrUnavailable},
		{&mysql.MySQLError{Number: 1213}, kms.ErrUnavailable},
	} {
		if err := wrap("user \"a\"", c.err); !errors.Is(err, c.want) {
			t.Errorf("wrap(%v) = %v, want it to wrap %v", c.err, err, c.want)
		}
	}
	if err := wrap("x", context.Canceled); !errors.Is(err, context.Canceled) || errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("wrap(canceled) = %v", err)
	}
}

// TestRetry checks the bounded retry of a write that Galera rolled back.
func TestRetry(t *testing.T) {
	conflict := &mysql.MySQLError{Number: 1213}
	for _, c := range []struct {
		name  string
		fails int
		err   error
		calls int
		ok    bool
	}{
		{"succeeds after two conflicts", 2, conflict, 3, true},
		{"gives up after three conflicts", 5, conflict, maxAttempts, false},
		{"duplicate is not retried", 5, &mysql.MySQLError{Number: 1062}, 1, false},
		{"lost connection is not retried", 5, mysql.ErrInvalidConn, 1, false},
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
	for v, ok := range map[string]bool{
		"8.0.36":                     true,
		"8.4.0":                      true,
		"9.1.0-commercial":           true,
		"5.7.44-log":                 false,
		"10.11.19-MariaDB-0+deb12u1": true,
		"10.5.1-MariaDB":             true,
		"10.4.32-MariaDB":            false,
		"5.5.5-10.6.18-MariaDB":      true,
		"5.5.5-10.3.39-MariaDB":      false,
		"11.4.2-MariaDB":             true,
		"8.0.11-TiDB-v7.5.0":         true,
		"garbage":                    false,
	} {
		if err := checkServerVersion(v); (err == nil) != ok {
			t.Errorf("checkServerVersion(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	if len(migrations) == 0 || migrations[0].version != 1 || len(migrations[0].stmts) != 3 {
		t.Fatalf("embedded migrations: %+v", migrations)
	}
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("-- c\nCREATE TABLE a (\n x INT\n);\n\nCREATE TABLE b (y INT);\n")},
		"migrations/0002_b.sql": {Data: []byte("DROP TABLE a")},
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || len(ms[0].stmts) != 2 || ms[0].stmts[0] != "CREATE TABLE a (\nx INT\n)" || ms[1].stmts[0] != "DROP TABLE a" {
		t.Fatalf("loaded %+v", ms)
	}
	fsys["migrations/0004_gap.sql"] = &fstest.MapFile{Data: []byte("SELECT 1;")}
	if _, err := loadMigrations(fsys); err == nil {
		t.Fatal("a gap in the versions was accepted")
	}
}
