package seal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
)

// testOnlyCrashAfter, if set, is called after each step of a root key
// rotation; a non-nil error stops the rotation right there, as a crash
// would (no clean-up runs). The steps are:
//
//	begin       the seal document holds the new version as target
//	publish     this process's keyring seals new keys under it
//	rewrap:<n>  this call has rewrapped n primary keys (n = 1, 2, ...)
//	finish      the seal document has the new version as current
//	retire      the seal document no longer holds the old versions
//
// The environment variable KMS_TEST_CRASH_AT=<step> sets it at start to a
// function that exits the process with status 3 at that step, so an
// end-to-end test can kill kmsd mid-rotation. Never set it in production.
var testOnlyCrashAfter func(step string) error

// crashExitCode is the exit status KMS_TEST_CRASH_AT uses.
const crashExitCode = 3

func init() {
	if at := os.Getenv("KMS_TEST_CRASH_AT"); at != "" {
		testOnlyCrashAfter = func(step string) error {
			if step == at {
				fmt.Fprintf(os.Stderr, "kms: KMS_TEST_CRASH_AT=%s reached; exiting with status %d\n", at, crashExitCode)
				os.Exit(crashExitCode)
			}
			return nil
		}
	}
}

func crashPoint(step string) error {
	if f := testOnlyCrashAfter; f != nil {
		return f(step)
	}
	return nil
}

// RotateResult describes a root key rotation.
type RotateResult struct {
	// From and To are the root key versions rotated from and to.
	From, To int
	// Rewrapped counts the primary keys this call rewrapped (other replicas
	// may have rewrapped others).
	Rewrapped int
	// Resumed is true if the call finished a rotation that was already in
	// progress (after a crash, or started by another replica) instead of
	// starting one.
	Resumed bool
}

// RotateRoot rotates the root key online: it adds a random root key
// version N+1 to the seal document as the target, seals new primary keys
// under it, rewraps every primary key from older versions to N+1 with
// compare-and-swap, and makes N+1 current. Readers keep working throughout:
// every replica's keyring holds both versions. Old versions are retired in
// the background once no key and no replica can use them (Options.Grace
// after the rotation finished). Shares (or the key file) do not change.
//
// If a rotation is already in progress, RotateRoot finishes it instead of
// starting another (RotateResult.Resumed). It returns an error wrapping
// kms.ErrSealed while sealed; a store error or a crash leaves a state from
// which the next RotateRoot or start resumes. Primary keys that do not
// open (damaged) keep the rotation in progress and are reported in the
// error; every other key is rotated.
func (m *Manager) RotateRoot(ctx context.Context) (RotateResult, error) {
	return m.rotate(ctx, true)
}

// session returns the seal key and the context of the current unseal.
func (m *Manager) session() (*sealKey, context.Context, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == nil {
		return nil, nil, kms.Errorf(kms.ErrSealed, "the server is sealed")
	}
	return m.key, m.sess, nil
}

