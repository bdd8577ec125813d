package keyring

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestDataKeyCache(t *testing.T) {
	k := testKeyring(t, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	var hits, misses int
	c := NewDataKeyCache(2, time.Minute, func(h bool) {
		if h {
			hits++
		} else {
			misses++
		}
	})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	want, _ := k.OpenDataKey(wp, wd, did)
	for range 3 {
		got, err := c.OpenDataKey(k, wp, wd, did)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %x %v", got, err)
		}
		got[0] ^= 0xff // callers may clear or change their copy
	}
	if hits != 2 || misses != 1 {
		t.Fatalf("hits %d misses %d", hits, misses)
	}
	// Another identity with the same blob must not hit.
	other := DataID{Primary: pid, Name: "dk2"}
	if _, err := c.OpenDataKey(k, wp, wd, other); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other identity: %v", err)
	}
	// A tampered blob never hits.
	bad := bytes.Clone(wd)
	bad[len(bad)-1] ^= 1
	if _, err := c.OpenDataKey(k, wp, bad, did); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: %v", err)
	}
	// Expiry.
	now = now.Add(2 * time.Minute)
	misses = 0
	c.OpenDataKey(k, wp, wd, did)
	if misses != 1 {
		t.Fatal("expired entry hit")
	}
	// Bound.
	for i := range 10 {
		id := DataID{Primary: pid, Name: string(rune('a' + i))}
		w, _ := k.NewDataKey(wp, id)
		c.OpenDataKey(k, wp, w, id)
	}
	if len(c.m) > 2 {
		t.Fatalf("cache holds %d entries, bound 2", len(c.m))
	}
	c.Purge()
	if len(c.m) != 0 {
		t.Fatal("purge left entries")
	}
}

func BenchmarkDataKeyCacheHit(b *testing.B) {
	k := testKeyring(b, 1, 1)
	wp, _ := k.NewPrimaryKey(pid)
	wd, _ := k.NewDataKey(wp, did)
	c := NewDataKeyCache(100, time.Minute, nil)
	b.ReportAllocs()
	for b.Loop() {
		c.OpenDataKey(k, wp, wd, did)
	}
}
