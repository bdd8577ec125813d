package seal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/shamir"
)

// staticSource is a rootkey.Source with a fixed key.
type staticSource []byte

func (s staticSource) RootKey(context.Context) ([]byte, error) { return bytes.Clone(s), nil }
func (s staticSource) Describe() string                        { return "test key" }

func keyOf(b byte) staticSource { return staticSource(bytes.Repeat([]byte{b}, KeyLen)) }

func newManager(t *testing.T, st Store) *Manager {
	t.Helper()
	m := New(st, Options{PollInterval: -1})
	t.Cleanup(func() { m.Close() })
	return m
}

func mustKeyring(t *testing.T, m *Manager) *keyring.Keyring {
	t.Helper()
	kr, err := m.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestInitAndUnseal(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		m := newManager(t, st)
		if s, err := m.Open(ctx); err != nil || s.Initialized || !s.Sealed {
			t.Fatalf("fresh store: %+v, %v", s, err)
		}
		shares, err := m.Init(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != 5 {
			t.Fatalf("%d shares", len(shares))
		}
		for i, s := range shares {
			b, _ := json.Marshal(s)
			p, err := shamir.ParseShare(b)
			if err != nil || p.Index != i+1 || len(p.Content) != 44 {
				t.Fatalf("share %d: %s: %v", i+1, b, err)
			}
		}
		if s := m.Status(); s.Sealed || s.Threshold != 3 || s.Shares != 5 || s.RootVersion != 1 {
			t.Fatalf("after Init: %+v", s)
		}
		f := createKeys(t, st, mustKeyring(t, m), "pk", 3)

		// A restarted replica starts sealed and unseals with 3 shares.
		r := newManager(t, st)
		if s, _ := r.Open(ctx); !s.Initialized || !s.Sealed || s.Threshold != 3 {
			t.Fatalf("replica: %+v", s)
		}
		if _, err := r.Keyring(); !errors.Is(err, kms.ErrSealed) {
			t.Fatalf("sealed Keyring() = %v", err)
		}
		step := func(s shamir.Share, wantProgress int, wantErr bool) {
			t.Helper()
			st, err := r.Unseal(ctx, s)
			if (err != nil) != wantErr || st.Progress != wantProgress {
				t.Fatalf("Unseal(share %d) = %+v, %v", s.Index, st, err)
			}
		}
		step(shares[4], 1, false)
		step(shares[4], 1, true) // duplicate: refused, not counted
		dup := shamir.Share{Index: 5, Content: bytes.Clone(shares[0].Content)}
		step(dup, 1, true) // same index, other content: refused too
		step(shamir.Share{Index: 2, Content: []byte("short")}, 1, true)
		step(shares[1], 2, false)
		step(shares[2], 0, false)
		if s := r.Status(); s.Sealed {
			t.Fatalf("still sealed: %+v", s)
		}
		f.check(t, st, r)
		// Shares to an unsealed Manager are ignored.
		if _, err := r.Unseal(ctx, shares[0]); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUnsealEverySubset(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	ctx := t.Context()
	shares, err := newManager(t, st).Init(ctx, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for a := range 5 {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				r := newManager(t, st)
				for _, i := range []int{c, a, b} {
					if _, err := r.Unseal(ctx, shares[i]); err != nil {
						t.Fatal(err)
					}
				}
				if r.Status().Sealed {
					t.Fatalf("shares %d,%d,%d do not unseal", a+1, b+1, c+1)
				}
			}
		}
	}
}

func TestUnsealWrongShareSet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	shares, _ := newManager(t, st).Init(ctx, 5, 3)
	foreign, _ := newManager(t, newFakeStore()).Init(ctx, 5, 3)

	r := newManager(t, st)
	for _, s := range []shamir.Share{shares[0], shares[1], foreign[2]} {
		_, err := r.Unseal(ctx, s)
		if s.Index == 3 && (!errors.Is(err, kms.ErrInvalid) || !strings.Contains(err.Error(), "discarded")) {
			t.Fatalf("wrong set: %v", err)
		}
	}
	if s := r.Status(); !s.Sealed || s.Progress != 0 {
		t.Fatalf("after a wrong set: %+v (want sealed, every share discarded)", s)
	}
	// A corrupted share is as wrong as a foreign one.
	bad := shamir.Share{Index: 4, Content: bytes.Clone(shares[3].Content)}
	bad.Content[0] ^= 1
	r.Unseal(ctx, shares[0])
	r.Unseal(ctx, shares[1])
	if _, err := r.Unseal(ctx, bad); err == nil || !r.Status().Sealed {
		t.Fatal("a corrupted share unsealed")
	}
	// The right shares still work afterwards.
	for _, s := range shares[2:] {
		if _, err := r.Unseal(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if r.Status().Sealed {
		t.Fatal("right shares after a wrong set did not unseal")
	}
}

func TestResetUnseal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	shares, _ := newManager(t, st).Init(ctx, 3, 2)
	r := newManager(t, st)
	r.Unseal(ctx, shares[0])
	r.ResetUnseal()
	if p := r.Status().Progress; p != 0 {
		t.Fatalf("progress %d after reset", p)
	}
	r.Unseal(ctx, shares[1])
	r.Unseal(ctx, shares[2])
	if r.Status().Sealed {
		t.Fatal("did not unseal")
	}
}

func TestInitRefusals(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		m := newManager(t, st)
		for _, c := range [][2]int{{0, 3}, {3, 4}, {3, 1}, {256, 3}, {-1, -1}} {
			if _, err := m.Init(ctx, c[0], c[1]); !errors.Is(err, kms.ErrInvalid) {
				t.Errorf("Init(%d, %d) = %v, want ErrInvalid", c[0], c[1], err)
			}
		}
		if _, err := m.Unseal(ctx, shamir.Share{Index: 1, Content: make([]byte, 44)}); !errors.Is(err, kms.ErrInvalid) {
			t.Errorf("Unseal before Init = %v", err)
		}
		if _, err := m.Init(ctx, 1, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := newManager(t, st).Init(ctx, 5, 3); !errors.Is(err, kms.ErrExists) {
			t.Errorf("second Init = %v, want ErrExists", err)
		}
	})
	t.Run("store with keys", func(t *testing.T) {
		st := newFakeStore()
		kr, _ := keyring.New(keyOf(7), 1)
		createKeys(t, st, kr, "pk", 1)
		if _, err := newManager(t, st).Init(t.Context(), 5, 3); !errors.Is(err, kms.ErrInvalid) {
			t.Fatalf("Init over existing keys = %v", err)
		}
	})
	t.Run("unseal an auto store", func(t *testing.T) {
		st := newFakeStore()
		if err := newManager(t, st).LoadAuto(t.Context(), keyOf(1)); err != nil {
			t.Fatal(err)
		}
		_, err := newManager(t, st).Unseal(t.Context(), shamir.Share{Index: 1, Content: make([]byte, 44)})
		if !errors.Is(err, kms.ErrInvalid) {
			t.Fatalf("Unseal of an auto store = %v", err)
		}
	})
}

// TestSharesAreBigDLText checks that the shares combine to the 44-character
// base64 text of root key version 1, as BigDL's do, so an operator can
// recover the key with any BigDL-compatible tool.
func TestSharesAreBigDLText(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	m := newManager(t, st)
	shares, _ := m.Init(t.Context(), 5, 3)
	text, err := shamir.Combine(shares[1:4])
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(key) != 32 {
		t.Fatalf("combined shares are not base64 of 32 bytes: %v", err)
	}
	k1, _ := keyring.New(key, 1)
	if !mustKeyring(t, m).Equal(k1) {
		t.Fatal("shares do not recover root key version 1")
	}
}

func TestLoadAuto(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		m := newManager(t, st)
		if err := m.LoadAuto(ctx, keyOf(1)); err != nil {
			t.Fatal(err)
		}
		if s := m.Status(); s.Sealed || !s.Initialized || s.RootVersion != 1 || s.Threshold != 0 {
			t.Fatalf("%+v", s)
		}
		f := createKeys(t, st, mustKeyring(t, m), "pk", 2)
		// Restart with the same key.
		r := newManager(t, st)
		if err := r.LoadAuto(ctx, keyOf(1)); err != nil {
			t.Fatal(err)
		}
		f.check(t, st, r)
		// Restart with a wrong key: refused at start, nothing loaded.
		w := newManager(t, st)
		err := w.LoadAuto(ctx, keyOf(2))
		if err == nil || !strings.Contains(err.Error(), "check value") {
			t.Fatalf("wrong key: %v", err)
		}
		if !w.Status().Sealed {
			t.Fatal("wrong key unsealed")
		}
	})
}

