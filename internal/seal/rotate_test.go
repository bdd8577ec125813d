package seal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
)

// clock is a settable clock for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) opts(batch int) Options {
	return Options{PollInterval: -1, BatchSize: batch, Now: c.Now}
}
func startAuto(t *testing.T, st Store, o Options) *Manager {
	t.Helper()
	return startAutoWith(t, st, o, false)
}

// startAutoWith starts a Manager with background retirement off if
// manualRetire (the test calls retire itself).
func startAutoWith(t *testing.T, st Store, o Options, manualRetire bool) *Manager {
	t.Helper()
	m := New(st, o)
	m.testOnlyManualRetire = manualRetire
	t.Cleanup(func() { m.Close() })
	if err := m.LoadAuto(t.Context(), keyOf(1)); err != nil {
		t.Fatal(err)
	}
	waitResumed(t, m)
	return m
}

// waitResumed waits until m has resumed any rotation left in progress, so
// that the test does not race with it.
func waitResumed(t *testing.T, m *Manager) {
	t.Helper()
	m.mu.Lock()
	ch := m.resumed
	m.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("resume did not finish")
	}
}

func TestRotateRoot(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		clk := newClock()
		m := startAuto(t, st, clk.opts(3))
		replica := startAuto(t, st, clk.opts(3)) // holds only v1 until it refreshes
		f := createKeys(t, st, mustKeyring(t, m), "pk", 10)

		res, err := m.RotateRoot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res != (RotateResult{From: 1, To: 2, Rewrapped: 10}) {
			t.Fatalf("%+v", res)
		}
		if got := rootVersions(t, st); got[2] != 10 || len(got) != 1 {
			t.Fatalf("root versions after rotation: %v", got)
		}
		sd := storedDoc(t, st)
		if sd.Current != 2 || sd.Target != 0 || !slices.Equal(sd.versions(), []int{1, 2}) {
			t.Fatalf("seal document: %+v", sd)
		}
		kr := mustKeyring(t, m)
		if kr.Version() != 2 || m.Status().RootVersion != 2 {
			t.Fatalf("keyring version %d", kr.Version())
		}
		f.check(t, st, m)
		// The replica picks v2 up on demand.
		if mustKeyring(t, replica).Has(2) {
			t.Fatal("replica knew v2 without refreshing")
		}
		f.check(t, st, replica)
		if v := mustKeyring(t, replica).Version(); v != 2 {
			t.Fatalf("replica seals under v%d after refresh", v)
		}
		// New keys use v2; a second rotation moves everything to v3.
		g := createKeys(t, st, mustKeyring(t, replica), "new", 2)
		if g.pks[0].RootVersion != 2 {
			t.Fatal("new key not under v2")
		}
		res, err = replica.RotateRoot(ctx)
		if err != nil || res.From != 2 || res.To != 3 || res.Rewrapped != 12 {
			t.Fatalf("second rotation: %+v, %v", res, err)
		}
		f.check(t, st, m)
		g.check(t, st, m)
		// Shares/keys did not change: a restart with the same key reads all.
		r := startAuto(t, st, clk.opts(3))
		f.check(t, st, r)
		g.check(t, st, r)
	})
}

