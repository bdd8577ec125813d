package kms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
)

// ServiceOptions tune a Service. Zero values take the defaults.
type ServiceOptions struct {
	// CacheTTL bounds how long key records read from the store are reused
	// without asking the store again (default 30s). Records are immutable
	// today; the TTL bounds how long another replica's future deletion or
	// disabling of a key could go unnoticed here.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached key records (default 100000).
	CacheSize int
	// OnKeyOp, if set, is called after every key operation with its name and
	// result ("ok" or an error code), for metrics.
	OnKeyOp func(op, result string)
	// OnCache, if set, is called on every cache lookup.
	OnCache func(hit bool)
	// DataKeyCacheSize bounds the opened data keys kept in memory (default
	// 100000; negative disables the cache); they expire after CacheTTL.
	DataKeyCacheSize int
	// OnDataKeyCache, if set, is called on every data key cache lookup.
	OnDataKeyCache func(hit bool)
	// MetaTTL bounds how long key metadata (enabled, disabled, pending
	// deletion) is reused (default 5s): a key disabled on another replica is
	// refused here within that time; on this replica at once.
	MetaTTL time.Duration
	// MaxEncryptionsPerVersion rotates a key version once this many
	// encryptions were counted (default 2^32; 0 keeps the default).
	MaxEncryptionsPerVersion int64
	// Now is the clock (time.Now by default), a seam for tests of
	// scheduled rotation and deletion.
	Now func() time.Time
}

// KeyringSource yields the current keyring; the seal manager implements
// it, a fixed keyring is [Static]. Both methods return an error wrapping
// ErrSealed while no root key is loaded.
type KeyringSource interface {
	// Keyring returns the keyring that seals new keys.
	Keyring() (*keyring.Keyring, error)
	// KeyringFor returns a keyring that holds root key version rootVersion
	// if any replica published it (after a root rotation elsewhere).
	KeyringFor(ctx context.Context, rootVersion int) (*keyring.Keyring, error)
}

// Static is a KeyringSource that always returns the same keyring.
type Static struct{ K *keyring.Keyring }

// Keyring implements KeyringSource.
func (s Static) Keyring() (*keyring.Keyring, error) { return s.K, nil }

// KeyringFor implements KeyringSource.
func (s Static) KeyringFor(context.Context, int) (*keyring.Keyring, error) { return s.K, nil }

// Service implements the key operations of the BigDL API on top of a Store
// and a keyring. It is safe for concurrent use.
type Service struct {
	store Store
	keys  KeyringSource
	opt   ServiceOptions
	now   func() time.Time

	dkCache *keyring.DataKeyCache

	mu    sync.Mutex
	cache map[recKey]cached
	usage map[usageKey]int64
}

type cached struct {
	pk      PrimaryKey
	dk      DataKey
	meta    KeyMeta
	guarded bool // 'r' entries: the key has a release policy (release.go)
	expires time.Time
}

// NewService returns a Service storing keys in store, sealed by the
// keyring that keys yields.
func NewService(store Store, keys KeyringSource, opt ServiceOptions) *Service {
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = 30 * time.Second
	}
	if opt.CacheSize <= 0 {
		opt.CacheSize = 100000
	}
	if opt.DataKeyCacheSize == 0 {
		opt.DataKeyCacheSize = 100000
	}
	if opt.MetaTTL <= 0 {
		opt.MetaTTL = 5 * time.Second
	}
	if opt.MaxEncryptionsPerVersion <= 0 {
		opt.MaxEncryptionsPerVersion = 1 << 32
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{store: store, keys: keys, opt: opt, now: opt.Now,
		cache: make(map[recKey]cached), usage: make(map[usageKey]int64),
		dkCache: keyring.NewDataKeyCache(opt.DataKeyCacheSize, opt.CacheTTL, opt.OnDataKeyCache)}
}

// keyringNow returns the current keyring, or an error wrapping ErrSealed.
func (s *Service) keyringNow() (*keyring.Keyring, error) { return s.keys.Keyring() }

// keyringFor returns a keyring that opens primary key pk.
func (s *Service) keyringFor(ctx context.Context, pk PrimaryKey) (*keyring.Keyring, error) {
	return s.keys.KeyringFor(ctx, pk.RootVersion)
}

// Forget drops every cached key record, e.g. after a root rotation.
func (s *Service) Forget() { s.forgetRecords() }

