package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// hold makes the writer's first batch wait until Release, so that later
// requests pile up in the queue.
type hold struct {
	entered chan struct{} // closed when the writer holds its first batch
	release chan struct{}
	once    sync.Once
}

// holdFirstBatch installs a hold. It resets the hook when the test ends,
// after the DB's own cleanup has closed it. Tests defer Release so that a
// failing test does not leave Close waiting for the writer.
func holdFirstBatch(t *testing.T) *hold {
	t.Helper()
	h := &hold{entered: make(chan struct{}), release: make(chan struct{})}
	var first sync.Once
	testOnlyBeforeBatch = func(int) {
		first.Do(func() {
			close(h.entered)
			<-h.release
		})
	}
	t.Cleanup(func() { testOnlyBeforeBatch = nil })
	return h
}

// Release lets the writer go on. It may be called more than once.
func (h *hold) Release() { h.once.Do(func() { close(h.release) }) }

// waitQueued waits until n requests wait in db's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(db.w.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(db.w.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// seed creates user alice and her primary key pk.
func seed(t testing.TB, db *DB) {
	t.Helper()
	ctx := t.Context()
	if err := db.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePrimaryKey(ctx, kms.PrimaryKey{Owner: "alice", Name: "pk", Version: 1, RootVersion: 1, Wrapped: []byte("w"), Created: now()}); err != nil {
		t.Fatal(err)
	}
}

func dataKey(name string) kms.DataKey {
	return kms.DataKey{Owner: "alice", Primary: "pk", Name: name, PrimaryVersion: 1, Wrapped: []byte(name), Created: now()}
}

// TestGroupCommit queues many creates behind a held batch, including
// duplicates and a row whose primary key is missing, and checks that they
// commit together, that each caller gets its own outcome, and that every
// acknowledged row is readable.
func TestGroupCommit(t *testing.T) {
	h := holdFirstBatch(t)
	defer h.Release()
	db := newTestDB(t)
	ctx := t.Context()

	first := make(chan error, 1)
	go func() { first <- db.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: now()}) }()
	<-h.entered

	const n = 100
	errs := make([]error, n+2)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.CreateUser(ctx, kms.User{Name: fmt.Sprint("u", i), TokenHash: "h", Created: now()})
		})
	}
	wg.Go(func() { errs[n] = db.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "dup", Created: now()}) })
	wg.Go(func() {
		errs[n+1] = db.CreatePrimaryKey(ctx, kms.PrimaryKey{Owner: "nobody", Name: "pk", Version: 1, Wrapped: []byte("w")})
	})
	waitQueued(t, db, n+2)
	before := db.Stats()
	h.Release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("create u%d: %v", i, err)
		}
	}
	if !errors.Is(errs[n], kms.ErrExists) {
		t.Errorf("duplicate in batch: want ErrExists, got %v", errs[n])
	}
	if !errors.Is(errs[n+1], kms.ErrNotFound) {
		t.Errorf("missing owner in batch: want ErrNotFound, got %v", errs[n+1])
	}
	got := db.Stats()
	if got.Commits-before.Commits != 2 || got.Rows-before.Rows != n+1 {
		t.Errorf("stats went from %+v to %+v; want 2 commits of %d rows in all", before, got, n+1)
	}
	for i := range n {
		if _, err := db.User(ctx, fmt.Sprint("u", i)); err != nil {
			t.Errorf("acknowledged user u%d: %v", i, err)
		}
	}
	if u, err := db.User(ctx, "alice"); err != nil || u.TokenHash != "h" {
		t.Errorf("alice: got %+v, %v; the duplicate must not overwrite", u, err)
	}
}

// TestGroupCommitUnderLoad checks, without any hook, that concurrent
// callers share commits.
func TestGroupCommitUnderLoad(t *testing.T) {
	db := newTestDB(t)
	seed(t, db)
	ctx := t.Context()
	before := db.Stats()
	const workers, each = 32, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := db.CreateDataKey(ctx, dataKey(fmt.Sprintf("k%d-%d", w, i))); err != nil {
					t.Errorf("create: %v", err)
				}
			}
		})
	}
	wg.Wait()
	st := db.Stats()
	rows, commits := st.Rows-before.Rows, st.Commits-before.Commits
	t.Logf("%d rows in %d commits (%.1f rows/commit)", rows, commits, float64(rows)/float64(commits))
	if rows != workers*each || commits*2 > rows {
		t.Errorf("%d rows in %d commits; want %d rows, at least 2 per commit", rows, commits, workers*each)
	}
	for w := range workers {
		for i := range each {
			if _, err := db.DataKey(ctx, "alice", "pk", fmt.Sprintf("k%d-%d", w, i)); err != nil {
				t.Errorf("acknowledged data key: %v", err)
			}
		}
	}
}

