package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// fixture is what a matrix case's key holds before the call.
type fixture struct {
	key string // alice's key, fresh for the case
	ct  []byte // a ciphertext of it
}

// keyRoute is one owner-scoped native route and a call of it.
type keyRoute struct {
	route string
	setup func(ctx context.Context, alice *client.Client, key string) error // extra state, may be nil
	call  func(ctx context.Context, c *client.Client, f fixture) error
}

var keyRoutes = []keyRoute{
	{"POST /v1/keys", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.CreateKey(ctx, f.key+"-new", nil))
	}},
	{"GET /v1/keys", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		keys, err := c.ListKeys(ctx)
		for _, k := range keys {
			if k.Owner != "alice" {
				return fmt.Errorf("listed %s's key %s", k.Owner, k.Name)
			}
		}
		return err
	}},
	{"GET /v1/keys/{name}", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.DescribeKey(ctx, f.key))
	}},
	{"POST /v1/keys/{name}/rotate", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.RotateKey(ctx, f.key))
	}},
	{"POST /v1/keys/{name}/config", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.ConfigureKey(ctx, f.key, client.KeyConfig{MinDecryptionVersion: 1}))
	}},
	{"POST /v1/keys/{name}/enable", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.EnableKey(ctx, f.key))
	}},
	{"POST /v1/keys/{name}/disable", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.DisableKey(ctx, f.key))
	}},
	{"POST /v1/keys/{name}/schedule-deletion", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.ScheduleKeyDeletion(ctx, f.key, 7))
	}},
	{"POST /v1/keys/{name}/cancel-deletion", func(ctx context.Context, alice *client.Client, key string) error {
		return must0(alice.ScheduleKeyDeletion(ctx, key, 7))
	}, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.CancelKeyDeletion(ctx, f.key))
	}},
	{"POST /v1/keys/{name}/encrypt", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.Encrypt(ctx, f.key, []byte("x"), nil))
	}},
	{"POST /v1/keys/{name}/decrypt", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		pt, err := c.Decrypt(ctx, f.key, f.ct, nil)
		if err == nil && string(pt.Plaintext) != "alice's secret" {
			return fmt.Errorf("decrypted %q", pt.Plaintext)
		}
		return err
	}},
	{"POST /v1/keys/{name}/reencrypt", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.ReEncrypt(ctx, f.key, api.ReEncryptRequest{Ciphertext: f.ct}))
	}},
	{"POST /v1/keys/{name}/generate-data-key", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.GenerateDataKey(ctx, f.key, api.GenerateDataKeyRequest{}))
	}},
	{"POST /v1/keys/{name}/generate-data-key-without-plaintext", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return must0(c.GenerateDataKeyWithoutPlaintext(ctx, f.key, api.GenerateDataKeyRequest{}))
	}},
	{"POST /v1/keys/{name}/encrypt-batch", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return batchErr(c.EncryptBatch(ctx, f.key, []api.EncryptRequest{{Plaintext: []byte("x")}}))
	}},
	{"POST /v1/keys/{name}/decrypt-batch", nil, func(ctx context.Context, c *client.Client, f fixture) error {
		return batchErr(c.DecryptBatch(ctx, f.key, []api.DecryptRequest{{Ciphertext: f.ct}}))
	}},
}

// batchErr is the request's error or, if it succeeded, the first item's.
func batchErr(res []client.BatchResult, err error) error {
	if err == nil && res[0].Err != nil {
		return fmt.Errorf("item: %w", res[0].Err)
	}
	return err
}

