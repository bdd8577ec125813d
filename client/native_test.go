package client_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// The admin identity of the servers these tests start.
const adminName, adminToken = "root", "admin-token-for-tests-0123456789"

// adminHash is hashed once per test process: argon2id is slow on purpose.
var adminHash = sync.OnceValue(func() string { return auth.HashToken(adminToken) })

// writeAdminTokens writes an -admin-tokens file into dir.
func writeAdminTokens(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "admins")
	if err := os.WriteFile(path, []byte(adminName+" "+adminHash()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kms is a running kmsd with an admin identity and an audit log.
type kms struct {
	s         *kmstest.Server
	args      []string // the extra arguments it was started with
	admin     *client.Client
	anon      *client.Client // no credential
	auditFile string
}

// startKMS starts kmsd with an admin identity, an audit log outside the
// data directory and the extra args; opt.Args is ignored.
func startKMS(t *testing.T, opt kmstest.Options, args ...string) *kms {
	t.Helper()
	dir := t.TempDir()
	k := &kms{auditFile: filepath.Join(dir, "audit.log")}
	k.args = append([]string{"-admin-tokens", writeAdminTokens(t, dir), "-audit-log", k.auditFile, "-access-log=false"}, args...)
	opt.Args = k.args
	k.s = kmstest.StartWith(t, opt)
	k.connect(t)
	return k
}

// restart stops kmsd and starts it again on the same data directory, with
// env (the crash variable is not inherited).
func (k *kms) restart(t *testing.T, env ...string) {
	t.Helper()
	if err := k.s.Close(); err != nil {
		t.Fatal(err)
	}
	k.s = kmstest.StartWith(t, kmstest.Options{DataDir: k.s.DataDir, Args: k.args, Env: env})
	k.connect(t)
}

func (k *kms) connect(t *testing.T) {
	k.admin = newClient(t, k.s, client.WithAdminToken(adminName, adminToken), client.WithRetries(0))
	k.anon = newClient(t, k.s, client.WithRetries(0))
}

// user registers name (token name+"-token") through the BigDL API and
// returns a native client with its credential.
func (k *kms) user(t *testing.T, name string) *client.Client {
	t.Helper()
	if err := k.anon.CreateUser(t.Context(), name, name+"-token"); err != nil {
		t.Fatal(err)
	}
	return newClient(t, k.s, client.WithToken(name, name+"-token"), client.WithRetries(0))
}

// wantErr fails unless err wraps want and, for server errors, has status.
func wantErr(t *testing.T, what string, err, want error, status int) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
	var e *client.Error
	if status != 0 && (!errors.As(err, &e) || e.Status != status) {
		t.Fatalf("%s: %v, want HTTP %d", what, err, status)
	}
}

// must(f())(t) returns f's value, failing the test if f failed.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestNativeKeyManagement covers create, describe, list, configure,
// enable, disable, and scheduled deletion and its cancellation.
func TestNativeKeyManagement(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	alice := k.user(t, "alice")
	ctx := t.Context()

	before := time.Now().Add(-time.Minute)
	key := must(alice.CreateKey(ctx, "pk", nil))(t)
	if key.Owner != "alice" || key.Name != "pk" || key.State != "enabled" || key.LatestVersion != 1 ||
		key.MinDecryptionVersion != 1 || len(key.Versions) != 1 || key.Versions[0].Version != 1 ||
		key.Created.Before(before) || key.DeletionDate != nil {
		t.Fatalf("CreateKey = %+v", key)
	}
	wantErr(t, "create twice", must0(alice.CreateKey(ctx, "pk", nil)), client.ErrExists, 409)
	wantErr(t, "create with a bad name", must0(alice.CreateKey(ctx, "bad name", nil)), client.ErrInvalid, 400)
	wantErr(t, "create with an empty name", must0(alice.CreateKey(ctx, "", nil)), client.ErrInvalid, 0)
	wantErr(t, "period under an hour", must0(alice.CreateKey(ctx, "short", &client.CreateKeyOptions{RotationPeriod: time.Minute})), client.ErrInvalid, 400)
	daily := must(alice.CreateKey(ctx, "daily", &client.CreateKeyOptions{RotationPeriod: 24 * time.Hour}))(t)
	if daily.RotationPeriodSeconds != 86400 {
		t.Fatalf("created with a 24h period: %+v", daily)
	}

	if got := must(alice.DescribeKey(ctx, "pk"))(t); got.Name != "pk" || got.LatestVersion != 1 || !got.Created.Equal(key.Created) {
		t.Fatalf("DescribeKey = %+v", got)
	}
	wantErr(t, "describe unknown", must0(alice.DescribeKey(ctx, "nope")), client.ErrNotFound, 404)
	keys := must(alice.ListKeys(ctx))(t)
	if len(keys) != 2 || keys[0].Name != "daily" || keys[1].Name != "pk" {
		t.Fatalf("ListKeys = %+v", keys)
	}

	// Configure: the period, then the minimum decryption version.
	hour := time.Hour
	if got := must(alice.ConfigureKey(ctx, "pk", client.KeyConfig{RotationPeriod: &hour}))(t); got.RotationPeriodSeconds != 3600 {
		t.Fatalf("ConfigureKey period = %+v", got)
	}
	off := time.Duration(0)
	if got := must(alice.ConfigureKey(ctx, "pk", client.KeyConfig{RotationPeriod: &off}))(t); got.RotationPeriodSeconds != 0 {
		t.Fatalf("ConfigureKey period off = %+v", got)
	}
	wantErr(t, "min version above the newest", must0(alice.ConfigureKey(ctx, "pk", client.KeyConfig{MinDecryptionVersion: 2})), client.ErrInvalid, 400)

	// Disable and enable.
	ct := must(alice.Encrypt(ctx, "pk", []byte("data"), nil))(t)
	if got := must(alice.DisableKey(ctx, "pk"))(t); got.State != "disabled" {
		t.Fatalf("DisableKey = %+v", got)
	}
	wantErr(t, "encrypt with a disabled key", must0(alice.Encrypt(ctx, "pk", []byte("x"), nil)), client.ErrDisabled, 403)
	wantErr(t, "decrypt with a disabled key", must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil)), client.ErrDisabled, 403)
	wantErr(t, "rotate a disabled key", must0(alice.RotateKey(ctx, "pk")), client.ErrDisabled, 403)
	wantErr(t, "batch with a disabled key", must0(alice.EncryptBatch(ctx, "pk", []api.EncryptRequest{{Plaintext: []byte("x")}})), client.ErrDisabled, 403)
	if got := must(alice.EnableKey(ctx, "pk"))(t); got.State != "enabled" {
		t.Fatalf("EnableKey = %+v", got)
	}
	if pt := must(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t); string(pt.Plaintext) != "data" {
		t.Fatalf("decrypt after enable: %q", pt.Plaintext)
	}

	// Deletion: the window's bounds and default, refusal while pending,
	// cancellation back to disabled.
	for _, days := range []int{-1, 6, 31} {
		wantErr(t, "window out of range", must0(alice.ScheduleKeyDeletion(ctx, "pk", days)), client.ErrInvalid, 400)
	}
	wantErr(t, "schedule unknown", must0(alice.ScheduleKeyDeletion(ctx, "nope", 7)), client.ErrNotFound, 404)
	wantErr(t, "cancel not scheduled", must0(alice.CancelKeyDeletion(ctx, "pk")), client.ErrInvalid, 400)
	now := time.Now()
	got := must(alice.ScheduleKeyDeletion(ctx, "pk", 0))(t)
	if got.State != "pending_deletion" || got.DeletionDate == nil || absDur(got.DeletionDate.Sub(now.Add(30*24*time.Hour))) > time.Minute {
		t.Fatalf("ScheduleKeyDeletion(0) = %+v, want 30 days from now", got)
	}
	wantErr(t, "schedule twice", must0(alice.ScheduleKeyDeletion(ctx, "pk", 7)), client.ErrDisabled, 403)
	wantErr(t, "encrypt while pending", must0(alice.Encrypt(ctx, "pk", []byte("x"), nil)), client.ErrDisabled, 403)
	wantErr(t, "decrypt while pending", must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil)), client.ErrDisabled, 403)
	wantErr(t, "enable while pending", must0(alice.EnableKey(ctx, "pk")), client.ErrDisabled, 403)
	if got := must(alice.CancelKeyDeletion(ctx, "pk"))(t); got.State != "disabled" || got.DeletionDate != nil {
		t.Fatalf("CancelKeyDeletion = %+v", got)
	}
	got = must(alice.ScheduleKeyDeletion(ctx, "pk", 7))(t)
	if absDur(got.DeletionDate.Sub(time.Now().Add(7*24*time.Hour))) > time.Minute {
		t.Fatalf("ScheduleKeyDeletion(7) = %+v", got)
	}
	must(alice.CancelKeyDeletion(ctx, "pk"))(t)
	must(alice.EnableKey(ctx, "pk"))(t)
	if pt := must(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t); string(pt.Plaintext) != "data" {
		t.Fatalf("decrypt after cancel and enable: %q", pt.Plaintext)
	}
}

