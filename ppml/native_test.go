package ppml

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// TestNativeKeySizes reads nativeaescbc files under AES-128, -192 and -256
// data keys, which take different paths through package cbc's assembly.
func TestNativeKeySizes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{16, 24, 32} {
		key := base64.StdEncoding.EncodeToString(randBytes(n, uint64(n)))
		for _, size := range []int{0, 15, 16, 127, 128, 129, bufSize + 3} {
			t.Run(fmt.Sprintf("AES-%d/%d", 8*n, size), func(t *testing.T) {
				t.Parallel()
				pt := randBytes(size, uint64(size))
				checkDecrypt(t, makeNative(t, key, randBytes(16, 9), pt), FormatNativeAESCBC, key, pt)
			})
		}
	}
}
