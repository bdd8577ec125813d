package kms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// KeyState is the lifecycle state of a primary key.
type KeyState string

// Key states. Only an enabled key encrypts, decrypts or hands out data keys.
const (
	KeyEnabled         KeyState = "enabled"
	KeyDisabled        KeyState = "disabled"
	KeyPendingDeletion KeyState = "pending_deletion"
	KeyDestroyed       KeyState = "destroyed"
)

// Deletion waiting period bounds, in days.
const (
	MinDeletionDays     = 7
	MaxDeletionDays     = 30
	DefaultDeletionDays = 30
)

// KeyMeta is the mutable metadata of a primary key, stored as a document
// (kind "key", id "<owner>/<name>") beside its immutable versions.
type KeyMeta struct {
	State                KeyState      `json:"state"`
	MinDecryptionVersion int           `json:"min_decryption_version,omitempty"`
	RotationPeriod       time.Duration `json:"rotation_period,omitempty"`
	LastRotated          time.Time     `json:"last_rotated,omitzero"`
	DeletionDate         time.Time     `json:"deletion_date,omitzero"`
	DestroyedAt          time.Time     `json:"destroyed_at,omitzero"`
	// Exportable is set at creation only: attested release may hand the
	// key itself, HPKE-sealed, to a workload its release policy accepts.
	Exportable bool `json:"exportable,omitempty"`
	// Encryptions counts encryptions per version (flushed from memory), so
	// that a version is rotated before it reaches the configured limit.
	Encryptions map[int]int64 `json:"encryptions,omitempty"`
}

// KeyInfo describes a primary key: its metadata and its versions.
type KeyInfo struct {
	Owner    string
	Name     string
	Meta     KeyMeta
	Versions []PrimaryKey // oldest first; Wrapped is cleared
	Created  time.Time
}

// Latest is the newest version number.
func (k KeyInfo) Latest() int {
	if len(k.Versions) == 0 {
		return 0
	}
	return k.Versions[len(k.Versions)-1].Version
}

const docKey = "key"

func keyDocID(owner, name string) string { return owner + "/" + name }

// keyMeta returns a key's metadata and the revision of its document (0 if
// the key predates metadata documents: it is then enabled). It returns an
// error wrapping ErrNotFound if the key has no version and no document.
func (s *Service) keyMeta(ctx context.Context, owner, name string) (KeyMeta, int64, error) {
	d, err := s.store.Doc(ctx, docKey, keyDocID(owner, name))
	switch {
	case err == nil:
		var m KeyMeta
		if err := json.Unmarshal(d.Value, &m); err != nil {
			return KeyMeta{}, 0, fmt.Errorf("key %s/%s metadata: %w", owner, name, err)
		}
		return m, d.Revision, nil
	case !errors.Is(err, ErrNotFound):
		return KeyMeta{}, 0, err
	}
	if _, err := s.store.PrimaryKey(ctx, owner, name, 0); err != nil {
		return KeyMeta{}, 0, err
	}
	return KeyMeta{State: KeyEnabled}, 0, nil
}

// updateKeyMeta applies change to a key's metadata with compare-and-swap,
// retrying on conflicts with other replicas.
func (s *Service) updateKeyMeta(ctx context.Context, owner, name string, change func(*KeyMeta) error) (KeyMeta, error) {
	for attempt := 0; ; attempt++ {
		m, rev, err := s.keyMeta(ctx, owner, name)
		if err != nil {
			return m, err
		}
		if err := change(&m); err != nil {
			return m, err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return m, err
		}
		_, err = s.store.PutDoc(ctx, Doc{Kind: docKey, ID: keyDocID(owner, name), Value: b, Revision: rev, Updated: s.now().UTC()})
		if err == nil || attempt >= 10 || !(errors.Is(err, ErrConflict) || (rev == 0 && errors.Is(err, ErrExists))) {
			s.forgetKey(owner, name)
			return m, err
		}
	}
}

