package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func TestEncryptDecrypt(t *testing.T) {
	k := testKeyring(t, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	ctx := map[string]string{"tenant": "a", "purpose": "spark"}
	pt := []byte("hello, world")
	ct, err := k.Encrypt(wp, pid, pt, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := CiphertextVersion(ct); err != nil || v != 1 || ct[0] != 'K' {
		t.Fatalf("version %d %v, format %#x", v, err, ct[0])
	}
	got, err := k.Decrypt(wp, pid, ct, map[string]string{"purpose": "spark", "tenant": "a"})
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("round trip: %q %v", got, err)
	}
	if bytes.Contains(ct, pt) {
		t.Fatal("plaintext visible")
	}
	empty, _ := k.Encrypt(wp, pid, nil, nil)
	if got, err := k.Decrypt(wp, pid, empty, map[string]string{}); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v", err)
	}

	wp2, _ := k.NewPrimaryKey(PrimaryID{Owner: "alice", Name: "pk1", Version: 2})
	flip := func(i int) []byte { c := bytes.Clone(ct); c[i] ^= 1; return c }
	wd, _ := k.NewDataKey(wp, did)
	cases := []struct {
		name string
		wp   []byte
		id   PrimaryID
		ct   []byte
		ctx  map[string]string
	}{
		{"other context value", wp, pid, ct, map[string]string{"tenant": "b", "purpose": "spark"}},
		{"missing context", wp, pid, ct, nil},
		{"extra context", wp, pid, ct, map[string]string{"tenant": "a", "purpose": "spark", "x": ""}},
		{"context boundary shift", wp, pid, ct, map[string]string{"tenant": "apurpose", "": "spark"}},
		{"flipped version", wp, pid, flip(4), ctx},
		{"flipped nonce", wp, pid, flip(8), ctx},
		{"flipped body", wp, pid, flip(headerLen), ctx},
		{"flipped tag", wp, pid, flip(len(ct) - 1), ctx},
		{"truncated", wp, pid, ct[:len(ct)-1], ctx},
		{"other key version", wp2, PrimaryID{Owner: "alice", Name: "pk1", Version: 2}, ct, ctx},
		{"other owner", wp, PrimaryID{Owner: "bob", Name: "pk1", Version: 1}, ct, ctx},
		{"wrapped data key as ciphertext", wp, pid, append([]byte{'K'}, wd[1:]...), ctx},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := k.Decrypt(c.wp, c.id, c.ct, c.ctx); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("got %v, want ErrDecrypt", err)
			}
		})
	}
	if _, err := k.Decrypt(wp, pid, ct, ctx); err != nil {
		t.Fatal("Decrypt modified its input")
	}
}

func FuzzCiphertextVersion(f *testing.F) {
	k := testKeyring(f, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	ct, _ := k.Encrypt(wp, pid, []byte("x"), nil)
	f.Add(ct)
	f.Add([]byte{'K', 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := CiphertextVersion(b); err == nil && len(b) < headerLen+tagLen {
			t.Fatal("short ciphertext accepted")
		}
		// A ciphertext that opens must stop opening when any byte changes
		// (fuzz workers make their own keys, so no comparison with ct).
		if _, err := k.Decrypt(wp, pid, b, nil); err == nil {
			for i := range b {
				b[i] ^= 0x80
				_, err := k.Decrypt(wp, pid, b, nil)
				b[i] ^= 0x80
				if err == nil {
					t.Fatalf("changing byte %d still decrypts", i)
				}
			}
		}
	})
}
