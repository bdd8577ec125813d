package kms

import (
	"context"
	"errors"
	"fmt"

	"github.com/ppmlkms/kms/internal/keyring"
)

// Release policies bind key release to attestation. A primary key may carry
// a release policy: an opaque JSON document (its format belongs to the
// attestation layer, package attestapi) stored as a document of kind
// DocReleasePolicy with id "<owner>/<name>". While a key has one, its data
// keys leave the server only through ReleaseDataKey, which the attestation
// layer calls after it verified a quote against that policy; DataKey (the
// BigDL GET /dataKey route) refuses them with ErrForbidden.
//
// Whether a key has a policy is cached for ServiceOptions.MetaTTL, like key
// metadata: a policy set on one replica is enforced by the others within
// that time, on this replica at once.

// DocReleasePolicy is the document kind of release policies.
const DocReleasePolicy = "release-policy"

// ReleasePolicy returns the release policy of owner's primary key, or an
// error wrapping ErrNotFound if it has none (or does not exist).
func (s *Service) ReleasePolicy(ctx context.Context, owner, primary string) ([]byte, error) {
	if err := ValidateName("primary key name", primary); err != nil {
		return nil, err
	}
	d, err := s.store.Doc(ctx, DocReleasePolicy, keyDocID(owner, primary))
	if errors.Is(err, ErrNotFound) {
		return nil, Errorf(ErrNotFound, "primaryKey [%s] has no release policy", primary)
	}
	return d.Value, err
}

