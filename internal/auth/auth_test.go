package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// fakeUsers is a user store whose lookups are counted, so that tests can
// prove when the slow path ran.
type fakeUsers struct {
	lookups atomic.Int64
	mu      sync.Mutex
	hashes  map[string]string // user → encoded hash
	err     error             // returned by every lookup when set
}

// newUsers returns a store holding the users of tokens (user → token), with
// cheap hashes.
func newUsers(tb testing.TB, tokens map[string]string) *fakeUsers {
	tb.Helper()
	s := &fakeUsers{hashes: make(map[string]string)}
	for u, tok := range tokens {
		s.hashes[u] = cheapHash(tb, tok)
	}
	return s
}

func (s *fakeUsers) lookup(ctx context.Context, name string) (kms.User, error) {
	s.lookups.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return kms.User{}, s.err
	}
	h, ok := s.hashes[name]
	if !ok {
		return kms.User{}, kms.Errorf(kms.ErrNotFound, "user %q does not exist", name)
	}
	return kms.User{Name: name, TokenHash: h}, nil
}

func (s *fakeUsers) set(name, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hashes[name] = hash
}

func (s *fakeUsers) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder collects OnCacheHit and OnFailure callbacks.
type recorder struct {
	mu       sync.Mutex
	hits     []bool
	failures []string
}

func (r *recorder) hook(opt *Options) {
	opt.OnCacheHit = func(hit bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits = append(r.hits, hit)
	}
	opt.OnFailure = func(reason string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.failures = append(r.failures, reason)
	}
}

func (r *recorder) lastHit(tb testing.TB) bool {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hits) == 0 {
		tb.Fatal("OnCacheHit was never called")
	}
	return r.hits[len(r.hits)-1]
}

func (r *recorder) lastFailure() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) == 0 {
		return ""
	}
	return r.failures[len(r.failures)-1]
}

func (a *Authenticator) cacheLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cache)
}

// want checks err against the sentinel want (nil for success).
func want(tb testing.TB, err, want error, what string) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("%s: %v, want success", what, err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func TestAuthenticateCachesSuccess(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	var rec recorder
	opt := Options{}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.1"), nil, "first")
	if n := users.lookups.Load(); n != 1 {
		t.Errorf("first call: %d lookups, want 1", n)
	}
	if rec.lastHit(t) {
		t.Error("first call reported a cache hit")
	}
	for i := range 3 {
		want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.2"), nil, "cached")
		if !rec.lastHit(t) {
			t.Errorf("call %d: reported a cache miss", i+2)
		}
	}
	if n := users.lookups.Load(); n != 1 {
		t.Errorf("cached calls ran the slow path: %d lookups, want 1", n)
	}
}

func TestAuthenticateWrongToken(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	var rec recorder
	opt := Options{}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	for i, tok := range []string{"guess-1", "", "a-token ", "A-TOKEN"} {
		err := a.Authenticate(ctx, "alice", tok, "192.0.2.1")
		want(t, err, kms.ErrPermission, fmt.Sprintf("token %q", tok))
		if errors.Is(err, kms.ErrNotFound) || errors.Is(err, kms.ErrThrottled) {
			t.Errorf("token %q: error %v also matches another kind", tok, err)
		}
		if strings.Contains(err.Error(), tok) && tok != "" {
			t.Errorf("error %q contains the token", err)
		}
		if got := rec.lastFailure(); got != "bad credentials" {
			t.Errorf("OnFailure reason = %q, want %q", got, "bad credentials")
		}
		if n := users.lookups.Load(); n != int64(i+1) {
			t.Errorf("failures must not be cached: %d lookups after %d calls", n, i+1)
		}
	}
	// The failures did not poison the right token.
	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.1"), nil, "right token")
}

func TestAuthenticateUnknownUserLooksLikeWrongToken(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	a := New(users.lookup, Options{})
	ctx := t.Context()

	wrong := a.Authenticate(ctx, "alice", "guess", "192.0.2.1")
	unknown := a.Authenticate(ctx, "mallory", "guess", "192.0.2.1")
	want(t, wrong, kms.ErrPermission, "wrong token")
	want(t, unknown, kms.ErrPermission, "unknown user")
	if errors.Is(unknown, kms.ErrNotFound) {
		t.Errorf("unknown user error %v wraps ErrNotFound: it would tell users apart", unknown)
	}
	// The messages differ only by the name the client sent itself.
	if got := strings.ReplaceAll(unknown.Error(), "mallory", "alice"); got != wrong.Error() {
		t.Errorf("messages differ:\nunknown user: %q\nwrong token:  %q", unknown, wrong)
	}
}

func TestAuthenticateLookupErrorPropagated(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	var rec recorder
	opt := Options{UserLimit: 2, AddrLimit: 2}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	users.setErr(kms.Errorf(kms.ErrUnavailable, "database is down"))
	for range 4 {
		err := a.Authenticate(ctx, "alice", "a-token", "192.0.2.1")
		want(t, err, kms.ErrUnavailable, "store down")
		if errors.Is(err, kms.ErrPermission) {
			t.Errorf("store outage reported as a credential failure: %v", err)
		}
	}
	if got := rec.lastFailure(); got != "" {
		t.Errorf("OnFailure(%q) called for an outage", got)
	}
	// An outage is not a failed attempt: nothing is throttled afterwards.
	users.setErr(nil)
	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.1"), nil, "store back")
}

func TestAuthenticateCorruptStoredHash(t *testing.T) {
	t.Parallel()
	users := newUsers(t, nil)
	users.set("alice", "$argon2id$v=19$garbage")
	a := New(users.lookup, Options{})
	for i := range 2 {
		if err := a.Authenticate(t.Context(), "alice", "any", "192.0.2.1"); err == nil {
			t.Fatalf("call %d: corrupt stored hash authenticated", i)
		}
	}
	if n := users.lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2: a failed verification must not be cached", n)
	}
}

