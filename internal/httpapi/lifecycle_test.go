package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/auth"
	"github.com/ppmlkms/kms/internal/httpapi"
	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/store/sqlite"
)

// fakeClock is the Service's clock in these tests; kmsd has no clock flag.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// clockServer serves the real handler over HTTPS, on a real SQLite store,
// with the Service on a fake clock, and returns it with a native client
// and a BigDL client for user alice (token "alice-token").
func clockServer(t *testing.T) (*kms.Service, *fakeClock, *client.Client, *client.Client) {
	svc, clk, srv := clockHTTPServer(t)
	native, err := client.New(srv.URL, client.WithHTTPClient(srv.Client()), client.WithToken("alice", "alice-token"))
	if err != nil {
		t.Fatal(err)
	}
	bigdl, err := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return svc, clk, native, bigdl
}

func clockHTTPServer(t *testing.T) (*kms.Service, *fakeClock, *httptest.Server) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir()+"/kms.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{3}, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Now().UTC()}
	svc := kms.NewService(st, kms.Static{K: kr}, kms.ServiceOptions{Now: clk.Now})
	if err := svc.CreateUser(ctx, "alice", auth.HashToken("alice-token")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Config{Service: svc, Auth: auth.New(st.User, auth.Options{})}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return svc, clk, srv
}

const day = 24 * time.Hour

// TestDestructionOverHTTP schedules a key's deletion over the native API,
// lets the fake clock pass the date, runs maintenance, and checks that the
// BigDL API and the native API say clearly that the key was destroyed.
func TestDestructionOverHTTP(t *testing.T) {
	svc, clk, c, bigdl := clockServer(t)
	ctx := t.Context()
	if _, err := c.CreateKey(ctx, "pk", nil); err != nil {
		t.Fatal(err)
	}
	if err := bigdl.CreateDataKey(ctx, "alice", "alice-token", "pk", "dk"); err != nil {
		t.Fatal(err)
	}
	if _, err := bigdl.DataKey(ctx, "alice", "alice-token", "pk", "dk"); err != nil {
		t.Fatal(err)
	}
	ct, err := c.Encrypt(ctx, "pk", []byte("doomed"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := c.ScheduleKeyDeletion(ctx, "pk", 7)
	if err != nil || !key.DeletionDate.Equal(clk.Now().Add(7*day)) {
		t.Fatalf("ScheduleKeyDeletion = %+v, %v", key, err)
	}
	_, err = bigdl.DataKey(ctx, "alice", "alice-token", "pk", "dk")
	if !errors.Is(err, client.ErrDisabled) || !strings.Contains(err.Error(), "scheduled for deletion") {
		t.Fatalf("BigDL data key while pending: %v", err)
	}

	clk.Advance(7*day - time.Second)
	mustMaintain(t, svc)
	if key, err := c.DescribeKey(ctx, "pk"); err != nil || key.State != "pending_deletion" {
		t.Fatalf("before the date: %+v %v", key, err)
	}
	clk.Advance(time.Second)
	mustMaintain(t, svc)

	_, err = bigdl.DataKey(ctx, "alice", "alice-token", "pk", "dk")
	var e *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &e) || e.Status != 404 ||
		!strings.Contains(e.Message, "primaryKey [pk] was destroyed on "+clk.Now().Format("2006-01-02")) ||
		!strings.Contains(e.Message, "data keys are unreadable") {
		t.Fatalf("BigDL data key of a destroyed key: %v", err)
	}
	if _, err := c.Decrypt(ctx, "pk", ct.Ciphertext, nil); !errors.Is(err, client.ErrNotFound) || !strings.Contains(err.Error(), "destroyed") {
		t.Fatalf("decrypt with a destroyed key: %v", err)
	}
	key, err = c.DescribeKey(ctx, "pk")
	if err != nil || key.State != "destroyed" || len(key.Versions) != 0 || key.LatestVersion != 0 {
		t.Fatalf("DescribeKey of a destroyed key = %+v, %v", key, err)
	}
	if _, err := c.CancelKeyDeletion(ctx, "pk"); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("cancel after destruction: %v", err)
	}
	if _, err := c.CreateKey(ctx, "pk", nil); !errors.Is(err, client.ErrExists) {
		t.Fatalf("reuse of a destroyed key's name: %v", err)
	}
	if keys, err := c.ListKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("ListKeys after destruction = %+v, %v", keys, err)
	}
}

// TestScheduledRotationOverHTTP creates a key with a rotation period over
// the native API and lets the fake clock run past it.
func TestScheduledRotationOverHTTP(t *testing.T) {
	svc, clk, c, _ := clockServer(t)
	ctx := t.Context()
	key, err := c.CreateKey(ctx, "pk", &client.CreateKeyOptions{RotationPeriod: 2 * time.Hour})
	if err != nil || key.RotationPeriodSeconds != 7200 {
		t.Fatalf("CreateKey = %+v, %v", key, err)
	}
	old, err := c.Encrypt(ctx, "pk", []byte("v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Hour - time.Second)
	mustMaintain(t, svc)
	if key, _ := c.DescribeKey(ctx, "pk"); key.LatestVersion != 1 {
		t.Fatalf("rotated early: %+v", key)
	}
	clk.Advance(time.Second)
	mustMaintain(t, svc)
	key, err = c.DescribeKey(ctx, "pk")
	if err != nil || key.LatestVersion != 2 || !key.LastRotated.Equal(clk.Now()) {
		t.Fatalf("after the period: %+v, %v", key, err)
	}
	if ct, err := c.Encrypt(ctx, "pk", []byte("v2"), nil); err != nil || ct.KeyVersion != 2 {
		t.Fatalf("encrypt after the scheduled rotation: %+v, %v", ct, err)
	}
	if pt, err := c.Decrypt(ctx, "pk", old.Ciphertext, nil); err != nil || string(pt.Plaintext) != "v1" {
		t.Fatalf("old ciphertext: %v", err)
	}
	dk, err := c.GenerateDataKeyWithoutPlaintext(ctx, "pk", api.GenerateDataKeyRequest{})
	if err != nil || dk.KeyVersion != 2 {
		t.Fatalf("data key after the scheduled rotation: %+v, %v", dk, err)
	}
}

func mustMaintain(t *testing.T, svc *kms.Service) {
	t.Helper()
	if err := svc.Maintain(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}
}

// TestAuthenticationBeforeBody: a request without credentials is 401 on
// every native route that takes a body, even when the body is malformed;
// the body is never looked at first.
func TestAuthenticationBeforeBody(t *testing.T) {
	_, _, srv := clockHTTPServer(t)
	for _, path := range []string{
		"/v1/keys", "/v1/keys/pk/config", "/v1/keys/pk/schedule-deletion", "/v1/keys/pk/encrypt",
		"/v1/keys/pk/decrypt", "/v1/keys/pk/reencrypt", "/v1/keys/pk/generate-data-key",
		"/v1/keys/pk/generate-data-key-without-plaintext", "/v1/keys/pk/encrypt-batch",
		"/v1/keys/pk/decrypt-batch", "/v1/sys/init", "/v1/sys/unseal",
	} {
		resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader("{not json"))
		if err != nil {
			t.Fatal(err)
		}
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 401 || e.Code != api.CodeUnauthorized {
			t.Errorf("POST %s without credentials and a malformed body: %d %+v, want 401", path, resp.StatusCode, e)
		}
	}
}
