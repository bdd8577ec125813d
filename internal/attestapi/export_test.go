package attestapi

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// TestReleasePrimaryKey: a key created exportable is released itself,
// HPKE-sealed, to an attested workload; the released bytes are the real
// key (they open the server's ciphertexts by docs/spec/ciphertext.md);
// every other key, version or workload is refused with its own reason.
func TestReleasePrimaryKey(t *testing.T) {
	k := startKMSD(t, "-attest-allow-mock-tee")
	ctx := t.Context()
	k.seed(t, "alice", "bigdl")
	alice := k.sdk(t, client.WithToken("alice", userToken))
	for _, name := range []string{"exp", "exp-nopolicy"} {
		key, err := alice.CreateKey(ctx, name, &client.CreateKeyOptions{Exportable: true})
		if err != nil || !key.Exportable {
			t.Fatalf("create exportable %s: %+v, %v", name, key, err)
		}
	}
	if key, err := alice.CreateKey(ctx, "plain", nil); err != nil || key.Exportable {
		t.Fatalf("create plain: %+v, %v", key, err)
	}
	for _, name := range []string{"exp", "plain", "bigdl"} {
		if _, err := alice.SetReleasePolicy(ctx, name, mockPolicy(mrGood)); err != nil {
			t.Fatal(err)
		}
	}
	good := client.MockQuoteProvider{MREnclave: mrGood}
	ctx1, err := alice.Encrypt(ctx, "exp", []byte("version one"), map[string]string{"app": "etl"})
	if err != nil {
		t.Fatal(err)
	}

	var v1 []byte
	t.Run("200/the newest version, which opens the key's ciphertexts", func(t *testing.T) {
		rel, err := alice.ReleasePrimaryKey(ctx, "exp", 0, good, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rel.Key) != 32 || rel.KeyVersion != 1 || !rel.Insecure || rel.TEE != "mock" {
			t.Fatalf("released %d bytes, %+v", len(rel.Key), rel)
		}
		pt, err := specDecrypt(rel.Key, "alice", "exp", ctx1.Ciphertext, map[string]string{"app": "etl"})
		if err != nil || string(pt) != "version one" {
			t.Fatalf("the released key does not open a ciphertext of the key: %q, %v", pt, err)
		}
		v1 = rel.Key
	})
	t.Run("200/a given version after rotation", func(t *testing.T) {
		if _, err := alice.RotateKey(ctx, "exp"); err != nil {
			t.Fatal(err)
		}
		newest, err := alice.ReleasePrimaryKey(ctx, "exp", 0, good, nil)
		if err != nil || newest.KeyVersion != 2 || bytes.Equal(newest.Key, v1) {
			t.Fatalf("newest after rotation: %+v, %v", newest, err)
		}
		old, err := alice.ReleasePrimaryKey(ctx, "exp", 1, good, nil)
		if err != nil || old.KeyVersion != 1 || !bytes.Equal(old.Key, v1) {
			t.Fatalf("version 1 after rotation: %+v, %v", old, err)
		}
		_, err = alice.ReleasePrimaryKey(ctx, "exp", 9, good, nil)
		wantAPIError(t, err, api.CodeNotFound, client.ErrNotFound)
	})
	t.Run("400/a version below the minimum decryption version", func(t *testing.T) {
		if _, err := alice.ConfigureKey(ctx, "exp", client.KeyConfig{MinDecryptionVersion: 2}); err != nil {
			t.Fatal(err)
		}
		_, err := alice.ReleasePrimaryKey(ctx, "exp", 1, good, nil)
		ce := wantAPIError(t, err, api.CodeInvalid, client.ErrInvalid)
		contains(t, ce.Message, "below its minimum decryption version 2")
	})
	t.Run("403/not exportable: native and BigDL keys", func(t *testing.T) {
		for _, name := range []string{"plain", "bigdl"} {
			_, err := alice.ReleasePrimaryKey(ctx, name, 0, good, nil)
			ce := wantAPIError(t, err, api.CodeNotExportable, client.ErrForbidden)
			contains(t, ce.Message, "not exportable")
		}
		// Their data keys still release.
		if _, err := alice.ReleaseDataKey(ctx, "bigdl", "dk", good, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("403/exportable without a release policy", func(t *testing.T) {
		_, err := alice.ReleasePrimaryKey(ctx, "exp-nopolicy", 0, good, nil)
		wantAPIError(t, err, api.CodeNoReleasePolicy, client.ErrAttestation)
	})
	t.Run("403/a workload the policy does not accept", func(t *testing.T) {
		_, err := alice.ReleasePrimaryKey(ctx, "exp", 0, client.MockQuoteProvider{MREnclave: mrOther}, nil)
		wantAPIError(t, err, api.CodePolicyMismatch, client.ErrAttestation)
	})
	t.Run("400/a version with a data key", func(t *testing.T) {
		raw := &caller{base: k.s.URL, hc: k.hc, bearer: "Bearer alice:" + userToken}
		_, spki := ephemeral(t)
		req := releaseReq(raw.challenge(t), spki, testAudience, "bigdl", mrGood)
		req.Key.Version = 1
		status, body := raw.post(t, api.PathAttestRelease, req)
		e := wantCode(t, status, body, 400, api.CodeInvalid)
		contains(t, e.Message, "key.version applies to an exported primary key only")
	})
	t.Run("the key never leaves in plaintext, and the release is audited", func(t *testing.T) {
		// Routes that return key material refuse a key with a release
		// policy, exportable or not.
		_, err := alice.GenerateDataKey(ctx, "exp", api.GenerateDataKeyRequest{})
		wantAPIError(t, err, api.CodeForbidden, client.ErrForbidden)
		log, err := os.ReadFile(k.audit)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `"operation":"attest_release"`) && strings.Contains(line, `"key":"alice/exp"`) &&
				strings.Contains(line, `"result":"ok"`) {
				found = true
				contains(t, line, `"insecure":true`)
			}
		}
		if !found {
			t.Fatalf("no attest_release record of alice/exp in the audit log:\n%s", log)
		}
		for _, secret := range [][]byte{v1, []byte(hex.EncodeToString(v1))} {
			if bytes.Contains(log, secret) || strings.Contains(k.s.Logs(), string(secret)) {
				t.Fatal("the primary key appears in the audit or operational log")
			}
		}
	})
}

// specDecrypt opens a native ciphertext with a plaintext primary key,
// written from docs/spec/ciphertext.md alone.
func specDecrypt(primary []byte, owner, name string, ct []byte, context map[string]string) ([]byte, error) {
	if len(ct) < 29+16 || ct[0] != 'K' {
		return nil, os.ErrInvalid
	}
	version := binary.BigEndian.Uint32(ct[1:5])
	nonce := ct[5:29]
	sub, err := hkdf.Key(sha256.New, primary, nonce[:12], "kms wrap v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
	}
	aad := str([]byte{'K'}, "kms ciphertext v1")
	aad = str(aad, owner)
	aad = str(aad, name)
	aad = binary.BigEndian.AppendUint32(aad, version)
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(context)))
	keys := make([]string, 0, len(context))
	for k := range context {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		aad = str(str(aad, k), context[k])
	}
	return gcm.Open(nil, nonce[12:], ct[29:], aad)
}