// must0 drops a result, keeping the error, for error-only assertions.
func must0(_ any, err error) error { return err }

func absDur(d time.Duration) time.Duration { return max(d, -d) }

// TestNativeCrypto covers encrypt, decrypt, reencrypt, both data key
// forms and both batches, and the encryption context.
func TestNativeCrypto(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	alice := k.user(t, "alice")
	ctx := t.Context()
	must(alice.CreateKey(ctx, "pk", nil))(t)
	must(alice.CreateKey(ctx, "other", nil))(t)
	ectx := map[string]string{"tenant": "acme", "table": "orders"}

	ct := must(alice.Encrypt(ctx, "pk", []byte("hello"), ectx))(t)
	if ct.KeyVersion != 1 || len(ct.Ciphertext) != 1+4+24+5+16 || ct.Ciphertext[0] != 'K' {
		t.Fatalf("Encrypt = v%d, %d bytes", ct.KeyVersion, len(ct.Ciphertext))
	}
	// The context is a map: order does not matter.
	pt := must(alice.Decrypt(ctx, "pk", ct.Ciphertext, map[string]string{"table": "orders", "tenant": "acme"}))(t)
	if string(pt.Plaintext) != "hello" || pt.KeyVersion != 1 {
		t.Fatalf("Decrypt = %q v%d", pt.Plaintext, pt.KeyVersion)
	}
	// Every mismatch is the same decrypt_failed, 400.
	tampered := bytes.Clone(ct.Ciphertext)
	tampered[len(tampered)-1] ^= 1
	for name, call := range map[string]func() error{
		"no context": func() error { return must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil)) },
		"other value": func() error {
			return must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, map[string]string{"tenant": "evil", "table": "orders"}))
		},
		"extra pair": func() error {
			return must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, map[string]string{"tenant": "acme", "table": "orders", "x": "y"}))
		},
		"missing pair": func() error {
			return must0(alice.Decrypt(ctx, "pk", ct.Ciphertext, map[string]string{"tenant": "acme"}))
		},
		"other key":   func() error { return must0(alice.Decrypt(ctx, "other", ct.Ciphertext, ectx)) },
		"flipped bit": func() error { return must0(alice.Decrypt(ctx, "pk", tampered, ectx)) },
		"truncated":   func() error { return must0(alice.Decrypt(ctx, "pk", ct.Ciphertext[:20], ectx)) },
		"unknown version": func() error {
			c := bytes.Clone(ct.Ciphertext)
			c[4] = 9
			return must0(alice.Decrypt(ctx, "pk", c, ectx))
		},
		"reencrypt context": func() error {
			return must0(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct.Ciphertext}))
		},
	} {
		err := call()
		wantErr(t, name, err, client.ErrDecrypt, 400)
		var e *client.Error
		errors.As(err, &e)
		if e.Code != api.CodeDecrypt || e.RequestID == "" {
			t.Fatalf("%s: code %q, request id %q", name, e.Code, e.RequestID)
		}
	}
	wantErr(t, "plaintext over 4096 bytes", must0(alice.Encrypt(ctx, "pk", make([]byte, 4097), nil)), client.ErrInvalid, 400)
	if ct := must(alice.Encrypt(ctx, "pk", make([]byte, 4096), nil))(t); len(ct.Ciphertext) != 4096+45 {
		t.Fatalf("4096-byte plaintext: %d bytes of ciphertext", len(ct.Ciphertext))
	}
	if ct := must(alice.Encrypt(ctx, "pk", nil, nil))(t); len(must(alice.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t).Plaintext) != 0 {
		t.Fatal("empty plaintext did not round-trip")
	}

	// ReEncrypt to another key and context, without the plaintext leaving.
	re := must(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct.Ciphertext, Context: ectx,
		DestinationKey: "other", DestinationContext: map[string]string{"moved": "yes"}}))(t)
	if pt := must(alice.Decrypt(ctx, "other", re.Ciphertext, map[string]string{"moved": "yes"}))(t); string(pt.Plaintext) != "hello" {
		t.Fatalf("reencrypted: %q", pt.Plaintext)
	}
	re = must(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct.Ciphertext, Context: ectx}))(t)
	if pt := must(alice.Decrypt(ctx, "pk", re.Ciphertext, ectx))(t); string(pt.Plaintext) != "hello" {
		t.Fatalf("reencrypted with the same key and context: %q", pt.Plaintext)
	}
	wantErr(t, "reencrypt to an unknown key", must0(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct.Ciphertext, Context: ectx, DestinationKey: "nope"})), client.ErrNotFound, 404)

	// Data keys.
	for _, tc := range []struct {
		req  api.GenerateDataKeyRequest
		size int
	}{
		{api.GenerateDataKeyRequest{}, 32},
		{api.GenerateDataKeyRequest{KeySpec: "AES_256", Context: ectx}, 32},
		{api.GenerateDataKeyRequest{KeySpec: "AES_128"}, 16},
		{api.GenerateDataKeyRequest{NumberOfBytes: 64}, 64},
	} {
		dk := must(alice.GenerateDataKey(ctx, "pk", tc.req))(t)
		if len(dk.Plaintext) != tc.size || dk.KeyVersion != 1 || bytes.Equal(dk.Plaintext, make([]byte, tc.size)) {
			t.Fatalf("GenerateDataKey(%+v): %d bytes v%d", tc.req, len(dk.Plaintext), dk.KeyVersion)
		}
		if pt := must(alice.Decrypt(ctx, "pk", dk.Ciphertext, tc.req.Context))(t); !bytes.Equal(pt.Plaintext, dk.Plaintext) {
			t.Fatalf("GenerateDataKey(%+v): the ciphertext does not decrypt to the key", tc.req)
		}
	}
	for _, bad := range []api.GenerateDataKeyRequest{{KeySpec: "AES_512"}, {KeySpec: "AES_128", NumberOfBytes: 16}, {NumberOfBytes: 8}, {NumberOfBytes: 65}} {
		wantErr(t, "bad data key request", must0(alice.GenerateDataKey(ctx, "pk", bad)), client.ErrInvalid, 400)
	}
	dk := must(alice.GenerateDataKeyWithoutPlaintext(ctx, "pk", api.GenerateDataKeyRequest{KeySpec: "AES_128", Context: ectx}))(t)
	if dk.Plaintext != nil || dk.KeyVersion != 1 {
		t.Fatalf("GenerateDataKeyWithoutPlaintext = %+v", dk)
	}
	if pt := must(alice.Decrypt(ctx, "pk", dk.Ciphertext, ectx))(t); len(pt.Plaintext) != 16 {
		t.Fatalf("data key without plaintext decrypts to %d bytes", len(pt.Plaintext))
	}

	// Batches: items fail one by one.
	enc := must(alice.EncryptBatch(ctx, "pk", []api.EncryptRequest{
		{Plaintext: []byte("a")}, {Plaintext: []byte("b"), Context: ectx}, {Plaintext: make([]byte, 4097)},
	}))(t)
	if len(enc) != 3 || enc[0].Err != nil || enc[1].Err != nil || enc[0].KeyVersion != 1 || !errors.Is(enc[2].Err, client.ErrInvalid) {
		t.Fatalf("EncryptBatch = %+v", enc)
	}
	dec := must(alice.DecryptBatch(ctx, "pk", []api.DecryptRequest{
		{Ciphertext: enc[0].Ciphertext}, {Ciphertext: enc[1].Ciphertext, Context: ectx},
		{Ciphertext: enc[1].Ciphertext}, {Ciphertext: tampered, Context: ectx},
	}))(t)
	if len(dec) != 4 || string(dec[0].Plaintext) != "a" || string(dec[1].Plaintext) != "b" ||
		!errors.Is(dec[2].Err, client.ErrDecrypt) || !errors.Is(dec[3].Err, client.ErrDecrypt) || dec[2].Plaintext != nil {
		t.Fatalf("DecryptBatch = %+v", dec)
	}
	if !strings.Contains(dec[2].Err.Error(), "decrypt_failed") {
		t.Fatalf("item error = %v", dec[2].Err)
	}
	wantErr(t, "empty batch", must0(alice.EncryptBatch(ctx, "pk", nil)), client.ErrInvalid, 400)
	wantErr(t, "101 items", must0(alice.DecryptBatch(ctx, "pk", make([]api.DecryptRequest, 101))), client.ErrInvalid, 400)
	wantErr(t, "batch with an unknown key", must0(alice.DecryptBatch(ctx, "nope", []api.DecryptRequest{{Ciphertext: enc[0].Ciphertext}})), client.ErrNotFound, 404)
	full := make([]api.EncryptRequest, 100)
	for i := range full {
		full[i].Plaintext = make([]byte, 4096)
	}
	if res := must(alice.EncryptBatch(ctx, "pk", full))(t); len(res) != 100 || res[99].Err != nil {
		t.Fatalf("a full batch: %d results", len(res))
	}
}