// SetReleasePolicy stores policy as the release policy of owner's primary
// key, which must exist and not be destroyed. Without replace it only
// creates one and fails with ErrExists if the key has a policy: a policy
// can be loosened (replaced or removed) only by a caller that the HTTP
// layer lets pass replace, an admin, so that a stolen user token cannot
// downgrade it. It returns ErrConflict if another writer changed the
// policy concurrently.
func (s *Service) SetReleasePolicy(ctx context.Context, owner, primary string, policy []byte, replace bool) error {
	if err := s.releasableKey(ctx, owner, primary); err != nil {
		return err
	}
	defer s.forgetGuard(owner, primary)
	d := Doc{Kind: DocReleasePolicy, ID: keyDocID(owner, primary), Value: policy, Updated: s.now().UTC()}
	if replace {
		old, err := s.store.Doc(ctx, DocReleasePolicy, d.ID)
		switch {
		case err == nil:
			d.Revision = old.Revision
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	_, err := s.store.PutDoc(ctx, d)
	if errors.Is(err, ErrExists) {
		return Errorf(ErrExists, "primaryKey [%s] already has a release policy; only an admin can replace or remove it", primary)
	}
	return err
}

// DeleteReleasePolicy removes the release policy of owner's primary key
// (the HTTP layer allows it to admins only). It returns an error wrapping
// ErrNotFound if there is none, ErrConflict on a concurrent change.
func (s *Service) DeleteReleasePolicy(ctx context.Context, owner, primary string) error {
	if err := ValidateName("primary key name", primary); err != nil {
		return err
	}
	defer s.forgetGuard(owner, primary)
	d, err := s.store.Doc(ctx, DocReleasePolicy, keyDocID(owner, primary))
	if err == nil {
		err = s.store.DeleteDoc(ctx, DocReleasePolicy, d.ID, d.Revision)
	}
	if errors.Is(err, ErrNotFound) {
		return Errorf(ErrNotFound, "primaryKey [%s] has no release policy", primary)
	}
	return err
}

// ReleaseDataKey returns the plaintext of owner's data key name under
// primary key primary, and the version of the primary key that wraps it,
// for an attested release. It refuses (ErrForbidden) a key without a
// release policy and otherwise fails as DataKey does.
//
// SECURITY: it does NOT check attestation. Its only caller is the
// attestation layer, after it verified a fresh quote against the key's
// release policy; the plaintext must leave the process only sealed to the
// attested workload.
func (s *Service) ReleaseDataKey(ctx context.Context, owner, primary, name string) ([]byte, int, error) {
	const op = "release_data_key"
	if err := validateDataKeyNames(primary, name); err != nil {
		return nil, 0, err
	}
	m, err := s.usableMeta(ctx, owner, primary)
	if err == nil {
		err = s.requirePolicy(ctx, owner, primary)
	}
	if err != nil {
		return nil, 0, s.result(op, "primaryKey", primary, err)
	}
	dk, err := s.dataKeyRecord(ctx, owner, primary, name)
	if err == nil {
		err = dataKeyDecryptable(m, dk)
	}
	if err != nil {
		return nil, 0, s.result(op, "dataKey", name, err)
	}
	pk, err := s.primaryKeyRecord(ctx, owner, primary, dk.PrimaryVersion)
	if err != nil {
		return nil, 0, s.result(op, "primaryKey", primary, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return nil, 0, err
	}
	key, err := s.dkCache.OpenDataKey(kr, pk.Wrapped, dk.Wrapped, keyring.DataID{Primary: pkID(pk), Name: name})
	if err != nil {
		err = fmt.Errorf("open data key %q of %q: %w", name, owner, ErrDecrypt)
	}
	return key, pk.Version, s.result(op, "dataKey", name, err)
}

// CheckExportable returns nil if owner's primary key is usable and was
// created exportable, and otherwise the error ReleasePrimaryKey would
// return (ErrForbidden for a key that is not exportable).
func (s *Service) CheckExportable(ctx context.Context, owner, primary string) error {
	_, err := s.exportableMeta(ctx, owner, primary)
	return err
}

func (s *Service) exportableMeta(ctx context.Context, owner, primary string) (KeyMeta, error) {
	if err := ValidateName("primary key name", primary); err != nil {
		return KeyMeta{}, err
	}
	m, err := s.usableMeta(ctx, owner, primary)
	if err == nil && !m.Exportable {
		err = Errorf(ErrForbidden, "primaryKey [%s] is not exportable: only a key created with \"exportable\": true is released itself; name a data key to release one", primary)
	}
	return m, err
}

// ReleasePrimaryKey returns the plaintext of version version (0: the
// newest) of owner's exportable primary key, and that version, for an
// attested release. It refuses a key that is not exportable or has no
// release policy (ErrForbidden), and a version below the minimum
// decryption version (ErrInvalid).
//
// SECURITY: like ReleaseDataKey it does NOT check attestation; its only
// caller is the attestation layer, after it verified a fresh quote against
// the key's release policy, and the plaintext leaves the process only
// sealed to the attested workload.
func (s *Service) ReleasePrimaryKey(ctx context.Context, owner, primary string, version int) ([]byte, int, error) {
	const op = "release_primary_key"
	if version < 0 {
		return nil, 0, Errorf(ErrInvalid, "key version must be positive")
	}
	m, err := s.exportableMeta(ctx, owner, primary)
	if err == nil {
		err = s.requirePolicy(ctx, owner, primary)
	}
	if err != nil {
		return nil, 0, s.result(op, "primaryKey", primary, err)
	}
	pk, err := s.primaryKeyRecord(ctx, owner, primary, version)
	if errors.Is(err, ErrNotFound) && version > 0 {
		err = Errorf(ErrNotFound, "primaryKey [%s] has no version %d", primary, version)
	}
	if err == nil && pk.Version < m.MinDecryptionVersion {
		err = Errorf(ErrInvalid, "version %d of primaryKey [%s] is below its minimum decryption version %d",
			pk.Version, primary, m.MinDecryptionVersion)
	}
	if err != nil {
		return nil, 0, s.result(op, "primaryKey", primary, err)
	}
	kr, err := s.keyringFor(ctx, pk)
	if err != nil {
		return nil, 0, err
	}
	key, err := kr.ExportPrimaryKey(pk.Wrapped, pkID(pk))
	if err != nil {
		err = fmt.Errorf("open primary key %q of %q: %w", primary, owner, ErrDecrypt)
	}
	return key, pk.Version, s.result(op, "primaryKey", primary, err)
}

// requirePolicy refuses (ErrForbidden) a key without a release policy:
// attested release hands out only keys that have one.
func (s *Service) requirePolicy(ctx context.Context, owner, primary string) error {
	guarded, err := s.guarded(ctx, owner, primary)
	if err == nil && !guarded {
		err = Errorf(ErrForbidden, "primaryKey [%s] has no release policy", primary)
	}
	return err
}

// releaseGuard returns an error wrapping ErrForbidden if owner's primary
// key has a release policy, so that no route but ReleaseDataKey hands out
// its data keys. It fails closed: if the store cannot say, it returns the
// store's error.
func (s *Service) releaseGuard(ctx context.Context, owner, primary string) error {
	guarded, err := s.guarded(ctx, owner, primary)
	if err != nil {
		return err
	}
	if guarded {
		return Errorf(ErrForbidden, "primaryKey [%s] has a release policy: attested release is required "+
			"(POST /v1/attest/release from a workload whose quote the policy accepts)", primary)
	}
	return nil
}

// guarded reports whether owner's primary key has a release policy,
// cached for MetaTTL.
func (s *Service) guarded(ctx context.Context, owner, primary string) (bool, error) {
	ck := recKey{kind: 'r', owner: owner, a: primary}
	if c, ok := s.lookup(ck); ok {
		return c.guarded, nil
	}
	_, err := s.store.Doc(ctx, DocReleasePolicy, keyDocID(owner, primary))
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		s.rememberFor(ck, cached{}, s.opt.MetaTTL)
		return false, nil
	default:
		return false, err
	}
	s.rememberFor(ck, cached{guarded: true}, s.opt.MetaTTL)
	return true, nil
}

func (s *Service) forgetGuard(owner, primary string) {
	s.mu.Lock()
	delete(s.cache, recKey{kind: 'r', owner: owner, a: primary})
	s.mu.Unlock()
}

// releasableKey checks that owner's primary key exists and is not
// destroyed (a disabled key may still get a stricter policy).
func (s *Service) releasableKey(ctx context.Context, owner, primary string) error {
	if err := ValidateName("primary key name", primary); err != nil {
		return err
	}
	m, _, err := s.keyMeta(ctx, owner, primary)
	switch {
	case errors.Is(err, ErrNotFound):
		return Errorf(ErrNotFound, "primaryKey [%s] does not exist", primary)
	case err != nil:
		return err
	case m.State == KeyDestroyed:
		return Errorf(ErrNotFound, "primaryKey [%s] does not exist", primary)
	}
	return nil
}
