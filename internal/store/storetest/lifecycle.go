package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// LifecycleStore is a store with the lifecycle methods of [kms.Lifecycle].
// Now that [kms.Store] embeds [kms.Lifecycle], every kms.Store is one; the
// type stays so that the suite states what it needs.
type LifecycleStore interface {
	kms.Store
	kms.Lifecycle
}

// NewLifecycleStore opens a fresh, empty store for one subtest, like
// [NewStore].
type NewLifecycleStore func(t *testing.T) LifecycleStore

// maxDocValue is the largest document value the contract allows (1 MiB).
const maxDocValue = 1 << 20

// RunLifecycle checks the [kms.Lifecycle] contract against stores made by
// newStore.
func RunLifecycle(t *testing.T, newStore NewLifecycleStore) {
	for _, c := range []struct {
		name string
		test func(*testing.T, LifecycleStore)
	}{
		{"update user", testUpdateUser},
		{"list users", testListUsers},
		{"list primary keys", testListPrimaryKeys},
		{"primary key versions", testPrimaryKeyVersions},
		{"rewrap", testRewrap},
		{"concurrent rewrap", testConcurrentRewrap},
		{"destroy primary key", testDestroy},
		{"docs", testDocs},
		{"doc limits", testDocLimits},
		{"list docs", testListDocs},
		{"concurrent docs", testConcurrentDocs},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newStore(t)) })
	}
}