func TestAuthenticateThrottlesUser(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token", "bob": "b-token"})
	var rec recorder
	opt := Options{UserLimit: 3, AddrLimit: 1000}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	// Failures from different addresses all count against alice.
	for i := range 3 {
		addr := fmt.Sprintf("198.51.100.%d", i)
		want(t, a.Authenticate(ctx, "alice", "guess", addr), kms.ErrPermission, "failure "+addr)
	}
	before := users.lookups.Load()
	err := a.Authenticate(ctx, "alice", "a-token", "203.0.113.9")
	want(t, err, kms.ErrThrottled, "right token after UserLimit failures")
	if errors.Is(err, kms.ErrPermission) {
		t.Errorf("throttled error %v also matches ErrPermission", err)
	}
	if n := users.lookups.Load(); n != before {
		t.Errorf("a throttled attempt ran the slow path (%d lookups, want %d)", n, before)
	}
	if got := rec.lastFailure(); got != "throttled" {
		t.Errorf("OnFailure reason = %q, want %q", got, "throttled")
	}
	// Other users, even from an address alice failed from, are not affected.
	want(t, a.Authenticate(ctx, "bob", "b-token", "198.51.100.0"), nil, "bob")
}

func TestAuthenticateThrottlesUnknownUser(t *testing.T) {
	t.Parallel()
	users := newUsers(t, nil)
	a := New(users.lookup, Options{UserLimit: 2, AddrLimit: 1000})
	ctx := t.Context()
	for i := range 2 {
		want(t, a.Authenticate(ctx, "mallory", "guess", fmt.Sprint(i)), kms.ErrPermission, "unknown user")
	}
	want(t, a.Authenticate(ctx, "mallory", "guess", "x"), kms.ErrThrottled, "unknown user after limit")
}

func TestAuthenticateThrottlesAddress(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a", "bob": "b", "carol": "c", "dave": "d"})
	a := New(users.lookup, Options{UserLimit: 1000, AddrLimit: 3})
	ctx := t.Context()

	const attacker = "198.51.100.7"
	for _, u := range []string{"alice", "bob", "carol"} {
		want(t, a.Authenticate(ctx, u, "guess", attacker), kms.ErrPermission, u+" from attacker")
	}
	want(t, a.Authenticate(ctx, "dave", "d", attacker), kms.ErrThrottled, "dave from attacker")
	want(t, a.Authenticate(ctx, "dave", "d", "198.51.100.8"), nil, "dave from elsewhere")
	want(t, a.Authenticate(ctx, "alice", "a", "198.51.100.8"), nil, "alice from elsewhere")
}

