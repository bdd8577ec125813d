package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func testKeyring(t testing.TB, b byte, version int) *Keyring {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{b}, RootKeyLen), version)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	pid = PrimaryID{Owner: "alice", Name: "pk1", Version: 1}
	did = DataID{Primary: pid, Name: "dk1"}
)

func TestRoundTrip(t *testing.T) {
	k := testKeyring(t, 1, 1)
	wp, err := k.NewPrimaryKey(pid)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := k.NewDataKey(wp, did)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := k.OpenDataKey(wp, wd, did)
	if err != nil {
		t.Fatal(err)
	}
	if len(dk) != DataKeyLen {
		t.Fatalf("data key is %d bytes", len(dk))
	}
	dk2, err := k.OpenDataKey(wp, wd, did)
	if err != nil || !bytes.Equal(dk, dk2) {
		t.Fatalf("second open differs: %v", err)
	}
	wd2, _ := k.NewDataKey(wp, did)
	dk3, _ := k.OpenDataKey(wp, wd2, did)
	if bytes.Equal(dk, dk3) {
		t.Fatal("two data keys are equal")
	}
	if bytes.Contains(wp, dk) || bytes.Contains(wd, dk) {
		t.Fatal("plaintext visible in a wrapped blob")
	}
}

// TestOpenFailures covers every way a wrapped blob must fail to open. Each
// gives ErrDecrypt and nothing else.
func TestOpenFailures(t *testing.T) {
	k := testKeyring(t, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	other := testKeyring(t, 2, 1)
	v2 := testKeyring(t, 1, 2)
	otherPK, _ := k.NewPrimaryKey(PrimaryID{Owner: "alice", Name: "pk2", Version: 1})
	cases := []struct {
		name   string
		k      *Keyring
		wp, wd []byte
		id     DataID
	}{
		{"flipped primary format byte", k, flip(wp, 0), wd, did},
		{"flipped primary parent version", k, flip(wp, 4), wd, did},
		{"flipped primary nonce", k, flip(wp, 10), wd, did},
		{"flipped primary ciphertext", k, flip(wp, headerLen+3), wd, did},
		{"flipped primary tag", k, flip(wp, len(wp)-1), wd, did},
		{"flipped data ciphertext", k, wp, flip(wd, headerLen), did},
		{"flipped data tag", k, wp, flip(wd, len(wd)-1), did},
		{"truncated primary", k, wp[:len(wp)-1], wd, did},
		{"truncated data", k, wp, wd[:headerLen+tagLen-1], did},
		{"empty data", k, wp, nil, did},
		{"wrong root key", other, wp, wd, did},
		{"wrong root key version", v2, wp, wd, did},
		{"swapped AAD: other owner", k, wp, wd, DataID{Primary: PrimaryID{Owner: "bob", Name: "pk1", Version: 1}, Name: "dk1"}},
		{"swapped AAD: other primary name", k, wp, wd, DataID{Primary: PrimaryID{Owner: "alice", Name: "pk2", Version: 1}, Name: "dk1"}},
		{"swapped AAD: other primary version", k, wp, wd, DataID{Primary: PrimaryID{Owner: "alice", Name: "pk1", Version: 2}, Name: "dk1"}},
		{"swapped AAD: other data name", k, wp, wd, DataID{Primary: pid, Name: "dk2"}},
		{"swapped AAD: field boundaries", k, wp, wd, DataID{Primary: PrimaryID{Owner: "alic", Name: "epk1", Version: 1}, Name: "dk1"}},
		{"data key under another primary key", k, otherPK, wd, DataID{Primary: PrimaryID{Owner: "alice", Name: "pk2", Version: 1}, Name: "dk1"}},
		{"primary blob in the data slot", k, wp, wp, did},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dk, err := c.k.OpenDataKey(c.wp, c.wd, c.id)
			if !errors.Is(err, ErrDecrypt) || dk != nil {
				t.Fatalf("got %x, %v; want ErrDecrypt", dk, err)
			}
		})
	}
}

func TestInputNotModified(t *testing.T) {
	k := testKeyring(t, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	cp, cd := bytes.Clone(wp), bytes.Clone(wd)
	if _, err := k.OpenDataKey(wp, wd, did); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cp, wp) || !bytes.Equal(cd, wd) {
		t.Fatal("open modified its input")
	}
}

func TestNewRejectsBadRoot(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := New(make([]byte, n), 1); err == nil {
			t.Errorf("New accepted a %d-byte root key", n)
		}
	}
	if _, err := New(make([]byte, 32), 0); err == nil {
		t.Error("New accepted version 0")
	}
}

func TestRedaction(t *testing.T) {
	k := testKeyring(t, 0x41, 1)
	if s := k.String(); bytes.Contains([]byte(s), bytes.Repeat([]byte{0x41}, 4)) {
		t.Fatalf("String leaks key: %s", s)
	}
	if !k.Equal(testKeyring(t, 0x41, 1)) || k.Equal(testKeyring(t, 0x42, 1)) {
		t.Fatal("Equal is wrong")
	}
}

// FuzzOpen feeds arbitrary blobs to OpenDataKey. Properties: no panic; a
// blob pair that opens yields a 16-byte key, opens again to the same key,
// and stops opening when any single byte of either blob changes (the seeds
// are genuine blobs; fuzz workers derive their own, so the property must not
// compare against this process's random blobs).
func FuzzOpen(f *testing.F) {
	k := testKeyring(f, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	f.Add(wp, wd)
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		dk, err := k.OpenDataKey(a, b, did)
		if err != nil {
			return
		}
		if len(dk) != DataKeyLen {
			t.Fatalf("opened a %d-byte data key", len(dk))
		}
		again, err := k.OpenDataKey(a, b, did)
		if err != nil || !bytes.Equal(again, dk) {
			t.Fatal("a blob pair opened once but not twice")
		}
		for _, blob := range [][]byte{a, b} {
			for i := range blob {
				blob[i] ^= 0x80
				_, err := k.OpenDataKey(a, b, did)
				blob[i] ^= 0x80
				if err == nil {
					t.Fatalf("changing byte %d still opens", i)
				}
			}
		}
	})
}

func BenchmarkOpenDataKey(b *testing.B) {
	k := testKeyring(b, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.OpenDataKey(wp, wd, did); err != nil {
			b.Fatal(err)
		}
	}
}