// TestCanceledWhileQueued checks that a caller whose ctx ends while its
// request waits gets ctx's error at once, and its row is never written.
func TestCanceledWhileQueued(t *testing.T) {
	db := newTestDB(t)
	seed(t, db)
	h := holdFirstBatch(t)
	defer h.Release()
	ctx := t.Context()

	first := make(chan error, 1)
	go func() { first <- db.CreateDataKey(ctx, dataKey("first")) }()
	<-h.entered // "late" queues behind "first"

	lateCtx, cancel := context.WithCancel(ctx)
	late := make(chan error, 1)
	go func() { late <- db.CreateDataKey(lateCtx, dataKey("late")) }()
	waitQueued(t, db, 1)
	cancel()
	select {
	case err := <-late:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled create: want context.Canceled, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a canceled create kept waiting for the writer")
	}
	h.Release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// A later create goes through the writer after the abandoned request.
	if err := db.CreateDataKey(ctx, dataKey("after")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DataKey(ctx, "alice", "pk", "late"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("an abandoned create was written: %v", err)
	}
}

// TestCloseDrainsQueue checks that Close answers every queued request with
// its true outcome before it returns.
func TestCloseDrainsQueue(t *testing.T) {
	db := newTestDB(t)
	seed(t, db)
	h := holdFirstBatch(t)
	defer h.Release()
	ctx := t.Context()
	first := make(chan error, 1)
	go func() { first <- db.CreateDataKey(ctx, dataKey("first")) }()
	<-h.entered
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = db.CreateDataKey(ctx, dataKey(fmt.Sprint("k", i))) })
	}
	waitQueued(t, db, n)
	closed := make(chan error)
	go func() { closed <- db.Close() }()
	// Release the writer only once Close has closed the queue.
	for closing := false; !closing; time.Sleep(time.Millisecond) {
		db.w.mu.RLock()
		closing = db.w.closed
		db.w.mu.RUnlock()
	}
	h.Release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued create k%d: %v", i, err)
		}
	}
	if st := db.Stats(); st.Rows != n+3 {
		t.Errorf("%d rows written, want %d", st.Rows, n+3)
	}
}

// TestOtherRowErrorFailsOnlyItsCaller sends, in one batch with good rows, a
// row that SQLite rejects for a reason other than a duplicate or a missing
// parent (a STRICT type mismatch, which the public methods cannot produce).
// Its savepoint is rolled back and the rest of the batch commits.
func TestOtherRowErrorFailsOnlyItsCaller(t *testing.T) {
	h := holdFirstBatch(t)
	defer h.Release()
	db := newTestDB(t)
	ctx := t.Context()
	first := make(chan error, 1)
	go func() { first <- db.CreateUser(ctx, kms.User{Name: "first", TokenHash: "h"}) }()
	<-h.entered
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = db.CreateUser(ctx, kms.User{Name: "before", TokenHash: "h"}) })
	waitQueued(t, db, 1)
	wg.Go(func() { errs[1] = db.write(ctx, opUser, "bad", "h", false, "not a number") })
	waitQueued(t, db, 2)
	wg.Go(func() { errs[2] = db.CreateUser(ctx, kms.User{Name: "after", TokenHash: "h"}) })
	waitQueued(t, db, 3)
	h.Release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("good rows next to a bad one: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil || errors.Is(errs[1], kms.ErrExists) || errors.Is(errs[1], kms.ErrNotFound) {
		t.Fatalf("mistyped row: got %v", errs[1])
	}
	for _, name := range []string{"before", "after"} {
		if _, err := db.User(ctx, name); err != nil {
			t.Errorf("user %q: %v", name, err)
		}
	}
	if _, err := db.User(ctx, "bad"); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("the mistyped row was written: %v", err)
	}
}

// TestCompareAndSwapInOneBatch queues racing deletes of one doc revision,
// racing rewraps of one key version and destroys behind a held batch, so
// that they all run in one transaction: each sees the effects of those
// before it, exactly one of each race wins, and a failed destroy undoes
// nothing but itself.
func TestCompareAndSwapInOneBatch(t *testing.T) {
	db := newTestDB(t)
	seed(t, db)
	ctx := t.Context()
	if _, err := db.PutDoc(ctx, kms.Doc{Kind: "nonce", ID: "n", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDataKey(ctx, dataKey("dk")); err != nil {
		t.Fatal(err)
	}
	h := holdFirstBatch(t)
	defer h.Release()
	first := make(chan error, 1)
	go func() { first <- db.CreateUser(ctx, kms.User{Name: "first", TokenHash: "h", Created: now()}) }()
	<-h.entered

	const n = 8
	deletes, rewraps := make([]error, n), make([]error, n)
	var destroyMissing, destroy error
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { deletes[i] = db.DeleteDoc(ctx, "nonce", "n", 1) })
		wg.Go(func() {
			k := kms.PrimaryKey{Owner: "alice", Name: "pk", Version: 1, RootVersion: 2, Wrapped: []byte{byte(i)}}
			rewraps[i] = db.RewrapPrimaryKey(ctx, k, 1)
		})
	}
	wg.Go(func() { destroyMissing = db.DestroyPrimaryKey(ctx, "alice", "nope") })
	waitQueued(t, db, 2*n+1)
	wg.Go(func() { destroy = db.DestroyPrimaryKey(ctx, "alice", "pk") })
	waitQueued(t, db, 2*n+2)
	before := db.Stats()
	h.Release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for name, errs := range map[string][]error{"delete": deletes, "rewrap": rewraps} {
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, kms.ErrNotFound) && name == "delete", errors.Is(err, kms.ErrConflict) && name == "rewrap":
			default:
				t.Errorf("%s: unexpected error %v", name, err)
			}
		}
		if wins != 1 {
			t.Errorf("%d of %d racing %ss in one batch won, want 1", wins, n, name)
		}
	}
	if !errors.Is(destroyMissing, kms.ErrNotFound) || destroy != nil {
		t.Errorf("destroys: missing key gave %v, existing key gave %v", destroyMissing, destroy)
	}
	// The held batch (the user) and the queued one (a delete, a rewrap,
	// a destroy).
	if st := db.Stats(); st.Commits-before.Commits != 2 || st.Rows-before.Rows != 4 {
		t.Errorf("stats went from %+v to %+v; want 2 commits of 4 operations in all", before, st)
	}
	if _, err := db.DataKey(ctx, "alice", "pk", "dk"); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("data key after destroy: %v", err)
	}
}