// rotate runs or resumes a rotation; with start false it only resumes.
func (m *Manager) rotate(ctx context.Context, start bool) (RotateResult, error) {
	key, session, err := m.session()
	if err != nil {
		return RotateResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(session, cancel)() // Seal stops the rotation
	m.rotMu.Lock()
	defer m.rotMu.Unlock()

	doc, sd, resumed, err := m.begin(ctx, key, start)
	if err != nil || sd.Target == 0 {
		return RotateResult{}, err
	}
	res := RotateResult{From: sd.Current, To: sd.Target, Resumed: resumed}
	if resumed {
		m.log.Info("resuming root key rotation", "from", res.From, "to", res.To)
	} else {
		m.log.Info("root key rotation started", "from", res.From, "to", res.To)
	}
	if err := m.install(doc, sd, key); err != nil {
		return res, err
	}
	if err := crashPoint("publish"); err != nil {
		return res, err
	}
	kr, err := sd.keyring(key)
	if err != nil {
		return res, err
	}
	n, failed, err := m.rewrapAll(ctx, kr, res.To)
	res.Rewrapped = n
	if errors.Is(err, errSuperseded) {
		err, failed = nil, 0 // finish sees that another replica finished
	}
	if err != nil {
		return res, fmt.Errorf("rotate root key to version %d: %w", res.To, err)
	}
	if failed > 0 {
		return res, fmt.Errorf("rotate root key to version %d: %d primary keys do not open and were not rewrapped; the rotation stays in progress (both versions kept): destroy or restore them and rotate again", res.To, failed)
	}
	doc, sd, err = m.finish(ctx, key, res.To)
	if err != nil {
		return res, fmt.Errorf("rotate root key to version %d: %w", res.To, err)
	}
	if err := crashPoint("finish"); err != nil {
		return res, err
	}
	m.log.Info("root key rotation finished", "from", res.From, "to", res.To, "rewrapped", n)
	if err := m.install(doc, sd, key); err != nil {
		return res, err
	}
	m.startRetire()
	return res, nil
}

// maxCASAttempts bounds retries of a seal document update that lost a
// compare-and-swap race.
const maxCASAttempts = 8

// begin returns the seal document with a rotation in progress: the one
// found (resumed), or, if start, a new one it wrote with a fresh target
// version. Without start and with no rotation in progress it returns the
// document with Target 0.
func (m *Manager) begin(ctx context.Context, key *sealKey, start bool) (kms.Doc, *sealDoc, bool, error) {
	for range maxCASAttempts {
		doc, sd, err := m.readDoc(ctx)
		if err != nil {
			return kms.Doc{}, nil, false, err
		}
		if !key.matches(sd.Check) {
			return kms.Doc{}, nil, false, errors.New("seal document no longer matches the seal key held")
		}
		if sd.Target != 0 || !start {
			return doc, sd, sd.Target != 0, nil
		}
		v := sd.maxVersion() + 1
		root := make([]byte, KeyLen)
		rand.Read(root)
		sealed, err := key.sealRoot(v, root)
		clear(root)
		if err != nil {
			return kms.Doc{}, nil, false, err
		}
		sd.Roots = append(sd.Roots, rootEntry{Version: v, Sealed: sealed, Created: m.opt.Now().UTC()})
		sd.Target = v
		doc.Value = sd.marshal()
		doc, err = m.store.PutDoc(ctx, doc)
		if errors.Is(err, kms.ErrConflict) {
			continue
		}
		if err != nil {
			return kms.Doc{}, nil, false, fmt.Errorf("store seal document: %w", err)
		}
		return doc, sd, false, crashPoint("begin")
	}
	return kms.Doc{}, nil, false, fmt.Errorf("seal document keeps changing: %w", kms.ErrConflict)
}

// errSuperseded reports that a sweep met a primary key under a root
// version newer than its target: another replica finished the rotation
// and started the next one.
var errSuperseded = errors.New("a newer root key version exists")

// rewrapAll rewraps every primary key not under root version to, using kr
// (which holds every version of the seal document). It returns how many it
// rewrapped and how many do not open. A key another replica rewrapped
// first (conflict) or destroyed meanwhile is skipped.
//
// PrimaryKeysToRewrap has no cursor: keys that fail stay in its answer, so
// the limit grows by their number and every query makes progress.
func (m *Manager) rewrapAll(ctx context.Context, kr *keyring.Keyring, to int) (rewrapped, failed int, err error) {
	bad := make(map[string]bool)
	for {
		rows, err := m.store.PrimaryKeysToRewrap(ctx, to, m.opt.BatchSize+len(bad))
		if err != nil {
			return rewrapped, len(bad), fmt.Errorf("list primary keys to rewrap: %w", err)
		}
		progress := false
		for _, pk := range rows {
			if pk.RootVersion > to {
				// Only a rotation that began after ours finished can have
				// written a newer version: ours is done.
				return rewrapped, len(bad), errSuperseded
			}
			name := pk.Owner + "\x00" + pk.Name + "\x00" + strconv.Itoa(pk.Version)
			if bad[name] {
				continue
			}
			progress = true
			id := keyring.PrimaryID{Owner: pk.Owner, Name: pk.Name, Version: pk.Version}
			wrapped, err := kr.Rewrap(pk.Wrapped, id, pk.RootVersion, to)
			if err != nil {
				bad[name] = true
				m.log.Error("primary key does not open; not rewrapped", "owner", pk.Owner, "name", pk.Name,
					"version", pk.Version, "root_version", pk.RootVersion)
				continue
			}
			nk := pk
			nk.Wrapped, nk.RootVersion = wrapped, to
			switch err := m.store.RewrapPrimaryKey(ctx, nk, pk.RootVersion); {
			case err == nil:
				rewrapped++
				if err := crashPoint("rewrap:" + strconv.Itoa(rewrapped)); err != nil {
					return rewrapped, len(bad), err
				}
			case errors.Is(err, kms.ErrConflict), errors.Is(err, kms.ErrNotFound):
				// Another replica rewrapped it, or it was destroyed.
			default:
				return rewrapped, len(bad), fmt.Errorf("rewrap primary key: %w", err)
			}
		}
		if !progress {
			return rewrapped, len(bad), nil
		}
	}
}

// finish makes version to current and ends the rotation. If another
// replica finished it already, it returns the document as it is.
func (m *Manager) finish(ctx context.Context, key *sealKey, to int) (kms.Doc, *sealDoc, error) {
	for range maxCASAttempts {
		doc, sd, err := m.readDoc(ctx)
		if err != nil {
			return kms.Doc{}, nil, err
		}
		if sd.Target != to {
			if sd.Current >= to {
				return doc, sd, nil // finished by another replica
			}
			return kms.Doc{}, nil, fmt.Errorf("seal document changed unexpectedly (target %d, current %d)", sd.Target, sd.Current)
		}
		sd.Current, sd.Target, sd.Finished = to, 0, m.opt.Now().UTC()
		doc.Value = sd.marshal()
		doc, err = m.store.PutDoc(ctx, doc)
		if errors.Is(err, kms.ErrConflict) {
			continue
		}
		if err != nil {
			return kms.Doc{}, nil, fmt.Errorf("store seal document: %w", err)
		}
		return doc, sd, nil
	}
	return kms.Doc{}, nil, fmt.Errorf("seal document keeps changing: %w", kms.ErrConflict)
}

// resume runs at unseal: it finishes a rotation left in progress, then
// retires old root versions when due.
func (m *Manager) resume(ctx context.Context, resumed chan struct{}) {
	if _, err := m.rotate(ctx, false); err != nil && ctx.Err() == nil {
		m.log.Error("resume root key rotation", "err", err)
	}
	close(resumed)
	if !m.testOnlyManualRetire {
		m.retireLoop(ctx)
	}
}

// startRetire starts the background retirement of old root versions,
// unless it runs already or the Manager is sealed.
func (m *Manager) startRetire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil || m.retiring || m.testOnlyManualRetire {
		return
	}
	ctx := m.sess
	m.goBackground(func() { m.retireLoop(ctx) })
}

