// Package seal holds the root key versions of a running server: it unseals
// them (from Shamir shares or from an automatic source), publishes the
// keyring the service uses, and rotates the root key online.
//
// # Keys
//
// The seal key (32 bytes) comes from a key file or the ROOT_KEY variable
// (package rootkey, "auto-unseal"), or is reconstructed from Shamir shares
// (package shamir) in BigDL's Gen-2 share format. Root key version 1 IS
// the seal key, so every primary key sealed before this package existed
// stays readable. Versions ≥ 2 are random and kept in the store's seal
// document ([DocKind]/[DocID]) sealed under the seal key, next to a check
// value that detects a wrong seal key before anything is loaded. Operators
// therefore keep their shares across root rotations (Vault's unseal key
// and root key).
//
// # Rotation
//
// [Manager.RotateRoot] adds a version, switches new keys to it, rewraps
// every primary key with compare-and-swap, then makes it current. Every
// step is a single atomic store write and every intermediate state is
// readable by every replica, so a crash anywhere loses nothing and the next
// start (or RotateRoot) resumes. Old versions are retired later, when no
// primary key and no replica can still use them. The state machine and the
// crash-safety argument are in docs/spec/sealing.md.
//
// # Replicas
//
// Several kmsd processes may share one store. Each one re-reads the seal
// document every [Options.PollInterval] and whenever it meets a primary key
// under a root version it does not hold ([Manager.KeyringFor]).
//
// # Security limits
//
// The seal key and root keys live in process memory while unsealed.
// [Manager.Seal] drops them but does not zero them (requests in flight may
// still use a keyring, and Go cannot reliably erase memory anyway). Unseal
// shares are kept in memory only, per process, and zeroed (best effort)
// once combined. A replica frozen for longer than [Options.Grace] in the
// middle of creating a primary key could store it under a root version
// that was retired meanwhile; Grace is generous for that reason.
package seal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/shamir"
)

// Store is the part of the key store the Manager needs (see kms.Lifecycle).
type Store interface {
	Doc(ctx context.Context, kind, id string) (kms.Doc, error)
	PutDoc(ctx context.Context, d kms.Doc) (kms.Doc, error)
	PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) ([]kms.PrimaryKey, error)
	RewrapPrimaryKey(ctx context.Context, k kms.PrimaryKey, oldRootVersion int) error
}

// Defaults for [Options].
const (
	DefaultPollInterval = 5 * time.Second
	DefaultGrace        = 10 * time.Minute
	DefaultBatchSize    = 100
	// minRefreshGap is how long a root version that a refresh did not
	// find is not looked for again.
	minRefreshGap = time.Second
)

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	// Logger receives operational messages; none if nil.
	Logger *slog.Logger
	// PollInterval is how often an unsealed Manager re-reads the seal
	// document to pick up rotations by other replicas (default 5s;
	// negative disables polling).
	PollInterval time.Duration
	// Grace is how long after a rotation finished the old root versions are
	// kept (default 10m). It must exceed PollInterval plus the longest
	// request plus the service's key cache TTL: then no replica still seals
	// under, or holds a cached primary key under, a version being retired.
	Grace time.Duration
	// BatchSize is the number of primary keys rewrapped per store query
	// (default 100).
	BatchSize int
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Status is what /readyz and the seal status endpoint report.
type Status struct {
	// Initialized is false until a seal document exists (Init or LoadAuto).
	Initialized bool `json:"initialized"`
	// Sealed is true while no keyring is loaded: key operations fail with
	// kms.ErrSealed.
	Sealed bool `json:"sealed"`
	// Shares and Threshold describe the Shamir split; 0 for a seal key
	// that was not split by Init.
	Shares    int `json:"shares,omitempty"`
	Threshold int `json:"threshold,omitempty"`
	// Progress is the number of distinct shares received toward unsealing.
	Progress int `json:"progress"`
	// RootVersion is the root key version new keys are sealed under.
	RootVersion int `json:"root_version,omitempty"`
	// RotatingFrom is set while a root rotation is in progress: the version
	// being rewrapped away from.
	RotatingFrom int `json:"rotating_from,omitempty"`
}