func TestRotateWithReplicaPolling(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	m := startAuto(t, st, Options{PollInterval: -1})
	replica := New(st, Options{PollInterval: 10 * time.Millisecond})
	t.Cleanup(func() { replica.Close() })
	if err := replica.LoadAuto(t.Context(), keyOf(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RotateRoot(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for mustKeyring(t, replica).Version() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("replica did not pick up the rotation by polling")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRotateUnderLoad reads every key continuously, through a second
// replica too, while the root key rotates: no read may fail.
func TestRotateUnderLoad(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		m := startAuto(t, st, Options{PollInterval: -1, BatchSize: 2})
		replica := startAuto(t, st, Options{PollInterval: 5 * time.Millisecond})
		f := createKeys(t, st, mustKeyring(t, m), "pk", 30)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, failures atomic.Int64
		for _, mgr := range []*Manager{m, replica, m, replica} {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := f.pks[i%len(f.pks)].Name
					if err := f.open(ctx, st, mgr, name); err != nil {
						failures.Add(1)
						t.Errorf("read %s during rotation: %v", name, err)
					}
					reads.Add(1)
				}
			})
		}
		// Each rotation starts only once readers are running, so that a
		// busy machine cannot let all rotations finish before any read.
		waitReads := func(n int64) {
			for deadline := time.Now().Add(10 * time.Second); reads.Load() < n && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		for i := range 3 {
			waitReads(int64(4 * (i + 1)))
			if _, err := m.RotateRoot(ctx); err != nil {
				t.Fatal(err)
			}
		}
		waitReads(16)
		close(stop)
		wg.Wait()
		if failures.Load() > 0 || reads.Load() == 0 {
			t.Fatalf("%d reads, %d failures", reads.Load(), failures.Load())
		}
		if got := rootVersions(t, st); got[4] != 30 {
			t.Fatalf("root versions: %v", got)
		}
	})
}

