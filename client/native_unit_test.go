package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// Tests of the native API's transport against fake servers; the real
// server is exercised by the other tests.

type recorded struct {
	method, path, rawPath, query, auth, contentType string
	body                                            []byte
}

// fake serves answer for every request and records the last one.
func fake(t *testing.T, status int, header map[string]string, body string) (*httptest.Server, *recorded, *atomic.Int32) {
	t.Helper()
	rec := &recorded{}
	var n atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts, rec, &n
}

func fakeClient(t *testing.T, ts *httptest.Server, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, append([]client.Option{client.WithHTTPClient(ts.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNativeRequestShape(t *testing.T) {
	t.Parallel()
	ts, rec, _ := fake(t, 200, nil, `{"name":"k"}`)
	// A reverse proxy's path prefix is kept.
	c := fakeClient(t, ts, ts.URL+"/kms/", client.WithToken("alice", "tok:with:colons"))
	ctx := t.Context()

	if _, err := c.DescribeKey(ctx, "a.b-c_d"); err != nil {
		t.Fatal(err)
	}
	if rec.method != "GET" || rec.path != "/kms/v1/keys/a.b-c_d" || rec.query != "" || rec.auth != "Bearer alice:tok:with:colons" {
		t.Fatalf("DescribeKey sent %+v", rec)
	}
	if _, err := c.ForOwner("bob smith/x").RotateKey(ctx, "k/1"); err != nil {
		t.Fatal(err)
	}
	if rec.method != "POST" || rec.rawPath != "/kms/v1/keys/k%2F1/rotate" || rec.query != "owner=bob%20smith%2Fx" || len(rec.body) != 0 {
		t.Fatalf("RotateKey sent %+v", rec)
	}
	if _, err := c.ForOwner("bob").ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.path != "/kms/v1/users" || rec.query != "" {
		t.Fatalf("ListUsers sent %+v (the owner is for keys only)", rec)
	}

	if _, err := c.Encrypt(ctx, "k", []byte{0, 1, 2}, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	var enc api.EncryptRequest
	if err := json.Unmarshal(rec.body, &enc); err != nil || string(enc.Plaintext) != "\x00\x01\x02" || enc.Context["a"] != "b" || rec.contentType != "application/json" {
		t.Fatalf("Encrypt sent %q (%v), content type %q", rec.body, err, rec.contentType)
	}
	if _, err := c.CreateKey(ctx, "k", &client.CreateKeyOptions{RotationPeriod: 90 * 60e9}); err != nil {
		t.Fatal(err)
	}
	if rec.path != "/kms/v1/keys" || string(rec.body) != `{"name":"k","rotation_period_seconds":5400}` {
		t.Fatalf("CreateKey sent %s %s", rec.path, rec.body)
	}
	if _, err := c.ConfigureKey(ctx, "k", client.KeyConfig{MinDecryptionVersion: 3}); err != nil {
		t.Fatal(err)
	}
	if string(rec.body) != `{"min_decryption_version":3}` {
		t.Fatalf("ConfigureKey sent %s", rec.body)
	}
	if _, err := c.ScheduleKeyDeletion(ctx, "k", 0); err != nil {
		t.Fatal(err)
	}
	if rec.path != "/kms/v1/keys/k/schedule-deletion" || string(rec.body) != `{}` {
		t.Fatalf("ScheduleKeyDeletion sent %s %s", rec.path, rec.body)
	}

	admin := fakeClient(t, ts, ts.URL, client.WithAdminToken("ops", "secret"))
	if _, err := admin.Unseal(ctx, api.Share{Index: 2, Content: "c2hhcmU="}); err != nil {
		t.Fatal(err)
	}
	if rec.path != "/v1/sys/unseal" || rec.auth != "Bearer admin/ops:secret" || string(rec.body) != `{"index":2,"content":"c2hhcmU="}` {
		t.Fatalf("Unseal sent %+v", rec)
	}
	anon := fakeClient(t, ts, ts.URL)
	if _, err := anon.SealStatus(ctx); err != nil || rec.auth != "" || rec.path != "/v1/sys/seal-status" {
		t.Fatalf("SealStatus sent %+v (%v)", rec, err)
	}
	// Empty names are refused before anything is sent.
	for _, err := range []error{must0(c.DescribeKey(ctx, "")), must0(c.Decrypt(ctx, "", nil, nil)), must0(admin.DisableUser(ctx, ""))} {
		if !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("empty name: %v", err)
		}
	}
}

func TestNativeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   []error
		code   string
	}{
		{"404", 404, map[string]string{"X-Request-Id": "req-1"}, `{"code":"not_found","message":"primaryKey [k] does not exist"}`, []error{client.ErrNotFound}, api.CodeNotFound},
		{"409 conflict", 409, nil, `{"code":"conflict","message":"rotated concurrently"}`, []error{client.ErrConflict}, api.CodeConflict},
		{"409 exists", 409, nil, `{"code":"already_exists","message":"x"}`, []error{client.ErrExists}, api.CodeExists},
		{"403 disabled", 403, nil, `{"code":"disabled","message":"x"}`, []error{client.ErrDisabled}, api.CodeDisabled},
		{"403 forbidden", 403, nil, `{"code":"forbidden","message":"x"}`, []error{client.ErrForbidden}, api.CodeForbidden},
		{"400 decrypt", 400, nil, `{"code":"decrypt_failed","message":"ciphertext does not decrypt"}`, []error{client.ErrDecrypt}, api.CodeDecrypt},
		{"503 sealed", 503, nil, `{"code":"sealed","message":"the server is sealed"}`, []error{client.ErrSealed, client.ErrUnavailable}, api.CodeSealed},
		{"401", 401, nil, `{"code":"unauthorized","message":"x"}`, []error{client.ErrUnauthorized}, api.CodeUnauthorized},
		{"500 internal", 500, nil, `{"code":"internal","message":"internal error"}`, nil, api.CodeInternal},
		{"502 from a proxy", 502, nil, `<html>bad gateway</html>`, []error{client.ErrUnavailable}, api.CodeUnavailable},
		{"413 from a proxy", 413, nil, `too large`, []error{client.ErrTooLarge}, api.CodeTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts, _, n := fake(t, tc.status, tc.header, tc.body)
			c := fakeClient(t, ts, ts.URL, client.WithToken("alice", "s3cret"), client.WithRetries(2))
			_, err := c.DescribeKey(t.Context(), "k")
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			var e *client.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
				t.Fatalf("err = %#v, want status %d code %q", err, tc.status, tc.code)
			}
			if tc.header["X-Request-Id"] != e.RequestID {
				t.Errorf("RequestID = %q", e.RequestID)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(e.Message, "{") {
				t.Errorf("error %q", err)
			}
			// GETs are retried on unavailability, never while sealed.
			want := int32(1)
			if errors.Is(err, client.ErrUnavailable) && !errors.Is(err, client.ErrSealed) {
				want = 3
			}
			if n.Load() != want {
				t.Errorf("%d requests, want %d", n.Load(), want)
			}
		})
	}
}

func TestNativeMalformedResponses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
		call func(c *client.Client) error
	}{
		{"not JSON", `ok`, func(c *client.Client) error { return must0(c.DescribeKey(t.Context(), "k")) }},
		{"wrong type", `{"latest_version":"two"}`, func(c *client.Client) error { return must0(c.DescribeKey(t.Context(), "k")) }},
		{"batch of the wrong length", `{"results":[]}`, func(c *client.Client) error {
			return must0(c.EncryptBatch(t.Context(), "k", []api.EncryptRequest{{Plaintext: []byte("x")}}))
		}},
		{"data key without plaintext", `{"ciphertext":"AAAA"}`, func(c *client.Client) error {
			return must0(c.GenerateDataKey(t.Context(), "k", api.GenerateDataKeyRequest{}))
		}},
		{"no token", `{}`, func(c *client.Client) error { return must0(c.RotateUserToken(t.Context(), "u")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _, _ := fake(t, 200, nil, tc.body)
			if err := tc.call(fakeClient(t, ts, ts.URL)); !errors.Is(err, client.ErrMalformedResponse) {
				t.Fatalf("err = %v, want ErrMalformedResponse", err)
			}
		})
	}
}