// Manager holds the seal state of one process. It is safe for concurrent
// use. Build it with [New]; call [Manager.Close] when done.
type Manager struct {
	store Store
	opt   Options
	log   *slog.Logger

	kr atomic.Pointer[keyring.Keyring] // nil while sealed

	// unsealMu serialises Init, Unseal, LoadAuto and Seal, which do store
	// I/O; mu guards the fields below and is never held across I/O.
	unsealMu sync.Mutex
	// rotMu allows one rotation or retirement at a time in this process.
	rotMu sync.Mutex

	// refreshMu makes concurrent KeyringFor calls share one re-read;
	// missing (guarded by it) records when a version was last looked for
	// in vain.
	refreshMu sync.Mutex
	missing   map[int]time.Time

	mu       sync.Mutex
	key      *sealKey // nil while sealed
	pending  []shamir.Share
	status   Status
	docRev   int64              // revision of the seal document the keyring came from
	sess     context.Context    // ends when this unseal ends (Seal, Close)
	stop     context.CancelFunc // cancels sess
	retiring bool               // a retireLoop runs
	// resumed is closed when the resumption that follows an unseal has
	// finished a rotation left in progress (or found none).
	resumed chan struct{}

	bg sync.WaitGroup // background goroutines of the current unseal

	// testOnlyManualRetire, set by tests before unsealing, stops the
	// background retirement so that a test can call retire itself.
	testOnlyManualRetire bool
}

// New returns a sealed Manager for store.
func New(store Store, opt Options) *Manager {
	if opt.PollInterval == 0 {
		opt.PollInterval = DefaultPollInterval
	}
	if opt.Grace <= 0 {
		opt.Grace = DefaultGrace
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, opt: opt, log: log, status: Status{Sealed: true}, missing: make(map[int]time.Time)}
}

// Open reads the seal document to report, while sealed, whether the store
// is initialised and the Shamir threshold. It returns an error only if the
// store fails.
func (m *Manager) Open(ctx context.Context) (Status, error) {
	doc, sd, err := m.readDoc(ctx)
	if err != nil && !errors.Is(err, kms.ErrNotFound) {
		return m.Status(), err
	}
	m.mu.Lock()
	if sd != nil && m.key == nil {
		m.noteDoc(doc, sd)
	}
	m.mu.Unlock()
	return m.Status(), nil
}

// Status returns the current seal status, without I/O.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Progress = len(m.pending)
	return s
}

// Keyring returns the current keyring, or an error wrapping kms.ErrSealed.
// Use it to seal new primary keys (under its current version). The
// keyring never changes; load it once per request.
func (m *Manager) Keyring() (*keyring.Keyring, error) {
	if kr := m.kr.Load(); kr != nil {
		return kr, nil
	}
	return nil, kms.Errorf(kms.ErrSealed, "the server is sealed")
}

// KeyringFor returns a keyring that holds root key version rootVersion if
// any replica has published it: when the current keyring lacks that
// version (another replica rotated), it re-reads the seal document first.
// Concurrent callers share one re-read, and a version that a re-read did
// not find is not looked for again for a second, so a row with a bogus
// version cannot turn every read into a store round trip. The result may
// still lack the version (a damaged row, a retired version); opening then
// fails with keyring.ErrDecrypt. It returns an error wrapping kms.ErrSealed
// while sealed.
func (m *Manager) KeyringFor(ctx context.Context, rootVersion int) (*keyring.Keyring, error) {
	kr, err := m.Keyring()
	if err != nil || kr.Has(rootVersion) {
		return kr, err
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if kr, err := m.Keyring(); err != nil || kr.Has(rootVersion) {
		return kr, err // another caller refreshed meanwhile
	}
	if at, ok := m.missing[rootVersion]; ok && time.Since(at) < minRefreshGap {
		return m.Keyring()
	}
	if err := m.Refresh(ctx); err != nil {
		m.log.Warn("refresh seal document", "err", err)
	}
	kr, err = m.Keyring()
	if err == nil && !kr.Has(rootVersion) {
		if len(m.missing) >= 64 {
			clear(m.missing)
		}
		m.missing[rootVersion] = time.Now()
	}
	return kr, err
}

// Refresh re-reads the seal document and, if it changed, publishes a
// keyring with its root versions. It returns an error wrapping
// kms.ErrSealed while sealed, and an error if the document no longer
// matches the seal key held (the keyring is then kept).
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	key := m.key
	m.mu.Unlock()
	if key == nil {
		return kms.Errorf(kms.ErrSealed, "the server is sealed")
	}
	doc, sd, err := m.readDoc(ctx)
	if err != nil {
		return err
	}
	return m.install(doc, sd, key)
}

