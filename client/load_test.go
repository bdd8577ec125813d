package client_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// TestRotationUnderLoad runs encryptions, decryptions of old and new
// ciphertexts, data key generation and BigDL data key reads while the key
// is rotated again and again and the root key is rotated twice, and
// requires every single request to succeed with the right answer. The
// clients do not retry, so nothing is hidden.
func TestRotationUnderLoad(t *testing.T) {
	t.Parallel()
	k := startKMS(t, kmstest.Options{})
	ctx := t.Context()
	alice := k.user(t, "alice")
	const tok = "alice-token"
	bigdl := newClient(t, k.s, client.WithRetries(0))

	// The hot key and its version-1 material.
	if err := bigdl.CreatePrimaryKey(ctx, "alice", tok, "hot"); err != nil {
		t.Fatal(err)
	}
	dataKeys := map[string][]byte{}
	for i := range 4 {
		name := fmt.Sprintf("dk%d", i)
		if err := bigdl.CreateDataKey(ctx, "alice", tok, "hot", name); err != nil {
			t.Fatal(err)
		}
		dataKeys[name] = must(bigdl.DataKey(ctx, "alice", tok, "hot", name))(t)
	}
	ectx := map[string]string{"job": "load"}
	old := must(alice.Encrypt(ctx, "hot", []byte("version one"), ectx))(t)
	// Other keys, so that the root rotation has work to do while serving.
	for i := range 30 {
		if err := bigdl.CreatePrimaryKey(ctx, "alice", tok, fmt.Sprintf("cold%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	var (
		stop     atomic.Bool
		ops      atomic.Int64
		failures atomic.Int64
		errMu    sync.Mutex
		firstErr []string
		versions sync.Map // key versions seen by encryptions
	)
	fail := func(format string, a ...any) {
		if failures.Add(1) <= 5 {
			errMu.Lock()
			firstErr = append(firstErr, fmt.Sprintf(format, a...))
			errMu.Unlock()
		}
	}
	workers := []func(i int){
		func(i int) { // encrypt then decrypt
			pt := []byte(fmt.Sprintf("message %d", i))
			ct, err := alice.Encrypt(ctx, "hot", pt, ectx)
			if err != nil {
				fail("encrypt: %v", err)
				return
			}
			versions.Store(ct.KeyVersion, true)
			got, err := alice.Decrypt(ctx, "hot", ct.Ciphertext, ectx)
			if err != nil || !bytes.Equal(got.Plaintext, pt) {
				fail("decrypt new: %v", err)
			}
		},
		func(int) { // decrypt a version-1 ciphertext
			got, err := alice.Decrypt(ctx, "hot", old.Ciphertext, ectx)
			if err != nil || string(got.Plaintext) != "version one" || got.KeyVersion != 1 {
				fail("decrypt old: %v", err)
			}
		},
		func(i int) { // BigDL GET of a data key made under version 1
			name := fmt.Sprintf("dk%d", i%len(dataKeys))
			got, err := bigdl.DataKey(ctx, "alice", tok, "hot", name)
			if err != nil || !bytes.Equal(got, dataKeys[name]) {
				fail("BigDL data key %s: %v", name, err)
			}
		},
		func(int) { // envelope data key, rewrapped to the newest version
			dk, err := alice.GenerateDataKey(ctx, "hot", api.GenerateDataKeyRequest{Context: ectx})
			if err != nil {
				fail("generate data key: %v", err)
				return
			}
			re, err := alice.ReEncrypt(ctx, "hot", api.ReEncryptRequest{Ciphertext: dk.Ciphertext, Context: ectx})
			if err != nil {
				fail("reencrypt: %v", err)
				return
			}
			got, err := alice.Decrypt(ctx, "hot", re.Ciphertext, ectx)
			if err != nil || !bytes.Equal(got.Plaintext, dk.Plaintext) {
				fail("decrypt data key: %v", err)
			}
		},
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load() && i < 5000; i++ {
				w(i)
				ops.Add(1)
			}
		})
	}

	// Rotate the key repeatedly and the root key twice, concurrently.
	const keyRotations = 8
	var rot sync.WaitGroup
	rot.Go(func() {
		for range keyRotations {
			if _, err := alice.RotateKey(ctx, "hot"); err != nil {
				fail("rotate key: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	rot.Go(func() {
		for range 2 {
			time.Sleep(150 * time.Millisecond)
			if _, err := k.admin.RotateRoot(ctx); err != nil {
				fail("rotate root: %v", err)
			}
		}
	})
	rot.Wait()
	time.Sleep(200 * time.Millisecond) // some load after the last rotation
	stop.Store(true)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed under rotation, first: %q", n, ops.Load(), firstErr)
	}
	if ops.Load() < 100 {
		t.Fatalf("only %d operations ran during the rotations", ops.Load())
	}
	seen := 0
	versions.Range(func(any, any) bool { seen++; return true })
	key := must(alice.DescribeKey(ctx, "hot"))(t)
	st := must(k.anon.SealStatus(ctx))(t)
	if key.LatestVersion != 1+keyRotations || seen < 3 || st.RootVersion != 3 || st.Rotating {
		t.Fatalf("after the load: key version %d, %d versions used by encryptions, seal %+v", key.LatestVersion, seen, st)
	}
	t.Logf("%d requests, none failed, across %d key and 2 root rotations", ops.Load(), keyRotations)
}
