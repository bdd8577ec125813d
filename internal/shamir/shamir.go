// Package shamir implements Shamir's secret sharing over GF(2^8), in the
// form BigDL's Gen-2 KMS uses for its root key, so that shares made by
// either implementation combine in the other.
//
// # Parameters (BigDL Gen-2 compatible)
//
//   - The field is GF(2^8) with the AES reduction polynomial 0x11b
//     (x^8 + x^4 + x^3 + x + 1), as in the com.codahale.shamir library
//     BigDL uses.
//   - Every byte of the secret is shared independently with its own random
//     polynomial of degree threshold-1 whose constant term is that byte.
//   - Share i is the polynomial evaluated at x = i, for i = 1..n. A share's
//     content is the y-values, one per secret byte, so it is exactly as long
//     as the secret.
//   - On the wire a share is BigDL's /rootKey/recover body,
//     {"index":<x>,"content":"<standard base64 of the y-values>"}: [Share]
//     marshals to and from that JSON.
//
// BigDL splits the UTF-8 bytes of the 44-character base64 text of the root
// key, not the 32 key bytes; package seal does the same, so a 44-byte
// secret here is a base64 string.
//
// # Security limits
//
// Fewer than threshold shares reveal nothing about the secret (the
// coefficients are uniform, including a possible zero leading one; forcing
// it non-zero, as codahale does, would itself bias the secret given t-1
// shares). But they are not detected either: [Combine] of fewer shares, or
// of shares from different splits, returns a wrong secret and no error,
// because Shamir shares carry no integrity. Callers must check the result
// (package seal compares an HMAC check value).
//
// Multiplication is table-free and branch-free on secret data, so its
// timing does not depend on share bytes. Go cannot reliably erase memory;
// zeroing is best effort.
package shamir

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxShares is the largest number of shares: x-coordinates are the non-zero
// field elements 1..255.
const MaxShares = 255

// MaxSecretLen bounds the secret (and share content) length accepted by
// [ParseShare], so a request body cannot make the server allocate much.
const MaxSecretLen = 1024

// Share is one share of a secret: the x-coordinate Index (1..255) and the
// y-values Content, one per secret byte. Its JSON form is BigDL's
// {"index":N,"content":"<base64>"}.
type Share struct {
	Index   int    `json:"index"`
	Content []byte `json:"content"`
}

// String redacts the content: a share is a secret.
func (s Share) String() string {
	return fmt.Sprintf("share(index %d, %d bytes, redacted)", s.Index, len(s.Content))
}

// Errors returned by [Combine] and [ParseShare].
var (
	ErrNoShares       = errors.New("shamir: no shares")
	ErrDuplicateIndex = errors.New("shamir: two shares have the same index")
	ErrBadIndex       = errors.New("shamir: share index must be 1..255")
	ErrLengthMismatch = errors.New("shamir: shares have different lengths")
	ErrEmptyShare     = errors.New("shamir: share content is empty")
)

// Split shares secret into n shares with indexes 1..n, any threshold of
// which recover it. It requires 1 ≤ threshold ≤ n ≤ 255 and a non-empty
// secret. Randomness comes from crypto/rand.
func Split(secret []byte, n, threshold int) ([]Share, error) {
	return split(rand.Reader, secret, n, threshold)
}

func split(r io.Reader, secret []byte, n, threshold int) ([]Share, error) {
	if len(secret) == 0 {
		return nil, ErrEmptyShare
	}
	if threshold < 1 || threshold > n || n > MaxShares {
		return nil, fmt.Errorf("shamir: need 1 ≤ threshold (%d) ≤ shares (%d) ≤ %d", threshold, n, MaxShares)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{Index: i + 1, Content: make([]byte, len(secret))}
	}
	coef := make([]byte, threshold) // coef[0] is the secret byte
	defer clear(coef)
	for b, s := range secret {
		coef[0] = s
		if _, err := io.ReadFull(r, coef[1:]); err != nil {
			return nil, fmt.Errorf("shamir: read randomness: %w", err)
		}
		for i := range shares {
			shares[i].Content[b] = eval(coef, byte(i+1))
		}
	}
	return shares, nil
}