// checkUsable refuses keys that are not enabled, with a message that says
// why.
func checkUsable(name string, m KeyMeta) error {
	switch m.State {
	case KeyEnabled, "":
		return nil
	case KeyDisabled:
		return Errorf(ErrDisabled, "primaryKey [%s] is disabled", name)
	case KeyPendingDeletion:
		return Errorf(ErrDisabled, "primaryKey [%s] is scheduled for deletion on %s", name, m.DeletionDate.UTC().Format(time.RFC3339))
	case KeyDestroyed:
		return Errorf(ErrNotFound, "primaryKey [%s] was destroyed on %s; its data keys are unreadable", name, m.DestroyedAt.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("primaryKey [%s]: unknown state %q", name, m.State)
}

// KeyOptions are the settings of a new primary key.
type KeyOptions struct {
	RotationPeriod time.Duration // 0: rotate on demand only
	// Exportable: see KeyMeta.Exportable.
	Exportable bool
}

// CreateKey creates a primary key with metadata. It returns an error
// wrapping ErrInvalid, or ErrExists (also for the name of a destroyed key:
// names are never reused).
func (s *Service) CreateKey(ctx context.Context, owner, name string, opt KeyOptions) (KeyInfo, error) {
	if err := ValidateName("primary key name", name); err != nil {
		return KeyInfo{}, err
	}
	if opt.RotationPeriod < 0 || (opt.RotationPeriod > 0 && opt.RotationPeriod < time.Hour) {
		return KeyInfo{}, Errorf(ErrInvalid, "rotation period must be at least one hour")
	}
	if _, err := s.store.Doc(ctx, docKey, keyDocID(owner, name)); err == nil {
		return KeyInfo{}, Errorf(ErrExists, "primaryKey [%s] already exists", name)
	}
	meta := KeyMeta{State: KeyEnabled, LastRotated: s.now().UTC(), RotationPeriod: opt.RotationPeriod, Exportable: opt.Exportable}
	if err := s.createPrimaryKey(ctx, owner, name, meta); err != nil {
		// An admin may name an owner that does not exist: say so, not that
		// the key does not exist.
		if errors.Is(err, ErrNotFound) {
			if _, uerr := s.store.User(ctx, owner); errors.Is(uerr, ErrNotFound) {
				return KeyInfo{}, Errorf(ErrNotFound, "user [%s] does not exist", owner)
			}
		}
		return KeyInfo{}, err
	}
	return s.DescribeKey(ctx, owner, name)
}

// DescribeKey returns a key's metadata and versions, never key material.
func (s *Service) DescribeKey(ctx context.Context, owner, name string) (KeyInfo, error) {
	m, _, err := s.keyMeta(ctx, owner, name)
	if err != nil {
		return KeyInfo{}, s.result("describe_key", "primaryKey", name, err)
	}
	info := KeyInfo{Owner: owner, Name: name, Meta: m}
	versions, err := s.store.PrimaryKeyVersions(ctx, owner, name)
	if err != nil && !(errors.Is(err, ErrNotFound) && m.State == KeyDestroyed) {
		return KeyInfo{}, s.result("describe_key", "primaryKey", name, err)
	}
	for _, v := range versions {
		v.Wrapped = nil
		info.Versions = append(info.Versions, v)
	}
	if len(versions) > 0 {
		info.Created = versions[0].Created
	}
	return info, nil
}

// ListKeys describes owner's keys ("" for every owner).
func (s *Service) ListKeys(ctx context.Context, owner string) ([]KeyInfo, error) {
	pks, err := s.store.ListPrimaryKeys(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(pks))
	for _, pk := range pks {
		info, err := s.DescribeKey(ctx, pk.Owner, pk.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// RotateKey adds a new version to a key; new encryptions and data keys use
// it, older versions still decrypt down to the minimum decryption version.
// Concurrent rotations are serialised by the store: one wins, the others
// return ErrConflict.
func (s *Service) RotateKey(ctx context.Context, owner, name string) (KeyInfo, error) {
	m, _, err := s.keyMeta(ctx, owner, name)
	if err != nil {
		return KeyInfo{}, s.result("rotate_key", "primaryKey", name, err)
	}
	if err := checkUsable(name, m); err != nil {
		return KeyInfo{}, err
	}
	latest, err := s.store.PrimaryKey(ctx, owner, name, 0)
	if err != nil {
		return KeyInfo{}, s.result("rotate_key", "primaryKey", name, err)
	}
	if err := s.addVersion(ctx, owner, name, latest.Version+1); err != nil {
		if errors.Is(err, ErrExists) {
			return KeyInfo{}, Errorf(ErrConflict, "primaryKey [%s] was rotated concurrently", name)
		}
		return KeyInfo{}, s.result("rotate_key", "primaryKey", name, err)
	}
	if _, err := s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		m.LastRotated = s.now().UTC()
		return nil
	}); err != nil {
		return KeyInfo{}, err
	}
	s.result("rotate_key", "primaryKey", name, nil)
	return s.DescribeKey(ctx, owner, name)
}

// KeyConfig changes a key's settings; nil fields stay as they are.
type KeyConfig struct {
	MinDecryptionVersion *int
	RotationPeriod       *time.Duration
}

// ConfigureKey changes a key's minimum decryption version (at most the
// newest version) and rotation period.
func (s *Service) ConfigureKey(ctx context.Context, owner, name string, c KeyConfig) (KeyInfo, error) {
	latest, err := s.store.PrimaryKey(ctx, owner, name, 0)
	if err != nil {
		return KeyInfo{}, s.result("configure_key", "primaryKey", name, err)
	}
	_, err = s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		if c.MinDecryptionVersion != nil {
			v := *c.MinDecryptionVersion
			if v < 1 || v > latest.Version {
				return Errorf(ErrInvalid, "min_decryption_version must be between 1 and %d", latest.Version)
			}
			if v < m.MinDecryptionVersion {
				return Errorf(ErrInvalid, "min_decryption_version cannot be lowered from %d", m.MinDecryptionVersion)
			}
			m.MinDecryptionVersion = v
		}
		if c.RotationPeriod != nil {
			p := *c.RotationPeriod
			if p < 0 || (p > 0 && p < time.Hour) {
				return Errorf(ErrInvalid, "rotation period must be 0 or at least one hour")
			}
			m.RotationPeriod = p
		}
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return s.DescribeKey(ctx, owner, name)
}

// SetKeyEnabled disables or re-enables a key. A key pending deletion or
// destroyed cannot be enabled this way (cancel the deletion instead).
func (s *Service) SetKeyEnabled(ctx context.Context, owner, name string, enabled bool) (KeyInfo, error) {
	_, err := s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		if m.State == KeyPendingDeletion || m.State == KeyDestroyed {
			return checkUsable(name, *m)
		}
		m.State = KeyDisabled
		if enabled {
			m.State = KeyEnabled
		}
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return s.DescribeKey(ctx, owner, name)
}

// ScheduleKeyDeletion makes a key unusable now and destroys its material
// after days days (7 to 30; 0 means 30), unless cancelled.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, owner, name string, days int) (KeyInfo, error) {
	if days == 0 {
		days = DefaultDeletionDays
	}
	if days < MinDeletionDays || days > MaxDeletionDays {
		return KeyInfo{}, Errorf(ErrInvalid, "pending window must be between %d and %d days", MinDeletionDays, MaxDeletionDays)
	}
	_, err := s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		if m.State == KeyDestroyed || m.State == KeyPendingDeletion {
			return checkUsable(name, *m)
		}
		m.State = KeyPendingDeletion
		m.DeletionDate = s.now().UTC().Add(time.Duration(days) * 24 * time.Hour)
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return s.DescribeKey(ctx, owner, name)
}

// CancelKeyDeletion returns a key pending deletion to the disabled state
// (as AWS KMS does: enabling it is a separate, deliberate step).
func (s *Service) CancelKeyDeletion(ctx context.Context, owner, name string) (KeyInfo, error) {
	_, err := s.updateKeyMeta(ctx, owner, name, func(m *KeyMeta) error {
		if m.State != KeyPendingDeletion {
			return Errorf(ErrInvalid, "primaryKey [%s] is not scheduled for deletion", name)
		}
		m.State = KeyDisabled
		m.DeletionDate = time.Time{}
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return s.DescribeKey(ctx, owner, name)
}
