package seal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ppmlkms/kms/internal/keyring"
	"github.com/ppmlkms/kms/internal/kms"
	"github.com/ppmlkms/kms/internal/rootkey"
	"github.com/ppmlkms/kms/internal/shamir"
)

// Share defaults, as BigDL's /rootKey/rotate.
const (
	DefaultShares    = 5
	DefaultThreshold = 3
)

// shareLen is the length of a share: BigDL splits the 44-character
// standard base64 text of the 32-byte key, not the key bytes.
var shareLen = base64.StdEncoding.EncodedLen(KeyLen)

var errInitialised = kms.Errorf(kms.ErrExists, "the seal is already initialised")

// Init generates a seal key, splits it into shares of which threshold
// recover it (0, 0 means 5 and 3), stores the seal document, unseals this
// Manager and returns the shares, in index order. Each share marshals to
// BigDL's {"index":N,"content":"<base64>"}.
//
// The shares are returned exactly once and never stored: if the caller
// loses them before any key is created, the only way out is deleting the
// seal document (sys/root) and calling Init again.
//
// Init returns an error wrapping kms.ErrExists if a seal document exists,
// and kms.ErrInvalid for bad parameters or when the store already holds
// primary keys (they are sealed under an existing root key: start with
// that key, in auto mode, instead).
func (m *Manager) Init(ctx context.Context, shares, threshold int) ([]shamir.Share, error) {
	if shares == 0 && threshold == 0 {
		shares, threshold = DefaultShares, DefaultThreshold
	}
	if shares < 1 || shares > shamir.MaxShares || threshold < 1 || threshold > shares || (shares > 1 && threshold < 2) {
		return nil, kms.Errorf(kms.ErrInvalid, "need 1 ≤ threshold ≤ shares ≤ 255 and a threshold of at least 2 when there are several shares; got %d of %d", threshold, shares)
	}
	m.unsealMu.Lock()
	defer m.unsealMu.Unlock()
	if _, _, err := m.readDoc(ctx); err == nil {
		return nil, errInitialised
	} else if !errors.Is(err, kms.ErrNotFound) {
		return nil, err
	}
	if rows, err := m.store.PrimaryKeysToRewrap(ctx, 0, 1); err != nil {
		return nil, fmt.Errorf("look for existing primary keys: %w", err)
	} else if len(rows) > 0 {
		return nil, kms.Errorf(kms.ErrInvalid, "the store already holds primary keys sealed under an existing root key; start with that key (key file or ROOT_KEY) instead of initialising new shares")
	}
	raw := make([]byte, KeyLen)
	rand.Read(raw)
	key, _ := newSealKey(raw)
	clear(raw)
	text := []byte(base64.StdEncoding.EncodeToString(key.b[:]))
	defer clear(text)
	parts, err := shamir.Split(text, shares, threshold)
	if err != nil {
		return nil, err
	}
	sd := &sealDoc{Format: formatV1, Check: key.check(), Shares: shares, Threshold: threshold,
		Current: 1, Roots: []rootEntry{{Version: 1, Created: m.opt.Now().UTC()}}}
	doc, err := m.store.PutDoc(ctx, kms.Doc{Kind: DocKind, ID: DocID, Value: sd.marshal()})
	if err != nil && !errors.Is(err, kms.ErrExists) {
		// A failed write may still have committed (kms.ErrUnavailable means
		// "outcome unknown"): if our document is there, the shares are good.
		if d, stored, rerr := m.readDoc(ctx); rerr == nil && key.matches(stored.Check) {
			doc, sd, err = d, stored, nil
		}
	}
	if errors.Is(err, kms.ErrExists) {
		return nil, errInitialised
	}
	if err != nil {
		return nil, fmt.Errorf("store seal document: %w", err)
	}
	if err := m.unsealed(doc, sd, key); err != nil {
		return nil, err
	}
	m.log.Info("seal initialised", "shares", shares, "threshold", threshold)
	return parts, nil
}

// Unseal submits one share. Shares are collected in this process's memory
// until Threshold distinct ones have arrived; then they are combined and
// the result is compared with the seal document's check value:
//
//   - a share with an index already submitted, or of the wrong length, is
//     refused (kms.ErrInvalid) and not counted;
//   - a set that does not reconstruct the seal key is discarded entirely
//     and Unseal returns kms.ErrInvalid: nothing is loaded, submit shares
//     again from the start;
//   - the right set unseals the Manager (and resumes a rotation a crash
//     left unfinished, in the background).
//
// Unseal returns the status after the share, with Progress the number of
// shares held. It returns kms.ErrInvalid if the store is not initialised or
// its seal key was not split into shares. On an unsealed Manager the share
// is ignored and Unseal returns the status and nil.
func (m *Manager) Unseal(ctx context.Context, share shamir.Share) (Status, error) {
	m.unsealMu.Lock()
	defer m.unsealMu.Unlock()
	if m.kr.Load() != nil {
		return m.Status(), nil
	}
	if share.Index < 1 || share.Index > shamir.MaxShares || len(share.Content) != shareLen {
		return m.Status(), kms.Errorf(kms.ErrInvalid, "a share has an index from 1 to 255 and %d bytes of content", shareLen)
	}
	doc, sd, err := m.readDoc(ctx)
	if errors.Is(err, kms.ErrNotFound) {
		return m.Status(), kms.Errorf(kms.ErrInvalid, "the seal is not initialised")
	}
	if err != nil {
		return m.Status(), err
	}
	if sd.Threshold == 0 {
		return m.Status(), kms.Errorf(kms.ErrInvalid, "this store's seal key was not split into shares; the server unseals from its key file or ROOT_KEY")
	}
	m.mu.Lock()
	m.noteDoc(doc, sd)
	for _, p := range m.pending {
		if p.Index == share.Index {
			m.mu.Unlock()
			return m.Status(), kms.Errorf(kms.ErrInvalid, "share %d was already submitted", share.Index)
		}
	}
	m.pending = append(m.pending, shamir.Share{Index: share.Index, Content: append([]byte(nil), share.Content...)})
	if len(m.pending) < sd.Threshold {
		m.mu.Unlock()
		return m.Status(), nil
	}
	parts := m.pending
	m.pending = nil
	m.mu.Unlock()

	key, ok := combine(parts, sd)
	if !ok {
		m.log.Warn("unseal: the submitted shares do not reconstruct the seal key; discarded them", "shares", len(parts))
		return m.Status(), kms.Errorf(kms.ErrInvalid, "the %d shares do not reconstruct the seal key; all of them were discarded, submit shares again", len(parts))
	}
	if err := m.unsealed(doc, sd, key); err != nil {
		return m.Status(), err
	}
	return m.Status(), nil
}