// Combine recovers the secret from shares by Lagrange interpolation at
// x = 0. It returns an error for no shares, an index outside 1..255, two
// shares with the same index, an empty content or contents of different
// lengths. It does NOT detect fewer shares than the threshold, or shares
// from different splits: then it returns a wrong secret and no error
// (see the package doc). Combine does not modify shares.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, ErrNoShares
	}
	n := len(shares[0].Content)
	var seen [256]bool
	for _, s := range shares {
		switch {
		case s.Index < 1 || s.Index > MaxShares:
			return nil, ErrBadIndex
		case seen[s.Index]:
			return nil, ErrDuplicateIndex
		case len(s.Content) == 0:
			return nil, ErrEmptyShare
		case len(s.Content) != n:
			return nil, ErrLengthMismatch
		}
		seen[s.Index] = true
	}
	// The Lagrange basis values at 0 depend only on the x-coordinates,
	// which are public; compute them once.
	basis := make([]byte, len(shares))
	for i, si := range shares {
		num, den := byte(1), byte(1)
		xi := byte(si.Index)
		for j, sj := range shares {
			if i == j {
				continue
			}
			xj := byte(sj.Index)
			num = mul(num, xj)    // (0 - xj) = xj in GF(2^8)
			den = mul(den, xi^xj) // (xi - xj) = xi ^ xj, non-zero as xi ≠ xj
		}
		basis[i] = mul(num, inv(den))
	}
	secret := make([]byte, n)
	for b := range secret {
		var acc byte
		for i, s := range shares {
			acc ^= mul(s.Content[b], basis[i])
		}
		secret[b] = acc
	}
	return secret, nil
}

// ParseShare decodes one share in BigDL's /rootKey/recover JSON form,
// {"index":N,"content":"<standard base64>"}. Unknown fields, trailing data,
// an index outside 1..255 and an empty or over-long content are errors; an
// error never contains the content.
func ParseShare(b []byte) (Share, error) {
	var s Share
	if err := json.Unmarshal(b, &s); err != nil {
		return Share{}, errors.New("shamir: share is not {\"index\":N,\"content\":\"<base64>\"}")
	}
	if err := s.validate(); err != nil {
		clear(s.Content)
		return Share{}, err
	}
	return s, nil
}

// UnmarshalJSON decodes a share strictly: exactly the fields index and
// content, nothing after the object.
func (s *Share) UnmarshalJSON(b []byte) error {
	var w struct {
		Index   *int    `json:"index"`
		Content *[]byte `json:"content"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return errors.New("shamir: malformed share")
	}
	if dec.More() {
		return errors.New("shamir: trailing data after share")
	}
	if w.Index == nil || w.Content == nil {
		return errors.New("shamir: share needs index and content")
	}
	s.Index, s.Content = *w.Index, *w.Content
	return nil
}

func (s Share) validate() error {
	switch {
	case s.Index < 1 || s.Index > MaxShares:
		return ErrBadIndex
	case len(s.Content) == 0:
		return ErrEmptyShare
	case len(s.Content) > MaxSecretLen:
		return fmt.Errorf("shamir: share content longer than %d bytes", MaxSecretLen)
	}
	return nil
}

// eval evaluates the polynomial with coefficients coef (constant first) at
// x, by Horner's rule.
func eval(coef []byte, x byte) byte {
	var y byte
	for i := len(coef) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coef[i]
	}
	return y
}

// mul multiplies in GF(2^8) modulo 0x11b without tables or data-dependent
// branches ("Russian peasant" multiplication with masks).
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		a = a<<1 ^ (-(a >> 7) & 0x1b)
		b >>= 1
	}
	return p
}

// inv returns a^-1 = a^254 (Fermat), in constant time; inv(0) = 0.
func inv(a byte) byte {
	a2 := mul(a, a)     // a^2
	a3 := mul(a2, a)    // a^3
	a6 := mul(a3, a3)   // a^6
	a12 := mul(a6, a6)  // a^12
	a15 := mul(a12, a3) // a^15
	a30 := mul(a15, a15)
	a60 := mul(a30, a30)
	a120 := mul(a60, a60)
	a127 := mul(a120, mul(a6, a)) // a^127
	return mul(a127, a127)        // a^254
}