// TestNativeUsersAndSys covers the admin routes: users, token rotation,
// seal status and root rotation in auto mode.
func TestNativeUsersAndSys(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	ctx := t.Context()
	alice := k.user(t, "alice")
	bob := k.user(t, "bob")
	must(bob.CreateKey(ctx, "pk", nil))(t)
	must(alice.CreateKey(ctx, "pk", nil))(t)
	ct := must(bob.Encrypt(ctx, "pk", []byte("bob's"), nil))(t)

	users := must(k.admin.ListUsers(ctx))(t)
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" || users[0].Disabled || users[0].Created.IsZero() {
		t.Fatalf("ListUsers = %+v", users)
	}
	if u := must(k.admin.DisableUser(ctx, "bob"))(t); u.Name != "bob" || !u.Disabled {
		t.Fatalf("DisableUser = %+v", u)
	}
	wantErr(t, "disabled user", must0(bob.Decrypt(ctx, "pk", ct.Ciphertext, nil)), client.ErrDisabled, 403)
	wantErr(t, "disabled user on BigDL", must0(k.anon.DataKey(ctx, "bob", "bob-token", "pk", "dk")), client.ErrDisabled, 403)
	if users := must(k.admin.ListUsers(ctx))(t); !users[1].Disabled {
		t.Fatalf("ListUsers after disable = %+v", users)
	}
	if u := must(k.admin.EnableUser(ctx, "bob"))(t); u.Disabled {
		t.Fatalf("EnableUser = %+v", u)
	}
	must(bob.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t)
	wantErr(t, "disable unknown user", must0(k.admin.DisableUser(ctx, "nobody")), client.ErrNotFound, 404)

	token := must(k.admin.RotateUserToken(ctx, "bob"))(t)
	if len(token) < 16 || token == "bob-token" {
		t.Fatalf("RotateUserToken = %q", token)
	}
	wantErr(t, "old token", must0(bob.Decrypt(ctx, "pk", ct.Ciphertext, nil)), client.ErrUnauthorized, 401)
	wantErr(t, "old token on BigDL", k.anon.CreatePrimaryKey(ctx, "bob", "bob-token", "pk2"), client.ErrUnauthorized, 401)
	bob = newClient(t, k.s, client.WithToken("bob", token))
	if pt := must(bob.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t); string(pt.Plaintext) != "bob's" {
		t.Fatalf("new token: %q", pt.Plaintext)
	}
	if err := k.anon.CreatePrimaryKey(ctx, "bob", token, "pk2"); err != nil {
		t.Fatalf("new token on BigDL: %v", err)
	}
	wantErr(t, "rotate unknown user's token", must0(k.admin.RotateUserToken(ctx, "nobody")), client.ErrNotFound, 404)

	// Admins reach keys only with an owner.
	wantErr(t, "admin without owner", must0(k.admin.DescribeKey(ctx, "pk")), client.ErrInvalid, 400)
	if got := must(k.admin.ForOwner("bob").DescribeKey(ctx, "pk"))(t); got.Owner != "bob" {
		t.Fatalf("admin describe = %+v", got)
	}
	if all := must(k.admin.ListKeys(ctx))(t); len(all) != 3 {
		t.Fatalf("admin ListKeys of every owner = %+v", all)
	}

	st := must(k.anon.SealStatus(ctx))(t)
	if !st.Initialized || st.Sealed || st.Mode != "auto" || st.RootVersion != 1 || st.Rotating || st.Threshold != 0 {
		t.Fatalf("SealStatus = %+v", st)
	}
	wantErr(t, "init in auto mode", must0(k.admin.Init(ctx, 5, 3)), client.ErrExists, 409)
	res := must(k.admin.RotateRoot(ctx))(t)
	if res.From != 1 || res.To != 2 || res.Rewrapped != 3 || res.Resumed {
		t.Fatalf("RotateRoot = %+v", res)
	}
	if st := must(k.anon.SealStatus(ctx))(t); st.RootVersion != 2 || st.Rotating {
		t.Fatalf("SealStatus after rotation = %+v", st)
	}
	if pt := must(bob.Decrypt(ctx, "pk", ct.Ciphertext, nil))(t); string(pt.Plaintext) != "bob's" {
		t.Fatalf("after root rotation: %q", pt.Plaintext)
	}
}

