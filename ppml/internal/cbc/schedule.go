//go:build amd64 && !purego

package cbc

// maxRounds is the AES-256 round count; a schedule holds up to
// maxRounds+1 round keys of 16 bytes.
const maxRounds = 14

// schedule holds round keys as the AES-NI instructions take them: each
// round key is 16 bytes in the order of the state bytes (FIPS 197 words
// w[4r..4r+3], each big-endian), so a plain 16-byte load gives the operand.
type schedule struct {
	rk [(maxRounds + 1) * BlockSize]byte
	nr int // 10, 12 or 14
}

// expandKey fills s with the encryption round keys of key (16, 24 or 32
// bytes), following the key expansion of FIPS 197 §5.2 word by word.
func (s *schedule) expandKey(key []byte) {
	nk := len(key) / 4
	s.nr = nk + 6
	w := s.rk[:4*4*(s.nr+1)] // 4*(nr+1) words of 4 bytes
	copy(w, key)
	rcon := byte(1)
	for i := nk; i < 4*(s.nr+1); i++ {
		t := [4]byte(w[4*(i-1):])
		switch {
		case i%nk == 0: // SubWord(RotWord(t)) ^ Rcon
			t = [4]byte{sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])}
			rcon = xtime(rcon)
		case nk > 6 && i%nk == 4: // AES-256 only: SubWord(t)
			t = [4]byte{sbox(t[0]), sbox(t[1]), sbox(t[2]), sbox(t[3])}
		}
		for j := range 4 {
			w[4*i+j] = w[4*(i-nk)+j] ^ t[j]
		}
	}
}

// invert turns encryption round keys into those of the equivalent inverse
// cipher (FIPS 197 §5.3.5), which AESDEC expects: the keys in reverse
// order, all but the first and last passed through InvMixColumns.
func (s *schedule) invert() {
	var d [len(s.rk)]byte
	for r := 0; r <= s.nr; r++ {
		k := [BlockSize]byte(s.rk[16*(s.nr-r):])
		if r != 0 && r != s.nr {
			k = invMixColumns(k)
		}
		copy(d[16*r:], k[:])
	}
	s.rk = d
}

// invMixColumns applies InvMixColumns (FIPS 197 §5.3.3) to each of the four
// columns, bytes 4c..4c+3, of b.
func invMixColumns(b [BlockSize]byte) [BlockSize]byte {
	var o [BlockSize]byte
	for c := 0; c < BlockSize; c += 4 {
		a0, a1, a2, a3 := b[c], b[c+1], b[c+2], b[c+3]
		o[c] = gfMul(a0, 14) ^ gfMul(a1, 11) ^ gfMul(a2, 13) ^ gfMul(a3, 9)
		o[c+1] = gfMul(a0, 9) ^ gfMul(a1, 14) ^ gfMul(a2, 11) ^ gfMul(a3, 13)
		o[c+2] = gfMul(a0, 13) ^ gfMul(a1, 9) ^ gfMul(a2, 14) ^ gfMul(a3, 11)
		o[c+3] = gfMul(a0, 11) ^ gfMul(a1, 13) ^ gfMul(a2, 9) ^ gfMul(a3, 14)
	}
	return o
}

// sbox is the AES S-box (FIPS 197 §5.1.1) computed rather than looked up,
// so that key bytes never select a memory address: the inverse in GF(2⁸)
// (as b²⁵⁴, which maps 0 to 0) followed by the affine transformation.
// It is slow, a few hundred operations, but runs only 40 to 56 times per key.
func sbox(b byte) byte {
	inv, sq := byte(1), b
	for range 7 { // inv = b^2 · b^4 · … · b^128 = b^254
		sq = gfMul(sq, sq)
		inv = gfMul(inv, sq)
	}
	rotl := func(x byte, k int) byte { return x<<k | x>>(8-k) }
	return inv ^ rotl(inv, 1) ^ rotl(inv, 2) ^ rotl(inv, 3) ^ rotl(inv, 4) ^ 0x63
}

// gfMul multiplies in GF(2⁸) modulo x⁸+x⁴+x³+x+1 without branches.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		a = xtime(a)
		b >>= 1
	}
	return p
}

// xtime multiplies by x in GF(2⁸).
func xtime(a byte) byte { return a<<1 ^ 0x1b&-(a>>7) }
