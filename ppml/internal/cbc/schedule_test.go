//go:build amd64 && !purego

package cbc

import (
	"crypto/fips140"
	"encoding/hex"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestAsmInUse makes sure the comparisons in cbc_test.go exercise the
// assembly on machines that have AES-NI, outside FIPS 140 mode.
func TestAsmInUse(t *testing.T) {
	if !cpu.X86.HasAES || fips140.Enabled() {
		t.Skip("no AES-NI, or FIPS 140 mode")
	}
	m, _ := NewEncrypter(make([]byte, 16), make([]byte, 16))
	if _, ok := m.(*encrypter); !ok {
		t.Fatalf("NewEncrypter returned %T", m)
	}
	d, _ := NewDecrypter(make([]byte, 16), make([]byte, 16))
	if _, ok := d.(*decrypter); !ok {
		t.Fatalf("NewDecrypter returned %T", d)
	}
}

// TestExpandKey checks the last round key of the key expansion examples of
// FIPS 197 Appendix A.1-A.3.
func TestExpandKey(t *testing.T) {
	tests := []struct{ name, key, last string }{
		{"AES-128", "2b7e151628aed2a6abf7158809cf4f3c", "d014f9a8c9ee2589e13f0cc8b6630ca6"},
		{"AES-192", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "e98ba06f448c773c8ecc720401002202"},
		{"AES-256", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "fe4890d1e6188d0b046df344706c631e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s schedule
			s.expandKey(unhex(tt.key))
			if got := hex.EncodeToString(s.rk[16*s.nr : 16*s.nr+16]); got != tt.last {
				t.Errorf("round key %d = %s, want %s", s.nr, got, tt.last)
			}
		})
	}
}

func TestSbox(t *testing.T) {
	// FIPS 197 Figure 7 entries, and the S-box is a permutation.
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16, 0x9a: 0xb8} {
		if got := sbox(in); got != want {
			t.Errorf("sbox(%#02x) = %#02x, want %#02x", in, got, want)
		}
	}
	var seen [256]bool
	for i := range 256 {
		seen[sbox(byte(i))] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("%#02x is not an S-box output", i)
		}
	}
}

func TestInvMixColumns(t *testing.T) {
	// MixColumns maps column db 13 53 45 to 8e 4d a1 bc (and f2 0a 22 5c
	// to 9f dc 58 9d); InvMixColumns undoes it.
	in := [16]byte(unhex("8e4da1bc9fdc589d0101010101010101"))
	want := "db135345f20a225c0101010101010101"
	if got := invMixColumns(in); hex.EncodeToString(got[:]) != want {
		t.Errorf("invMixColumns = %x, want %s", got, want)
	}
}
