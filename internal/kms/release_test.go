package kms_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// releaseReplicas returns two Services ("replicas") on one SQLite store
// with a shared fake clock, MetaTTL 5s, user alice, primary key pk and
// data key dk.
func releaseReplicas(t *testing.T) (a, b *kms.Service, now *time.Time) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kms.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{3}, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now = &t0
	opt := kms.ServiceOptions{MetaTTL: 5 * time.Second, Now: func() time.Time { return *now }}
	a = kms.NewService(st, kms.Static{K: kr}, opt)
	b = kms.NewService(st, kms.Static{K: kr}, opt)
	ctx := t.Context()
	for _, err := range []error{a.CreateUser(ctx, "alice", "h"), a.CreatePrimaryKey(ctx, "alice", "pk"), a.CreateDataKey(ctx, "alice", "pk", "dk")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return a, b, now
}

func TestReleasePolicyGuardsDataKey(t *testing.T) {
	a, b, now := releaseReplicas(t)
	ctx := t.Context()
	want, err := a.DataKey(ctx, "alice", "pk", "dk")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ReleaseDataKey(ctx, "alice", "pk", "dk"); !errors.Is(err, kms.ErrForbidden) {
		t.Fatalf("ReleaseDataKey without a policy: %v, want ErrForbidden", err)
	}
	if _, err := b.DataKey(ctx, "alice", "pk", "dk"); err != nil { // b caches "no policy"
		t.Fatal(err)
	}
	if err := a.SetReleasePolicy(ctx, "alice", "pk", []byte(`{"p":1}`), false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DataKey(ctx, "alice", "pk", "dk"); !errors.Is(err, kms.ErrForbidden) {
		t.Fatalf("DataKey on this replica after the policy: %v, want ErrForbidden at once", err)
	}
	if _, err := b.DataKey(ctx, "alice", "pk", "dk"); err != nil {
		t.Fatalf("other replica within MetaTTL: %v (the documented bound)", err)
	}
	*now = now.Add(6 * time.Second)
	if _, err := b.DataKey(ctx, "alice", "pk", "dk"); !errors.Is(err, kms.ErrForbidden) {
		t.Fatalf("other replica after MetaTTL: %v, want ErrForbidden", err)
	}
	got, version, err := b.ReleaseDataKey(ctx, "alice", "pk", "dk")
	if err != nil || !bytes.Equal(got, want) || version != 1 {
		t.Fatalf("ReleaseDataKey = %x, %d, %v; want %x, 1", got, version, err, want)
	}
	if p, err := a.ReleasePolicy(ctx, "alice", "pk"); err != nil || string(p) != `{"p":1}` {
		t.Fatalf("ReleasePolicy = %s, %v", p, err)
	}
}

func TestReleasePolicyChanges(t *testing.T) {
	a, _, _ := releaseReplicas(t)
	ctx := t.Context()
	if err := a.SetReleasePolicy(ctx, "alice", "nokey", []byte(`{}`), false); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("policy for a missing key: %v", err)
	}
	if err := a.SetReleasePolicy(ctx, "bob", "pk", []byte(`{}`), true); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("policy for another owner's key name: %v", err)
	}
	if _, err := a.ReleasePolicy(ctx, "alice", "pk"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("no policy yet: %v", err)
	}
	if err := a.DeleteReleasePolicy(ctx, "alice", "pk"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("delete without policy: %v", err)
	}
	if err := a.SetReleasePolicy(ctx, "alice", "pk", []byte(`{"v":1}`), false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReleasePolicy(ctx, "alice", "pk", []byte(`{"v":2}`), false); !errors.Is(err, kms.ErrExists) {
		t.Fatalf("create over an existing policy: %v, want ErrExists", err)
	}
	if err := a.SetReleasePolicy(ctx, "alice", "pk", []byte(`{"v":2}`), true); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.ReleasePolicy(ctx, "alice", "pk"); string(p) != `{"v":2}` {
		t.Fatalf("after replace: %s", p)
	}
	if err := a.DeleteReleasePolicy(ctx, "alice", "pk"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DataKey(ctx, "alice", "pk", "dk"); err != nil {
		t.Fatalf("DataKey after the policy was removed: %v", err)
	}
}

// TestReleasePolicyGuardsNativePlaintext: with a release policy, the native
// API hands out no plaintext either: decrypt and generate-data-key with
// plaintext are refused, generate-data-key-without-plaintext still works.
func TestReleasePolicyGuardsNativePlaintext(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, kms.ServiceOptions{})
	if _, err := svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	ct, _, err := svc.Encrypt(ctx, "alice", "pk", []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := []byte(`{"tee":"sgx","sgx":{"mrenclave":["` + strings.Repeat("ab", 32) + `"]}}`)
	if err := svc.SetReleasePolicy(ctx, "alice", "pk", policy, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Decrypt(ctx, "alice", "pk", ct, nil); !errors.Is(err, kms.ErrForbidden) {
		t.Fatalf("decrypt under a release policy: %v", err)
	}
	if _, _, _, err := svc.GenerateDataKey(ctx, "alice", "pk", 32, nil, true); !errors.Is(err, kms.ErrForbidden) {
		t.Fatalf("generate-data-key with plaintext under a release policy: %v", err)
	}
	if _, ct2, _, err := svc.GenerateDataKey(ctx, "alice", "pk", 32, nil, false); err != nil || len(ct2) == 0 {
		t.Fatalf("generate-data-key-without-plaintext: %v", err)
	}
}
