package api

import (
	"fmt"
	"time"
)

// Native API (/v1). JSON in and out; binary fields are []byte, which JSON
// carries as standard base64. Authentication: the header
// "Authorization: Bearer <user>:<token>" (or "admin/<name>:<token>" for an
// admin), never the URL. Errors: an [Error] body with a stable Code.

// Native API paths.
const (
	PathV1Keys  = "/v1/keys"
	PathV1Users = "/v1/users"
	PathV1Sys   = "/v1/sys"
)

// Error is the body of every native API error. Codes are API; messages are
// not.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Codes beyond the BigDL ones.
const (
	CodeConflict = "conflict"
	CodeDisabled = "disabled"
	CodeSealed   = "sealed"
)

// KeyVersion describes one version of a primary key.
type KeyVersion struct {
	Version     int       `json:"version"`
	Created     time.Time `json:"created"`
	Encryptions int64     `json:"encryptions,omitempty"`
}

// Key describes a primary key. It never carries key material.
type Key struct {
	Owner                 string     `json:"owner"`
	Name                  string     `json:"name"`
	State                 string     `json:"state"` // enabled, disabled, pending_deletion, destroyed
	LatestVersion         int        `json:"latest_version"`
	MinDecryptionVersion  int        `json:"min_decryption_version"`
	RotationPeriodSeconds int64      `json:"rotation_period_seconds,omitempty"`
	LastRotated           *time.Time `json:"last_rotated,omitempty"`
	DeletionDate          *time.Time `json:"deletion_date,omitempty"`
	// Exportable: the key itself can be released to an attested workload.
	Exportable bool         `json:"exportable,omitempty"`
	Created    time.Time    `json:"created"`
	Versions   []KeyVersion `json:"versions"`
}

// KeyList is the body of GET /v1/keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name                  string `json:"name"`
	RotationPeriodSeconds int64  `json:"rotation_period_seconds,omitempty"`
	// Exportable lets an attested workload that the key's release policy
	// accepts receive the primary key itself (POST /v1/attest/release with
	// no data_key), HPKE-sealed. Set only at creation, never changed after:
	// no route ever returns the key in plaintext.
	Exportable bool `json:"exportable,omitempty"`
}

// ConfigureKeyRequest is the body of POST /v1/keys/{name}/config; absent
// fields are unchanged.
type ConfigureKeyRequest struct {
	MinDecryptionVersion  *int   `json:"min_decryption_version,omitempty"`
	RotationPeriodSeconds *int64 `json:"rotation_period_seconds,omitempty"`
}

// ScheduleDeletionRequest is the body of POST
// /v1/keys/{name}/schedule-deletion. 0 days means 30.
type ScheduleDeletionRequest struct {
	PendingWindowDays int `json:"pending_window_days,omitempty"`
}

// EncryptRequest is the body of POST /v1/keys/{name}/encrypt.
type EncryptRequest struct {
	Plaintext []byte            `json:"plaintext"`
	Context   map[string]string `json:"context,omitempty"`
}

// DecryptRequest is the body of POST /v1/keys/{name}/decrypt.
type DecryptRequest struct {
	Ciphertext []byte            `json:"ciphertext"`
	Context    map[string]string `json:"context,omitempty"`
}

// ReEncryptRequest is the body of POST /v1/keys/{name}/reencrypt: decrypt
// with {name} and Context, encrypt under the newest version of
// DestinationKey (default {name}) with DestinationContext (default
// Context).
type ReEncryptRequest struct {
	Ciphertext         []byte            `json:"ciphertext"`
	Context            map[string]string `json:"context,omitempty"`
	DestinationKey     string            `json:"destination_key,omitempty"`
	DestinationContext map[string]string `json:"destination_context,omitempty"`
}

// GenerateDataKeyRequest is the body of POST
// /v1/keys/{name}/generate-data-key[-without-plaintext]. Give KeySpec
// ("AES_128" or "AES_256", the default) or NumberOfBytes (16 to 64).
type GenerateDataKeyRequest struct {
	KeySpec       string            `json:"key_spec,omitempty"`
	NumberOfBytes int               `json:"number_of_bytes,omitempty"`
	Context       map[string]string `json:"context,omitempty"`
}

// Size is the requested data key size in bytes.
func (r GenerateDataKeyRequest) Size() (int, error) {
	switch {
	case r.KeySpec != "" && r.NumberOfBytes != 0:
		return 0, fmt.Errorf("give key_spec or number_of_bytes, not both")
	case r.NumberOfBytes != 0:
		return r.NumberOfBytes, nil
	case r.KeySpec == "AES_128":
		return 16, nil
	case r.KeySpec == "AES_256", r.KeySpec == "":
		return 32, nil
	}
	return 0, fmt.Errorf("key_spec must be AES_128 or AES_256")
}

// CiphertextResponse answers encrypt and reencrypt.
type CiphertextResponse struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// PlaintextResponse answers decrypt.
type PlaintextResponse struct {
	Plaintext  []byte `json:"plaintext"`
	KeyVersion int    `json:"key_version"`
}

// DataKeyResponse answers generate-data-key; Plaintext is absent for the
// without-plaintext form.
type DataKeyResponse struct {
	Plaintext  []byte `json:"plaintext,omitempty"`
	Ciphertext []byte `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// EncryptBatchRequest is the body of POST /v1/keys/{name}/encrypt-batch.
type EncryptBatchRequest struct {
	Items []EncryptRequest `json:"items"`
}

// DecryptBatchRequest is the body of POST /v1/keys/{name}/decrypt-batch.
type DecryptBatchRequest struct {
	Items []DecryptRequest `json:"items"`
}

// BatchItem is one result of a batch: a value or an error.
type BatchItem struct {
	Ciphertext []byte `json:"ciphertext,omitempty"`
	Plaintext  []byte `json:"plaintext,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
	Error      *Error `json:"error,omitempty"`
}

// BatchResponse answers the batch operations, in request order.
type BatchResponse struct {
	Results []BatchItem `json:"results"`
}

// User describes a user for admins; never its token or hash.
type User struct {
	Name     string    `json:"name"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
}

// UserList is the body of GET /v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// TokenResponse answers POST /v1/users/{name}/token: the new token, shown
// once.
type TokenResponse struct {
	Token string `json:"token"`
}

// SealStatus answers GET /v1/sys/seal-status.
type SealStatus struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Mode        string `json:"mode"` // auto or shamir
	Threshold   int    `json:"threshold,omitempty"`
	Shares      int    `json:"shares,omitempty"`
	Progress    int    `json:"progress"`
	RootVersion int    `json:"root_version,omitempty"`
	Rotating    bool   `json:"rotating,omitempty"`
}

// InitRequest is the body of POST /v1/sys/init (Shamir mode).
type InitRequest struct {
	Shares    int `json:"shares"`
	Threshold int `json:"threshold"`
}

// Share is one Shamir share, in BigDL's /rootKey/recover format.
type Share struct {
	Index   int    `json:"index"`
	Content string `json:"content"`
}

// InitResponse answers POST /v1/sys/init: the shares, shown once.
type InitResponse struct {
	Shares    []Share `json:"shares"`
	Threshold int     `json:"threshold"`
}