// combine reconstructs the seal key from parts (and zeroes them) and
// reports whether it matches sd's check value. A wrong key is never
// returned.
func combine(parts []shamir.Share, sd *sealDoc) (*sealKey, bool) {
	text, err := shamir.Combine(parts)
	for _, p := range parts {
		clear(p.Content)
	}
	if err != nil {
		return nil, false
	}
	defer clear(text)
	raw, err := rootkey.Decode(text)
	if err != nil {
		return nil, false
	}
	defer clear(raw)
	key, err := newSealKey(raw)
	if err != nil || !key.matches(sd.Check) {
		return nil, false
	}
	return key, true
}

// ResetUnseal discards the shares submitted so far.
func (m *Manager) ResetUnseal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pending {
		clear(p.Content)
	}
	m.pending = nil
}

// LoadAuto unseals with the key from src (a key file or ROOT_KEY). On the
// first start, when the store has no seal document, it creates one for
// this key, after checking that the key opens the primary keys already in
// the store (a deployment from before sealing existed). Otherwise it
// compares the key with the document's check value, so a wrong ROOT_KEY is
// a clear error at start rather than failed decryptions later. A rotation
// or retirement a crash left unfinished resumes in the background. On an
// unsealed Manager LoadAuto does nothing.
func (m *Manager) LoadAuto(ctx context.Context, src rootkey.Source) error {
	raw, err := src.RootKey(ctx)
	if err != nil {
		return err
	}
	key, err := newSealKey(raw)
	clear(raw)
	if err != nil {
		return err
	}
	m.unsealMu.Lock()
	defer m.unsealMu.Unlock()
	if m.kr.Load() != nil {
		return nil
	}
	doc, sd, err := m.readDoc(ctx)
	if errors.Is(err, kms.ErrNotFound) {
		doc, sd, err = m.createAutoDoc(ctx, key, src)
	}
	if err != nil {
		return err
	}
	if !key.matches(sd.Check) {
		return fmt.Errorf("the root key from %s is not this store's seal key (the check value in the seal document differs); refusing to start", src.Describe())
	}
	return m.unsealed(doc, sd, key)
}

// createAutoDoc stores the first seal document for key, or returns the one
// another replica stored meanwhile.
func (m *Manager) createAutoDoc(ctx context.Context, key *sealKey, src rootkey.Source) (kms.Doc, *sealDoc, error) {
	if err := checkExistingKeys(ctx, m.store, key, src); err != nil {
		return kms.Doc{}, nil, err
	}
	sd := &sealDoc{Format: formatV1, Check: key.check(), Current: 1,
		Roots: []rootEntry{{Version: 1, Created: m.opt.Now().UTC()}}}
	doc, err := m.store.PutDoc(ctx, kms.Doc{Kind: DocKind, ID: DocID, Value: sd.marshal()})
	if errors.Is(err, kms.ErrExists) {
		return m.readDoc(ctx)
	}
	if err != nil {
		return kms.Doc{}, nil, fmt.Errorf("store seal document: %w", err)
	}
	m.log.Info("seal document created", "source", src.Describe())
	return doc, sd, nil
}

// checkExistingKeys refuses a key that opens none of a sample of the
// primary keys already stored, and a store whose keys use root versions
// that only a lost seal document could hold.
func checkExistingKeys(ctx context.Context, store Store, key *sealKey, src rootkey.Source) error {
	rows, err := store.PrimaryKeysToRewrap(ctx, 0, 16)
	if err != nil {
		return fmt.Errorf("look for existing primary keys: %w", err)
	}
	kr, err := keyring.New(key.b[:], 1)
	if err != nil {
		return err
	}
	for _, pk := range rows {
		if pk.RootVersion != 1 {
			return fmt.Errorf("the store holds primary keys under root key version %d but no seal document; restore the seal document (%s/%s) from a backup", pk.RootVersion, DocKind, DocID)
		}
	}
	for _, pk := range rows {
		id := keyring.PrimaryID{Owner: pk.Owner, Name: pk.Name, Version: pk.Version}
		if kr.CheckPrimaryKey(pk.Wrapped, id) == nil {
			return nil
		}
	}
	if len(rows) > 0 {
		return fmt.Errorf("the root key from %s does not open the primary keys already in the store; refusing to start", src.Describe())
	}
	return nil
}
