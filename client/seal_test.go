package client_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// TestShamirUnseal initialises a -seal shamir server, restarts it sealed,
// and submits a duplicate share (refused, not counted), a share of another
// initialisation (the wrong set is detected and every share discarded), a
// malformed share, then the right shares. /readyz says sealed until then.
func TestShamirUnseal(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{}, "-seal", "shamir")
	other := startKMS(t, kmstest.Options{}, "-seal", "shamir")
	ctx := t.Context()

	st := must(k.anon.SealStatus(ctx))(t)
	if st.Initialized || !st.Sealed || st.Mode != "shamir" {
		t.Fatalf("SealStatus before init = %+v", st)
	}
	wantSealed(t, k)
	alice := k.user(t, "alice") // users live in the store: no root key needed
	wantErr(t, "create a key while sealed", must0(alice.CreateKey(ctx, "pk", nil)), client.ErrSealed, 503)
	wantErr(t, "init by a user", must0(alice.Init(ctx, 5, 3)), client.ErrForbidden, 403)
	wantErr(t, "init without credential", must0(k.anon.Init(ctx, 5, 3)), client.ErrUnauthorized, 401)
	wantErr(t, "init 2 of 1", must0(k.admin.Init(ctx, 1, 2)), client.ErrInvalid, 400)

	init := must(k.admin.Init(ctx, 5, 3))(t)
	if len(init.Shares) != 5 || init.Threshold != 3 {
		t.Fatalf("Init = %d shares, threshold %d", len(init.Shares), init.Threshold)
	}
	for i, s := range init.Shares {
		// BigDL's format: the base64 of a share of the key's 44-character
		// base64 text.
		if b, err := base64.StdEncoding.DecodeString(s.Content); s.Index != i+1 || err != nil || len(b) != 44 {
			t.Fatalf("share %d = index %d, %q", i, s.Index, s.Content)
		}
	}
	wantErr(t, "init twice", must0(k.admin.Init(ctx, 5, 3)), client.ErrExists, 409)
	otherShares := must(other.admin.Init(ctx, 5, 3))(t).Shares

	// Init unseals: keys work.
	must(alice.CreateKey(ctx, "pk", nil))(t)
	ct := must(alice.Encrypt(ctx, "pk", []byte("sealed away"), nil))(t)
	if err := k.anon.CreatePrimaryKey(ctx, "alice", "alice-token", "bpk"); err != nil {
		t.Fatal(err)
	}
	if err := k.anon.CreateDataKey(ctx, "alice", "alice-token", "bpk", "dk"); err != nil {
		t.Fatal(err)
	}
	dk := must(k.anon.DataKey(ctx, "alice", "alice-token", "bpk", "dk"))(t)
	if st, err := k.anon.Status(ctx); err != nil || !st.Ready {
		t.Fatalf("Status after init: %+v %v", st, err)
	}

	k.restart(t)
	alice = newClient(t, k.s, client.WithToken("alice", "alice-token"), client.WithRetries(0))
	st = must(k.anon.SealStatus(ctx))(t)
	if !st.Initialized || !st.Sealed || st.Threshold != 3 || st.Shares != 5 || st.Progress != 0 || st.Mode != "shamir" {
		t.Fatalf("SealStatus after restart = %+v", st)
	}
	wantSealed(t, k)
	wantErr(t, "decrypt while sealed", must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil)), client.ErrSealed, 503)
	wantErr(t, "BigDL data key while sealed", must0(k.anon.DataKey(ctx, "alice", "alice-token", "bpk", "dk")), client.ErrSealed, 503)
	wantErr(t, "rotate root while sealed", must0(k.admin.RotateRoot(ctx)), client.ErrSealed, 503)
	wantErr(t, "unseal by a user", must0(alice.Unseal(ctx, init.Shares[0])), client.ErrForbidden, 403)
	wantErr(t, "unseal without credential", must0(k.anon.Unseal(ctx, init.Shares[0])), client.ErrUnauthorized, 401)

	progress := func(want int) {
		t.Helper()
		if st := must(k.anon.SealStatus(ctx))(t); !st.Sealed || st.Progress != want {
			t.Fatalf("SealStatus = %+v, want sealed with %d shares", st, want)
		}
	}
	if st := must(k.admin.Unseal(ctx, init.Shares[0]))(t); !st.Sealed || st.Progress != 1 {
		t.Fatalf("first share: %+v", st)
	}
	err := must0(k.admin.Unseal(ctx, init.Shares[0]))
	wantErr(t, "duplicate share", err, client.ErrInvalid, 400)
	if !strings.Contains(err.Error(), "already submitted") {
		t.Fatalf("duplicate share: unclear error %v", err)
	}
	progress(1)
	for _, bad := range []api.Share{{Index: 3, Content: "bm90IGEgc2hhcmU="}, {Index: 0, Content: init.Shares[2].Content}} {
		wantErr(t, "malformed share", must0(k.admin.Unseal(ctx, bad)), client.ErrInvalid, 400)
	}
	progress(1)
	// A share of another initialisation, then a third: the set does not
	// reconstruct the seal key and is discarded as a whole.
	if st := must(k.admin.Unseal(ctx, otherShares[1]))(t); st.Progress != 2 {
		t.Fatalf("foreign share: %+v", st)
	}
	err = must0(k.admin.Unseal(ctx, init.Shares[2]))
	wantErr(t, "wrong set", err, client.ErrInvalid, 400)
	if !strings.Contains(err.Error(), "do not reconstruct") {
		t.Fatalf("wrong set: unclear error %v", err)
	}
	progress(0)
	wantSealed(t, k)

	// Any three right shares unseal, in any order.
	for i, idx := range []int{4, 1, 2} {
		st := must(k.admin.Unseal(ctx, init.Shares[idx]))(t)
		if sealed := i < 2; st.Sealed != sealed || (sealed && st.Progress != i+1) {
			t.Fatalf("share %d of 3: %+v", i+1, st)
		}
	}
	if st, err := k.anon.Status(ctx); err != nil || !st.Ready {
		t.Fatalf("Status after unseal: %+v %v", st, err)
	}
	if st := must(k.anon.SealStatus(ctx))(t); st.Sealed || st.Progress != 0 || st.RootVersion != 1 {
		t.Fatalf("SealStatus after unseal = %+v", st)
	}
	if pt := must(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t); string(pt.Plaintext) != "sealed away" {
		t.Fatalf("after unseal: %q", pt.Plaintext)
	}
	if got := must(k.anon.DataKey(ctx, "alice", "alice-token", "bpk", "dk"))(t); !bytes.Equal(got, dk) {
		t.Fatal("BigDL data key changed across the restart")
	}
	// A share on an unsealed server is ignored.
	if st := must(k.admin.Unseal(ctx, otherShares[0]))(t); st.Sealed {
		t.Fatalf("share on an unsealed server: %+v", st)
	}
}