func TestAuthenticateThrottleWindowExpires(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	clock := newClock()
	var rec recorder
	opt := Options{UserLimit: 2, AddrLimit: 1000, Window: time.Minute, CacheTTL: time.Minute, testOnlyNow: clock.Now}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()
	auth := func(token string) error { return a.Authenticate(ctx, "alice", token, "192.0.2.1") }

	want(t, auth("guess"), kms.ErrPermission, "t=0 failure 1")
	want(t, auth("guess"), kms.ErrPermission, "t=0 failure 2")
	want(t, auth("guess"), kms.ErrThrottled, "t=0 over limit")
	clock.Advance(59 * time.Second)
	want(t, auth("a-token"), kms.ErrThrottled, "t=59s still in window")
	clock.Advance(time.Second)
	want(t, auth("a-token"), nil, "t=60s window over")

	// A new window counts from its first failure.
	want(t, auth("guess"), kms.ErrPermission, "t=60s failure 1")
	clock.Advance(time.Second)
	want(t, auth("guess"), kms.ErrPermission, "t=61s failure 2")
	want(t, auth("guess"), kms.ErrThrottled, "t=61s over limit")

	// Both the cache entry (t=60s+1m) and the window (t=60s+1m) are over.
	clock.Advance(59 * time.Second)
	before := users.lookups.Load()
	want(t, auth("a-token"), nil, "t=120s")
	if rec.lastHit(t) || users.lookups.Load() != before+1 {
		t.Error("t=120s: expired cache entry was used")
	}
}

func TestAuthenticateCachedCredentialWhileThrottled(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	var rec recorder
	opt := Options{UserLimit: 2, AddrLimit: 2}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.1"), nil, "owner")
	// An attacker locks alice (and its own address) out of the slow path.
	for range 2 {
		want(t, a.Authenticate(ctx, "alice", "guess", "192.0.2.66"), kms.ErrPermission, "attacker")
	}
	want(t, a.Authenticate(ctx, "alice", "guess", "192.0.2.66"), kms.ErrThrottled, "attacker throttled")
	// The owner's verified credential keeps working, from anywhere.
	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.1"), nil, "owner, cached")
	want(t, a.Authenticate(ctx, "alice", "a-token", "192.0.2.66"), nil, "owner from throttled address, cached")
	if !rec.lastHit(t) {
		t.Error("owner's credential was not served from the cache")
	}
}

func TestAuthenticateCacheTTL(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	clock := newClock()
	var rec recorder
	opt := Options{CacheTTL: 10 * time.Second, testOnlyNow: clock.Now}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	want(t, a.Authenticate(ctx, "alice", "a-token", "x"), nil, "t=0")
	clock.Advance(9 * time.Second)
	want(t, a.Authenticate(ctx, "alice", "a-token", "x"), nil, "t=9s")
	if !rec.lastHit(t) {
		t.Error("t=9s: cache miss before CacheTTL")
	}
	clock.Advance(time.Second)
	want(t, a.Authenticate(ctx, "alice", "a-token", "x"), nil, "t=10s")
	if rec.lastHit(t) {
		t.Error("t=10s: cache hit at CacheTTL")
	}
	if n := users.lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2", n)
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "old", "bob": "b-token"})
	var rec recorder
	opt := Options{}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	want(t, a.Authenticate(ctx, "alice", "old", "x"), nil, "alice")
	want(t, a.Authenticate(ctx, "bob", "b-token", "x"), nil, "bob")

	users.set("alice", cheapHash(t, "new"))
	// Documented: a verification is trusted for CacheTTL.
	want(t, a.Authenticate(ctx, "alice", "old", "x"), nil, "old token before Forget")

	a.Forget("alice")
	want(t, a.Authenticate(ctx, "alice", "old", "x"), kms.ErrPermission, "old token after Forget")
	want(t, a.Authenticate(ctx, "alice", "new", "x"), nil, "new token")
	want(t, a.Authenticate(ctx, "bob", "b-token", "x"), nil, "bob after Forget(alice)")
	if !rec.lastHit(t) {
		t.Error("Forget(alice) dropped bob's entry")
	}
	a.Forget("nobody") // no entry: no effect, no panic
	if n := a.cacheLen(); n != 2 {
		t.Errorf("cache holds %d entries, want 2 (alice/new, bob)", n)
	}
}