// forgetRecords drops every cached key record (after a destruction).
func (s *Service) forgetRecords() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	s.dkCache.Purge()
}

// CreateUser stores a new user with an already hashed token. It returns an
// error wrapping ErrInvalid for a bad name and ErrExists if the user exists.
func (s *Service) CreateUser(ctx context.Context, name, tokenHash string) error {
	if err := ValidateName("user name", name); err != nil {
		return err
	}
	err := s.store.CreateUser(ctx, User{Name: name, TokenHash: tokenHash, Created: s.now().UTC()})
	return s.result("create_user", "user", name, err)
}

// CreatePrimaryKey generates version 1 of a new primary key for owner. It
// returns an error wrapping ErrInvalid, or ErrExists if owner already has a
// primary key of that name.
func (s *Service) CreatePrimaryKey(ctx context.Context, owner, name string) error {
	return s.createPrimaryKey(ctx, owner, name, KeyMeta{State: KeyEnabled, LastRotated: s.now().UTC()})
}

// createPrimaryKey creates version 1 of a key and its metadata document
// meta, in one write each: a key is never seen with other metadata than
// it was created with.
func (s *Service) createPrimaryKey(ctx context.Context, owner, name string, meta KeyMeta) error {
	if err := ValidateName("primary key name", name); err != nil {
		return err
	}
	if _, err := s.store.Doc(ctx, docKey, keyDocID(owner, name)); err == nil {
		return s.result("create_primary_key", "primaryKey", name, ErrExists)
	}
	err := s.addVersion(ctx, owner, name, 1)
	if err == nil {
		b, _ := json.Marshal(meta)
		_, err = s.store.PutDoc(ctx, Doc{Kind: docKey, ID: keyDocID(owner, name), Value: b, Updated: s.now().UTC()})
		if errors.Is(err, ErrExists) {
			err = nil
		}
	}
	return s.result("create_primary_key", "primaryKey", name, err)
}

// CreateDataKey generates a data key named name under owner's newest
// version of primary key primary. It returns an error wrapping ErrInvalid,
// ErrNotFound (no such primary key) or ErrExists (the data key exists).
func (s *Service) CreateDataKey(ctx context.Context, owner, primary, name string) error {
	if err := validateDataKeyNames(primary, name); err != nil {
		return err
	}
	if _, err := s.usableMeta(ctx, owner, primary); err != nil {
		return s.result("create_data_key", "primaryKey", primary, err)
	}
	pk, err := s.store.PrimaryKey(ctx, owner, primary, 0)
	if err != nil {
		return s.result("create_data_key", "primaryKey", primary, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return err
	}
	id := keyring.DataID{Primary: pkID(pk), Name: name}
	wrapped, err := kr.NewDataKey(pk.Wrapped, id)
	if err != nil {
		return s.result("create_data_key", "primaryKey", primary, err)
	}
	err = s.store.CreateDataKey(ctx, DataKey{Owner: owner, Primary: primary, Name: name,
		PrimaryVersion: pk.Version, Wrapped: wrapped, Created: s.now().UTC()})
	return s.result("create_data_key", "dataKey", name, err)
}

// DataKey returns the plaintext of owner's data key name under primary key
// primary. It returns an error wrapping ErrInvalid, ErrNotFound,
// ErrForbidden if the primary key has a release policy (its data keys leave
// only through ReleaseDataKey), or ErrDecrypt if stored material does not
// open (tampering, wrong root key).
func (s *Service) DataKey(ctx context.Context, owner, primary, name string) ([]byte, error) {
	if err := validateDataKeyNames(primary, name); err != nil {
		return nil, err
	}
	m, err := s.usableMeta(ctx, owner, primary)
	if err != nil {
		return nil, s.result("get_data_key", "primaryKey", primary, err)
	}
	if err := s.releaseGuard(ctx, owner, primary); err != nil {
		return nil, s.result("get_data_key", "primaryKey", primary, err)
	}
	dk, err := s.dataKeyRecord(ctx, owner, primary, name)
	if err == nil {
		err = dataKeyDecryptable(m, dk)
	}
	if err != nil {
		return nil, s.result("get_data_key", "dataKey", name, err)
	}
	pk, err := s.primaryKeyRecord(ctx, owner, primary, dk.PrimaryVersion)
	if err != nil {
		return nil, s.result("get_data_key", "primaryKey", primary, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return nil, err
	}
	key, err := s.dkCache.OpenDataKey(kr, pk.Wrapped, dk.Wrapped, keyring.DataID{Primary: pkID(pk), Name: name})
	if err != nil {
		err = fmt.Errorf("open data key %q of %q: %w", name, owner, ErrDecrypt)
	}
	return key, s.result("get_data_key", "dataKey", name, err)
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }

// dataKeyDecryptable refuses a stored data key wrapped by a primary key
// version below the key's minimum decryption version: raising it retires
// the old versions on every route, the BigDL one included, as it does for
// ciphertexts.
func dataKeyDecryptable(m KeyMeta, dk DataKey) error {
	if dk.PrimaryVersion < m.MinDecryptionVersion {
		return Errorf(ErrInvalid, "dataKey [%s] is wrapped by version %d of primaryKey [%s], below its minimum decryption version %d",
			dk.Name, dk.PrimaryVersion, dk.Primary, m.MinDecryptionVersion)
	}
	return nil
}

func validateDataKeyNames(primary, name string) error {
	if err := ValidateName("primaryKeyName", primary); err != nil {
		return err
	}
	return ValidateName("data key name", name)
}

func pkID(pk PrimaryKey) keyring.PrimaryID {
	return keyring.PrimaryID{Owner: pk.Owner, Name: pk.Name, Version: pk.Version}
}

// result adds the BigDL-style subject to err and reports the operation.
func (s *Service) result(op, kind, name string, err error) error {
	if s.opt.OnKeyOp != nil {
		s.opt.OnKeyOp(op, resultCode(err))
	}
	var complete *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &complete):
		return err
	case errors.Is(err, ErrExists):
		return Errorf(ErrExists, "%s [%s] already exists", kind, name)
	case errors.Is(err, ErrNotFound):
		return Errorf(ErrNotFound, "%s [%s] does not exist", kind, name)
	}
	return fmt.Errorf("%s %s [%s]: %w", op, kind, name, err)
}

