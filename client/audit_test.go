package client_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// auditRecord is the JSON of one audit line (internal/audit.Record).
type auditRecord struct {
	RequestID  string            `json:"request_id"`
	Identity   string            `json:"identity"`
	Operation  string            `json:"operation"`
	Key        string            `json:"key"`
	KeyVersion int               `json:"key_version"`
	Context    map[string]string `json:"context"`
	Result     string            `json:"result"`
	Insecure   bool              `json:"insecure"`
}

// TestAuditLog runs key accesses and admin actions, stops kmsd (which
// drains the audit queue), and checks the records: who, what key and
// version, the encryption context, the result and the request id the
// client saw; and that no token, plaintext or key material is in the file
// (nor in kmsd's own log).
func TestAuditLog(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	ctx := t.Context()
	alice := k.user(t, "alice")
	k.user(t, "bob")
	ectx := map[string]string{"tenant": "acme"}
	const plaintext = "top secret plaintext"

	must(alice.CreateKey(ctx, "pk", nil))(t)
	ct := must(alice.Encrypt(ctx, "pk", []byte(plaintext), ectx))(t)
	must(alice.Decrypt(ctx, "pk", ct.Ciphertext, ectx))(t)
	_, err := alice.Decrypt(ctx, "pk", ct.Ciphertext, map[string]string{"tenant": "evil"})
	var failed *client.Error
	if !errors.As(err, &failed) || failed.RequestID == "" {
		t.Fatalf("failed decrypt: %v, want an *Error with a request id", err)
	}
	dk := must(alice.GenerateDataKey(ctx, "pk", api.GenerateDataKeyRequest{Context: ectx}))(t)
	if err := k.anon.CreateDataKey(ctx, "alice", "alice-token", "pk", "dk"); err != nil {
		t.Fatal(err)
	}
	bigdlKey := must(k.anon.DataKeyString(ctx, "alice", "alice-token", "pk", "dk"))(t)
	must(k.admin.ListUsers(ctx))(t)
	newToken := must(k.admin.RotateUserToken(ctx, "bob"))(t)
	must(k.admin.ForOwner("alice").RotateKey(ctx, "pk"))(t)

	if err := k.s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(k.auditFile)
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{
		"alice's token": "alice-token", "bob's new token": newToken, "admin token": adminToken,
		"plaintext": plaintext, "plaintext (base64)": base64.StdEncoding.EncodeToString([]byte(plaintext)),
		"data key (base64)": base64.StdEncoding.EncodeToString(dk.Plaintext), "BigDL data key": bigdlKey,
		"ciphertext (base64)": base64.StdEncoding.EncodeToString(ct.Ciphertext),
	} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit log holds the %s", what)
		}
		if strings.Contains(k.s.Logs(), secret) {
			t.Errorf("kmsd's log holds the %s", what)
		}
	}

	var recs []auditRecord
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var r auditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if r.RequestID == "" {
			t.Errorf("record without a request id: %+v", r)
		}
		recs = append(recs, r)
	}
	find := func(want auditRecord) *auditRecord {
		t.Helper()
		for i, r := range recs {
			id := r.RequestID
			r.RequestID = want.RequestID
			if reflect.DeepEqual(r, want) {
				recs[i].RequestID = id
				return &recs[i]
			}
		}
		t.Errorf("no audit record %+v", want)
		return nil
	}
	find(auditRecord{Identity: "alice", Operation: "create_key", Key: "alice/pk", KeyVersion: 1, Result: "ok"})
	find(auditRecord{Identity: "alice", Operation: "encrypt", Key: "alice/pk", KeyVersion: 1, Context: ectx, Result: "ok"})
	find(auditRecord{Identity: "alice", Operation: "decrypt", Key: "alice/pk", KeyVersion: 1, Context: ectx, Result: "ok"})
	find(auditRecord{Identity: "alice", Operation: "decrypt", Key: "alice/pk", KeyVersion: 1,
		Context: map[string]string{"tenant": "evil"}, Result: api.CodeDecrypt, RequestID: failed.RequestID})
	find(auditRecord{Identity: "alice", Operation: "generate_data_key", Key: "alice/pk", KeyVersion: 1, Context: ectx, Result: "ok"})
	find(auditRecord{Identity: "alice", Operation: "get_data_key", Key: "alice/pk/dk", Result: "ok", Insecure: true})
	find(auditRecord{Identity: "admin/root", Operation: "list_users", Result: "ok"})
	find(auditRecord{Identity: "admin/root", Operation: "rotate_user_token", Key: "bob", Result: "ok"})
	find(auditRecord{Identity: "admin/root", Operation: "rotate", Key: "alice/pk", KeyVersion: 2, Result: "ok"})
}