func TestCacheBound(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 3, 9, 10, 25} {
		t.Run(fmt.Sprintf("CacheSize=%d", size), func(t *testing.T) {
			t.Parallel()
			tokens := map[string]string{}
			for i := range 2*size + 5 {
				tokens[fmt.Sprintf("u%d", i)] = fmt.Sprintf("t%d", i)
			}
			users := newUsers(t, tokens)
			var rec recorder
			opt := Options{CacheSize: size}
			rec.hook(&opt)
			a := New(users.lookup, opt)
			for i := range 2*size + 5 {
				u := fmt.Sprintf("u%d", i)
				want(t, a.Authenticate(t.Context(), u, tokens[u], "x"), nil, u)
				if n := a.cacheLen(); n > size {
					t.Fatalf("after %d users the cache holds %d entries, CacheSize is %d", i+1, n, size)
				}
				// The newest verification is always kept.
				want(t, a.Authenticate(t.Context(), u, tokens[u], "x"), nil, u+" again")
				if !rec.lastHit(t) {
					t.Fatalf("%s: just verified, yet not cached", u)
				}
			}
		})
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"u0": "t0", "u1": "t1", "u2": "t2", "u3": "t3"})
	clock := newClock()
	var rec recorder
	opt := Options{CacheSize: 3, CacheTTL: 10 * time.Second, testOnlyNow: clock.Now}
	rec.hook(&opt)
	a := New(users.lookup, opt)
	ctx := t.Context()

	want(t, a.Authenticate(ctx, "u0", "t0", "x"), nil, "u0")
	want(t, a.Authenticate(ctx, "u1", "t1", "x"), nil, "u1")
	clock.Advance(5 * time.Second)
	want(t, a.Authenticate(ctx, "u2", "t2", "x"), nil, "u2")
	clock.Advance(6 * time.Second) // u0 and u1 expired, u2 not
	want(t, a.Authenticate(ctx, "u3", "t3", "x"), nil, "u3")
	if n := a.cacheLen(); n != 2 {
		t.Errorf("cache holds %d entries, want 2 (u2, u3)", n)
	}
	want(t, a.Authenticate(ctx, "u2", "t2", "x"), nil, "u2 again")
	if !rec.lastHit(t) {
		t.Error("a live entry was evicted while expired ones could go")
	}
}

func TestCredentialIDBindsUserAndToken(t *testing.T) {
	t.Parallel()
	// Without the length prefix, ("a", "bc") and ("ab", "c") would share a
	// cache entry, and one user's token would log in as the other.
	users := newUsers(t, map[string]string{"a": "bc", "ab": "something else"})
	a := New(users.lookup, Options{})
	ctx := t.Context()
	want(t, a.Authenticate(ctx, "a", "bc", "x"), nil, "a/bc")
	want(t, a.Authenticate(ctx, "ab", "c", "x"), kms.ErrPermission, "ab/c")
	if a.credentialID("a", "bc") == a.credentialID("ab", "c") {
		t.Error("credentialID(a, bc) == credentialID(ab, c)")
	}
	// The key is per process: two Authenticators disagree.
	b := New(users.lookup, Options{})
	if a.credentialID("a", "bc") == b.credentialID("a", "bc") {
		t.Error("two Authenticators derive the same credential ID")
	}
}

func TestTokenLength(t *testing.T) {
	t.Parallel()
	atMax := strings.Repeat("t", MaxTokenLen)
	users := newUsers(t, map[string]string{"alice": atMax})
	a := New(users.lookup, Options{})
	ctx := t.Context()

	err := a.Authenticate(ctx, "alice", atMax+"t", "x")
	want(t, err, kms.ErrPermission, "token of MaxTokenLen+1 bytes")
	if n := users.lookups.Load(); n != 0 {
		t.Errorf("an oversized token reached the slow path (%d lookups)", n)
	}
	if strings.Contains(err.Error(), atMax) {
		t.Error("error contains the token")
	}
	want(t, a.Authenticate(ctx, "alice", atMax, "x"), nil, "token of MaxTokenLen bytes")
}

func TestAuthenticateContextCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	users := newUsers(t, map[string]string{"alice": "a-token"})
	a := New(users.lookup, Options{MaxHashing: 1, UserLimit: 1})
	a.sem <- struct{}{} // every hashing slot busy
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	want(t, a.Authenticate(ctx, "alice", "a-token", "x"), context.Canceled, "canceled")
	<-a.sem
	// Giving up is not a failed attempt (UserLimit is 1).
	want(t, a.Authenticate(t.Context(), "alice", "a-token", "x"), nil, "after cancel")
}

func TestAuthenticateConcurrent(t *testing.T) {
	t.Parallel()
	tokens := map[string]string{"u0": "t0", "u1": "t1", "u2": "t2", "u3": "t3"}
	users := newUsers(t, tokens)
	a := New(users.lookup, Options{CacheSize: 2, MaxHashing: 2, UserLimit: 1000, AddrLimit: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				u := fmt.Sprintf("u%d", (g+i)%4)
				if err := a.Authenticate(t.Context(), u, tokens[u], "x"); err != nil {
					t.Errorf("%s, right token: %v", u, err)
				}
				if err := a.Authenticate(t.Context(), u, "guess", "y"); !errors.Is(err, kms.ErrPermission) {
					t.Errorf("%s, wrong token: %v", u, err)
				}
				if i%10 == 0 {
					a.Forget(u)
				}
			}
		})
	}
	wg.Wait()
	if n := a.cacheLen(); n > 2 {
		t.Errorf("cache holds %d entries, CacheSize is 2", n)
	}
}
