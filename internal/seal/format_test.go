package seal

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

func testSealKey(t testing.TB, b byte) *sealKey {
	t.Helper()
	k, err := newSealKey(bytes.Repeat([]byte{b}, KeyLen))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckValue(t *testing.T) {
	a, b := testSealKey(t, 1), testSealKey(t, 2)
	if !a.matches(a.check()) || a.matches(b.check()) || a.matches(nil) || a.matches(a.check()[:31]) {
		t.Fatal("check value does not identify the key")
	}
	if bytes.Contains(a.check(), a.b[:4]) {
		t.Fatal("check value contains key bytes")
	}
	if s := a.String(); strings.Contains(s, "\x01") {
		t.Fatal("String leaks")
	}
}

func TestSealedRootBinding(t *testing.T) {
	k := testSealKey(t, 1)
	root := bytes.Repeat([]byte{7}, KeyLen)
	sealed, err := k.sealRoot(2, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 12+KeyLen+16 || bytes.Contains(sealed, root[:8]) {
		t.Fatalf("sealed root is %d bytes or shows the key", len(sealed))
	}
	got, err := k.openRoot(2, sealed)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("openRoot: %v", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[20] ^= 1
	for name, f := range map[string]func() ([]byte, error){
		"other version":  func() ([]byte, error) { return k.openRoot(3, sealed) },
		"other seal key": func() ([]byte, error) { return testSealKey(t, 2).openRoot(2, sealed) },
		"flipped bit":    func() ([]byte, error) { return k.openRoot(2, flipped) },
		"truncated":      func() ([]byte, error) { return k.openRoot(2, sealed[:20]) },
	} {
		if _, err := f(); !errors.Is(err, errCorruptDoc) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func validDoc(t testing.TB) *sealDoc {
	k := testSealKey(t, 1)
	s2, _ := k.sealRoot(2, bytes.Repeat([]byte{2}, KeyLen))
	now := time.Unix(1e9, 0).UTC()
	return &sealDoc{Format: 1, Check: k.check(), Shares: 5, Threshold: 3, Current: 1, Target: 2,
		Roots: []rootEntry{{Version: 1, Created: now}, {Version: 2, Sealed: s2, Created: now}}}
}

func TestParseDoc(t *testing.T) {
	d := validDoc(t)
	got, err := parseDoc(d.marshal())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := got.keyring(testSealKey(t, 1))
	if err != nil || kr.Version() != 2 || !kr.Has(1) {
		t.Fatalf("keyring from document: %v", err)
	}
	if _, err := got.keyring(testSealKey(t, 9)); !errors.Is(err, errCorruptDoc) {
		t.Fatalf("keyring with the wrong seal key: %v", err)
	}
	bad := map[string]func(d *sealDoc){
		"format 2":               func(d *sealDoc) { d.Format = 2 },
		"short check":            func(d *sealDoc) { d.Check = d.Check[:16] },
		"threshold above shares": func(d *sealDoc) { d.Threshold = 6 },
		"current 0":              func(d *sealDoc) { d.Current = 0 },
		"target not above":       func(d *sealDoc) { d.Target = 1 },
		"target missing":         func(d *sealDoc) { d.Target = 3 },
		"current missing":        func(d *sealDoc) { d.Roots = d.Roots[1:]; d.Target = 0 },
		"versions not ordered":   func(d *sealDoc) { d.Roots[0], d.Roots[1] = d.Roots[1], d.Roots[0] },
		"v1 sealed":              func(d *sealDoc) { d.Roots[0].Sealed = []byte{1} },
		"v2 not sealed":          func(d *sealDoc) { d.Roots[1].Sealed = nil },
	}
	for name, mutate := range bad {
		d := validDoc(t)
		mutate(d)
		if _, err := parseDoc(d.marshal()); !errors.Is(err, errCorruptDoc) {
			t.Errorf("%s: parseDoc = %v", name, err)
		}
	}
	for _, s := range []string{``, `{}`, `[]`, `{"format":1,"check":"!!"}`} {
		if _, err := parseDoc([]byte(s)); err == nil {
			t.Errorf("parseDoc(%q) succeeded", s)
		}
	}
}

// TestDocFormat pins the JSON field names of the seal document, which
// docs/spec/sealing.md specifies.
func TestDocFormat(t *testing.T) {
	var m map[string]any
	json.Unmarshal(validDoc(t).marshal(), &m)
	for _, k := range []string{"format", "check", "shares", "threshold", "current", "target", "roots"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	roots := m["roots"].([]any)
	r1, r2 := roots[0].(map[string]any), roots[1].(map[string]any)
	if _, ok := r1["sealed"]; ok || r1["version"] != 1.0 || r2["sealed"] == nil || r2["created"] == nil {
		t.Errorf("roots: %v", roots)
	}
}

// TestCorruptDocRefusesToUnseal: a damaged seal document is an error at
// start, never a silently wrong keyring.
func TestCorruptDocRefusesToUnseal(t *testing.T) {
	st := newFakeStore()
	m := startAuto(t, st, Options{PollInterval: -1})
	if _, err := m.RotateRoot(t.Context()); err != nil {
		t.Fatal(err)
	}
	d, _ := st.Doc(t.Context(), DocKind, DocID)
	sd, _ := parseDoc(d.Value)
	sd.Roots[len(sd.Roots)-1].Sealed[15] ^= 1
	d.Value = sd.marshal()
	if _, err := st.PutDoc(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	r := New(st, Options{PollInterval: -1})
	defer r.Close()
	if err := r.LoadAuto(t.Context(), keyOf(1)); !errors.Is(err, errCorruptDoc) || !r.Status().Sealed {
		t.Fatalf("LoadAuto with a corrupt document = %v", err)
	}
	// The running Manager keeps its keyring and reports the problem.
	if err := m.Refresh(t.Context()); !errors.Is(err, errCorruptDoc) {
		t.Fatalf("Refresh = %v", err)
	}
	if _, err := m.Keyring(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Doc(t.Context(), "sys", "root"); errors.Is(err, kms.ErrNotFound) {
		t.Fatal("document vanished")
	}
}

func FuzzParseDoc(f *testing.F) {
	f.Add(validDoc(f).marshal())
	f.Add([]byte(`{"format":1}`))
	k := testSealKey(f, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDoc(b)
		if err != nil {
			return
		}
		if d.validate() != nil {
			t.Fatal("parseDoc returned an invalid document")
		}
		d.keyring(k) // must not panic
	})
}
