package seal

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// testStore is what the tests need: the seal Store plus key creation and
// destruction.
type testStore interface {
	Store
	CreateUser(ctx context.Context, u kms.User) error
	CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) error
	PrimaryKey(ctx context.Context, owner, name string, version int) (kms.PrimaryKey, error)
	DestroyPrimaryKey(ctx context.Context, owner, name string) error
}

// stores are the stores every store-backed test runs against: a small
// in-test fake and the real SQLite adapter.
var stores = []struct {
	name string
	open func(t *testing.T) testStore
}{
	{"fake", func(t *testing.T) testStore { return newFakeStore() }},
	{"sqlite", openSQLite},
}

func openSQLite(t *testing.T) testStore { return openSQLiteAt(t, t.TempDir()) }

func openSQLiteAt(t *testing.T, dir string) testStore {
	t.Helper()
	db, err := sqliteOpen(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sqliteOpen(ctx context.Context, dir string) (*sqlite.DB, error) {
	return sqlite.Open(ctx, filepath.Join(dir, "kms.db"), nil)
}

// eachStore runs f as a subtest per store.
func eachStore(t *testing.T, f func(t *testing.T, st testStore)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { f(t, s.open(t)) })
	}
}

// fakeStore implements the contract of kms.Lifecycle's document and rewrap
// methods in memory.
type fakeStore struct {
	mu   sync.Mutex
	docs map[[2]string]kms.Doc
	pks  map[[3]any]kms.PrimaryKey
}

func newFakeStore() *fakeStore {
	return &fakeStore{docs: make(map[[2]string]kms.Doc), pks: make(map[[3]any]kms.PrimaryKey)}
}

func (s *fakeStore) CreateUser(ctx context.Context, u kms.User) error { return nil }

func (s *fakeStore) CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := [3]any{k.Owner, k.Name, k.Version}
	if _, ok := s.pks[id]; ok {
		return kms.ErrExists
	}
	k.Wrapped = bytes.Clone(k.Wrapped)
	s.pks[id] = k
	return nil
}

func (s *fakeStore) PrimaryKey(ctx context.Context, owner, name string, version int) (kms.PrimaryKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.pks[[3]any{owner, name, version}]
	if !ok {
		return kms.PrimaryKey{}, kms.ErrNotFound
	}
	k.Wrapped = bytes.Clone(k.Wrapped)
	return k, nil
}

func (s *fakeStore) DestroyPrimaryKey(ctx context.Context, owner, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.pks {
		if id[0] == owner && id[1] == name {
			delete(s.pks, id)
			n++
		}
	}
	if n == 0 {
		return kms.ErrNotFound
	}
	return nil
}

func (s *fakeStore) Doc(ctx context.Context, kind, id string) (kms.Doc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[[2]string{kind, id}]
	if !ok {
		return kms.Doc{}, kms.ErrNotFound
	}
	d.Value = bytes.Clone(d.Value)
	return d, nil
}

func (s *fakeStore) PutDoc(ctx context.Context, d kms.Doc) (kms.Doc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := [2]string{d.Kind, d.ID}
	old, ok := s.docs[id]
	switch {
	case d.Revision == 0 && ok:
		return kms.Doc{}, kms.ErrExists
	case d.Revision != 0 && !ok:
		return kms.Doc{}, kms.ErrNotFound
	case d.Revision != 0 && old.Revision != d.Revision:
		return kms.Doc{}, kms.ErrConflict
	}
	d.Revision++
	d.Updated = time.Now()
	d.Value = bytes.Clone(d.Value)
	s.docs[id] = d
	return d, nil
}

