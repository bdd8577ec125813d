package kms_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// clock is a fake clock for ServiceOptions.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const day = 24 * time.Hour

// newService returns a Service on a real SQLite store with a fake clock,
// and user alice.
func newService(t *testing.T, opt kms.ServiceOptions) (*kms.Service, *clock) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kms.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{7}, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	opt.Now = clk.Now
	svc := kms.NewService(st, kms.Static{K: kr}, opt)
	if err := svc.CreateUser(t.Context(), "alice", "unused hash"); err != nil {
		t.Fatal(err)
	}
	return svc, clk
}

func wantErr(t *testing.T, what string, err, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(fmt.Sprint(err), msg) {
		t.Fatalf("%s: %v, want %v containing %q", what, err, kind, msg)
	}
}

func maintain(t *testing.T, svc *kms.Service) {
	t.Helper()
	if err := svc.Maintain(t.Context()); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
}

func describe(t *testing.T, svc *kms.Service, name string) kms.KeyInfo {
	t.Helper()
	info, err := svc.DescribeKey(t.Context(), "alice", name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestScheduledDeletion walks a key through the deletion window with a fake
// clock: validation of the window, refusal while pending, cancellation,
// and destruction by Maintain once (and only once) the date has passed.
func TestScheduledDeletion(t *testing.T) {
	ctx := t.Context()
	svc, clk := newService(t, kms.ServiceOptions{})
	if _, err := svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.CreateDataKey(ctx, "alice", "pk", "dk"); err != nil {
		t.Fatal(err)
	}
	dk, err := svc.DataKey(ctx, "alice", "pk", "dk")
	if err != nil {
		t.Fatal(err)
	}
	ct, _, err := svc.Encrypt(ctx, "alice", "pk", []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, days := range []int{-1, 1, 6, 31, 365} {
		_, err := svc.ScheduleKeyDeletion(ctx, "alice", "pk", days)
		wantErr(t, fmt.Sprintf("%d days", days), err, kms.ErrInvalid, "between 7 and 30 days")
	}
	if _, err := svc.ScheduleKeyDeletion(ctx, "alice", "nope", 7); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("schedule unknown key: %v", err)
	}

	// 0 days means the default, 30.
	info, err := svc.ScheduleKeyDeletion(ctx, "alice", "pk", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(30 * day); info.Meta.State != kms.KeyPendingDeletion || !info.Meta.DeletionDate.Equal(want) {
		t.Fatalf("scheduled: state %s date %v, want pending_deletion %v", info.Meta.State, info.Meta.DeletionDate, want)
	}
	_, err = svc.DataKey(ctx, "alice", "pk", "dk")
	wantErr(t, "data key while pending", err, kms.ErrDisabled, "scheduled for deletion")
	_, _, err = svc.Encrypt(ctx, "alice", "pk", []byte("x"), nil)
	wantErr(t, "encrypt while pending", err, kms.ErrDisabled, "scheduled for deletion")
	_, err = svc.ScheduleKeyDeletion(ctx, "alice", "pk", 7)
	wantErr(t, "schedule twice", err, kms.ErrDisabled, "scheduled for deletion")
	_, err = svc.SetKeyEnabled(ctx, "alice", "pk", true)
	wantErr(t, "enable while pending", err, kms.ErrDisabled, "scheduled for deletion")

	clk.Advance(30*day - time.Second)
	maintain(t, svc)
	if s := describe(t, svc, "pk").Meta.State; s != kms.KeyPendingDeletion {
		t.Fatalf("a second before the date: %s", s)
	}

	// Cancel: disabled, then enabled on purpose; everything works again.
	if info, err := svc.CancelKeyDeletion(ctx, "alice", "pk"); err != nil || info.Meta.State != kms.KeyDisabled || !info.Meta.DeletionDate.IsZero() {
		t.Fatalf("cancel: %+v %v", info.Meta, err)
	}
	_, err = svc.CancelKeyDeletion(ctx, "alice", "pk")
	wantErr(t, "cancel twice", err, kms.ErrInvalid, "not scheduled")
	clk.Advance(time.Hour)
	maintain(t, svc)
	if s := describe(t, svc, "pk").Meta.State; s != kms.KeyDisabled {
		t.Fatalf("cancelled key after its old date: %s", s)
	}
	if _, err := svc.SetKeyEnabled(ctx, "alice", "pk", true); err != nil {
		t.Fatal(err)
	}
	if got, err := svc.DataKey(ctx, "alice", "pk", "dk"); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("data key after cancel: %v", err)
	}

	// Schedule again with the shortest window and let it pass.
	if _, err := svc.ScheduleKeyDeletion(ctx, "alice", "pk", 7); err != nil {
		t.Fatal(err)
	}
	clk.Advance(7*day - time.Minute)
	maintain(t, svc)
	if s := describe(t, svc, "pk").Meta.State; s != kms.KeyPendingDeletion {
		t.Fatalf("a minute before the date: %s", s)
	}
	clk.Advance(time.Minute)
	maintain(t, svc)
	info = describe(t, svc, "pk")
	if info.Meta.State != kms.KeyDestroyed || len(info.Versions) != 0 || !info.Meta.DestroyedAt.Equal(clk.Now()) {
		t.Fatalf("after the date: %+v, %d versions", info.Meta, len(info.Versions))
	}
	maintain(t, svc) // idempotent

	_, err = svc.DataKey(ctx, "alice", "pk", "dk")
	wantErr(t, "data key of a destroyed key", err, kms.ErrNotFound, "was destroyed on")
	_, _, err = svc.Decrypt(ctx, "alice", "pk", ct, nil)
	wantErr(t, "decrypt with a destroyed key", err, kms.ErrNotFound, "was destroyed on")
	_, err = svc.CancelKeyDeletion(ctx, "alice", "pk")
	wantErr(t, "cancel after destruction", err, kms.ErrInvalid, "not scheduled")
	_, err = svc.SetKeyEnabled(ctx, "alice", "pk", true)
	wantErr(t, "enable after destruction", err, kms.ErrNotFound, "was destroyed")
	_, err = svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{})
	wantErr(t, "reuse the name", err, kms.ErrExists, "already exists")
	if err := svc.CreatePrimaryKey(ctx, "alice", "pk"); !errors.Is(err, kms.ErrExists) {
		t.Fatalf("BigDL create of a destroyed name: %v", err)
	}
}

// TestScheduledRotation checks that Maintain rotates a key once its period
// has passed (the period given at creation is kept), and that new
// ciphertexts then use the new version at once while old ones decrypt.
func TestScheduledRotation(t *testing.T) {
	ctx := t.Context()
	svc, clk := newService(t, kms.ServiceOptions{})
	info, err := svc.CreateKey(ctx, "alice", "daily", kms.KeyOptions{RotationPeriod: day})
	if err != nil {
		t.Fatal(err)
	}
	if info.Meta.RotationPeriod != day {
		t.Fatalf("created with a period of %v; describe says %v", day, info.Meta.RotationPeriod)
	}
	if _, err := svc.CreateKey(ctx, "alice", "manual", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateKey(ctx, "alice", "off", kms.KeyOptions{RotationPeriod: day}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetKeyEnabled(ctx, "alice", "off", false); err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateKey(ctx, "alice", "short", kms.KeyOptions{RotationPeriod: time.Minute})
	wantErr(t, "period under an hour", err, kms.ErrInvalid, "at least one hour")

	old, v, err := svc.Encrypt(ctx, "alice", "daily", []byte("v1 data"), map[string]string{"a": "b"})
	if err != nil || v != 1 {
		t.Fatalf("encrypt: v%d %v", v, err)
	}
	clk.Advance(day - time.Second)
	maintain(t, svc)
	if got := describe(t, svc, "daily").Latest(); got != 1 {
		t.Fatalf("rotated early: version %d", got)
	}
	clk.Advance(time.Second)
	maintain(t, svc)
	info = describe(t, svc, "daily")
	if info.Latest() != 2 || !info.Meta.LastRotated.Equal(clk.Now()) {
		t.Fatalf("after the period: version %d, last rotated %v", info.Latest(), info.Meta.LastRotated)
	}
	if _, v, err := svc.Encrypt(ctx, "alice", "daily", []byte("new"), nil); err != nil || v != 2 {
		t.Fatalf("encrypt after scheduled rotation: v%d %v", v, err)
	}
	if pt, v, err := svc.Decrypt(ctx, "alice", "daily", old, map[string]string{"a": "b"}); err != nil || v != 1 || string(pt) != "v1 data" {
		t.Fatalf("old ciphertext: %q v%d %v", pt, v, err)
	}
	for _, name := range []string{"manual", "off"} {
		if got := describe(t, svc, name).Latest(); got != 1 {
			t.Fatalf("key %s rotated: version %d", name, got)
		}
	}
	// The next period counts from the last rotation.
	clk.Advance(day / 2)
	maintain(t, svc)
	clk.Advance(day / 2)
	maintain(t, svc)
	if got := describe(t, svc, "daily").Latest(); got != 3 {
		t.Fatalf("second period: version %d", got)
	}
	// Turning the period off stops it.
	zero := time.Duration(0)
	if _, err := svc.ConfigureKey(ctx, "alice", "daily", kms.KeyConfig{RotationPeriod: &zero}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * day)
	maintain(t, svc)
	if got := describe(t, svc, "daily").Latest(); got != 3 {
		t.Fatalf("rotated with the period off: version %d", got)
	}
}

// TestRotateUsesNewVersionAtOnce encrypts (warming the service's caches),
// rotates, and expects the very next encryption and data key to use the
// new version; then retires version 1 with min_decryption_version.
func TestRotateUsesNewVersionAtOnce(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, kms.ServiceOptions{})
	if _, err := svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	ct1, v, err := svc.Encrypt(ctx, "alice", "pk", []byte("one"), nil)
	if err != nil || v != 1 {
		t.Fatalf("encrypt: v%d %v", v, err)
	}
	if err := svc.CreateDataKey(ctx, "alice", "pk", "dk1"); err != nil {
		t.Fatal(err)
	}
	dk1, err := svc.DataKey(ctx, "alice", "pk", "dk1")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := svc.RotateKey(ctx, "alice", "pk"); err != nil || info.Latest() != 2 {
		t.Fatalf("rotate: %v", err)
	}
	if _, v, err := svc.Encrypt(ctx, "alice", "pk", []byte("two"), nil); err != nil || v != 2 {
		t.Fatalf("encrypt right after rotation used version %d (%v), want 2", v, err)
	}
	if _, ct, v, err := svc.GenerateDataKey(ctx, "alice", "pk", 32, nil, false); err != nil || v != 2 || len(ct) == 0 {
		t.Fatalf("data key right after rotation: version %d (%v), want 2", v, err)
	}
	if got, err := svc.DataKey(ctx, "alice", "pk", "dk1"); err != nil || !bytes.Equal(got, dk1) {
		t.Fatalf("BigDL data key of version 1 after rotation: %v", err)
	}
	if pt, v, err := svc.Decrypt(ctx, "alice", "pk", ct1, nil); err != nil || v != 1 || string(pt) != "one" {
		t.Fatalf("version 1 ciphertext: %q v%d %v", pt, v, err)
	}
	re, v, err := svc.ReEncrypt(ctx, "alice", "pk", ct1, nil, "pk", nil)
	if err != nil || v != 2 {
		t.Fatalf("reencrypt: v%d %v", v, err)
	}

	two := 2
	if _, err := svc.ConfigureKey(ctx, "alice", "pk", kms.KeyConfig{MinDecryptionVersion: &two}); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Decrypt(ctx, "alice", "pk", ct1, nil)
	wantErr(t, "version 1 below the minimum", err, kms.ErrInvalid, "below its minimum decryption version 2")
	if pt, _, err := svc.Decrypt(ctx, "alice", "pk", re, nil); err != nil || string(pt) != "one" {
		t.Fatalf("rewrapped ciphertext: %q %v", pt, err)
	}
	for _, v := range []int{0, 1, 3} {
		_, err := svc.ConfigureKey(ctx, "alice", "pk", kms.KeyConfig{MinDecryptionVersion: &v})
		wantErr(t, fmt.Sprintf("min version %d", v), err, kms.ErrInvalid, "min_decryption_version")
	}
}

// TestUsageLimitRotates counts encryptions per version and rotates a
// version that reached MaxEncryptionsPerVersion at the next Maintain.
func TestUsageLimitRotates(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, kms.ServiceOptions{MaxEncryptionsPerVersion: 3})
	if _, err := svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := svc.Encrypt(ctx, "alice", "pk", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	maintain(t, svc)
	info := describe(t, svc, "pk")
	if info.Latest() != 1 || info.Meta.Encryptions[1] != 2 {
		t.Fatalf("after 2 encryptions: version %d, counts %v", info.Latest(), info.Meta.Encryptions)
	}
	if _, _, err := svc.Encrypt(ctx, "alice", "pk", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	maintain(t, svc)
	if info := describe(t, svc, "pk"); info.Latest() != 2 || info.Meta.Encryptions[1] != 3 {
		t.Fatalf("after 3 encryptions: version %d, counts %v", info.Latest(), info.Meta.Encryptions)
	}
}

// TestCheckUsable is the check a batch makes once before its items.
func TestCheckUsable(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, kms.ServiceOptions{})
	err := svc.CheckUsable(ctx, "alice", "pk")
	wantErr(t, "unknown key", err, kms.ErrNotFound, "primaryKey [pk] does not exist")
	if _, err := svc.CreateKey(ctx, "alice", "pk", kms.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckUsable(ctx, "alice", "pk"); err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckUsable(ctx, "bob", "pk"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("another owner's key: %v", err)
	}
	if _, err := svc.SetKeyEnabled(ctx, "alice", "pk", false); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "disabled key", svc.CheckUsable(ctx, "alice", "pk"), kms.ErrDisabled, "is disabled")
}

// TestCreateKeyUnknownOwner: an admin naming an owner that does not exist
// is told so.
func TestCreateKeyUnknownOwner(t *testing.T) {
	svc, _ := newService(t, kms.ServiceOptions{})
	_, err := svc.CreateKey(t.Context(), "ghost", "pk", kms.KeyOptions{})
	wantErr(t, "key of an unknown owner", err, kms.ErrNotFound, "user [ghost] does not exist")
}
