package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ppmlkms/kms/internal/kms"
)

// CreateUser stores u. It returns an error wrapping kms.ErrExists if a user
// with that name exists, kms.ErrUnavailable if the database cannot be
// written, or ctx's error if ctx ended before the row was written. It
// returns once the row is durable. It is safe for concurrent use.
func (db *DB) CreateUser(ctx context.Context, u kms.User) error {
	err := db.write(ctx, opUser, u.Name, u.TokenHash, u.Disabled, toUnix(u.Created))
	if errors.Is(err, kms.ErrExists) {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	return wrapErr(err, "create user %q", u.Name)
}

// CreatePrimaryKey stores version k.Version of a primary key. It returns an
// error wrapping kms.ErrExists if that (owner, name, version) exists,
// kms.ErrNotFound if the owner does not exist, kms.ErrInvalid if k.Version
// is not positive or k.Wrapped is empty, kms.ErrUnavailable if the database
// cannot be written, or ctx's error if ctx ended before the row was written.
// It returns once the row is durable. It is safe for concurrent use.
func (db *DB) CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) error {
	if len(k.Wrapped) == 0 {
		return fmt.Errorf("create primary key %q: %w", k.Name, errNoMaterial)
	}
	err := db.write(ctx, opPrimary, k.Owner, k.Name, k.Version, k.RootVersion, k.Wrapped, toUnix(k.Created))
	switch {
	case errors.Is(err, kms.ErrExists):
		return fmt.Errorf("version %d of primary key %q of user %q: %w", k.Version, k.Name, k.Owner, err)
	case errors.Is(err, kms.ErrNotFound):
		return fmt.Errorf("create primary key %q: user %q: %w", k.Name, k.Owner, err)
	}
	return wrapErr(err, "create primary key %q", k.Name)
}

// CreateDataKey stores k. It returns an error wrapping kms.ErrExists if
// (owner, primary, name) exists, kms.ErrNotFound if no version of the
// primary key exists (which includes a missing owner), kms.ErrInvalid if
// k.Wrapped is empty, kms.ErrUnavailable if the database cannot be written,
// or ctx's error if ctx ended before the row was written. It returns once
// the row is durable. It is safe for concurrent use.
func (db *DB) CreateDataKey(ctx context.Context, k kms.DataKey) error {
	if len(k.Wrapped) == 0 {
		return fmt.Errorf("create data key %q: %w", k.Name, errNoMaterial)
	}
	err := db.write(ctx, opData, k.Owner, k.Primary, k.Name, k.PrimaryVersion, k.Wrapped, toUnix(k.Created))
	switch {
	case errors.Is(err, kms.ErrExists):
		return fmt.Errorf("data key %q of primary key %q of user %q: %w", k.Name, k.Primary, k.Owner, err)
	case errors.Is(err, kms.ErrNotFound):
		return fmt.Errorf("create data key %q: primary key %q of user %q: %w", k.Name, k.Primary, k.Owner, err)
	}
	return wrapErr(err, "create data key %q", k.Name)
}

func wrapErr(err error, what string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(what+": %w", append(args, err)...)
}

// errNoMaterial rejects a key without wrapped material before it is queued.
var errNoMaterial = fmt.Errorf("%w: no wrapped key material", kms.ErrInvalid)

// write queues one write operation (see ops.go) for the writer and waits for
// its outcome, already translated by [translate].
func (db *DB) write(ctx context.Context, op int, args ...any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.closed.Load() {
		return errClosed
	}
	r := &writeReq{ctx: ctx, op: op, args: args, done: make(chan error, 1)}
	if err := db.w.submit(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, abandoned) {
			return ctx.Err() // the writer will skip the row
		}
		// The writer claimed the row before ctx ended: report what
		// really happened to it.
		return <-r.done
	}
}

// States of a writeReq. A request moves from pending to exactly one of the
// others, by compare-and-swap, so the caller and the writer agree on whether
// the row may still be written.
const (
	pending   int32 = iota
	claimed         // the writer will run it and send its outcome on done
	abandoned       // its ctx ended first; the row is never written
)

// writeReq is one queued write operation. It carries the caller's ctx, which
// is not used to run SQL: interrupting a statement would roll back the whole
// batch. The writer only checks it before claiming the request.
type writeReq struct {
	ctx   context.Context
	op    int
	args  []any
	state atomic.Int32
	done  chan error // buffered; receives one error (nil on success)
}

// claim reports whether the writer may run r. A request whose ctx has ended
// is abandoned and answered with ctx's error.
func (r *writeReq) claim() bool {
	if err := r.ctx.Err(); err != nil {
		if r.state.CompareAndSwap(pending, abandoned) {
			r.done <- err
		}
		return false
	}
	return r.state.CompareAndSwap(pending, claimed)
}

// submit queues r unless the writer is closed or ctx ends first.
func (w *writer) submit(ctx context.Context, r *writeReq) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return errClosed
	}
	select {
	case w.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops taking requests, lets the writer finish those queued, and
// closes its connection.
func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue) // no sender is inside submit: they hold mu.RLock
	}
	w.mu.Unlock()
	<-w.done
	var errs []error
	for _, st := range w.allStmts() {
		errs = append(errs, st.Close())
	}
	return errors.Join(append(errs, w.conn.Close())...)
}

// writer owns the single write connection and runs the group commit loop
// in its own goroutine; see batch.go.
type writer struct {
	conn  *sql.Conn
	queue chan *writeReq
	done  chan struct{} // closed when run returns

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool

	stmts                                                   map[string]*sql.Stmt // writeSQL, prepared
	begin, commit, rollback, savepoint, release, rollbackTo *sql.Stmt

	commits, rows atomic.Uint64
}

func (w *writer) allStmts() []*sql.Stmt {
	all := []*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.release, w.rollbackTo}
	for _, st := range w.stmts {
		all = append(all, st)
	}
	return all
}

// newWriter prepares the write statements on conn and starts the writer.
// The writer owns conn from then on.
func newWriter(ctx context.Context, conn *sql.Conn) (*writer, error) {
	w := &writer{conn: conn, queue: make(chan *writeReq, queueLen), done: make(chan struct{}),
		stmts: make(map[string]*sql.Stmt, len(writeSQL))}
	control := map[**sql.Stmt]string{
		&w.begin: "BEGIN IMMEDIATE", &w.commit: "COMMIT", &w.rollback: "ROLLBACK",
		&w.savepoint: "SAVEPOINT row", &w.release: "RELEASE row", &w.rollbackTo: "ROLLBACK TO row",
	}
	var err error
	for dst, q := range control {
		if *dst, err = conn.PrepareContext(ctx, q); err != nil {
			break
		}
	}
	for _, q := range writeSQL {
		if err != nil {
			break
		}
		var st *sql.Stmt
		if st, err = conn.PrepareContext(ctx, q); err == nil {
			w.stmts[q] = st
		}
	}
	if err != nil {
		for _, st := range w.allStmts() {
			if st != nil {
				st.Close()
			}
		}
		return nil, err
	}
	go w.run()
	return w, nil
}
