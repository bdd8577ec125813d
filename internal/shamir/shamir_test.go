package shamir

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// rootText is the BigDL vector root key (bytes 0x40..0x5f) as the
// 44-character base64 text BigDL splits.
const rootText = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

// refMul is an independent GF(2^8)/0x11b multiplication with log and exp
// tables over the generator 3, to check the table-free mul.
func refMul() func(a, b byte) byte {
	var exp [510]byte
	var log [256]int
	x := 1
	for i := range 255 {
		exp[i], log[x] = byte(x), i
		x2 := x << 1
		if x&0x80 != 0 {
			x2 ^= 0x11b
		}
		x = x2 ^ x
	}
	for i := 255; i < 510; i++ {
		exp[i] = exp[i-255]
	}
	return func(a, b byte) byte {
		if a == 0 || b == 0 {
			return 0
		}
		return exp[log[a]+log[b]]
	}
}

func TestFieldArithmetic(t *testing.T) {
	ref := refMul()
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), ref(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("inv(%#x) is wrong", a)
		}
	}
	// FIPS-197 §4.2 examples.
	if mul(0x57, 0x83) != 0xc1 || mul(0x57, 0x13) != 0xfe {
		t.Fatal("FIPS-197 multiplication examples fail")
	}
}

// countingReader yields the deterministic coefficient stream (7i+1) mod 256
// that the vector below was computed with by an independent (Python,
// log-table) implementation.
type countingReader struct{ i int }

func (r *countingReader) Read(p []byte) (int, error) {
	for k := range p {
		p[k] = byte(7*r.i + 1)
		r.i++
	}
	return len(p), nil
}

var vectorShares = []string{
	`{"index":1,"content":"WFx/Wig5W09bkn1wSlx5RV1cyFZtOEtbXFVXrE9fU1FeX1V4rjhxbVEVIQQ="}`,
	`{"index":2,"content":"cwPs3TidkzNLuwPa7O78tAB1wBHmx9jnjFFfnSktjfvDtnBJvgciitoR6Rg="}`,
	`{"index":3,"content":"ehrVxEGUmjpCQhrj9ef1vQlsOQjfztHuhWhGZDAkhPLKr0lQRw4rg9No8CE="}`,
	`{"index":4,"content":"1QJE4tm7qitMNOXdNKo9Iv8tqFgGe3uJ/THgWocf1vdKmPdZns33fjGcIDA="}`,
	`{"index":5,"content":"3Bt9+6CyoyJFzfzkLaM0K/Y0UUE/cnKA9Aj5o54W3/5Dgc5AZ8T+dzjlOQk="}`,
}