// TestLoadAutoExistingDeployment covers the first start of this version
// on a store written before seal documents existed.
func TestLoadAutoExistingDeployment(t *testing.T) {
	eachStore(t, func(t *testing.T, st testStore) {
		ctx := t.Context()
		old, _ := keyring.New(keyOf(9), 1)
		f := createKeys(t, st, old, "pk", 3)
		if err := newManager(t, st).LoadAuto(ctx, keyOf(8)); err == nil ||
			!strings.Contains(err.Error(), "does not open") {
			t.Fatalf("wrong key on an existing store: %v", err)
		}
		if _, err := st.Doc(ctx, DocKind, DocID); !errors.Is(err, kms.ErrNotFound) {
			t.Fatal("a wrong key created the seal document")
		}
		m := newManager(t, st)
		if err := m.LoadAuto(ctx, keyOf(9)); err != nil {
			t.Fatal(err)
		}
		f.check(t, st, m)
	})
}

func TestSealedAndSeal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	m := newManager(t, st)
	if _, err := m.RotateRoot(ctx); !errors.Is(err, kms.ErrSealed) {
		t.Fatalf("RotateRoot while sealed = %v", err)
	}
	if _, err := m.KeyringFor(ctx, 1); !errors.Is(err, kms.ErrSealed) {
		t.Fatalf("KeyringFor while sealed = %v", err)
	}
	if err := m.Refresh(ctx); !errors.Is(err, kms.ErrSealed) {
		t.Fatalf("Refresh while sealed = %v", err)
	}
	if err := m.LoadAuto(ctx, keyOf(1)); err != nil {
		t.Fatal(err)
	}
	m.Seal()
	if _, err := m.Keyring(); !errors.Is(err, kms.ErrSealed) || !m.Status().Sealed {
		t.Fatal("Seal did not seal")
	}
	if err := m.LoadAuto(ctx, keyOf(1)); err != nil || m.Status().Sealed {
		t.Fatalf("unseal after Seal: %v", err)
	}
}

func TestStatusJSON(t *testing.T) {
	b, _ := json.Marshal(Status{Initialized: true, Sealed: true, Shares: 5, Threshold: 3, Progress: 1})
	if string(b) != `{"initialized":true,"sealed":true,"shares":5,"threshold":3,"progress":1}` {
		t.Fatalf("%s", b)
	}
}