func resultCode(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{{nil, "ok"}, {ErrExists, "exists"}, {ErrNotFound, "not_found"}, {ErrInvalid, "invalid"},
		{ErrDecrypt, "decrypt_failed"}, {ErrUnavailable, "unavailable"}, {ErrDisabled, "disabled"},
		{ErrSealed, "sealed"}, {ErrConflict, "conflict"}} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "error"
}

func (s *Service) dataKeyRecord(ctx context.Context, owner, primary, name string) (DataKey, error) {
	key := recKey{kind: 'd', owner: owner, a: primary, b: name}
	if c, ok := s.lookup(key); ok {
		return c.dk, nil
	}
	dk, err := s.store.DataKey(ctx, owner, primary, name)
	if err == nil {
		s.remember(key, cached{dk: dk})
	}
	return dk, err
}

func (s *Service) primaryKeyRecord(ctx context.Context, owner, name string, version int) (PrimaryKey, error) {
	key := recKey{kind: 'p', owner: owner, a: name, version: version}
	if c, ok := s.lookup(key); ok {
		return c.pk, nil
	}
	pk, err := s.store.PrimaryKey(ctx, owner, name, version)
	if err == nil {
		// A fixed version never changes; "the newest" changes with every
		// rotation, on any replica: keep it only as long as metadata.
		ttl := s.opt.CacheTTL
		if version == 0 {
			ttl = s.opt.MetaTTL
		}
		s.rememberFor(key, cached{pk: pk}, ttl)
	}
	return pk, err
}

// recKey names a cached record without building a string per lookup.
type recKey struct {
	kind    byte // 'd' data key, 'p' primary key version, 'm' key metadata, 'r' release guard
	owner   string
	a, b    string
	version int
}

func (s *Service) lookup(key recKey) (cached, bool) {
	s.mu.Lock()
	c, ok := s.cache[key]
	s.mu.Unlock()
	ok = ok && s.now().Before(c.expires)
	if s.opt.OnCache != nil {
		s.opt.OnCache(ok)
	}
	return c, ok
}

func (s *Service) remember(key recKey, c cached) { s.rememberFor(key, c, s.opt.CacheTTL) }

func (s *Service) rememberFor(key recKey, c cached, ttl time.Duration) {
	now := s.now()
	c.expires = now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.opt.CacheSize {
		for k, e := range s.cache {
			if !now.Before(e.expires) || len(s.cache) >= s.opt.CacheSize {
				delete(s.cache, k)
			}
		}
	}
	s.cache[key] = c
}