// wantSealed checks that /readyz answers 503 sealed.
func wantSealed(t *testing.T, k *kms) {
	t.Helper()
	st, err := k.anon.Status(t.Context())
	if st == nil || st.Ready || !errors.Is(err, client.ErrSealed) || !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("Status while sealed: %+v %v, want not ready and ErrSealed", st, err)
	}
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != api.CodeSealed {
		t.Fatalf("readiness error %v, want 503 sealed", err)
	}
}

// TestCrashDuringRootRotation kills kmsd in the middle of re-wrapping the
// primary keys under a new root key (KMS_TEST_CRASH_AT=rewrap:2 makes it
// exit with status 3 after the second key), restarts it, and checks that
// every key still opens to the same value and that the rotation completes.
func TestCrashDuringRootRotation(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{Env: []string{"KMS_TEST_CRASH_AT=rewrap:2"}})
	ctx := t.Context()
	alice := k.user(t, "alice")
	const tok = "alice-token"
	values := map[string][]byte{}
	for i := range 5 {
		pk, dk := fmt.Sprintf("pk%d", i), fmt.Sprintf("dk%d", i)
		if err := k.anon.CreatePrimaryKey(ctx, "alice", tok, pk); err != nil {
			t.Fatal(err)
		}
		if err := k.anon.CreateDataKey(ctx, "alice", tok, pk, dk); err != nil {
			t.Fatal(err)
		}
		values[pk] = must(k.anon.DataKey(ctx, "alice", tok, pk, dk))(t)
	}
	must(alice.CreateKey(ctx, "native", nil))(t)
	must(alice.RotateKey(ctx, "native"))(t)
	ct := must(alice.Encrypt(ctx, "native", []byte("survives"), map[string]string{"a": "b"}))(t)

	_, err := k.admin.RotateRoot(ctx)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("RotateRoot with a crash: %v, want the connection to fail", err)
	}
	code, err := k.s.Wait(30 * time.Second)
	if err != nil || code != 3 {
		t.Fatalf("kmsd exit status %d (%v), want 3", code, err)
	}
	if !strings.Contains(k.s.Logs(), "KMS_TEST_CRASH_AT=rewrap:2 reached") {
		t.Fatalf("kmsd did not crash where asked:\n%s", k.s.Logs())
	}

	k.restart(t) // without the crash variable
	alice = newClient(t, k.s, client.WithToken("alice", tok), client.WithRetries(0))
	deadline := time.Now().Add(20 * time.Second)
	var st *api.SealStatus
	for {
		st = must(k.anon.SealStatus(ctx))(t)
		if st.RootVersion == 2 && !st.Rotating || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.RootVersion != 2 || st.Rotating || st.Sealed {
		t.Fatalf("after restart: %+v, want the rotation to version 2 finished", st)
	}
	for i := range 5 {
		pk, dk := fmt.Sprintf("pk%d", i), fmt.Sprintf("dk%d", i)
		if got := must(k.anon.DataKey(ctx, "alice", tok, pk, dk))(t); !bytes.Equal(got, values[pk]) {
			t.Fatalf("data key %s/%s changed across the crash", pk, dk)
		}
	}
	if pt := must(alice.Decrypt(ctx, "native", ct.Ciphertext, map[string]string{"a": "b"}))(t); string(pt.Plaintext) != "survives" {
		t.Fatalf("native ciphertext after the crash: %q", pt.Plaintext)
	}
	// Everything is under version 2 now: the next rotation starts afresh
	// and re-wraps every primary key version (5 + 2).
	res := must(k.admin.RotateRoot(ctx))(t)
	if res.From != 2 || res.To != 3 || res.Resumed || res.Rewrapped != 7 {
		t.Fatalf("next RotateRoot = %+v", res)
	}
	must(alice.Decrypt(ctx, "native", ct.Ciphertext, map[string]string{"a": "b"}))(t)
}