func TestConcurrentRotations(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		a := startAuto(t, st, Options{PollInterval: -1, BatchSize: 2})
		b := startAuto(t, st, Options{PollInterval: -1, BatchSize: 2})
		f := createKeys(t, st, mustKeyring(t, a), "pk", 20)
		var wg sync.WaitGroup
		for _, m := range []*Manager{a, b, a, b} {
			wg.Go(func() {
				if _, err := m.RotateRoot(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		sd := storedDoc(t, st)
		if sd.Target != 0 {
			t.Fatalf("rotation left in progress: %+v", sd)
		}
		if got := rootVersions(t, st); got[sd.Current] != 20 {
			t.Fatalf("root versions %v, current %d", got, sd.Current)
		}
		f.check(t, st, a)
		f.check(t, st, b)
	})
}

var errCrash = errors.New("simulated crash")

// setCrash makes the rotation stop at step. Not for parallel tests.
func setCrash(t *testing.T, step string) {
	testOnlyCrashAfter = func(s string) error {
		if s == step {
			return errCrash
		}
		return nil
	}
	t.Cleanup(func() { testOnlyCrashAfter = nil })
}

// TestCrashDuringRotation stops a rotation at each step, checks that every
// key stays readable in that state by a freshly started replica, and that
// a restart finishes the rotation.
func TestCrashDuringRotation(t *testing.T) {
	for _, step := range []string{"begin", "publish", "rewrap:1", "rewrap:4", "finish"} {
		t.Run(step, func(t *testing.T) {
			eachStore(t, func(t *testing.T, st testStore) {
				ctx := t.Context()
				m := startAuto(t, st, Options{PollInterval: -1, BatchSize: 3})
				f := createKeys(t, st, mustKeyring(t, m), "pk", 8)
				setCrash(t, step)
				if _, err := m.RotateRoot(ctx); !errors.Is(err, errCrash) {
					t.Fatalf("RotateRoot = %v, want the crash", err)
				}
				m.Close() // the process is gone
				testOnlyCrashAfter = nil

				// The state left behind is readable as it is, by a keyring
				// built from the stored seal document alone.
				f.checkWith(t, st, docKeyring(t, st))
				// A restart resumes the rotation in the background; reads
				// work while it runs.
				r := New(st, Options{PollInterval: -1, BatchSize: 3})
				t.Cleanup(func() { r.Close() })
				if err := r.LoadAuto(ctx, keyOf(1)); err != nil {
					t.Fatal(err)
				}
				f.check(t, st, r)
				waitResumed(t, r)
				waitRotated(t, r, 2)
				if got := rootVersions(t, st); got[2] != 8 || len(got) != 1 {
					t.Fatalf("after restart: root versions %v", got)
				}
				f.check(t, st, r)
				g := createKeys(t, st, mustKeyring(t, r), "new", 1)
				if g.pks[0].RootVersion != 2 {
					t.Fatal("new key not under v2")
				}
				// An explicit RotateRoot after the resume starts v3.
				if res, err := r.RotateRoot(ctx); err != nil || res.To != 3 || res.Resumed {
					t.Fatalf("next rotation: %+v, %v", res, err)
				}
				f.check(t, st, r)
			})
		})
	}
}

// TestRotateRootResumes checks that RotateRoot after a crash finishes the
// interrupted rotation rather than starting another.
func TestRotateRootResumes(t *testing.T) {
	st := newFakeStore()
	ctx := t.Context()
	m := startAuto(t, st, Options{PollInterval: -1, BatchSize: 2})
	f := createKeys(t, st, mustKeyring(t, m), "pk", 5)
	setCrash(t, "rewrap:2")
	if _, err := m.RotateRoot(ctx); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	testOnlyCrashAfter = nil
	res, err := m.RotateRoot(ctx)
	if err != nil || !res.Resumed || res.From != 1 || res.To != 2 || res.Rewrapped != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	f.check(t, st, m)
}

func waitRotated(t *testing.T, m *Manager, to int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := m.Status()
		if s.RootVersion == to && s.RotatingFrom == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation to v%d did not finish: %+v", to, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetireOldVersions(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		clk := newClock()
		o := clk.opts(5)
		o.Grace = time.Hour
		m := startAutoWith(t, st, o, true)
		f := createKeys(t, st, mustKeyring(t, m), "pk", 4)
		if _, err := m.RotateRoot(ctx); err != nil {
			t.Fatal(err)
		}
		// Within the grace period nothing is retired.
		if wait, err := m.retire(ctx); err != nil || wait <= 0 || wait > time.Hour {
			t.Fatalf("retire during grace = %v, %v", wait, err)
		}
		if vs := storedDoc(t, st).versions(); !slices.Equal(vs, []int{1, 2}) {
			t.Fatalf("versions %v", vs)
		}
		// A replica that was behind writes a key under v1 after the rotation.
		stale, _ := keyring.New(keyOf(1), 1)
		late := createKeys(t, st, stale, "late", 1)
		clk.Add(time.Hour + time.Second)
		wait, err := m.retire(ctx)
		if err != nil || wait != time.Hour {
			t.Fatalf("retire with a late key = %v, %v; want another grace period", wait, err)
		}
		if vs := storedDoc(t, st).versions(); !slices.Equal(vs, []int{1, 2}) {
			t.Fatalf("v1 retired although a key was just rewrapped from it: %v", vs)
		}
		late.check(t, st, m)
		clk.Add(time.Hour + time.Second)
		if wait, err := m.retire(ctx); err != nil || wait != 0 {
			t.Fatalf("retire = %v, %v", wait, err)
		}
		if vs := storedDoc(t, st).versions(); !slices.Equal(vs, []int{2}) {
			t.Fatalf("versions after retire %v", vs)
		}
		if mustKeyring(t, m).Has(1) {
			t.Fatal("keyring still holds v1")
		}
		f.check(t, st, m)
		late.check(t, st, m)
		// A restart (key file unchanged) reads everything.
		r := startAutoWith(t, st, o, true)
		f.check(t, st, r)
		// Rotating after v1 is gone: v3, and retiring leaves only v3.
		if res, err := r.RotateRoot(ctx); err != nil || res.To != 3 {
			t.Fatal(res, err)
		}
		clk.Add(2 * time.Hour)
		if _, err := r.retire(ctx); err != nil {
			t.Fatal(err)
		}
		if vs := storedDoc(t, st).versions(); !slices.Equal(vs, []int{3}) {
			t.Fatalf("versions %v", vs)
		}
		f.check(t, st, r)
	})
}

