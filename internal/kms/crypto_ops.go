package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/ppmlkms/kms/internal/keyring"
)

// Limits of the native API.
const (
	MaxEncryptPlaintext = 4096 // bytes, as AWS KMS Encrypt
	MaxDataKeyBytes     = 64
	MaxBatch            = 100
)

// addVersion generates and stores version of a primary key.
func (s *Service) addVersion(ctx context.Context, owner, name string, version int) error {
	kr, err := s.keyringNow()
	if err != nil {
		return err
	}
	id := keyring.PrimaryID{Owner: owner, Name: name, Version: version}
	wrapped, err := kr.NewPrimaryKey(id)
	if err != nil {
		return err
	}
	return s.store.CreatePrimaryKey(ctx, PrimaryKey{Owner: owner, Name: name, Version: version,
		RootVersion: kr.Version(), Wrapped: wrapped, Created: s.now().UTC()})
}

// usableMeta returns a key's metadata from a short-lived cache, refusing
// keys that are not enabled. The cache bounds how long another replica's
// disable or deletion can go unnoticed here (ServiceOptions.MetaTTL).
func (s *Service) usableMeta(ctx context.Context, owner, name string) (KeyMeta, error) {
	ck := recKey{kind: 'm', owner: owner, a: name}
	if c, ok := s.lookup(ck); ok {
		return c.meta, checkUsable(name, c.meta)
	}
	m, _, err := s.keyMeta(ctx, owner, name)
	if err != nil {
		return m, err
	}
	s.rememberFor(ck, cached{meta: m}, s.opt.MetaTTL)
	return m, checkUsable(name, m)
}

// CheckUsable returns nil if owner's key name exists and is enabled, and
// otherwise the error an operation on it would return (ErrNotFound,
// ErrDisabled), so that a batch on such a key fails as a whole, like a
// single request.
func (s *Service) CheckUsable(ctx context.Context, owner, name string) error {
	_, err := s.usableMeta(ctx, owner, name)
	var complete *Error
	if errors.Is(err, ErrNotFound) && !errors.As(err, &complete) {
		return Errorf(ErrNotFound, "primaryKey [%s] does not exist", name)
	}
	return err
}

// forgetKey drops cached metadata of a key after a local change.
func (s *Service) forgetKey(owner, name string) {
	s.mu.Lock()
	delete(s.cache, recKey{kind: 'm', owner: owner, a: name})
	delete(s.cache, recKey{kind: 'p', owner: owner, a: name}) // "newest version"
	s.mu.Unlock()
}