func TestBatchItemErrors(t *testing.T) {
	t.Parallel()
	ts, _, _ := fake(t, 200, nil, `{"results":[{"plaintext":"aGk=","key_version":2},{"error":{"code":"decrypt_failed","message":"ciphertext does not decrypt"}}]}`)
	res, err := fakeClient(t, ts, ts.URL).DecryptBatch(t.Context(), "k", make([]api.DecryptRequest, 2))
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0].Plaintext) != "hi" || res[0].KeyVersion != 2 || res[0].Err != nil {
		t.Fatalf("item 0 = %+v", res[0])
	}
	var e *client.Error
	if !errors.Is(res[1].Err, client.ErrDecrypt) || !errors.As(res[1].Err, &e) || e.Status != 0 ||
		res[1].Err.Error() != "kms: ciphertext does not decrypt (decrypt_failed)" {
		t.Fatalf("item 1 = %+v", res[1])
	}
}

func TestCredentialOptions(t *testing.T) {
	t.Parallel()
	const secret = "tok\nen"
	for name, opt := range map[string]client.Option{
		"empty user":          client.WithToken("", "t"),
		"empty token":         client.WithToken("u", ""),
		"colon in user":       client.WithToken("a:b", "t"),
		"admin/ as user":      client.WithToken("admin/x", "t"),
		"control in token":    client.WithToken("u", secret),
		"empty admin":         client.WithAdminToken("", "t"),
		"empty admin token":   client.WithAdminToken("a", ""),
		"colon in admin name": client.WithAdminToken("a:b", "t"),
	} {
		_, err := client.New("https://kms.example", opt)
		if !errors.Is(err, client.ErrInvalid) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v, want ErrInvalid without the token", name, err)
		}
	}
}