func (s *fakeStore) PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) ([]kms.PrimaryKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kms.PrimaryKey
	for _, k := range s.pks {
		if k.RootVersion != rootVersion {
			k.Wrapped = bytes.Clone(k.Wrapped)
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b kms.PrimaryKey) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return out[:min(limit, len(out))], nil
}

func (s *fakeStore) RewrapPrimaryKey(ctx context.Context, k kms.PrimaryKey, oldRootVersion int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := [3]any{k.Owner, k.Name, k.Version}
	cur, ok := s.pks[id]
	switch {
	case !ok:
		return kms.ErrNotFound
	case cur.RootVersion != oldRootVersion:
		return kms.ErrConflict
	}
	cur.Wrapped, cur.RootVersion = bytes.Clone(k.Wrapped), k.RootVersion
	s.pks[id] = cur
	return nil
}

// fixture is a set of primary keys (each with one data key) created in a
// store, with the plaintext data keys to compare against.
type fixture struct {
	pks  []kms.PrimaryKey
	data map[string][]byte // primary key name → wrapped data key
	want map[string][]byte // primary key name → plaintext data key
}

// createKeys stores n primary keys for user "alice", sealed by kr, and a
// data key under each.
func createKeys(t *testing.T, st testStore, kr *keyring.Keyring, prefix string, n int) *fixture {
	t.Helper()
	ctx := t.Context()
	if err := st.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "x", Created: time.Now()}); err != nil && !isExists(err) {
		t.Fatal(err)
	}
	f := &fixture{data: map[string][]byte{}, want: map[string][]byte{}}
	for i := range n {
		name := prefix + string(rune('a'+i/26)) + string(rune('a'+i%26))
		id := keyring.PrimaryID{Owner: "alice", Name: name, Version: 1}
		wp, err := kr.NewPrimaryKey(id)
		if err != nil {
			t.Fatal(err)
		}
		pk := kms.PrimaryKey{Owner: "alice", Name: name, Version: 1, RootVersion: kr.Version(), Wrapped: wp, Created: time.Now()}
		if err := st.CreatePrimaryKey(ctx, pk); err != nil {
			t.Fatal(err)
		}
		did := keyring.DataID{Primary: id, Name: "dk"}
		wd, err := kr.NewDataKey(wp, did)
		if err != nil {
			t.Fatal(err)
		}
		f.want[name], _ = kr.OpenDataKey(wp, wd, did)
		f.data[name] = wd
		f.pks = append(f.pks, pk)
	}
	return f
}

func isExists(err error) bool { return errors.Is(err, kms.ErrExists) }

var errMismatch = errors.New("data key differs from the original")

// check opens every data key of f through m, reading the primary key from
// the store as the service does, and compares it with the original.
func (f *fixture) check(t *testing.T, st testStore, m *Manager) {
	t.Helper()
	for _, pk := range f.pks {
		if err := f.open(t.Context(), st, m, pk.Name); err != nil {
			t.Fatalf("data key under %s: %v", pk.Name, err)
		}
	}
}

// checkWith is check with a fixed keyring.
func (f *fixture) checkWith(t *testing.T, st testStore, kr *keyring.Keyring) {
	t.Helper()
	for _, pk := range f.pks {
		if err := f.openWith(t.Context(), st, func(int) (*keyring.Keyring, error) { return kr, nil }, pk.Name); err != nil {
			t.Fatalf("data key under %s: %v", pk.Name, err)
		}
	}
}

// docKeyring builds the keyring of the stored seal document with the test
// seal key keyOf(1).
func docKeyring(t *testing.T, st testStore) *keyring.Keyring {
	t.Helper()
	k, _ := newSealKey(keyOf(1))
	kr, err := storedDoc(t, st).keyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func (f *fixture) open(ctx context.Context, st testStore, m *Manager, name string) error {
	return f.openWith(ctx, st, func(v int) (*keyring.Keyring, error) { return m.KeyringFor(ctx, v) }, name)
}

func (f *fixture) openWith(ctx context.Context, st testStore, keyringFor func(int) (*keyring.Keyring, error), name string) error {
	pk, err := st.PrimaryKey(ctx, "alice", name, 1)
	if err != nil {
		return err
	}
	kr, err := keyringFor(pk.RootVersion)
	if err != nil {
		return err
	}
	dk, err := kr.OpenDataKey(pk.Wrapped, f.data[name], keyring.DataID{
		Primary: keyring.PrimaryID{Owner: "alice", Name: name, Version: 1}, Name: "dk"})
	if err != nil {
		return err
	}
	if !bytes.Equal(dk, f.want[name]) {
		return errMismatch
	}
	return nil
}

// rootVersions returns the root version of every primary key in st.
func rootVersions(t *testing.T, st testStore) map[int]int {
	t.Helper()
	rows, err := st.PrimaryKeysToRewrap(t.Context(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, r := range rows {
		out[r.RootVersion]++
	}
	return out
}

// storedDoc returns the parsed seal document.
func storedDoc(t *testing.T, st testStore) *sealDoc {
	t.Helper()
	d, err := st.Doc(t.Context(), DocKind, DocID)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := parseDoc(d.Value)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}
