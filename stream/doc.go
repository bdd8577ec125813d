// Package stream implements the kms stream format: authenticated encryption
// of a byte stream of any length, in constant memory, with AES-256-GCM in
// fixed-size chunks (the STREAM construction, as in age and Tink). The
// format is specified in docs/spec/stream-format.md; this package follows
// it and its frozen test vectors live in testdata/vectors.
//
// A file starts with a header holding the chunk size, a reference to the
// file key ([KeyRef]: KMS key names, a wrapped key, or nothing) and a random
// salt, authenticated with an HMAC under a key derived from the file key.
// Each chunk is sealed with a nonce made of its index and a last-chunk flag,
// so truncation, reordering, dropping and appending chunks are all detected.
//
// # Using it
//
// Encrypt with [Encrypt], [EncryptFile] or a [Writer]; decrypt with
// [Decrypt], [DecryptFile] or a [Reader]. Decryption takes a [KeyFunc], which
// sees the header's key reference before it must return the key, so a
// caller can fetch the key from the KMS by name; use [StaticKey] for a key
// already at hand. The file key is 16 or 32 bytes.
//
// [Reader] releases each chunk's plaintext only after its tag verifies. A
// stream that is cut short still yields the verified chunks before the
// error, so a caller must treat output as complete only when reading ends
// in io.EOF. [DecryptFile] and [DecryptTo] write to a temporary file and
// rename it into place only then.
//
// # Errors
//
// Headers that do not parse give errors wrapping [ErrFormat]. A wrong key,
// a modified header, and any damage to the payload (a flipped bit,
// truncation, reordered, missing or extra chunks) give [ErrAuth], which says
// nothing about which check failed. [ErrKey] reports a key of the wrong
// length. Errors never contain key material.
//
// # Concurrency and memory
//
// A [Writer] or [Reader] must be used by one goroutine at a time. Memory
// does not grow with the stream: a Reader holds one chunk (64 KiB by
// default, 16 MiB at most) plus 17 bytes; a Writer batches sealed chunks
// into writes of about 1 MiB (or one chunk, if larger).
package stream

//go:generate go run ./internal/vectors -dir testdata/vectors
