package keyring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func rootBytes(b byte) []byte { return bytes.Repeat([]byte{b}, RootKeyLen) }

func testMulti(t testing.TB, current int) *Keyring {
	t.Helper()
	k, err := NewMulti(map[int][]byte{1: rootBytes(1), 2: rootBytes(2)}, current)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func blobVersion(b []byte) int { return int(binary.BigEndian.Uint32(b[1:5])) }

func TestMultiOpensEveryHeldVersion(t *testing.T) {
	v1 := testKeyring(t, 1, 1)
	wp1, _ := v1.NewPrimaryKey(pid)
	wd1, _ := v1.NewDataKey(wp1, did)
	want, _ := v1.OpenDataKey(wp1, wd1, did)

	k := testMulti(t, 2)
	if k.Version() != 2 || !slices.Equal(k.Versions(), []int{1, 2}) || !k.Has(1) || !k.Has(2) || k.Has(3) || k.Has(0) {
		t.Fatalf("version %d, versions %v", k.Version(), k.Versions())
	}
	// A primary key sealed under v1 opens after v2 is added.
	got, err := k.OpenDataKey(wp1, wd1, did)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("v1 data key through multi keyring: %v", err)
	}
	// New primary keys use the current version, v2.
	wp2, _ := k.NewPrimaryKey(pid)
	if blobVersion(wp2) != 2 {
		t.Fatalf("new primary key sealed under v%d", blobVersion(wp2))
	}
	// New data keys under a v1 primary key open, through either keyring.
	wd, err := k.NewDataKey(wp1, did)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.OpenDataKey(wp1, wd, did); err != nil {
		t.Fatalf("data key made by the multi keyring does not open under v1 alone: %v", err)
	}
	// A v2 primary key does not open under v1 alone.
	if _, err := v1.NewDataKey(wp2, did); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("v2 key opened under a v1-only keyring: %v", err)
	}
}

func TestRewrap(t *testing.T) {
	v1 := testKeyring(t, 1, 1)
	wp1, _ := v1.NewPrimaryKey(pid)
	wd, _ := v1.NewDataKey(wp1, did)
	want, _ := v1.OpenDataKey(wp1, wd, did)

	k := testMulti(t, 2)
	wp2, err := k.Rewrap(wp1, pid, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if blobVersion(wp2) != 2 || bytes.Equal(wp1, wp2) {
		t.Fatal("rewrapped blob is not under v2")
	}
	// Data keys under the rewrapped primary key still open: the primary key
	// itself did not change.
	v2only, _ := New(rootBytes(2), 2)
	for name, kr := range map[string]*Keyring{"multi": k, "v2 only": v2only} {
		got, err := kr.OpenDataKey(wp2, wd, did)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: data key after rewrap: %v", name, err)
		}
	}
	// And back again, for completeness.
	if back, err := k.Rewrap(wp2, pid, 2, 1); err != nil || blobVersion(back) != 1 {
		t.Fatalf("rewrap back: %v", err)
	}
}

func TestRewrapFailures(t *testing.T) {
	v1 := testKeyring(t, 1, 1)
	wp1, _ := v1.NewPrimaryKey(pid)
	k := testMulti(t, 2)
	other := PrimaryID{Owner: "bob", Name: "pk1", Version: 1}
	flipped := bytes.Clone(wp1)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name     string
		wrapped  []byte
		id       PrimaryID
		from, to int
		decrypt  bool // want ErrDecrypt (else another error)
	}{
		{"from does not match the blob", wp1, pid, 2, 1, true},
		{"from not held", wp1, pid, 3, 2, true},
		{"to not held", wp1, pid, 1, 3, false},
		{"wrong id", wp1, other, 1, 2, true},
		{"tampered", flipped, pid, 1, 2, true},
		{"truncated", wp1[:4], pid, 1, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := k.Rewrap(c.wrapped, c.id, c.from, c.to)
			if err == nil || out != nil || errors.Is(err, ErrDecrypt) != c.decrypt {
				t.Fatalf("got %x, %v", out, err)
			}
		})
	}
}

func TestNewMultiRefuses(t *testing.T) {
	cases := map[string]struct {
		roots   map[int][]byte
		current int
	}{
		"current missing": {map[int][]byte{1: rootBytes(1)}, 2},
		"short key":       {map[int][]byte{1: rootBytes(1), 2: make([]byte, 31)}, 1},
		"short current":   {map[int][]byte{1: make([]byte, 16)}, 1},
		"version 0":       {map[int][]byte{1: rootBytes(1), 0: rootBytes(2)}, 1},
		"empty":           {nil, 1},
	}
	for name, c := range cases {
		if _, err := NewMulti(c.roots, c.current); err == nil {
			t.Errorf("%s: NewMulti succeeded", name)
		}
	}
}

func TestMultiEqualAndCopies(t *testing.T) {
	key := rootBytes(2)
	k, _ := NewMulti(map[int][]byte{1: rootBytes(1), 2: key}, 2)
	clear(key)
	if !k.Equal(testMulti(t, 2)) {
		t.Fatal("NewMulti did not copy the key, or Equal is wrong")
	}
	if k.Equal(testMulti(t, 1)) || k.Equal(testKeyring(t, 2, 2)) {
		t.Fatal("Equal ignores the current version or the other versions")
	}
	k3, _ := NewMulti(map[int][]byte{1: rootBytes(9), 2: rootBytes(2)}, 2)
	if k.Equal(k3) {
		t.Fatal("Equal ignores other versions' bytes")
	}
}
