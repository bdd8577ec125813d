package kms

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
}

// Service implements the key operations of the BigDL API on top of a Store
// and a keyring. It is safe for concurrent use.
type Service struct {
	store   Store
	keyring *keyring.Keyring
	opt     ServiceOptions
	now     func() time.Time

	dkCache *keyring.DataKeyCache

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	pk      PrimaryKey
	dk      DataKey
	expires time.Time
}

// NewService returns a Service storing keys in store, sealed by kr.
func NewService(store Store, kr *keyring.Keyring, opt ServiceOptions) *Service {
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = 30 * time.Second
	}
	if opt.CacheSize <= 0 {
		opt.CacheSize = 100000
	}
	if opt.DataKeyCacheSize == 0 {
		opt.DataKeyCacheSize = 100000
	}
	return &Service{store: store, keyring: kr, opt: opt, now: time.Now, cache: make(map[string]cached),
		dkCache: keyring.NewDataKeyCache(opt.DataKeyCacheSize, opt.CacheTTL, opt.OnDataKeyCache)}
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
	if err := ValidateName("primary key name", name); err != nil {
		return err
	}
	id := keyring.PrimaryID{Owner: owner, Name: name, Version: 1}
	wrapped, err := s.keyring.NewPrimaryKey(id)
	if err != nil {
		return s.result("create_primary_key", "primaryKey", name, err)
	}
	err = s.store.CreatePrimaryKey(ctx, PrimaryKey{Owner: owner, Name: name, Version: 1,
		RootVersion: s.keyring.Version(), Wrapped: wrapped, Created: s.now().UTC()})
	return s.result("create_primary_key", "primaryKey", name, err)
}

// CreateDataKey generates a data key named name under owner's newest
// version of primary key primary. It returns an error wrapping ErrInvalid,
// ErrNotFound (no such primary key) or ErrExists (the data key exists).
func (s *Service) CreateDataKey(ctx context.Context, owner, primary, name string) error {
	if err := validateDataKeyNames(primary, name); err != nil {
		return err
	}
	pk, err := s.store.PrimaryKey(ctx, owner, primary, 0)
	if err != nil {
		return s.result("create_data_key", "primaryKey", primary, err)
	}
	id := keyring.DataID{Primary: pkID(pk), Name: name}
	wrapped, err := s.keyring.NewDataKey(pk.Wrapped, id)
	if err != nil {
		return s.result("create_data_key", "primaryKey", primary, err)
	}
	err = s.store.CreateDataKey(ctx, DataKey{Owner: owner, Primary: primary, Name: name,
		PrimaryVersion: pk.Version, Wrapped: wrapped, Created: s.now().UTC()})
	return s.result("create_data_key", "dataKey", name, err)
}

// DataKey returns the plaintext of owner's data key name under primary key
// primary. It returns an error wrapping ErrInvalid, ErrNotFound, or
// ErrDecrypt if stored material does not open (tampering, wrong root key).
func (s *Service) DataKey(ctx context.Context, owner, primary, name string) ([]byte, error) {
	if err := validateDataKeyNames(primary, name); err != nil {
		return nil, err
	}
	dk, err := s.dataKeyRecord(ctx, owner, primary, name)
	if err != nil {
		return nil, s.result("get_data_key", "dataKey", name, err)
	}
	pk, err := s.primaryKeyRecord(ctx, owner, primary, dk.PrimaryVersion)
	if err != nil {
		return nil, s.result("get_data_key", "primaryKey", primary, err)
	}
	key, err := s.dkCache.OpenDataKey(s.keyring, pk.Wrapped, dk.Wrapped, keyring.DataID{Primary: pkID(pk), Name: name})
	if err != nil {
		err = fmt.Errorf("open data key %q of %q: %w", name, owner, ErrDecrypt)
	}
	return key, s.result("get_data_key", "dataKey", name, err)
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }

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
	switch {
	case err == nil:
		return nil
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
		{ErrDecrypt, "decrypt_failed"}, {ErrUnavailable, "unavailable"}} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "error"
}

func (s *Service) dataKeyRecord(ctx context.Context, owner, primary, name string) (DataKey, error) {
	key := "d\x00" + owner + "\x00" + primary + "\x00" + name
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
	key := "p\x00" + owner + "\x00" + name + "\x00" + strconv.Itoa(version)
	if c, ok := s.lookup(key); ok {
		return c.pk, nil
	}
	pk, err := s.store.PrimaryKey(ctx, owner, name, version)
	if err == nil {
		s.remember(key, cached{pk: pk})
	}
	return pk, err
}

func (s *Service) lookup(key string) (cached, bool) {
	s.mu.Lock()
	c, ok := s.cache[key]
	s.mu.Unlock()
	ok = ok && s.now().Before(c.expires)
	if s.opt.OnCache != nil {
		s.opt.OnCache(ok)
	}
	return c, ok
}

func (s *Service) remember(key string, c cached) {
	now := s.now()
	c.expires = now.Add(s.opt.CacheTTL)
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