// install publishes the keyring of sd if doc is newer than the one the
// current keyring came from.
func (m *Manager) install(doc kms.Doc, sd *sealDoc, key *sealKey) error {
	m.mu.Lock()
	stale := m.key == key && doc.Revision <= m.docRev
	m.mu.Unlock()
	if stale {
		return nil
	}
	if !key.matches(sd.Check) {
		return errors.New("seal document no longer matches the seal key held (rekeyed elsewhere?)")
	}
	kr, err := sd.keyring(key)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != key || doc.Revision <= m.docRev {
		return nil // sealed meanwhile, or a newer document was installed
	}
	m.kr.Store(kr)
	m.noteDoc(doc, sd)
	return nil
}

// noteDoc records what Status reports about doc. m.mu is held.
func (m *Manager) noteDoc(doc kms.Doc, sd *sealDoc) {
	m.docRev = doc.Revision
	m.status.Initialized = true
	m.status.Shares, m.status.Threshold = sd.Shares, sd.Threshold
	m.status.RootVersion = sd.active()
	m.status.RotatingFrom = 0
	if sd.Target != 0 {
		m.status.RotatingFrom = sd.Current
	}
}

// readDoc reads and parses the seal document. It returns an error wrapping
// kms.ErrNotFound if there is none.
func (m *Manager) readDoc(ctx context.Context) (kms.Doc, *sealDoc, error) {
	doc, err := m.store.Doc(ctx, DocKind, DocID)
	if err != nil {
		return kms.Doc{}, nil, fmt.Errorf("read seal document: %w", err)
	}
	sd, err := parseDoc(doc.Value)
	if err != nil {
		return kms.Doc{}, nil, err
	}
	return doc, sd, nil
}

// unsealed publishes the keyring of sd under key and starts the
// background work of an unsealed Manager: polling, and finishing a
// rotation or retirement left by a crash. m.unsealMu is held.
func (m *Manager) unsealed(doc kms.Doc, sd *sealDoc, key *sealKey) error {
	kr, err := sd.keyring(key)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	resumed := make(chan struct{})
	m.mu.Lock()
	m.key = key
	m.pending = nil
	m.status.Sealed = false
	m.stop, m.sess, m.resumed = stop, ctx, resumed
	m.kr.Store(kr)
	m.noteDoc(doc, sd)
	m.mu.Unlock()
	m.log.Info("unsealed", "root_version", sd.active(), "root_versions", sd.versions())
	if m.opt.PollInterval > 0 {
		m.goBackground(func() { m.poll(ctx) })
	}
	m.goBackground(func() { m.resume(ctx, resumed) })
	return nil
}

func (m *Manager) goBackground(f func()) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f()
	}()
}

func (m *Manager) poll(ctx context.Context) {
	t := time.NewTicker(m.opt.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("refresh seal document", "err", err)
			}
		}
	}
}

// Seal forgets the keyring, the seal key and any pending shares, and stops
// background work and any rotation in progress (it resumes at the next
// unseal). Key operations then fail with kms.ErrSealed. The key bytes are
// not zeroed: requests in flight may still use the keyring they loaded,
// and Go could not guarantee the erasure anyway; the memory is released to
// the garbage collector.
func (m *Manager) Seal() {
	m.unsealMu.Lock()
	defer m.unsealMu.Unlock()
	m.mu.Lock()
	stop := m.stop
	m.kr.Store(nil)
	m.key, m.stop, m.sess = nil, nil, nil
	for _, s := range m.pending {
		clear(s.Content)
	}
	m.pending = nil
	m.status.Sealed = true
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	m.bg.Wait()
}

// Close seals the Manager and waits for its background work to stop.
func (m *Manager) Close() error {
	m.Seal()
	return nil
}
