package keyring

import (
	"bytes"
	"sync"
	"time"
)

// DataKeyCache remembers data keys opened recently, so that the hot path
// (BigDL's GET /dataKey, read again and again by Spark executors) does not
// derive two subkeys and run two AES-GCM opens per request.
//
// Entries are keyed by the data key's identity and its wrapped blob, which
// holds a fresh random nonce: a different blob for the same name (a new key
// after a destruction, say) never hits an old entry. The cached bytes stay
// in this package; a hit returns a copy. Entries expire after the TTL and
// the cache is bounded.
//
// Security note: caching keeps opened data keys in process memory for up to
// the TTL; the process already holds the root key, which opens all of them,
// so this adds no new exposure to a memory-reading attacker.
type DataKeyCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	mu   sync.Mutex
	m    map[cacheKey]*cachedDataKey
	hits func(hit bool)
}

type cachedDataKey struct {
	key     [DataKeyLen]byte
	wrapped []byte // the whole blob, compared on every hit
	expires time.Time
}

// cacheKey identifies an entry without allocating: the data key's identity
// and the random nonce of its wrapped blob (the whole blob is compared on a
// hit, so a modified blob with the same nonce never hits).
type cacheKey struct {
	owner, primary, name string
	version              int
	nonce                [nonceLen]byte
}

// NewDataKeyCache returns a cache of at most max entries kept for ttl.
// onLookup, if not nil, is told about every hit and miss.
func NewDataKeyCache(max int, ttl time.Duration, onLookup func(hit bool)) *DataKeyCache {
	return &DataKeyCache{ttl: ttl, max: max, now: time.Now, m: make(map[cacheKey]*cachedDataKey), hits: onLookup}
}

func cacheID(wrappedData []byte, id DataID) (cacheKey, bool) {
	k := cacheKey{owner: id.Primary.Owner, primary: id.Primary.Name, name: id.Name, version: id.Primary.Version}
	if len(wrappedData) < headerLen {
		return k, false
	}
	copy(k.nonce[:], wrappedData[5:headerLen])
	return k, true
}

// OpenDataKey is k.OpenDataKey through the cache.
func (c *DataKeyCache) OpenDataKey(k *Keyring, wrappedPrimary, wrappedData []byte, id DataID) ([]byte, error) {
	if c == nil || c.max <= 0 {
		return k.OpenDataKey(wrappedPrimary, wrappedData, id)
	}
	cid, ok := cacheID(wrappedData, id)
	if !ok {
		return k.OpenDataKey(wrappedPrimary, wrappedData, id)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[cid]
	if ok && now.Before(e.expires) && bytes.Equal(e.wrapped, wrappedData) {
		out := make([]byte, DataKeyLen)
		copy(out, e.key[:])
		c.mu.Unlock()
		c.report(true)
		return out, nil
	}
	c.mu.Unlock()
	c.report(false)
	dk, err := k.OpenDataKey(wrappedPrimary, wrappedData, id)
	if err != nil {
		return nil, err
	}
	e = &cachedDataKey{expires: now.Add(c.ttl), wrapped: bytes.Clone(wrappedData)}
	copy(e.key[:], dk)
	c.mu.Lock()
	if len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[cid] = e
	c.mu.Unlock()
	return dk, nil
}

// Purge drops every entry, zeroing the keys (best effort).
func (c *DataKeyCache) Purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.m {
		clear(e.key[:])
		delete(c.m, id)
	}
}

func (c *DataKeyCache) report(hit bool) {
	if c.hits != nil {
		c.hits(hit)
	}
}

// evict drops expired entries and, if that is not enough, an arbitrary
// tenth. Called with c.mu held.
func (c *DataKeyCache) evict(now time.Time) {
	drop := max(c.max/10, 1)
	for id, e := range c.m {
		if !now.Before(e.expires) || drop > 0 {
			if now.Before(e.expires) {
				drop--
			}
			clear(e.key[:])
			delete(c.m, id)
		}
	}
}
