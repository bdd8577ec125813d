package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// UserLookup returns a stored user, or an error wrapping kms.ErrNotFound.
type UserLookup func(ctx context.Context, name string) (kms.User, error)

// Options tune an Authenticator. Zero values take the defaults.
type Options struct {
	CacheSize   int           // verified credentials kept (default 10000)
	CacheTTL    time.Duration // how long a verification is trusted (default 1m)
	UserLimit   int           // failures per user per window before throttling (default 10)
	AddrLimit   int           // failures per client address per window (default 30)
	Window      time.Duration // throttling window (default 1m)
	MaxHashing  int           // concurrent slow hash verifications (default NumCPU)
	OnCacheHit  func(hit bool)
	OnFailure   func(reason string)
	testOnlyNow func() time.Time
}

// Authenticator verifies user tokens. It is safe for concurrent use.
//
// A verification stays cached for CacheTTL: a token changed or revoked on
// another replica is honoured by this one within that time. Within one
// process, [Authenticator.Forget] drops a user's entries at once.
type Authenticator struct {
	lookup   UserLookup
	opt      Options
	macKey   [32]byte
	dummy    string // hash verified for unknown users, to equalize timing
	sem      chan struct{}
	mu       sync.Mutex
	cache    map[[32]byte]cacheEntry
	failures map[string]*window
	// inflight holds verifications under way, so that many requests with
	// the same credential (32 Spark executors when the cache entry expires)
	// run the slow hash once, not 32 times.
	inflight map[[32]byte]*flight
	// gen counts calls of Forget, so that a verification that started
	// before one does not put a forgotten credential back into the cache.
	gen uint64
}

type flight struct {
	done chan struct{}
	ok   bool
	err  error
}

type cacheEntry struct {
	user    string
	expires time.Time
}

type window struct {
	start time.Time
	n     int
}

// New returns an Authenticator that finds users with lookup.
func New(lookup UserLookup, opt Options) *Authenticator {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opt.CacheSize, 10000)
	def(&opt.UserLimit, 10)
	def(&opt.AddrLimit, 30)
	def(&opt.MaxHashing, runtime.NumCPU())
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = time.Minute
	}
	if opt.Window <= 0 {
		opt.Window = time.Minute
	}
	if opt.testOnlyNow == nil {
		opt.testOnlyNow = time.Now
	}
	a := &Authenticator{
		lookup:   lookup,
		opt:      opt,
		dummy:    HashToken("dummy token for unknown users"),
		sem:      make(chan struct{}, opt.MaxHashing),
		cache:    make(map[[32]byte]cacheEntry),
		failures: make(map[string]*window),
		inflight: make(map[[32]byte]*flight),
	}
	rand.Read(a.macKey[:])
	return a
}

// Authenticate checks that token belongs to user, with addr the client's
// address for throttling. It returns nil, or an error wrapping
// kms.ErrPermission (unknown user or wrong token: deliberately one answer),
// kms.ErrThrottled, or the lookup's error (e.g. kms.ErrUnavailable).
func (a *Authenticator) Authenticate(ctx context.Context, user, token, addr string) error {
	if len(token) > MaxTokenLen {
		return kms.Errorf(kms.ErrPermission, "authentication failed: token longer than %d bytes", MaxTokenLen)
	}
	id := a.credentialID(user, token)
	now := a.opt.testOnlyNow()
	a.mu.Lock()
	e, hit := a.cache[id]
	hit = hit && now.Before(e.expires)
	throttled := !hit && (a.overLimit("u:"+user, a.opt.UserLimit, now) || a.overLimit("a:"+addr, a.opt.AddrLimit, now))
	gen := a.gen
	a.mu.Unlock()
	if a.opt.OnCacheHit != nil {
		a.opt.OnCacheHit(hit)
	}
	if hit {
		return nil
	}
	if throttled {
		a.failed("throttled")
		return kms.ErrThrottled
	}
	ok, err := a.verifyOnce(ctx, id, user, token)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok {
		a.count("u:"+user, now)
		a.count("a:"+addr, now)
		a.failed("bad credentials")
		return kms.Errorf(kms.ErrPermission, "authentication failed for user [%s]: unknown user or wrong token", user)
	}
	if a.gen != gen {
		return nil // verified, but a Forget ran meanwhile: do not cache
	}
	if len(a.cache) >= a.opt.CacheSize {
		a.evict(now)
	}
	a.cache[id] = cacheEntry{user: user, expires: now.Add(a.opt.CacheTTL)}
	return nil
}