// TestAuthorizationMatrix calls every native route and every BigDL route
// as alice (the owner), bob (another user, in his own namespace and
// naming alice as owner), an admin (with and without ?owner=), a wrong
// token and no credential, and checks the answer of each, including that
// a refused call changed nothing and returned no data.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	ctx := t.Context()
	alice := k.user(t, "alice")
	bob := k.user(t, "bob")
	k.user(t, "carol") // the admin routes' target
	k.user(t, "dave")
	// kmsd throttles a user after 10 failed authentications a minute and
	// an address after 30: the wrong tokens go round four users, about 6
	// failures each (alice 9 with the BigDL cases), 26 in all.
	var wrongs []*client.Client
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		wrongs = append(wrongs, newClient(t, k.s, client.WithToken(u, "not-"+u+"-token"), client.WithRetries(0)))
	}
	route := 0
	wrong := func() *client.Client { route++; return wrongs[route%len(wrongs)] }

	type identity struct {
		name string
		c    *client.Client
		// want is the error the identity gets on alice's key: nil for
		// success.
		want   error
		status int
	}
	ids := []identity{
		{"alice", alice, nil, 200},
		{"admin/owner=alice", k.admin.ForOwner("alice"), nil, 200},
		{"bob", bob, client.ErrNotFound, 404},
		{"bob/owner=alice", bob.ForOwner("alice"), client.ErrForbidden, 403},
		{"admin/no owner", k.admin, client.ErrInvalid, 400},
		{"wrong token", nil, client.ErrUnauthorized, 401},
		{"no credential", k.anon, client.ErrUnauthorized, 401},
	}
	n := 0
	for _, rt := range keyRoutes {
		t.Run(rt.route, func(t *testing.T) {
			// A key for the refused identities, checked unchanged after.
			fresh := func() fixture {
				n++
				f := fixture{key: fmt.Sprintf("k%d", n)}
				must(alice.CreateKey(ctx, f.key, nil))(t)
				f.ct = must(alice.Encrypt(ctx, f.key, []byte("alice's secret"), nil))(t).Ciphertext
				if rt.setup != nil {
					if err := rt.setup(ctx, alice, f.key); err != nil {
						t.Fatal(err)
					}
				}
				return f
			}
			denied := fresh()
			before := must(alice.DescribeKey(ctx, denied.key))(t)
			ids[len(ids)-2].c = wrong()
			for _, id := range ids {
				f := denied
				if id.want == nil {
					f = fresh()
				}
				want, status := id.want, id.status
				switch {
				case rt.route == "POST /v1/keys" && id.name == "bob":
					want = nil // bob creates a key of that name in his namespace
				case rt.route == "GET /v1/keys" && (id.name == "bob" || id.name == "admin/no owner"):
					// bob lists his own keys, an admin every owner's: the
					// call checks below what alice's keys show.
					continue
				case rt.route == "POST /v1/keys" && id.name == "admin/no owner":
					status = 400
				}
				err := rt.call(ctx, id.c, f)
				if want == nil {
					if err != nil {
						t.Errorf("%s: %v, want success", id.name, err)
					}
					continue
				}
				var e *client.Error
				if !errors.Is(err, want) || !errors.As(err, &e) || e.Status != status {
					t.Errorf("%s: %v, want %v (HTTP %d)", id.name, err, want, status)
				}
			}
			after := must(alice.DescribeKey(ctx, denied.key))(t)
			if after.State != before.State || after.LatestVersion != before.LatestVersion || after.MinDecryptionVersion != before.MinDecryptionVersion {
				t.Errorf("refused calls changed alice's key: %+v, then %+v", before, after)
			}
		})
	}
	// Listing: bob never sees alice's keys; an admin sees everyone's.
	for _, k := range must(bob.ListKeys(ctx))(t) {
		if k.Owner != "bob" {
			t.Errorf("bob lists %s/%s", k.Owner, k.Name)
		}
	}
	owners := map[string]bool{}
	for _, k := range must(k.admin.ListKeys(ctx))(t) {
		owners[k.Owner] = true
	}
	if !owners["alice"] || !owners["bob"] {
		t.Errorf("admin lists owners %v", owners)
	}

	// Admin routes: users get 403, no credential 401, a wrong admin token
	// 401; seal status is open to all.
	wrongAdmin := newClient(t, k.s, client.WithAdminToken(adminName, "wrong"), client.WithRetries(0))
	unknownAdmin := newClient(t, k.s, client.WithAdminToken("nobody", adminToken), client.WithRetries(0))
	adminRoutes := []struct {
		route string
		call  func(c *client.Client) error
		admin error // what the admin gets: the routes that only apply elsewhere
	}{
		{"GET /v1/users", func(c *client.Client) error { return must0(c.ListUsers(ctx)) }, nil},
		{"POST /v1/users/{name}/disable", func(c *client.Client) error { return must0(c.DisableUser(ctx, "carol")) }, nil},
		{"POST /v1/users/{name}/enable", func(c *client.Client) error { return must0(c.EnableUser(ctx, "carol")) }, nil},
		{"POST /v1/users/{name}/token", func(c *client.Client) error { return must0(c.RotateUserToken(ctx, "carol")) }, nil},
		{"POST /v1/sys/init", func(c *client.Client) error { return must0(c.Init(ctx, 3, 2)) }, client.ErrExists},
		{"POST /v1/sys/unseal", func(c *client.Client) error {
			return must0(c.Unseal(ctx, api.Share{Index: 1, Content: strings.Repeat("A", 44)}))
		}, nil},
		{"POST /v1/sys/rotate-root", func(c *client.Client) error { return must0(c.RotateRoot(ctx)) }, nil},
	}
	for _, rt := range adminRoutes {
		t.Run(rt.route, func(t *testing.T) {
			for _, id := range []struct {
				name   string
				c      *client.Client
				want   error
				status int
			}{
				{"alice", alice, client.ErrForbidden, 403},
				{"bob/owner=alice", bob.ForOwner("alice"), client.ErrForbidden, 403},
				{"wrong token", wrong(), client.ErrUnauthorized, 401},
				{"no credential", k.anon, client.ErrUnauthorized, 401},
				{"wrong admin token", wrongAdmin, client.ErrUnauthorized, 401},
				{"unknown admin", unknownAdmin, client.ErrUnauthorized, 401},
			} {
				err := rt.call(id.c)
				var e *client.Error
				if !errors.Is(err, id.want) || !errors.As(err, &e) || e.Status != id.status {
					t.Errorf("%s: %v, want %v (HTTP %d)", id.name, err, id.want, id.status)
				}
			}
			if err := rt.call(k.admin); !errors.Is(err, rt.admin) {
				t.Errorf("admin: %v, want %v", err, rt.admin)
			}
		})
	}
	t.Run("GET /v1/sys/seal-status", func(t *testing.T) {
		for _, c := range []*client.Client{alice, k.admin, k.anon} {
			if st, err := c.SealStatus(ctx); err != nil || st.Sealed {
				t.Errorf("SealStatus: %+v %v", st, err)
			}
		}
	})

	t.Run("BigDL", func(t *testing.T) { bigdlMatrix(t, k) })
}

