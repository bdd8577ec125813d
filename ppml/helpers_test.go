package ppml

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// The spec vector, ../../shared/spec/bigdl-compat.md §3.
const (
	vecKey  = "AAECAwQFBgcICQoLDA0ODw=="
	vecEDK  = "0f8fad5b-d9cb-469f-a165-70867728950e"
	vecPT   = "hello,world\n"
	vecCT   = "be62e850a583017b2bb50bbbf5f771ae"
	vecTag  = "e308b9f27fe15e5ce3e24f81ef4fc12fc088153607cc3dc36e2f0e3564398223"
	vecSHA  = "8d0a0de93c49fa9c03ba0d18d8a350e7114e60f58c08e411f7ad4726a6fa78c9"
	vecSize = 448
)

func vecIV() []byte {
	iv := make([]byte, 16)
	for i := range iv {
		iv[i] = 0xa0 + byte(i)
	}
	return iv
}

// The helpers below build files with the standard library alone, from the
// spec, so they check the package rather than share its bugs.

func stdlibCBC(t testing.TB, key, iv, pt []byte) []byte {
	t.Helper()
	p := 16 - len(pt)%16
	padded := append(append([]byte(nil), pt...), bytes.Repeat([]byte{byte(p)}, p)...)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)
	return padded
}

func stringKeys(s string) (aesKey, macKey []byte) {
	aesKey = make([]byte, 16)
	copy(aesKey, s[16:min(32, len(s))])
	return aesKey, []byte(s[:16])
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func makeCurrent(t testing.TB, key, edk string, iv, pt []byte) []byte {
	t.Helper()
	aesKey, macKey := stringKeys(key)
	hdr := make([]byte, 400)
	binary.BigEndian.PutUint32(hdr[0:], uint32(len(edk)))
	binary.BigEndian.PutUint32(hdr[4:], 16)
	n := 8 + copy(hdr[8:], edk)
	n += copy(hdr[n:], iv)
	for i := n; i < 400; i++ {
		hdr[i] = 0x80
	}
	ct := stdlibCBC(t, aesKey, iv, pt)
	return append(append(hdr, ct...), hmacSHA256(macKey, ct)...)
}

// makeLegacy builds a BigDL ≤ 2.2 file. With buggyTag, the tag covers only
// the first len(pt) ciphertext bytes, as BigDL 2.2's encryptStream wrote it.
func makeLegacy(t testing.TB, key string, iv, pt []byte, buggyTag bool) []byte {
	t.Helper()
	aesKey, macKey := stringKeys(key)
	hdr := []byte{0x80}
	hdr = binary.BigEndian.AppendUint64(hdr, 1700000000)
	hdr = append(hdr, iv...)
	ct := stdlibCBC(t, aesKey, iv, pt)
	covered := ct
	if buggyTag {
		covered = ct[:len(pt)]
	}
	return append(append(hdr, ct...), hmacSHA256(macKey, covered)...)
}

func makeNative(t testing.TB, key string, iv, pt []byte) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte(nil), iv...), stdlibCBC(t, raw, iv, pt)...)
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
