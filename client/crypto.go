package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ppmlkms/kms/api"
)

// Cryptographic operations of the native API. Ciphertexts are
// self-describing (docs/spec/ciphertext.md): they name the key version
// that made them, so callers store nothing else. The encryption context is
// a string map bound to the ciphertext as associated data: decrypting
// needs the same map (order does not matter). It is recorded in the audit
// log, so it must not hold secrets.
//
// Besides the errors listed for key management, these return an error
// wrapping [ErrDisabled] for a key that is disabled or scheduled for
// deletion, and [ErrNotFound] for a destroyed one.

// Encrypt encrypts plaintext (at most 4096 bytes; encrypt a data key from
// [Client.GenerateDataKey] for more) under the newest version of key name,
// bound to encryptionContext (may be nil).
func (c *Client) Encrypt(ctx context.Context, name string, plaintext []byte, encryptionContext map[string]string) (*api.CiphertextResponse, error) {
	var resp api.CiphertextResponse
	err := c.crypto(ctx, name, "/encrypt", api.EncryptRequest{Plaintext: plaintext, Context: encryptionContext}, &resp, "encrypt with")
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// Decrypt decrypts a ciphertext of key name with the encryption context it
// was made with. The caller owns the returned Plaintext and should clear
// it after use. It returns an error wrapping [ErrDecrypt] for a ciphertext
// that does not open (wrong key or context, modified bytes; the server
// does not say which), and [ErrInvalid] for a ciphertext of a version
// below the key's minimum decryption version.
func (c *Client) Decrypt(ctx context.Context, name string, ciphertext []byte, encryptionContext map[string]string) (*api.PlaintextResponse, error) {
	var resp api.PlaintextResponse
	err := c.crypto(ctx, name, "/decrypt", api.DecryptRequest{Ciphertext: ciphertext, Context: encryptionContext}, &resp, "decrypt with")
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// ReEncrypt decrypts req.Ciphertext with key name and req.Context and
// encrypts the plaintext, which never leaves the server, under the newest
// version of req.DestinationKey (default name) with req.DestinationContext
// (default req.Context): a rewrap after a rotation, or a move to another
// key of the same owner. Errors are those of Decrypt and Encrypt.
func (c *Client) ReEncrypt(ctx context.Context, name string, req api.ReEncryptRequest) (*api.CiphertextResponse, error) {
	var resp api.CiphertextResponse
	if err := c.crypto(ctx, name, "/reencrypt", req, &resp, "re-encrypt with"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// GenerateDataKey returns a new random data key (req.KeySpec "AES_256", the
// default, or "AES_128"; or req.NumberOfBytes, 16 to 64) in plaintext and
// encrypted under key name with req.Context. The server stores nothing:
// keep the Ciphertext and get the key back with [Client.Decrypt]. The
// caller owns Plaintext and should clear it after use.
func (c *Client) GenerateDataKey(ctx context.Context, name string, req api.GenerateDataKeyRequest) (*api.DataKeyResponse, error) {
	var resp api.DataKeyResponse
	if err := c.crypto(ctx, name, "/generate-data-key", req, &resp, "generate a data key with"); err != nil {
		return nil, err
	}
	if len(resp.Plaintext) == 0 || len(resp.Ciphertext) == 0 {
		return nil, fmt.Errorf("kms: generate a data key with key %q: %w: no plaintext or ciphertext", name, ErrMalformedResponse)
	}
	return &resp, nil
}

// GenerateDataKeyWithoutPlaintext is [Client.GenerateDataKey] returning the
// ciphertext only, for a component that stores the key now and has
// another decrypt it later.
func (c *Client) GenerateDataKeyWithoutPlaintext(ctx context.Context, name string, req api.GenerateDataKeyRequest) (*api.DataKeyResponse, error) {
	var resp api.DataKeyResponse
	if err := c.crypto(ctx, name, "/generate-data-key-without-plaintext", req, &resp, "generate a data key with"); err != nil {
		return nil, err
	}
	if len(resp.Ciphertext) == 0 {
		return nil, fmt.Errorf("kms: generate a data key with key %q: %w: no ciphertext", name, ErrMalformedResponse)
	}
	clear(resp.Plaintext)
	resp.Plaintext = nil
	return &resp, nil
}

// BatchResult is one item of a batch answer: Ciphertext (EncryptBatch) or
// Plaintext (DecryptBatch) and the KeyVersion used, or Err, an [*Error]
// that errors.Is matches against the sentinels like a whole request's.
type BatchResult struct {
	Ciphertext []byte
	Plaintext  []byte
	KeyVersion int
	Err        error
}

// EncryptBatch encrypts up to 100 items under key name in one request.
// Items fail one by one: the results, in item order, carry their own
// errors; the returned error is for the request as a whole (too many
// items, unknown key, ...).
func (c *Client) EncryptBatch(ctx context.Context, name string, items []api.EncryptRequest) ([]BatchResult, error) {
	return c.batch(ctx, name, "/encrypt-batch", api.EncryptBatchRequest{Items: items}, len(items), "encrypt a batch with")
}

// DecryptBatch decrypts up to 100 items of key name in one request, as
// [Client.EncryptBatch]. The caller owns the plaintexts.
func (c *Client) DecryptBatch(ctx context.Context, name string, items []api.DecryptRequest) ([]BatchResult, error) {
	return c.batch(ctx, name, "/decrypt-batch", api.DecryptBatchRequest{Items: items}, len(items), "decrypt a batch with")
}

func (c *Client) batch(ctx context.Context, name, suffix string, req any, n int, what string) ([]BatchResult, error) {
	var resp api.BatchResponse
	if err := c.crypto(ctx, name, suffix, req, &resp, what); err != nil {
		return nil, err
	}
	if len(resp.Results) != n {
		return nil, fmt.Errorf("kms: %s key %q: %w: %d results for %d items", what, name, ErrMalformedResponse, len(resp.Results), n)
	}
	out := make([]BatchResult, n)
	for i, it := range resp.Results {
		out[i] = BatchResult{Ciphertext: it.Ciphertext, Plaintext: it.Plaintext, KeyVersion: it.KeyVersion}
		if it.Error != nil {
			out[i].Err = &Error{Code: it.Error.Code, Message: cleanMessage(it.Error.Message)}
		}
	}
	return out, nil
}

func (c *Client) crypto(ctx context.Context, name, suffix string, req, resp any, what string) error {
	if err := validName("key name", name); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodPost, keyPath(name, suffix), true, req, resp); err != nil {
		return fmt.Errorf("%s key %q: %w", what, name, err)
	}
	return nil
}