func TestRetireCrash(t *testing.T) {
	st := newFakeStore()
	clk := newClock()
	o := clk.opts(5)
	o.Grace = time.Hour
	m := startAutoWith(t, st, o, true)
	f := createKeys(t, st, mustKeyring(t, m), "pk", 2)
	if _, err := m.RotateRoot(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	setCrash(t, "retire")
	if _, err := m.retire(t.Context()); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	testOnlyCrashAfter = nil
	// The document was written before the crash point; a restart works.
	r := startAuto(t, st, o)
	f.check(t, st, r)
	if vs := storedDoc(t, st).versions(); !slices.Equal(vs, []int{2}) {
		t.Fatalf("versions %v", vs)
	}
}

// TestBackgroundRetire lets the real timer retire v1 with a short grace.
func TestBackgroundRetire(t *testing.T) {
	st := newFakeStore()
	m := startAuto(t, st, Options{PollInterval: -1, Grace: 20 * time.Millisecond})
	f := createKeys(t, st, mustKeyring(t, m), "pk", 2)
	if _, err := m.RotateRoot(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(storedDoc(t, st).Roots) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("v1 not retired in the background")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.check(t, st, m)
}

// TestDamagedKeyKeepsRotationInProgress: keys that do not open are not
// lost track of; the rotation does everything else and stays in progress.
func TestDamagedKeyKeepsRotationInProgress(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		m := startAuto(t, st, Options{PollInterval: -1, BatchSize: 2})
		f := createKeys(t, st, mustKeyring(t, m), "pk", 5)
		// Three keys (more than a batch) sealed under a foreign root key.
		foreign, _ := keyring.New(keyOf(0x66), 1)
		createKeys(t, st, foreign, "bad", 3)
		res, err := m.RotateRoot(ctx)
		if err == nil || res.Rewrapped != 5 {
			t.Fatalf("RotateRoot = %+v, %v; want 5 rewrapped and an error", res, err)
		}
		if sd := storedDoc(t, st); sd.Target != 2 {
			t.Fatalf("rotation not left in progress: %+v", sd)
		}
		f.check(t, st, m)
		if v := mustKeyring(t, m).Version(); v != 2 {
			t.Fatalf("new keys under v%d during the rotation", v)
		}
		for _, n := range []string{"badaa", "badab", "badac"} {
			if err := st.DestroyPrimaryKey(ctx, "alice", n); err != nil {
				t.Fatal(err)
			}
		}
		res, err = m.RotateRoot(ctx)
		if err != nil || !res.Resumed || res.To != 2 {
			t.Fatalf("after destroying the damaged keys: %+v, %v", res, err)
		}
		f.check(t, st, m)
	})
}

// TestCrashEnv runs the test binary with KMS_TEST_CRASH_AT and checks the
// process exits with status 3 at the step, leaving a resumable state.
func TestCrashEnv(t *testing.T) {
	if os.Getenv("SEAL_CRASH_HELPER") != "" {
		crashHelper()
		return
	}
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashEnv$")
	cmd.Env = append(os.Environ(), "SEAL_CRASH_HELPER="+dir, "KMS_TEST_CRASH_AT=rewrap:3")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	st := openSQLiteAt(t, dir)
	if got := rootVersions(t, st); got[1] != 2 || got[2] != 3 {
		t.Fatalf("root versions after the crash: %v", got)
	}
	m := startAuto(t, st, Options{PollInterval: -1})
	waitRotated(t, m, 2)
	if got := rootVersions(t, st); got[2] != 5 {
		t.Fatalf("root versions after resume: %v", got)
	}
}

// crashHelper runs in the subprocess: 5 keys, then a rotation that
// KMS_TEST_CRASH_AT stops after 3 rewraps.
func crashHelper() {
	ctx := context.Background()
	st, err := sqliteOpen(ctx, os.Getenv("SEAL_CRASH_HELPER"))
	if err != nil {
		panic(err)
	}
	m := New(st, Options{PollInterval: -1, BatchSize: 2})
	if err := m.LoadAuto(ctx, keyOf(1)); err != nil {
		panic(err)
	}
	kr, _ := m.Keyring()
	st.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "x"})
	for i := range 5 {
		id := keyring.PrimaryID{Owner: "alice", Name: fmt.Sprint("k", i), Version: 1}
		w, _ := kr.NewPrimaryKey(id)
		if err := st.CreatePrimaryKey(ctx, kms.PrimaryKey{Owner: "alice", Name: id.Name, Version: 1, RootVersion: 1, Wrapped: w}); err != nil {
			panic(err)
		}
	}
	m.RotateRoot(ctx)
	fmt.Println("rotation was not interrupted")
	os.Exit(0)
}