// Forget drops every cached verification of user, e.g. after its token
// changed.
func (a *Authenticator) Forget(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	for k, e := range a.cache {
		if e.user == user {
			delete(a.cache, k)
		}
	}
}

func (a *Authenticator) failed(reason string) {
	if a.opt.OnFailure != nil {
		a.opt.OnFailure(reason)
	}
}

// verifyOnce runs verify for a credential, sharing the result with
// concurrent callers presenting the same credential.
func (a *Authenticator) verifyOnce(ctx context.Context, id [32]byte, user, token string) (bool, error) {
	a.mu.Lock()
	if f, ok := a.inflight[id]; ok {
		a.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				return a.verify(ctx, user, token) // the leader gave up, not us
			}
			return f.ok, f.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	a.inflight[id] = f
	a.mu.Unlock()
	f.ok, f.err = a.verify(ctx, user, token)
	a.mu.Lock()
	delete(a.inflight, id)
	a.mu.Unlock()
	close(f.done)
	return f.ok, f.err
}

// verify runs the slow hash, at most MaxHashing at a time.
func (a *Authenticator) verify(ctx context.Context, user, token string) (bool, error) {
	u, err := a.lookup(ctx, user)
	hash := u.TokenHash
	switch {
	case errors.Is(err, kms.ErrNotFound):
		hash = a.dummy
	case err != nil:
		return false, err
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	ok, herr := VerifyToken(hash, token)
	<-a.sem
	if herr != nil {
		return false, fmt.Errorf("user %q: %w", user, herr)
	}
	if ok && err == nil && u.Disabled {
		// Said only to a caller who proved the token.
		return false, kms.Errorf(kms.ErrDisabled, "user [%s] is disabled", user)
	}
	return ok && err == nil, nil
}

// credentialID is a keyed SHA-256 of the user name and token: the cache's
// key. The key is secret and per process, and the length prefix keeps
// ("ab","c") apart from ("a","bc"). SHA-256 over a prefix key is a sound
// PRF here (length extension is irrelevant: the output is never shown).
// It works on the stack: no allocation on the hot path.
func (a *Authenticator) credentialID(user, token string) [32]byte {
	var buf [32 + 4 + 256 + MaxTokenLen]byte
	if len(user) > 256 {
		user = user[:256]
	}
	b := append(buf[:0], a.macKey[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(user)))
	b = append(b, user...)
	b = append(b, token...)
	id := sha256.Sum256(b)
	clear(b)
	return id
}

func (a *Authenticator) overLimit(key string, limit int, now time.Time) bool {
	w := a.failures[key]
	return w != nil && now.Sub(w.start) < a.opt.Window && w.n >= limit
}

func (a *Authenticator) count(key string, now time.Time) {
	w := a.failures[key]
	if w == nil || now.Sub(w.start) >= a.opt.Window {
		if len(a.failures) >= 100000 {
			a.pruneFailures(now)
		}
		a.failures[key] = &window{start: now, n: 1}
		return
	}
	w.n++
}

// evict drops expired entries, and if none expired, an arbitrary tenth of
// the cache (at least one entry, so that a small cache stays bounded).
// Called with a.mu held.
func (a *Authenticator) evict(now time.Time) {
	for k, e := range a.cache {
		if !now.Before(e.expires) {
			delete(a.cache, k)
		}
	}
	drop := max(a.opt.CacheSize/10, 1)
	for k := range a.cache {
		if len(a.cache) < a.opt.CacheSize || drop <= 0 {
			break
		}
		delete(a.cache, k)
		drop--
	}
}

func (a *Authenticator) pruneFailures(now time.Time) {
	for k, w := range a.failures {
		if now.Sub(w.start) >= a.opt.Window {
			delete(a.failures, k)
		}
	}
}