// TestKeyRotation: a new version is used at once for new ciphertexts and
// data keys, old ciphertexts and BigDL data keys keep working, and raising
// min_decryption_version refuses old ciphertexts and BigDL data keys with a
// clear error.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	ctx := t.Context()
	alice := k.user(t, "alice")
	// A BigDL primary key is a native key too.
	if err := k.anon.CreatePrimaryKey(ctx, "alice", "alice-token", "pk"); err != nil {
		t.Fatal(err)
	}
	if err := k.anon.CreateDataKey(ctx, "alice", "alice-token", "pk", "dk1"); err != nil {
		t.Fatal(err)
	}
	dk1 := must(k.anon.DataKey(ctx, "alice", "alice-token", "pk", "dk1"))(t)
	ct1 := must(alice.Encrypt(ctx, "pk", []byte("v1"), nil))(t)
	gen1 := must(alice.GenerateDataKey(ctx, "pk", api.GenerateDataKeyRequest{}))(t)

	key := must(alice.RotateKey(ctx, "pk"))(t)
	if key.LatestVersion != 2 || len(key.Versions) != 2 || key.LastRotated == nil {
		t.Fatalf("RotateKey = %+v", key)
	}
	ct2 := must(alice.Encrypt(ctx, "pk", []byte("v2"), nil))(t)
	if ct2.KeyVersion != 2 {
		t.Fatalf("encrypt right after rotation used version %d", ct2.KeyVersion)
	}
	if dk := must(alice.GenerateDataKeyWithoutPlaintext(ctx, "pk", api.GenerateDataKeyRequest{}))(t); dk.KeyVersion != 2 {
		t.Fatalf("data key right after rotation used version %d", dk.KeyVersion)
	}
	if err := k.anon.CreateDataKey(ctx, "alice", "alice-token", "pk", "dk2"); err != nil {
		t.Fatal(err)
	}
	if got := must(k.anon.DataKey(ctx, "alice", "alice-token", "pk", "dk1"))(t); !bytes.Equal(got, dk1) {
		t.Fatal("BigDL data key of version 1 changed after rotation")
	}
	must(k.anon.DataKey(ctx, "alice", "alice-token", "pk", "dk2"))(t)
	if pt := must(alice.Decrypt(ctx, "pk", ct1.Ciphertext, nil))(t); string(pt.Plaintext) != "v1" || pt.KeyVersion != 1 {
		t.Fatalf("version 1 ciphertext: %q v%d", pt.Plaintext, pt.KeyVersion)
	}
	if pt := must(alice.Decrypt(ctx, "pk", gen1.Ciphertext, nil))(t); !bytes.Equal(pt.Plaintext, gen1.Plaintext) {
		t.Fatal("version 1 data key changed after rotation")
	}
	re := must(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct1.Ciphertext}))(t)
	if re.KeyVersion != 2 {
		t.Fatalf("ReEncrypt to version %d", re.KeyVersion)
	}

	// Retire version 1.
	key = must(alice.ConfigureKey(ctx, "pk", client.KeyConfig{MinDecryptionVersion: 2}))(t)
	if key.MinDecryptionVersion != 2 {
		t.Fatalf("ConfigureKey = %+v", key)
	}
	err := must0(alice.Decrypt(ctx, "pk", ct1.Ciphertext, nil))
	wantErr(t, "version 1 after retirement", err, client.ErrInvalid, 400)
	if !strings.Contains(err.Error(), "uses version 1") || !strings.Contains(err.Error(), "minimum decryption version 2") {
		t.Fatalf("unclear error: %v", err)
	}
	wantErr(t, "rewrap of version 1 after retirement", must0(alice.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: ct1.Ciphertext})), client.ErrInvalid, 400)
	// A BigDL data key wrapped by version 1 is retired with it; one made
	// after the rotation is not.
	_, err = k.anon.DataKey(ctx, "alice", "alice-token", "pk", "dk1")
	if !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "dataKey [dk1] is wrapped by version 1") {
		t.Fatalf("BigDL data key of version 1 after retirement: %v", err)
	}
	if got := must(k.anon.DataKey(ctx, "alice", "alice-token", "pk", "dk2"))(t); len(got) != 16 {
		t.Fatalf("BigDL data key of version 2 after retirement: %d bytes", len(got))
	}
	for _, c := range [][]byte{ct2.Ciphertext, re.Ciphertext} {
		must(alice.Decrypt(ctx, "pk", c, nil))(t)
	}
	wantErr(t, "lower the minimum", must0(alice.ConfigureKey(ctx, "pk", client.KeyConfig{MinDecryptionVersion: 1})), client.ErrInvalid, 400)

	// Concurrent rotations: one wins each round, the others get ErrConflict.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 4 {
		wg.Go(func() {
			_, err := alice.RotateKey(ctx, "pk")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, client.ErrConflict):
				t.Errorf("concurrent rotation: %v, want nil or ErrConflict", err)
			}
		})
	}
	wg.Wait()
	if got := must(alice.DescribeKey(ctx, "pk"))(t); wins == 0 || got.LatestVersion != 2+wins {
		t.Fatalf("%d rotations won; latest version %d", wins, got.LatestVersion)
	}
}
