// Package ppml reads and writes the encrypted file formats of BigDL PPML, so
// that files we encrypt can be read by Spark jobs using PPMLContext and files
// they write can be decrypted here. See ../../shared/spec/bigdl-compat.md §3.
//
// # Formats
//
// [FormatCurrent] (BigDL ≥ 2.3, written by BigDLEncrypt and PPMLContext):
//
//	uint32 L | uint32 16 | L bytes encryptedDataKey | 16-byte IV | 0x80 padding to byte 400 |
//	AES-CBC-PKCS5 ciphertext | HMAC-SHA256(ciphertext), 32 bytes
//
// [FormatLegacy] (BigDL ≤ 2.2): a 25-byte header 0x80 | int64 unix seconds | IV,
// then the same ciphertext and HMAC.
//
// [FormatNativeAESCBC] (BigDL's "nativeaescbc" encrypter type): the 16-byte IV,
// then the ciphertext, with no MAC.
//
// Keys: for the current and legacy formats the data key is the base64 text
// s that the KMS returns, used as a string: the HMAC key is s[0:16] and the
// AES key is s[16:32] padded with zero bytes to 16 bytes. For nativeaescbc
// the AES key is the base64-decoded data key.
//
// # Releasing plaintext
//
// The HMAC sits at the end of the file, so a streaming decrypter knows whether
// the file is authentic only after it has written the plaintext. [Decrypt]
// therefore returns [ErrAuth] after writing, and the caller must discard what
// it wrote. [DecryptFile] and [DecryptTo] do that for you: they write to a
// temporary file in the destination directory and rename it into place only
// when the tag verifies, so a truncated or tampered file leaves no output.
//
// # Security limits of the BigDL formats
//
// These follow from byte compatibility and cannot be fixed here; prefer the
// authenticated format of package stream when BigDL readers are not needed.
//
//   - The header is not authenticated. The IV is outside the HMAC, so flipping
//     IV bits flips the same bits of the first 16 plaintext bytes undetected.
//     The encryptedDataKey is outside it too; it only names the key.
//   - The AES key is weak: a 24-character BigDL data key gives an AES-128 key
//     of 6 base64 characters, "==" and 8 zero bytes, about 36 bits of entropy.
//     With one known plaintext block it can be found by brute force. The HMAC
//     key (16 base64 characters, 96 bits) is sound. A 44-character data key
//     (32 random bytes) gives a 96-bit AES key.
//   - nativeaescbc has no MAC at all: [ErrAuth] there only means the padding
//     was wrong, and a modified file usually decrypts to modified plaintext.
//   - For legacy files we also accept the tag BigDL ≤ 2.2's file encrypter
//     really wrote: BigDLEncrypt.doFinal(content, offset, len) MACs only
//     len bytes of the final ciphertext, so the tag covers the first P
//     ciphertext bytes (P = plaintext length) and not the last 16-P%16. In
//     such a file whose length is 15 mod 16, an attacker can turn the first
//     15 bytes of the last block into random bytes in about 256 tries.
//     Current-format files are held to the full tag.
//
// Java's BigDL readers never checked the tag; this package always does, in
// constant time, before writing the last plaintext block.
//
// # Concurrency
//
// Functions are safe to call concurrently on different arguments. Each
// encryption or decryption uses two goroutines, AES on the caller's and
// HMAC on a helper, and 3 to 4 MiB of buffers, whatever the file size.
// [Encrypt] calls dst.Write from the helper goroutine (never two calls at
// once); src is always read on the caller's goroutine.
package ppml
