// Package kms holds the domain of the key management service: users, primary
// keys, data keys, the [Store] port that persistence adapters implement, and
// the sentinel errors that every layer wraps.
//
// # Key hierarchy
//
// A root key (held by the keyring, never by this package) wraps every primary
// key; each primary key wraps its data keys. Records in this package only ever
// carry wrapped (sealed) key material: a [Store] never sees a plaintext key.
package kms

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Adapters and services wrap them with context using %w;
// the HTTP layer maps them to status codes in exactly one table.
var (
	// ErrNotFound reports that a user or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that a user or key with that name already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid reports malformed input (a bad name, a missing parameter).
	ErrInvalid = errors.New("invalid input")
	// ErrPermission reports failed authentication.
	ErrPermission = errors.New("permission denied")
	// ErrForbidden reports an authenticated identity acting beyond its
	// rights (a user on another user's keys, a user on an admin route).
	ErrForbidden = errors.New("forbidden")
	// ErrDecrypt reports that wrapped key material did not open. It never
	// says which check failed.
	ErrDecrypt = errors.New("decryption failed")
	// ErrUnavailable reports that a dependency (the store) cannot serve now.
	ErrUnavailable = errors.New("service unavailable")
	// ErrThrottled reports too many failed attempts from a user or address.
	ErrThrottled = errors.New("too many failed attempts")
	// ErrConflict reports that a record changed since it was read (a failed
	// compare-and-swap); the caller may re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrSealed reports that the server holds no root key yet: it waits for
	// unseal shares.
	ErrSealed = errors.New("sealed")
	// ErrDisabled reports that a key or user is disabled or pending deletion.
	ErrDisabled = errors.New("disabled")
)

// User is an identity that owns keys. TokenHash is an encoded slow hash
// (argon2id, see package auth); the token itself is never stored.
type User struct {
	Name      string
	TokenHash string
	Disabled  bool
	Created   time.Time
}

// PrimaryKey is one version of a user's primary key (AES-256), sealed by the
// root key whose version is RootVersion.
type PrimaryKey struct {
	Owner       string
	Name        string
	Version     int
	RootVersion int
	Wrapped     []byte
	Created     time.Time
}

// DataKey is a user's data key (16 bytes), sealed by version PrimaryVersion
// of the primary key named Primary. Data key names are scoped by owner and
// primary key.
type DataKey struct {
	Owner          string
	Primary        string
	Name           string
	PrimaryVersion int
	Wrapped        []byte
	Created        time.Time
}

// Store persists users and wrapped keys. Implementations must be safe for
// concurrent use by many goroutines and by several processes sharing one
// database: a Create of a name that exists fails with ErrExists and never
// overwrites, whoever wins the race. A successful Create is durable: it
// survives a crash of the process or the machine.
//
// Every method honours ctx. Errors wrap ErrNotFound, ErrExists or
// ErrUnavailable (the backend cannot be reached) where they apply.
type Store interface {
	Lifecycle

	// CreateUser stores u. It returns an error wrapping ErrExists if a user
	// with that name exists.
	CreateUser(ctx context.Context, u User) error
	// User returns the user with that name, or an error wrapping ErrNotFound.
	User(ctx context.Context, name string) (User, error)

	// CreatePrimaryKey stores version k.Version of a primary key. It returns
	// an error wrapping ErrExists if that (owner, name, version) exists, and
	// ErrNotFound if the owner does not exist.
	CreatePrimaryKey(ctx context.Context, k PrimaryKey) error
	// PrimaryKey returns the given version of a user's primary key; version 0
	// means the newest. It returns an error wrapping ErrNotFound if absent.
	PrimaryKey(ctx context.Context, owner, name string, version int) (PrimaryKey, error)

	// CreateDataKey stores k. It returns an error wrapping ErrExists if
	// (owner, primary, name) exists, and ErrNotFound if the primary key or
	// the owner does not exist.
	CreateDataKey(ctx context.Context, k DataKey) error
	// DataKey returns a data key, or an error wrapping ErrNotFound.
	DataKey(ctx context.Context, owner, primary, name string) (DataKey, error)

	// Ping reports whether the backend is reachable, wrapping ErrUnavailable
	// if not.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// Doc is a small versioned document: key metadata, seal configuration,
// attestation policies, single-use nonces. The domain owns its Value (JSON);
// a Store only compares revisions. Kind and ID are at most 128 bytes each,
// Value at most 1 MiB.
type Doc struct {
	Kind     string
	ID       string
	Value    []byte
	Revision int64 // 0 before creation; the store sets 1 on create, +1 on update
	Updated  time.Time
}

// Error is a domain error whose message is complete as it stands and safe
// to show to the client, classified by Kind (one of the sentinels above) for
// errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind error, format string, a ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, a...)}
}
