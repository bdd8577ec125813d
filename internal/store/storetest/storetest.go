// Package storetest is the conformance suite that every [kms.Store] adapter
// runs: SQLite always, MySQL/MariaDB and PostgreSQL when their DSNs are set.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// NewStore opens a fresh, empty store for one subtest. It registers any
// cleanup with t.Cleanup. Stores opened by successive calls of the same
// NewStore may share one database only if it was emptied in between.
type NewStore func(t *testing.T) kms.Store

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Run("users", func(t *testing.T) { testUsers(t, newStore(t)) })
	t.Run("primary keys", func(t *testing.T) { testPrimaryKeys(t, newStore(t)) })
	t.Run("data keys", func(t *testing.T) { testDataKeys(t, newStore(t)) })
	t.Run("concurrent creates", func(t *testing.T) { testConcurrentCreates(t, newStore(t)) })
	t.Run("context canceled", func(t *testing.T) { testCanceled(t, newStore(t)) })
}

// RunShared checks two stores that share one database, as two replicas
// would: each sees the other's writes and exactly one concurrent create wins.
func RunShared(t *testing.T, a, b kms.Store) {
	ctx := t.Context()
	mustUser(t, a, "shared-user")
	if _, err := b.User(ctx, "shared-user"); err != nil {
		t.Fatalf("replica b does not see a's user: %v", err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i, s := range []kms.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreatePrimaryKey(ctx, pk("shared-user", "race", 1, []byte{byte(i)}))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, kms.ErrExists):
				t.Errorf("racing create: want ErrExists, got %v", err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d concurrent creates across replicas succeeded, want exactly 1", n)
	}
	ka, err := a.PrimaryKey(ctx, "shared-user", "race", 0)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.PrimaryKey(ctx, "shared-user", "race", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ka.Wrapped, kb.Wrapped) {
		t.Fatal("replicas disagree about the winning key")
	}
}

func pk(owner, name string, version int, wrapped []byte) kms.PrimaryKey {
	return kms.PrimaryKey{Owner: owner, Name: name, Version: version, RootVersion: 1,
		Wrapped: wrapped, Created: time.Now().UTC().Truncate(time.Second)}
}

func dk(owner, primary, name string, wrapped []byte) kms.DataKey {
	return kms.DataKey{Owner: owner, Primary: primary, Name: name, PrimaryVersion: 1,
		Wrapped: wrapped, Created: time.Now().UTC().Truncate(time.Second)}
}

func mustUser(t *testing.T, s kms.Store, name string) kms.User {
	t.Helper()
	u := kms.User{Name: name, TokenHash: "$argon2id$hash-of-" + name, Created: time.Now().UTC().Truncate(time.Second)}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("create user %q: %v", name, err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: want error wrapping %v, got %v", what, want, err)
	}
}

func testUsers(t *testing.T, s kms.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != u.Name || got.TokenHash != u.TokenHash || !got.Created.Equal(u.Created) {
		t.Fatalf("user round trip: got %+v, want %+v", got, u)
	}
	dup := u
	dup.TokenHash = "other"
	wantErr(t, "create existing user", s.CreateUser(ctx, dup), kms.ErrExists)
	if got, _ := s.User(ctx, "alice"); got.TokenHash != u.TokenHash {
		t.Fatal("a duplicate create overwrote the user")
	}
	_, err = s.User(ctx, "bob")
	wantErr(t, "unknown user", err, kms.ErrNotFound)
	// Names are case-sensitive and compared byte for byte.
	_, err = s.User(ctx, "Alice")
	wantErr(t, "user name differing in case", err, kms.ErrNotFound)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func testPrimaryKeys(t *testing.T, s kms.Store) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	k := pk("alice", "pk1", 1, []byte("wrapped-1"))
	if err := s.CreatePrimaryKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create existing primary key", s.CreatePrimaryKey(ctx, pk("alice", "pk1", 1, []byte("other"))), kms.ErrExists)
	wantErr(t, "primary key of unknown owner", s.CreatePrimaryKey(ctx, pk("carol", "pk1", 1, []byte("x"))), kms.ErrNotFound)
	// Names are scoped per user.
	if err := s.CreatePrimaryKey(ctx, pk("bob", "pk1", 1, []byte("bobs"))); err != nil {
		t.Fatalf("same name for another user: %v", err)
	}
	got, err := s.PrimaryKey(ctx, "alice", "pk1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Wrapped, k.Wrapped) || got.Version != 1 || got.RootVersion != 1 || !got.Created.Equal(k.Created) {
		t.Fatalf("primary key round trip: got %+v, want %+v", got, k)
	}
	if err := s.CreatePrimaryKey(ctx, pk("alice", "pk1", 2, []byte("wrapped-2"))); err != nil {
		t.Fatalf("second version: %v", err)
	}
	for _, c := range []struct {
		version int
		want    string
	}{{0, "wrapped-2"}, {1, "wrapped-1"}, {2, "wrapped-2"}} {
		got, err := s.PrimaryKey(ctx, "alice", "pk1", c.version)
		if err != nil || string(got.Wrapped) != c.want {
			t.Fatalf("version %d: got %q, %v; want %q", c.version, got.Wrapped, err, c.want)
		}
	}
	_, err = s.PrimaryKey(ctx, "alice", "pk1", 3)
	wantErr(t, "unknown version", err, kms.ErrNotFound)
	_, err = s.PrimaryKey(ctx, "alice", "nope", 0)
	wantErr(t, "unknown primary key", err, kms.ErrNotFound)
	_, err = s.PrimaryKey(ctx, "carol", "pk1", 0)
	wantErr(t, "unknown owner", err, kms.ErrNotFound)
}

func testDataKeys(t *testing.T, s kms.Store) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	for _, o := range []string{"alice", "bob"} {
		if err := s.CreatePrimaryKey(ctx, pk(o, "pk1", 1, []byte("w"))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreatePrimaryKey(ctx, pk("alice", "pk2", 1, []byte("w"))); err != nil {
		t.Fatal(err)
	}
	k := dk("alice", "pk1", "dk1", []byte("dk-wrapped"))
	if err := s.CreateDataKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create existing data key", s.CreateDataKey(ctx, dk("alice", "pk1", "dk1", []byte("other"))), kms.ErrExists)
	wantErr(t, "data key under unknown primary", s.CreateDataKey(ctx, dk("alice", "nope", "dk1", []byte("x"))), kms.ErrNotFound)
	wantErr(t, "data key of unknown owner", s.CreateDataKey(ctx, dk("carol", "pk1", "dk1", []byte("x"))), kms.ErrNotFound)
	for _, other := range []kms.DataKey{dk("bob", "pk1", "dk1", []byte("b")), dk("alice", "pk2", "dk1", []byte("c"))} {
		if err := s.CreateDataKey(ctx, other); err != nil {
			t.Fatalf("same data key name in another scope %s/%s: %v", other.Owner, other.Primary, err)
		}
	}
	got, err := s.DataKey(ctx, "alice", "pk1", "dk1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Wrapped, k.Wrapped) || got.PrimaryVersion != 1 || got.Primary != "pk1" || !got.Created.Equal(k.Created) {
		t.Fatalf("data key round trip: got %+v, want %+v", got, k)
	}
	for _, c := range [][3]string{{"alice", "pk1", "dk2"}, {"alice", "pk3", "dk1"}, {"carol", "pk1", "dk1"}} {
		_, err := s.DataKey(ctx, c[0], c[1], c[2])
		wantErr(t, fmt.Sprintf("unknown data key %v", c), err, kms.ErrNotFound)
	}
}

func testConcurrentCreates(t *testing.T, s kms.Store) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	if err := s.CreatePrimaryKey(ctx, pk("alice", "pk1", 1, []byte("w"))); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var users, keys atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := s.CreateUser(ctx, kms.User{Name: "racer", TokenHash: fmt.Sprint(i), Created: time.Now()})
			if err == nil {
				users.Add(1)
			} else if !errors.Is(err, kms.ErrExists) {
				t.Errorf("racing user create: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			err := s.CreateDataKey(ctx, dk("alice", "pk1", "racer", []byte{byte(i)}))
			if err == nil {
				keys.Add(1)
			} else if !errors.Is(err, kms.ErrExists) {
				t.Errorf("racing data key create: %v", err)
			}
		}()
	}
	wg.Wait()
	if users.Load() != 1 || keys.Load() != 1 {
		t.Fatalf("concurrent creates: %d users and %d data keys won, want 1 each", users.Load(), keys.Load())
	}
}

func testCanceled(t *testing.T, s kms.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateUser(ctx, kms.User{Name: "late", TokenHash: "h", Created: time.Now()}); err == nil {
		t.Fatal("create with a canceled context succeeded")
	}
	if _, err := s.User(t.Context(), "late"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("a canceled create left a user behind: %v", err)
	}
}