// Encrypt seals plaintext (at most MaxEncryptPlaintext bytes) under the
// newest version of owner's key name, bound to context. It returns the
// ciphertext and the version used.
func (s *Service) Encrypt(ctx context.Context, owner, name string, plaintext []byte, context map[string]string) ([]byte, int, error) {
	if len(plaintext) > MaxEncryptPlaintext {
		return nil, 0, Errorf(ErrInvalid, "plaintext longer than %d bytes; encrypt a data key instead", MaxEncryptPlaintext)
	}
	if err := validateContext(context); err != nil {
		return nil, 0, err
	}
	if _, err := s.usableMeta(ctx, owner, name); err != nil {
		return nil, 0, s.result("encrypt", "primaryKey", name, err)
	}
	pk, err := s.primaryKeyRecord(ctx, owner, name, 0)
	if err != nil {
		return nil, 0, s.result("encrypt", "primaryKey", name, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return nil, 0, err
	}
	ct, err := kr.Encrypt(pk.Wrapped, pkID(pk), plaintext, context)
	if err != nil {
		return nil, 0, s.result("encrypt", "primaryKey", name, err)
	}
	s.countEncryption(owner, name, pk.Version)
	return ct, pk.Version, s.result("encrypt", "primaryKey", name, nil)
}

// Decrypt opens a ciphertext of owner's key name. It returns an error
// wrapping ErrDecrypt for anything that does not open, ErrDisabled for a
// key that is not enabled, and ErrInvalid for a version below the key's
// minimum decryption version.
func (s *Service) Decrypt(ctx context.Context, owner, name string, ciphertext []byte, context map[string]string) ([]byte, int, error) {
	if err := validateContext(context); err != nil {
		return nil, 0, err
	}
	m, err := s.usableMeta(ctx, owner, name)
	if err != nil {
		return nil, 0, s.result("decrypt", "primaryKey", name, err)
	}
	// Ciphertexts under a key with a release policy (data keys made by
	// generate-data-key) leave only through attested release.
	if err := s.releaseGuard(ctx, owner, name); err != nil {
		return nil, 0, s.result("decrypt", "primaryKey", name, err)
	}
	v, err := keyring.CiphertextVersion(ciphertext)
	if err != nil {
		return nil, 0, s.result("decrypt", "ciphertext", name, Errorf(ErrDecrypt, "ciphertext does not decrypt"))
	}
	if v < m.MinDecryptionVersion {
		return nil, v, s.result("decrypt", "ciphertext", name,
			Errorf(ErrInvalid, "ciphertext uses version %d of primaryKey [%s], below its minimum decryption version %d", v, name, m.MinDecryptionVersion))
	}
	pk, err := s.primaryKeyRecord(ctx, owner, name, v)
	if errors.Is(err, ErrNotFound) {
		err = Errorf(ErrDecrypt, "ciphertext does not decrypt")
	}
	if err != nil {
		return nil, v, s.result("decrypt", "primaryKey", name, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return nil, 0, err
	}
	pt, err := kr.Decrypt(pk.Wrapped, pkID(pk), ciphertext, context)
	if err != nil {
		return nil, v, s.result("decrypt", "ciphertext", name, Errorf(ErrDecrypt, "ciphertext does not decrypt"))
	}
	return pt, v, s.result("decrypt", "primaryKey", name, nil)
}

// GenerateDataKey returns a new random data key of n bytes and its
// ciphertext under owner's key name; nothing is stored. withPlaintext
// false drops the plaintext (GenerateDataKeyWithoutPlaintext).
func (s *Service) GenerateDataKey(ctx context.Context, owner, name string, n int, context map[string]string, withPlaintext bool) (plaintext, ciphertext []byte, version int, err error) {
	if n < 16 || n > MaxDataKeyBytes {
		return nil, nil, 0, Errorf(ErrInvalid, "data key size must be between 16 and %d bytes", MaxDataKeyBytes)
	}
	if withPlaintext {
		if err := s.releaseGuard(ctx, owner, name); err != nil {
			return nil, nil, 0, s.result("generate_data_key", "primaryKey", name, err)
		}
	}
	dk := make([]byte, n)
	rand.Read(dk)
	ct, v, err := s.Encrypt(ctx, owner, name, dk, context)
	if err != nil || !withPlaintext {
		clear(dk)
		return nil, ct, v, err
	}
	return dk, ct, v, nil
}

// ReEncrypt decrypts a ciphertext of key src and encrypts the plaintext
// under the newest version of key dst (which may be src: a rewrap after
// rotation), without returning the plaintext.
func (s *Service) ReEncrypt(ctx context.Context, owner, src string, ciphertext []byte, srcContext map[string]string, dst string, dstContext map[string]string) ([]byte, int, error) {
	pt, _, err := s.Decrypt(ctx, owner, src, ciphertext, srcContext)
	if err != nil {
		return nil, 0, err
	}
	defer clear(pt)
	return s.Encrypt(ctx, owner, dst, pt, dstContext)
}

func validateContext(c map[string]string) error {
	if len(c) > keyring.MaxContextPairs {
		return Errorf(ErrInvalid, "encryption context has more than %d pairs", keyring.MaxContextPairs)
	}
	n := 0
	for k, v := range c {
		n += len(k) + len(v)
	}
	if n > 8192 {
		return Errorf(ErrInvalid, "encryption context larger than 8192 bytes")
	}
	return nil
}

// countEncryption counts an encryption in memory; Maintain flushes the
// counts into the key's metadata and rotates a version that reached the
// limit.
func (s *Service) countEncryption(owner, name string, version int) {
	s.mu.Lock()
	s.usage[usageKey{owner, name, version}]++
	s.mu.Unlock()
}

type usageKey struct {
	owner, name string
	version     int
}

// Maintain runs the periodic work of one replica: flush encryption counts
// (rotating versions at the limit), rotate keys whose rotation period has
// passed, and destroy keys whose deletion date has passed. Running it on
// several replicas at once is safe: every change is a compare-and-swap.
func (s *Service) Maintain(ctx context.Context) error {
	var errs []error
	errs = append(errs, s.flushUsage(ctx))
	docs, err := s.store.ListDocs(ctx, docKey, "")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	now := s.now().UTC()
	for _, d := range docs {
		owner, name, ok := cutDocID(d.ID)
		if !ok {
			continue
		}
		m, _, err := s.keyMeta(ctx, owner, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case m.State == KeyPendingDeletion && !now.Before(m.DeletionDate):
			errs = append(errs, s.destroy(ctx, owner, name))
		case m.State == KeyEnabled && m.RotationPeriod > 0 && !now.Before(m.LastRotated.Add(m.RotationPeriod)):
			if _, err := s.RotateKey(ctx, owner, name); err != nil && !errors.Is(err, ErrConflict) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func cutDocID(id string) (owner, name string, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return id[:i], id[i+1:], true
		}
	}
	return "", "", false
}

// destroy deletes a key's material for good and records when.
func (s *Service) destroy(ctx context.Context, owner, name string) error {
	if err := s.store.DestroyPrimaryKey(ctx, owner, name); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		if m.State != KeyPendingDeletion {
			return nil
		}
		m.State, m.DestroyedAt = KeyDestroyed, s.now().UTC()
		return nil
	})
	s.forgetRecords()
	s.result("destroy_key", "primaryKey", name, err)
	return err
}

func (s *Service) flushUsage(ctx context.Context) error {
	s.mu.Lock()
	usage := s.usage
	s.usage = make(map[usageKey]int64)
	s.mu.Unlock()
	var errs []error
	for k, n := range usage {
		var total int64
		_, err := s.updateKeyMeta(ctx, k.owner, k.name, func(m *KeyMeta) error {
			if m.Encryptions == nil {
				m.Encryptions = map[int]int64{}
			}
			m.Encryptions[k.version] += n
			total = m.Encryptions[k.version]
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.opt.MaxEncryptionsPerVersion > 0 && total >= s.opt.MaxEncryptionsPerVersion {
			if latest, err := s.store.PrimaryKey(ctx, k.owner, k.name, 0); err == nil && latest.Version == k.version {
				if _, err := s.RotateKey(ctx, k.owner, k.name); err != nil && !errors.Is(err, ErrConflict) {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// RunMaintenance calls Maintain every interval until ctx ends, reporting
// errors to onErr.
func (s *Service) RunMaintenance(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushUsage(context.WithoutCancel(ctx))
			return
		case <-t.C:
			if err := s.Maintain(ctx); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}
