package kms

import "context"

// Lifecycle is the part of the store that key lifecycle needs: user
// administration, key versions, root key rotation, destruction, and small
// versioned documents (key metadata, seal configuration, attestation
// policies, single-use nonces). Every adapter implements it; it is being
// folded into [Store].
//
// Every method honours ctx and is safe for concurrent use by several
// processes sharing one database. Multi-row changes are transactions.
type Lifecycle interface {
	// UpdateUser replaces the token hash and disabled flag of an existing
	// user (Name selects it; Created is ignored). It returns an error
	// wrapping ErrNotFound if the user does not exist.
	UpdateUser(ctx context.Context, u User) error
	// ListUsers returns every user, ordered by name.
	ListUsers(ctx context.Context) ([]User, error)

	// ListPrimaryKeys returns the newest version of each primary key of
	// owner, ordered by name; owner "" lists every owner's keys, ordered by
	// owner then name.
	ListPrimaryKeys(ctx context.Context, owner string) ([]PrimaryKey, error)
	// PrimaryKeyVersions returns every version of a primary key, oldest
	// first, or an error wrapping ErrNotFound if there is none.
	PrimaryKeyVersions(ctx context.Context, owner, name string) ([]PrimaryKey, error)
	// PrimaryKeysToRewrap returns up to limit primary key versions (of any
	// owner) whose RootVersion is not rootVersion, in a stable order.
	PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) ([]PrimaryKey, error)
	// RewrapPrimaryKey replaces Wrapped and RootVersion of the stored version
	// (k.Owner, k.Name, k.Version) if its RootVersion is still
	// oldRootVersion. It returns an error wrapping ErrConflict if it is not,
	// and ErrNotFound if the version does not exist.
	RewrapPrimaryKey(ctx context.Context, k PrimaryKey, oldRootVersion int) error
	// DestroyPrimaryKey deletes every version of a primary key and every
	// data key under it, in one transaction. It returns an error wrapping
	// ErrNotFound if the key has no version.
	DestroyPrimaryKey(ctx context.Context, owner, name string) error

	// Doc returns a document, or an error wrapping ErrNotFound.
	Doc(ctx context.Context, kind, id string) (Doc, error)
	// PutDoc writes d. With d.Revision 0 it creates the document and fails
	// with ErrExists if it exists; otherwise it replaces it only if the
	// stored revision equals d.Revision (else ErrConflict; ErrNotFound if it
	// is gone). It returns the document with its new revision.
	PutDoc(ctx context.Context, d Doc) (Doc, error)
	// DeleteDoc deletes a document if its revision equals revision (else
	// ErrConflict), or an error wrapping ErrNotFound. Exactly one of several
	// concurrent deleters of the same revision succeeds.
	DeleteDoc(ctx context.Context, kind, id string, revision int64) error
	// ListDocs returns the documents of kind whose id starts with prefix,
	// ordered by id.
	ListDocs(ctx context.Context, kind, prefix string) ([]Doc, error)
}