// TestVector pins the field, the x-coordinates, the per-byte polynomials
// and the JSON encoding against an independent implementation.
func TestVector(t *testing.T) {
	shares, err := split(&countingReader{}, []byte(rootText), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range shares {
		b, _ := json.Marshal(s)
		if string(b) != vectorShares[i] {
			t.Errorf("share %d = %s\nwant       %s", i+1, b, vectorShares[i])
		}
	}
	var parsed []Share
	for _, v := range vectorShares[2:] {
		s, err := ParseShare([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, s)
	}
	got, err := Combine(parsed)
	if err != nil || string(got) != rootText {
		t.Fatalf("Combine(vector shares 3,4,5) = %q, %v", got, err)
	}
}

// subsets calls f with every subset of s (as a new slice).
func subsets(s []Share, f func([]Share)) {
	for mask := 1; mask < 1<<len(s); mask++ {
		var sub []Share
		for i := range s {
			if mask&(1<<i) != 0 {
				sub = append(sub, s[i])
			}
		}
		f(sub)
	}
}

func TestRoundTripEverySubset(t *testing.T) {
	for _, c := range []struct{ n, t int }{{5, 3}, {1, 1}, {3, 1}, {3, 3}, {7, 4}, {2, 2}} {
		shares, err := Split([]byte(rootText), c.n, c.t)
		if err != nil {
			t.Fatal(err)
		}
		subsets(shares, func(sub []Share) {
			got, err := Combine(sub)
			if err != nil {
				t.Fatalf("%d/%d: Combine(%d shares): %v", c.t, c.n, len(sub), err)
			}
			if ok := string(got) == rootText; ok != (len(sub) >= c.t) {
				// Fewer than threshold shares give a wrong secret and no
				// error; a collision with the real one has probability
				// 2^-352 here.
				t.Fatalf("%d/%d: %d shares: recovered=%v", c.t, c.n, len(sub), ok)
			}
		})
	}
}

func TestCombineRefuses(t *testing.T) {
	s := func(x int, c ...byte) Share { return Share{Index: x, Content: c} }
	cases := []struct {
		name   string
		shares []Share
		want   error
	}{
		{"no shares", nil, ErrNoShares},
		{"duplicate index", []Share{s(1, 1, 2), s(2, 3, 4), s(1, 1, 2)}, ErrDuplicateIndex},
		{"duplicate index, other content", []Share{s(1, 1, 2), s(1, 5, 6)}, ErrDuplicateIndex},
		{"index 0", []Share{s(0, 1, 2), s(1, 3, 4)}, ErrBadIndex},
		{"index 256", []Share{s(256, 1, 2), s(1, 3, 4)}, ErrBadIndex},
		{"negative index", []Share{s(-1, 1, 2)}, ErrBadIndex},
		{"length mismatch", []Share{s(1, 1, 2), s(2, 3)}, ErrLengthMismatch},
		{"empty content", []Share{s(1), s(2)}, ErrEmptyShare},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Combine(c.shares)
			if !errors.Is(err, c.want) || got != nil {
				t.Fatalf("got %x, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestSplitRefuses(t *testing.T) {
	for _, c := range []struct {
		name      string
		secret    []byte
		n, thresh int
	}{
		{"empty secret", nil, 5, 3},
		{"threshold 0", []byte("x"), 5, 0},
		{"threshold above n", []byte("x"), 3, 4},
		{"256 shares", []byte("x"), 256, 3},
	} {
		if _, err := Split(c.secret, c.n, c.thresh); err == nil {
			t.Errorf("%s: Split succeeded", c.name)
		}
	}
}

func TestSplitDoesNotModifySecret(t *testing.T) {
	secret := []byte(rootText)
	shares, _ := Split(secret, 5, 3)
	if string(secret) != rootText {
		t.Fatal("Split modified the secret")
	}
	for _, s := range shares {
		if bytes.Equal(s.Content, secret) {
			t.Fatal("a share equals the secret")
		}
	}
}

func TestParseShare(t *testing.T) {
	good := []string{
		`{"index":1,"content":"AQI="}`,
		`{"index" : 3,"content" : "AQI="}`, // BigDL's documented curl body
		` {"content":"AQI=","index":255} `,
	}
	for _, g := range good {
		if _, err := ParseShare([]byte(g)); err != nil {
			t.Errorf("ParseShare(%s): %v", g, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `{}`, `{"index":1}`, `{"content":"AQI="}`,
		`{"index":0,"content":"AQI="}`, `{"index":256,"content":"AQI="}`,
		`{"index":1,"content":""}`, `{"index":1,"content":"not base64!"}`,
		`{"index":1.5,"content":"AQI="}`, `{"index":"1","content":"AQI="}`,
		`{"index":1,"content":"AQI=","extra":1}`, `{"index":1,"content":"AQI="} {}`,
		`{"index":1,"content":"AQI="}x`,
	}
	for _, b := range bad {
		if s, err := ParseShare([]byte(b)); err == nil {
			t.Errorf("ParseShare(%s) = %v, want error", b, s)
		}
	}
	if _, err := ParseShare([]byte(`{"index":1,"content":"c2VjcmV0IQ==","x":1}`)); err == nil ||
		bytes.Contains([]byte(err.Error()), []byte("c2VjcmV0")) {
		t.Errorf("error leaks content or is nil: %v", err)
	}
}

func TestShareStringRedacts(t *testing.T) {
	s := Share{Index: 1, Content: []byte("topsecret")}
	if bytes.Contains([]byte(s.String()), []byte("topsecret")) {
		t.Fatal("String leaks content")
	}
}

func FuzzParseShare(f *testing.F) {
	for _, v := range vectorShares {
		f.Add([]byte(v))
	}
	f.Add([]byte(`{"index" : 3,"content" : "AQI="}`))
	f.Add([]byte(`{"index":0,"content":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b)
		if err != nil {
			return
		}
		if s.Index < 1 || s.Index > 255 || len(s.Content) == 0 || len(s.Content) > MaxSecretLen {
			t.Fatalf("accepted invalid share %d/%d", s.Index, len(s.Content))
		}
		m, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseShare(m)
		if err != nil || s2.Index != s.Index || !bytes.Equal(s2.Content, s.Content) {
			t.Fatalf("parse(marshal(s)) = %v, %v", s2, err)
		}
	})
}

func BenchmarkCombine(b *testing.B) {
	shares, _ := Split([]byte(rootText), 5, 3)
	for b.Loop() {
		Combine(shares[:3])
	}
}