// retireLoop retires old root versions, waiting as long as retire asks.
func (m *Manager) retireLoop(ctx context.Context) {
	m.mu.Lock()
	if m.retiring {
		m.mu.Unlock()
		return
	}
	m.retiring = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.retiring = false
		m.mu.Unlock()
	}()
	for {
		wait, err := m.retire(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Error("retire old root key versions", "err", err)
			wait = m.opt.Grace
		}
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// retire drops the root versions other than the current one from the seal
// document, once that is safe:
//
//   - no rotation is in progress;
//   - Options.Grace has passed since the last rotation finished, so every
//     replica has long sealed new keys under the current version and no
//     cache holds a primary key blob from before the rewrap;
//   - a sweep finds no primary key left under an old version. If it
//     rewraps some (written late by a replica that was behind), the grace
//     period starts again, for the same reasons.
//
// It returns how long to wait before calling it again (0: nothing to do).
func (m *Manager) retire(ctx context.Context) (time.Duration, error) {
	key, _, err := m.session()
	if err != nil {
		return 0, err
	}
	m.rotMu.Lock()
	defer m.rotMu.Unlock()
	doc, sd, err := m.readDoc(ctx)
	if err != nil {
		return 0, err
	}
	if !key.matches(sd.Check) {
		return 0, errors.New("seal document no longer matches the seal key held")
	}
	if sd.Target != 0 || len(sd.Roots) == 1 {
		return 0, nil
	}
	if wait := sd.Finished.Add(m.opt.Grace).Sub(m.opt.Now()); wait > 0 {
		return wait, nil
	}
	kr, err := sd.keyring(key)
	if err != nil {
		return 0, err
	}
	n, failed, err := m.rewrapAll(ctx, kr, sd.Current)
	switch {
	case errors.Is(err, errSuperseded):
		return 0, nil // a new rotation began; its finish retires later
	case err != nil:
		return 0, err
	case failed > 0:
		return 0, fmt.Errorf("%d primary keys under old root versions do not open; keeping those versions", failed)
	case n > 0:
		m.log.Warn("rewrapped primary keys created late under an old root version; retiring it later", "rewrapped", n)
		sd.Finished = m.opt.Now().UTC()
	default:
		dropped := slices.DeleteFunc(sd.versions(), func(v int) bool { return v == sd.Current })
		sd.Roots = slices.DeleteFunc(sd.Roots, func(r rootEntry) bool { return r.Version != sd.Current })
		m.log.Info("retiring old root key versions", "versions", dropped)
	}
	doc.Value = sd.marshal()
	doc, err = m.store.PutDoc(ctx, doc)
	if errors.Is(err, kms.ErrConflict) {
		return time.Second, nil // another replica changed it: look again
	}
	if err != nil {
		return 0, fmt.Errorf("store seal document: %w", err)
	}
	if n == 0 {
		if err := crashPoint("retire"); err != nil {
			return 0, err
		}
	}
	if err := m.install(doc, sd, key); err != nil {
		return 0, err
	}
	if n > 0 {
		return m.opt.Grace, nil
	}
	return 0, nil
}