// RunSharedLifecycle checks two stores that share one database, as two
// replicas would: each sees the other's lifecycle writes, and of racing
// compare-and-swaps through both exactly one wins.
func RunSharedLifecycle(t *testing.T, a, b LifecycleStore) {
	ctx := t.Context()
	mustUser(t, a, "lc-user")
	if err := b.UpdateUser(ctx, kms.User{Name: "lc-user", TokenHash: "h2", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if u, err := a.User(ctx, "lc-user"); err != nil || !u.Disabled || u.TokenHash != "h2" {
		t.Fatalf("replica a after b's update: got %+v, %v", u, err)
	}

	d, err := a.PutDoc(ctx, kms.Doc{Kind: "shared", ID: "d", Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Doc(ctx, "shared", "d")
	if err != nil || string(got.Value) != "v1" || got.Revision != 1 {
		t.Fatalf("replica b does not see a's doc: got %+v, %v", got, err)
	}
	d.Value = []byte("v2")
	if _, err := b.PutDoc(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Doc(ctx, "shared", "d"); err != nil || string(got.Value) != "v2" || got.Revision != 2 {
		t.Fatalf("replica a does not see b's update: got %+v, %v", got, err)
	}

	stores := []LifecycleStore{a, b, a, b, a, b, a, b}
	winner := race(t, len(stores), "update doc across replicas", func(i int) error {
		_, err := stores[i].PutDoc(ctx, kms.Doc{Kind: "shared", ID: "d", Value: fmt.Appendf(nil, "racer %d", i), Revision: 2})
		return err
	}, kms.ErrConflict)
	for _, s := range []LifecycleStore{a, b} {
		got, err := s.Doc(ctx, "shared", "d")
		if err != nil || got.Revision != 3 || string(got.Value) != fmt.Sprintf("racer %d", winner) {
			t.Fatalf("after racing updates: got %+v, %v; want racer %d at revision 3", got, err, winner)
		}
	}
	race(t, len(stores), "delete doc across replicas", func(i int) error {
		return stores[i].DeleteDoc(ctx, "shared", "d", 3)
	}, kms.ErrNotFound, kms.ErrConflict)
	if _, err := b.Doc(ctx, "shared", "d"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("doc after delete: want ErrNotFound, got %v", err)
	}

	mustCreate(t, a, pkv("lc-user", "k", 1, 1))
	race(t, len(stores), "rewrap across replicas", func(i int) error {
		k := pkv("lc-user", "k", 1, 2)
		k.Wrapped = fmt.Appendf(nil, "rewrapped %d", i)
		return stores[i].RewrapPrimaryKey(ctx, k, 1)
	}, kms.ErrConflict)

	if err := a.CreateDataKey(ctx, dk("lc-user", "k", "dk", []byte("w"))); err != nil {
		t.Fatal(err)
	}
	if err := b.DestroyPrimaryKey(ctx, "lc-user", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PrimaryKeyVersions(ctx, "lc-user", "k"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("versions after destroy through the other replica: want ErrNotFound, got %v", err)
	}
	if _, err := a.DataKey(ctx, "lc-user", "k", "dk"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("data key after destroy through the other replica: want ErrNotFound, got %v", err)
	}
}

// race calls f(0) … f(n-1) at once and checks that exactly one succeeds and
// every other call fails with an error wrapping one of losers. It returns
// the winner's index.
func race(t *testing.T, n int, what string, f func(i int) error, losers ...error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: callers %d and %d both succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !slices.ContainsFunc(losers, func(e error) bool { return errors.Is(err, e) }):
			t.Fatalf("%s: a loser got %v, want one of %v", what, err, losers)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no caller succeeded: %v", what, errs)
	}
	return winner
}

// pkv returns version v of a primary key sealed by root version root; its
// material names the key, so that reads can be checked against it.
func pkv(owner, name string, v, root int) kms.PrimaryKey {
	k := pk(owner, name, v, []byte(fmt.Sprintf("%s/%s@%d", owner, name, v)))
	k.RootVersion = root
	return k
}

func keyID(k kms.PrimaryKey) string { return fmt.Sprintf("%s/%s@%d", k.Owner, k.Name, k.Version) }

func keyIDs(ks []kms.PrimaryKey) []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = keyID(k)
	}
	return ids
}

func mustCreate(t *testing.T, s kms.Store, ks ...kms.PrimaryKey) {
	t.Helper()
	for _, k := range ks {
		if err := s.CreatePrimaryKey(t.Context(), k); err != nil {
			t.Fatalf("create primary key %s: %v", keyID(k), err)
		}
	}
}

// checkKeys checks that got holds the keys named by want (owner/name@version),
// in that order, each with the material that pkv gave it (or a rewrapped
// one that ends with it) and a creation time.
func checkKeys(t *testing.T, what string, got []kms.PrimaryKey, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if ids := keyIDs(got); !slices.Equal(ids, want) {
		t.Fatalf("%s: got %q, want %q", what, ids, want)
	}
	for _, k := range got {
		if !strings.HasSuffix(string(k.Wrapped), keyID(k)) || k.Created.IsZero() {
			t.Fatalf("%s: key %s has material %q, created %v", what, keyID(k), k.Wrapped, k.Created)
		}
	}
}

func testUpdateUser(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	// Created is ignored: the creation time is not the update's to change.
	upd := kms.User{Name: "alice", TokenHash: "$argon2id$new", Disabled: true, Created: time.Unix(1, 0)}
	if err := s.UpdateUser(ctx, upd); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, "alice")
	if err != nil || got.TokenHash != upd.TokenHash || !got.Disabled || !got.Created.Equal(u.Created) {
		t.Fatalf("after disabling: got %+v, %v; want token %q, disabled, created %v", got, err, upd.TokenHash, u.Created)
	}
	upd.Disabled = false
	for range 2 { // the second update changes nothing, and still finds the user
		if err := s.UpdateUser(ctx, upd); err != nil {
			t.Fatalf("enable: %v", err)
		}
		if got, err := s.User(ctx, "alice"); err != nil || got.Disabled || got.TokenHash != upd.TokenHash {
			t.Fatalf("after enabling: got %+v, %v", got, err)
		}
	}
	wantErr(t, "update unknown user", s.UpdateUser(ctx, kms.User{Name: "bob", TokenHash: "h"}), kms.ErrNotFound)
	_, err = s.User(ctx, "bob")
	wantErr(t, "user after update of unknown user", err, kms.ErrNotFound)
	wantErr(t, "update user differing in case", s.UpdateUser(ctx, kms.User{Name: "Alice", TokenHash: "h"}), kms.ErrNotFound)

	carol := kms.User{Name: "carol", TokenHash: "h", Disabled: true, Created: time.Now()}
	if err := s.CreateUser(ctx, carol); err != nil {
		t.Fatal(err)
	}
	if got, err := s.User(ctx, "carol"); err != nil || !got.Disabled {
		t.Fatalf("user created disabled: got %+v, %v", got, err)
	}
}

func testListUsers(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	if us, err := s.ListUsers(ctx); err != nil || len(us) != 0 {
		t.Fatalf("users of an empty store: got %+v, %v", us, err)
	}
	created := map[string]kms.User{}
	for _, name := range []string{"carol", "alice", "bob", "Bob"} {
		created[name] = mustUser(t, s, name)
	}
	if err := s.UpdateUser(ctx, kms.User{Name: "bob", TokenHash: "h2", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	us, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
		c := created[u.Name]
		wantToken, wantDisabled := c.TokenHash, false
		if u.Name == "bob" {
			wantToken, wantDisabled = "h2", true
		}
		if u.TokenHash != wantToken || u.Disabled != wantDisabled || !u.Created.Equal(c.Created) {
			t.Errorf("listed user %+v; want token %q, disabled %v, created %v", u, wantToken, wantDisabled, c.Created)
		}
	}
	// Byte order: upper case sorts before lower case.
	if want := []string{"Bob", "alice", "bob", "carol"}; !slices.Equal(names, want) {
		t.Fatalf("users listed as %q, want %q", names, want)
	}
}

func testListPrimaryKeys(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	for _, u := range []string{"alice", "bob", "carol"} {
		mustUser(t, s, u)
	}
	// Versions are created out of order: the newest is the highest, not
	// the last written.
	mustCreate(t, s, pkv("alice", "pk-b", 2, 1), pkv("alice", "pk-b", 3, 1), pkv("alice", "pk-b", 1, 1),
		pkv("alice", "pk-a", 1, 1), pkv("alice", "Pk-c", 1, 2), pkv("bob", "pk-a", 1, 1), pkv("bob", "pk-a", 2, 2))

	ks, err := s.ListPrimaryKeys(ctx, "alice")
	checkKeys(t, "alice's keys", ks, err, "alice/Pk-c@1", "alice/pk-a@1", "alice/pk-b@3")
	if ks[0].RootVersion != 2 || ks[2].RootVersion != 1 {
		t.Errorf("root versions of listed keys: %+v", ks)
	}
	ks, err = s.ListPrimaryKeys(ctx, "bob")
	checkKeys(t, "bob's keys", ks, err, "bob/pk-a@2")
	for _, owner := range []string{"carol", "nobody", "Alice"} {
		ks, err = s.ListPrimaryKeys(ctx, owner)
		checkKeys(t, owner+"'s keys", ks, err)
	}
	ks, err = s.ListPrimaryKeys(ctx, "")
	checkKeys(t, "every owner's keys", ks, err, "alice/Pk-c@1", "alice/pk-a@1", "alice/pk-b@3", "bob/pk-a@2")
}

func testPrimaryKeyVersions(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	mustCreate(t, s, pkv("alice", "pk", 2, 2), pkv("alice", "pk", 1, 1), pkv("alice", "pk", 3, 3), pkv("bob", "other", 1, 1))
	ks, err := s.PrimaryKeyVersions(ctx, "alice", "pk")
	checkKeys(t, "versions", ks, err, "alice/pk@1", "alice/pk@2", "alice/pk@3")
	for i, k := range ks {
		if k.RootVersion != i+1 {
			t.Errorf("version %d: root version %d, want %d", k.Version, k.RootVersion, i+1)
		}
	}
	for _, c := range [][2]string{{"alice", "nope"}, {"bob", "pk"}, {"carol", "pk"}, {"alice", "PK"}} {
		_, err := s.PrimaryKeyVersions(ctx, c[0], c[1])
		wantErr(t, fmt.Sprintf("versions of unknown key %v", c), err, kms.ErrNotFound)
	}
}

func testRewrap(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	// Rotating to root version 2: everything sealed by 1 or 3 is due.
	keys := []kms.PrimaryKey{pkv("alice", "k1", 1, 1), pkv("alice", "k1", 2, 1), pkv("alice", "k2", 1, 2),
		pkv("bob", "k1", 1, 1), pkv("bob", "k3", 1, 3)}
	mustCreate(t, s, keys...)
	created := map[string]time.Time{}
	for _, k := range keys {
		created[keyID(k)] = k.Created
	}
	all, err := s.PrimaryKeysToRewrap(ctx, 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := keyIDs(all)
	if want := []string{"alice/k1@1", "alice/k1@2", "bob/k1@1", "bob/k3@1"}; !sameSet(ids, want) {
		t.Fatalf("keys to rewrap: got %q, want %q in any order", ids, want)
	}
	again, err := s.PrimaryKeysToRewrap(ctx, 2, 100)
	if err != nil || !slices.Equal(keyIDs(again), ids) {
		t.Fatalf("keys to rewrap, asked again: got %q, %v; want the same order %q", keyIDs(again), err, ids)
	}
	two, err := s.PrimaryKeysToRewrap(ctx, 2, 2)
	if err != nil || !slices.Equal(keyIDs(two), ids[:2]) {
		t.Fatalf("first 2 keys to rewrap: got %q, %v; want %q", keyIDs(two), err, ids[:2])
	}
	checkKeys(t, "keys to rewrap", all, nil, ids...)
	_, err = s.PrimaryKeysToRewrap(ctx, 2, 0)
	wantErr(t, "keys to rewrap with limit 0", err, kms.ErrInvalid)

	// A compare-and-swap on the wrong root version, on a missing version,
	// or with no material fails and changes nothing.
	k2 := pkv("alice", "k2", 1, 3)
	k2.Wrapped = []byte("must not be written")
	wantErr(t, "rewrap with a stale root version", s.RewrapPrimaryKey(ctx, k2, 1), kms.ErrConflict)
	for _, k := range []kms.PrimaryKey{pkv("alice", "k1", 9, 2), pkv("alice", "nope", 1, 2), pkv("carol", "k1", 1, 2)} {
		wantErr(t, "rewrap of missing "+keyID(k), s.RewrapPrimaryKey(ctx, k, 1), kms.ErrNotFound)
	}
	empty := pkv("alice", "k1", 1, 2)
	empty.Wrapped = nil
	wantErr(t, "rewrap without material", s.RewrapPrimaryKey(ctx, empty, 1), kms.ErrInvalid)

	// Rewrap in batches, as root rotation does, until nothing is left.
	var done []string
	for range 10 {
		batch, err := s.PrimaryKeysToRewrap(ctx, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, k := range batch {
			nk := k
			nk.RootVersion = 2
			nk.Wrapped = append([]byte("rewrapped:"), k.Wrapped...)
			nk.Created = time.Unix(1, 0) // ignored
			if err := s.RewrapPrimaryKey(ctx, nk, k.RootVersion); err != nil {
				t.Fatalf("rewrap %s: %v", keyID(k), err)
			}
			done = append(done, keyID(k))
		}
	}
	if !sameSet(done, ids) {
		t.Fatalf("rewrapped %q, want %q", done, ids)
	}
	if left, err := s.PrimaryKeysToRewrap(ctx, 2, 100); err != nil || len(left) != 0 {
		t.Fatalf("keys to rewrap after rewrapping all: got %q, %v", keyIDs(left), err)
	}
	for _, id := range append(ids, "alice/k2@1") {
		owner, rest, _ := strings.Cut(id, "/")
		name, _, _ := strings.Cut(rest, "@")
		v := 1
		if id == "alice/k1@2" {
			v = 2
		}
		got, err := s.PrimaryKey(ctx, owner, name, v)
		if err != nil {
			t.Fatal(err)
		}
		want := id
		if id != "alice/k2@1" {
			want = "rewrapped:" + id
		}
		if got.RootVersion != 2 || string(got.Wrapped) != want || got.Version != v || !got.Created.Equal(created[id]) {
			t.Errorf("%s after rewrap: got %+v (material %q), want root 2, material %q, created %v",
				id, got, got.Wrapped, want, created[id])
		}
	}
	k1 := pkv("alice", "k1", 1, 4)
	wantErr(t, "second rewrap from the old root version", s.RewrapPrimaryKey(ctx, k1, 1), kms.ErrConflict)
	all, err = s.PrimaryKeysToRewrap(ctx, 3, 100)
	if err != nil || len(all) != 5 {
		t.Fatalf("keys to rewrap to root 3: got %q, %v; want all 5", keyIDs(all), err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func testConcurrentRewrap(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustCreate(t, s, pkv("alice", "k", 1, 1))
	winner := race(t, 16, "rewrap", func(i int) error {
		k := pkv("alice", "k", 1, 2)
		k.Wrapped = fmt.Appendf(nil, "rewrapped by %d", i)
		return s.RewrapPrimaryKey(ctx, k, 1)
	}, kms.ErrConflict)
	got, err := s.PrimaryKey(ctx, "alice", "k", 1)
	if err != nil || string(got.Wrapped) != fmt.Sprintf("rewrapped by %d", winner) || got.RootVersion != 2 {
		t.Fatalf("after racing rewraps: got %+v, %v; want the material of %d", got, err, winner)
	}
}

func testDestroy(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	mustCreate(t, s, pkv("alice", "pk1", 1, 1), pkv("alice", "pk1", 2, 1), pkv("alice", "pk2", 1, 1),
		pkv("bob", "pk1", 1, 1), pkv("alice", "pk10", 1, 1))
	dks := [][3]string{{"alice", "pk1", "dk1"}, {"alice", "pk1", "dk2"}, {"alice", "pk2", "dk1"}, {"bob", "pk1", "dk1"}, {"alice", "pk10", "dk1"}}
	for _, d := range dks {
		if err := s.CreateDataKey(ctx, dk(d[0], d[1], d[2], []byte(strings.Join(d[:], "/")))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DestroyPrimaryKey(ctx, "alice", "pk1"); err != nil {
		t.Fatal(err)
	}
	for v := range 3 {
		_, err := s.PrimaryKey(ctx, "alice", "pk1", v)
		wantErr(t, fmt.Sprintf("version %d after destroy", v), err, kms.ErrNotFound)
	}
	_, err := s.PrimaryKeyVersions(ctx, "alice", "pk1")
	wantErr(t, "versions after destroy", err, kms.ErrNotFound)
	for _, d := range dks {
		got, err := s.DataKey(ctx, d[0], d[1], d[2])
		if d[0] == "alice" && d[1] == "pk1" {
			wantErr(t, fmt.Sprintf("data key %v under the destroyed key", d), err, kms.ErrNotFound)
		} else if err != nil || string(got.Wrapped) != strings.Join(d[:], "/") {
			t.Errorf("data key %v under another key: got %+v, %v", d, got, err)
		}
	}
	for _, k := range [][2]string{{"alice", "pk2"}, {"bob", "pk1"}, {"alice", "pk10"}} {
		ks, err := s.PrimaryKeyVersions(ctx, k[0], k[1])
		checkKeys(t, fmt.Sprintf("versions of %v after destroying another key", k), ks, err, k[0]+"/"+k[1]+"@1")
	}
	ks, err := s.ListPrimaryKeys(ctx, "alice")
	checkKeys(t, "alice's keys after destroy", ks, err, "alice/pk10@1", "alice/pk2@1")

	wantErr(t, "second destroy", s.DestroyPrimaryKey(ctx, "alice", "pk1"), kms.ErrNotFound)
	wantErr(t, "destroy of unknown key", s.DestroyPrimaryKey(ctx, "carol", "pk1"), kms.ErrNotFound)
	wantErr(t, "data key under the destroyed key",
		s.CreateDataKey(ctx, dk("alice", "pk1", "dk3", []byte("w"))), kms.ErrNotFound)
	// A new key of the same name starts empty: the old data keys stay gone.
	mustCreate(t, s, pkv("alice", "pk1", 1, 1))
	_, err = s.DataKey(ctx, "alice", "pk1", "dk1")
	wantErr(t, "old data key under a recreated key", err, kms.ErrNotFound)
	if err := s.CreateDataKey(ctx, dk("alice", "pk1", "dk1", []byte("new"))); err != nil {
		t.Fatalf("data key under a recreated key: %v", err)
	}
}

func testDocs(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	_, err := s.Doc(ctx, "key", "a")
	wantErr(t, "missing doc", err, kms.ErrNotFound)

	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	start := time.Now().Add(-time.Second)
	d, err := s.PutDoc(ctx, kms.Doc{Kind: "key", ID: "a", Value: binary, Updated: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "key" || d.ID != "a" || !bytes.Equal(d.Value, binary) || d.Revision != 1 ||
		d.Updated.Before(start) || d.Updated.After(time.Now().Add(time.Second)) {
		t.Fatalf("created doc: got %+v", d)
	}
	checkDoc(t, s, d)
	_, err = s.PutDoc(ctx, kms.Doc{Kind: "key", ID: "a", Value: []byte("other")})
	wantErr(t, "create existing doc", err, kms.ErrExists)
	checkDoc(t, s, d)
	// The same id under another kind is another doc.
	if _, err := s.PutDoc(ctx, kms.Doc{Kind: "policy", ID: "a", Value: []byte("p")}); err != nil {
		t.Fatal(err)
	}

	upd := d
	upd.Value = []byte("v2")
	d2, err := s.PutDoc(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Revision != 2 || string(d2.Value) != "v2" || d2.Updated.Before(d.Updated) {
		t.Fatalf("updated doc: got %+v", d2)
	}
	checkDoc(t, s, d2)
	_, err = s.PutDoc(ctx, upd) // revision 1 again
	wantErr(t, "update from a stale revision", err, kms.ErrConflict)
	upd.Revision = 7
	_, err = s.PutDoc(ctx, upd)
	wantErr(t, "update from a future revision", err, kms.ErrConflict)
	checkDoc(t, s, d2)
	_, err = s.PutDoc(ctx, kms.Doc{Kind: "key", ID: "nope", Value: []byte("x"), Revision: 1})
	wantErr(t, "update of a missing doc", err, kms.ErrNotFound)
	_, err = s.Doc(ctx, "key", "nope")
	wantErr(t, "doc after an update of a missing doc", err, kms.ErrNotFound)

	// An empty value is a value.
	d3, err := s.PutDoc(ctx, kms.Doc{Kind: "key", ID: "a", Revision: 2})
	if err != nil || d3.Revision != 3 {
		t.Fatalf("update to an empty value: got %+v, %v", d3, err)
	}
	checkDoc(t, s, d3)

	wantErr(t, "delete from a stale revision", s.DeleteDoc(ctx, "key", "a", 2), kms.ErrConflict)
	checkDoc(t, s, d3)
	if err := s.DeleteDoc(ctx, "key", "a", 3); err != nil {
		t.Fatal(err)
	}
	_, err = s.Doc(ctx, "key", "a")
	wantErr(t, "deleted doc", err, kms.ErrNotFound)
	wantErr(t, "second delete", s.DeleteDoc(ctx, "key", "a", 3), kms.ErrNotFound)
	wantErr(t, "delete of a missing doc", s.DeleteDoc(ctx, "key", "nope", 1), kms.ErrNotFound)
	_, err = s.PutDoc(ctx, d3)
	wantErr(t, "update of a deleted doc", err, kms.ErrNotFound)
	if got, err := s.Doc(ctx, "policy", "a"); err != nil || string(got.Value) != "p" {
		t.Fatalf("doc of another kind after delete: got %+v, %v", got, err)
	}
	// A deleted doc can be created again, from revision 1.
	if d, err := s.PutDoc(ctx, kms.Doc{Kind: "key", ID: "a", Value: []byte("again")}); err != nil || d.Revision != 1 {
		t.Fatalf("create after delete: got %+v, %v", d, err)
	}
}

// checkDoc checks that s holds want, exactly.
func checkDoc(t *testing.T, s LifecycleStore, want kms.Doc) {
	t.Helper()
	got, err := s.Doc(t.Context(), want.Kind, want.ID)
	if err != nil {
		t.Fatalf("doc %s/%s: %v", want.Kind, want.ID, err)
	}
	if got.Kind != want.Kind || got.ID != want.ID || !bytes.Equal(got.Value, want.Value) ||
		got.Revision != want.Revision || !got.Updated.Equal(want.Updated) {
		t.Fatalf("doc %s/%s: got %+v, want %+v", want.Kind, want.ID, got, want)
	}
}

func testDocLimits(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	long := strings.Repeat("é", 64) // 128 bytes
	big := bytes.Repeat([]byte{0, 0xff, 'x', 0x80}, maxDocValue/4)
	d, err := s.PutDoc(ctx, kms.Doc{Kind: long, ID: long, Value: big})
	if err != nil {
		t.Fatalf("doc at the limits (128-byte kind and id, 1 MiB value): %v", err)
	}
	checkDoc(t, s, d)
	d.Value = append(big, 1)
	_, err = s.PutDoc(ctx, d)
	wantErr(t, "update to a value over 1 MiB", err, kms.ErrInvalid)
	checkDoc(t, s, kms.Doc{Kind: long, ID: long, Value: big, Revision: 1, Updated: d.Updated})
	for name, d := range map[string]kms.Doc{
		"value over 1 MiB": {Kind: "k", ID: "big", Value: append(big, 1)},
		"kind over 128 B":  {Kind: long + "x", ID: "a"},
		"id over 128 B":    {Kind: "k", ID: long + "x"},
	} {
		_, err := s.PutDoc(ctx, d)
		wantErr(t, name, err, kms.ErrInvalid)
	}
	if ds, err := s.ListDocs(ctx, "k", ""); err != nil || len(ds) != 0 {
		t.Fatalf("refused docs were written: %+v, %v", ds, err)
	}
}

func testListDocs(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	// The ids include LIKE wildcards, upper case, a byte that a naive
	// prefix successor would carry out of ASCII, and multi-byte UTF-8.
	ids := []string{"a", "a%", "a_x", "ab", "abc", "b", "Z", "A", "é", "a\x7f", "a\x7fz", ""}
	for _, id := range ids {
		if _, err := s.PutDoc(ctx, kms.Doc{Kind: "nonce", ID: id, Value: []byte("v:" + id)}); err != nil {
			t.Fatalf("create nonce %q: %v", id, err)
		}
	}
	for kind, id := range map[string]string{"nonces": "a", "key": "a1", "Nonce": "a", "nonc": "a"} {
		if _, err := s.PutDoc(ctx, kms.Doc{Kind: kind, ID: id, Value: []byte("other kind")}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.PutDoc(ctx, kms.Doc{Kind: "nonce", ID: "ab", Value: []byte("v:ab"), Revision: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "a", "a%", "a_", "a\x7f", "ab", "A", "é", "x", "abcd"} {
		var want []string
		for _, id := range ids {
			if strings.HasPrefix(id, prefix) {
				want = append(want, id)
			}
		}
		sort.Strings(want) // byte order
		ds, err := s.ListDocs(ctx, "nonce", prefix)
		if err != nil {
			t.Fatalf("list prefix %q: %v", prefix, err)
		}
		var got []string
		for _, g := range ds {
			got = append(got, g.ID)
			wantRev := int64(1)
			if g.ID == "ab" {
				wantRev = d.Revision
			}
			if g.Kind != "nonce" || string(g.Value) != "v:"+g.ID || g.Revision != wantRev || g.Updated.IsZero() {
				t.Errorf("list prefix %q: got doc %+v", prefix, g)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("list prefix %q: got %q, want %q", prefix, got, want)
		}
	}
	if ds, err := s.ListDocs(ctx, "none", ""); err != nil || len(ds) != 0 {
		t.Fatalf("docs of an unknown kind: %+v, %v", ds, err)
	}
}

func testConcurrentDocs(t *testing.T, s LifecycleStore) {
	ctx := t.Context()
	const n = 16
	winner := race(t, n, "create doc", func(i int) error {
		_, err := s.PutDoc(ctx, kms.Doc{Kind: "nonce", ID: "race", Value: []byte{byte(i)}})
		return err
	}, kms.ErrExists)
	if got, err := s.Doc(ctx, "nonce", "race"); err != nil || !bytes.Equal(got.Value, []byte{byte(winner)}) {
		t.Fatalf("after racing creates: got %+v, %v; want the value of %d", got, err, winner)
	}
	winner = race(t, n, "update doc", func(i int) error {
		_, err := s.PutDoc(ctx, kms.Doc{Kind: "nonce", ID: "race", Value: []byte{byte(i), 2}, Revision: 1})
		return err
	}, kms.ErrConflict)
	if got, err := s.Doc(ctx, "nonce", "race"); err != nil || got.Revision != 2 || !bytes.Equal(got.Value, []byte{byte(winner), 2}) {
		t.Fatalf("after racing updates: got %+v, %v; want the value of %d", got, err, winner)
	}
	// Burning a single-use nonce: of the deleters of one revision, exactly
	// one succeeds.
	race(t, n, "delete doc", func(int) error { return s.DeleteDoc(ctx, "nonce", "race", 2) },
		kms.ErrNotFound, kms.ErrConflict)
	if _, err := s.Doc(ctx, "nonce", "race"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("after racing deletes: want ErrNotFound, got %v", err)
	}
}