// bigdlMatrix checks the BigDL routes, whose credentials are query
// parameters: bob reaches only his own namespace, a wrong token is 401,
// missing credentials are 400 (BigDL's behaviour, pinned by cmd/kmsd's
// TestErrors), and the root key routes need an admin.
func bigdlMatrix(t *testing.T, k *kms) {
	ctx := t.Context()
	c := k.anon
	const atok, btok = "alice-token", "bob-token"
	if err := c.CreatePrimaryKey(ctx, "alice", atok, "apk"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDataKey(ctx, "alice", atok, "apk", "adk"); err != nil {
		t.Fatal(err)
	}
	secret := must(c.DataKeyString(ctx, "alice", atok, "apk", "adk"))(t)
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"GET data key/alice", func() error { return must0(c.DataKey(ctx, "alice", atok, "apk", "adk")) }, nil},
		{"GET data key/bob", func() error { return must0(c.DataKey(ctx, "bob", btok, "apk", "adk")) }, client.ErrNotFound},
		{"GET data key/alice with bob's token", func() error { return must0(c.DataKey(ctx, "alice", btok, "apk", "adk")) }, client.ErrUnauthorized},
		{"POST data key/bob under alice's key", func() error { return c.CreateDataKey(ctx, "bob", btok, "apk", "bdk") }, client.ErrNotFound},
		{"POST data key/alice with bob's token", func() error { return c.CreateDataKey(ctx, "alice", btok, "apk", "bdk") }, client.ErrUnauthorized},
		{"POST primary key/alice with bob's token", func() error { return c.CreatePrimaryKey(ctx, "alice", btok, "bpk") }, client.ErrUnauthorized},
		{"POST primary key/bob in his namespace", func() error { return c.CreatePrimaryKey(ctx, "bob", btok, "apk") }, nil},
	}
	for _, tc := range cases {
		if err := tc.call(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := must(c.DataKeyString(ctx, "alice", atok, "apk", "adk"))(t); got != secret {
		t.Fatal("alice's data key changed")
	}

	// Raw requests: no credentials, bearer credentials on BigDL routes, and
	// the admin-only root key routes.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: k.s.CAPool}}}
	raw := func(method, path, bearer string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, method, k.s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admin := "admin/" + adminName + ":" + adminToken
	for _, tc := range []struct {
		method, path, bearer string
		status               int
	}{
		{"GET", "/dataKey/adk?primaryKeyName=apk", "", 400},
		{"GET", "/dataKey/adk?primaryKeyName=apk", "alice:" + atok, 400},
		{"GET", "/dataKey/adk?primaryKeyName=apk", admin, 400},
		{"POST", "/dataKey/x?primaryKeyName=apk", "", 400},
		{"POST", "/primaryKey/x", "", 400},
		{"GET", "/rootKey/rotate", "", 401},
		{"GET", "/rootKey/rotate", "alice:" + atok, 403},
		{"GET", "/rootKey/rotate", "admin/" + adminName + ":wrong", 401},
		{"PUT", "/rootKey/recover", "", 401},
		{"PUT", "/rootKey/recover", "alice:" + atok, 403},
		{"GET", "/rootKey/rotate", admin, 200},
	} {
		status, body := raw(tc.method, tc.path, tc.bearer)
		if status != tc.status || strings.Contains(body, secret) {
			t.Errorf("%s %s (%.5s…): %d %q, want %d", tc.method, tc.path, tc.bearer, status, body, tc.status)
		}
	}
	if got := must(c.DataKeyString(ctx, "alice", atok, "apk", "adk"))(t); got != secret {
		t.Fatal("alice's data key changed after /rootKey/rotate")
	}
}
