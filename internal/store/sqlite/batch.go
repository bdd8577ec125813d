package sqlite

import (
	"context"
	"errors"
	"runtime"

	"modernc.org/sqlite"
)

const (
	// queueLen bounds the requests waiting for the writer; submit blocks
	// (honouring ctx) when it is full.
	queueLen = 1024
	// maxBatch bounds the rows in one transaction, and so the latency that
	// one commit adds to its first caller.
	maxBatch = 256
)

// testOnlyBeforeBatch, if set, runs on the writer goroutine before each
// batch begins, with the number of requests in the batch.
var testOnlyBeforeBatch func(n int)

// run is the group commit loop. It takes whatever is queued (at least one
// request, at most maxBatch), writes it in one transaction and answers each
// caller. No timer is involved: while one batch waits for its fsync, the
// next one queues up, so batches grow with the load and a lone request
// waits for nothing but its own commit. run returns when the queue is
// closed and drained.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]*writeReq, 0, maxBatch)
	for r := range w.queue {
		batch = append(batch[:0], r)
		// The callers answered by the last batch were just woken, and
		// under load they come straight back with their next create. Let
		// them queue before draining, or they miss this batch and wait a
		// whole extra commit, and callers split into two cohorts whose
		// batches alternate at half the size (measured: 32 callers gave
		// batches of 17, 15, 17, 15...; with the yield most hold 25-32 and
		// throughput rose ~25%). With nothing else runnable, Gosched
		// returns at once.
		runtime.Gosched()
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.runBatch(batch)
		clear(batch) // let answered requests be collected
	}
}

// runBatch writes batch in one transaction. Each claimed operation runs in
// its own savepoint, so an error in one (a duplicate, a missing parent, a
// failed compare-and-swap) undoes that operation alone and is reported to
// its caller alone. Operations are committed together, with one fsync; only
// then do their callers hear their outcome.
//
// SQL runs with a context of its own, not the callers': a canceled
// statement would roll back the whole transaction. A caller's ctx is
// checked when its row is claimed, just before its savepoint.
func (w *writer) runBatch(batch []*writeReq) {
	if testOnlyBeforeBatch != nil {
		testOnlyBeforeBatch(len(batch))
	}
	ctx := context.Background()
	if _, err := w.begin.ExecContext(ctx); err != nil {
		failRest(batch, translate(err))
		return
	}
	ran := make([]*writeReq, 0, len(batch))
	errs := make([]error, 0, len(batch))
	ok := 0
	for i, r := range batch {
		if !r.claim() {
			continue
		}
		rowErr, fatal := w.runOp(ctx, r)
		if fatal != nil {
			// The transaction is gone (SQLite rolls back on I/O errors
			// and the like): nothing in this batch is written.
			w.rollback.ExecContext(ctx)
			fatal = translate(fatal)
			answer(ran, errs, fatal)
			r.done <- fatal
			failRest(batch[i+1:], fatal)
			return
		}
		ran = append(ran, r)
		errs = append(errs, rowErr)
		if rowErr == nil {
			ok++
		}
	}
	if ok == 0 {
		w.rollback.ExecContext(ctx) // nothing to write, nothing to sync
		answer(ran, errs, nil)
		return
	}
	if _, err := w.commit.ExecContext(ctx); err != nil {
		// If the failure was the fsync itself, the commit record may yet
		// reach the disk and be recovered on the next open: the outcome is
		// unknown, which the ErrUnavailable we report allows for.
		w.rollback.ExecContext(ctx) // in case the transaction is still open
		answer(ran, errs, translate(err))
		return
	}
	w.commits.Add(1)
	w.rows.Add(uint64(ok))
	answer(ran, errs, nil)
}

// runOp runs r's operation in a savepoint. rowErr is r's own failure,
// already undone; fatal means the transaction cannot go on.
func (w *writer) runOp(ctx context.Context, r *writeReq) (rowErr, fatal error) {
	if _, err := w.savepoint.ExecContext(ctx); err != nil {
		return nil, err
	}
	err := ops[r.op](ctx, w, r.args)
	if err != nil {
		// A constraint failure has already undone its statement and left
		// the transaction open, but an operation of several statements
		// may have done more; ROLLBACK TO undoes all of it (and fails if
		// SQLite rolled back the whole transaction, most likely because
		// of err itself).
		if _, rbErr := w.rollbackTo.ExecContext(ctx); rbErr != nil {
			if se := (*sqlite.Error)(nil); errors.As(err, &se) {
				return nil, err
			}
			return nil, rbErr
		}
	}
	if _, relErr := w.release.ExecContext(ctx); relErr != nil {
		return nil, relErr
	}
	return translate(err), nil
}

// answer sends each ran request its error. If commitErr is not nil, every
// request hears it instead: it decided the fate of the operations that
// succeeded, and the failures may have been judged against operations of
// this batch that are now undone (a delete that found no row because an
// earlier one in the batch deleted it), so their outcome is unknown too.
func answer(ran []*writeReq, errs []error, commitErr error) {
	for i, r := range ran {
		err := errs[i]
		if commitErr != nil {
			err = commitErr
		}
		r.done <- err
	}
}

// failRest answers err to every request in batch that can still be claimed.
func failRest(batch []*writeReq, err error) {
	for _, r := range batch {
		if r.claim() {
			r.done <- err
		}
	}
}
