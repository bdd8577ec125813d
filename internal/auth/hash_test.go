package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// cheapHash encodes an argon2id hash of token with the smallest parameters
// parseHash accepts (8 KiB, 1 pass), so that tests needing many
// verifications stay fast. VerifyToken reads the parameters from the hash,
// which is what makes this possible.
func cheapHash(tb testing.TB, token string) string {
	tb.Helper()
	salt := make([]byte, saltLen)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(token), salt, 1, 8, 1, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(sum))
}

func TestHashToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret+token/with=odd chars"
	h1, h2 := HashToken(token), HashToken(token)

	t.Run("PHC format with current parameters", func(t *testing.T) {
		want := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads)
		if !strings.HasPrefix(h1, want) {
			t.Errorf("HashToken = %q, want prefix %q", h1, want)
		}
		if strings.Contains(h1, token) {
			t.Errorf("hash %q contains the token", h1)
		}
		p, salt, sum, err := parseHash(h1)
		if err != nil {
			t.Fatalf("parseHash(HashToken()) = %v", err)
		}
		if p != (argonParams{memory: argonMemory, time: argonTime, threads: argonThreads}) {
			t.Errorf("params = %+v", p)
		}
		if len(salt) != saltLen || len(sum) != argonKeyLen {
			t.Errorf("salt %d bytes, sum %d bytes; want %d, %d", len(salt), len(sum), saltLen, argonKeyLen)
		}
	})
	t.Run("salt differs between two hashes", func(t *testing.T) {
		if h1 == h2 {
			t.Fatalf("two hashes of the same token are equal: %q", h1)
		}
		_, s1, _, _ := parseHash(h1)
		_, s2, _, _ := parseHash(h2)
		if string(s1) == string(s2) {
			t.Errorf("two hashes share the salt %x", s1)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		for i, h := range []string{h1, h2} {
			ok, err := VerifyToken(h, token)
			if err != nil || !ok {
				t.Errorf("VerifyToken(hash %d, right token) = %v, %v; want true, nil", i, ok, err)
			}
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		for _, wrong := range []string{"", token + " "} {
			ok, err := VerifyToken(h1, wrong)
			if err != nil || ok {
				t.Errorf("VerifyToken(hash, %q) = %v, %v; want false, nil", wrong, ok, err)
			}
		}
	})
}

func TestVerifyTokenUsesStoredParameters(t *testing.T) {
	t.Parallel()
	h := cheapHash(t, "tok")
	if ok, err := VerifyToken(h, "tok"); err != nil || !ok {
		t.Errorf("VerifyToken(cheap hash, right token) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := VerifyToken(h, "tok2"); err != nil || ok {
		t.Errorf("VerifyToken(cheap hash, wrong token) = %v, %v; want false, nil", ok, err)
	}
}

func TestParseHashMalformed(t *testing.T) {
	t.Parallel()
	b64 := base64.RawStdEncoding.EncodeToString
	salt, sum := b64(make([]byte, 16)), b64(make([]byte, 32))
	good := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + sum }
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"not PHC", "plaintext-token"},
		{"too few parts", "$argon2id$v=19$m=8,t=1,p=1$" + salt},
		{"too many parts", good("m=8,t=1,p=1") + "$extra"},
		{"text before first $", "x" + good("m=8,t=1,p=1")},
		{"argon2i", "$argon2i$v=19$m=8,t=1,p=1$" + salt + "$" + sum},
		{"bcrypt", "$2a$10$" + salt + "$" + sum + "$x"},
		{"version not a number", "$argon2id$v=x$m=8,t=1,p=1$" + salt + "$" + sum},
		{"version missing", "$argon2id$$m=8,t=1,p=1$" + salt + "$" + sum},
		{"old version 16", "$argon2id$v=16$m=8,t=1,p=1$" + salt + "$" + sum},
		{"params garbled", good("m=a,t=1,p=1")},
		{"params missing p", good("m=8,t=1")},
		{"params in other order", good("t=1,m=8,p=1")},
		{"negative memory", good("m=-1,t=1,p=1")},
		{"threads overflow uint8", good("m=8,t=1,p=256")},
		{"memory overflow uint32", good("m=4294967296,t=1,p=1")},
		{"memory below 8 KiB", good("m=7,t=1,p=1")},
		{"memory above 1 GiB", good("m=1048577,t=1,p=1")},
		{"zero passes", good("m=8,t=0,p=1")},
		{"too many passes", good("m=8,t=17,p=1")},
		{"zero threads", good("m=8,t=1,p=0")},
		{"salt not base64", "$argon2id$v=19$m=8,t=1,p=1$!!!!$" + sum},
		{"salt padded", "$argon2id$v=19$m=8,t=1,p=1$" + base64.StdEncoding.EncodeToString(make([]byte, 16)) + "$" + sum},
		{"salt too short", "$argon2id$v=19$m=8,t=1,p=1$" + b64(make([]byte, 7)) + "$" + sum},
		{"sum not base64", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$****"},
		{"sum too short", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + b64(make([]byte, 15))},
		{"sum too long", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + b64(make([]byte, 65))},
		{"sum empty", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, _, err := parseHash(tt.hash); err != errBadHash {
				t.Errorf("parseHash(%q) error = %v, want errBadHash", tt.hash, err)
			}
			ok, err := VerifyToken(tt.hash, "token")
			if err == nil || ok {
				t.Errorf("VerifyToken(%q) = %v, %v; want false and an error", tt.hash, ok, err)
			}
		})
	}
}

func TestParseHashBounds(t *testing.T) {
	t.Parallel()
	b64 := base64.RawStdEncoding.EncodeToString
	salt, sum := b64(make([]byte, 8)), b64(make([]byte, 16))
	// Only parsed, never verified: the upper bounds would cost a GiB.
	for _, tt := range []struct {
		name, params string
		want         argonParams
	}{
		{"smallest", "m=8,t=1,p=1", argonParams{memory: 8, time: 1, threads: 1}},
		{"largest", "m=1048576,t=16,p=255", argonParams{memory: 1 << 20, time: 16, threads: 255}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, s, h, err := parseHash("$argon2id$v=19$" + tt.params + "$" + salt + "$" + sum)
			if err != nil {
				t.Fatalf("parseHash: %v", err)
			}
			if p != tt.want || len(s) != 8 || len(h) != 16 {
				t.Errorf("parseHash = %+v, %d-byte salt, %d-byte sum", p, len(s), len(h))
			}
		})
	}
}

func FuzzParseHash(f *testing.F) {
	f.Add(HashToken("seed"))
	f.Add(cheapHash(f, "seed"))
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=1048576,t=16,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=16$m=-1,t=0,p=256$$")
	f.Add("")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, sum, err := parseHash(encoded)
		if err != nil {
			if err != errBadHash {
				t.Fatalf("parseHash error = %v, want errBadHash", err)
			}
			return
		}
		// Whatever parses must be safe to hand to argon2.
		if p.memory < 8 || p.memory > 1<<20 || p.time < 1 || p.time > 16 || p.threads < 1 {
			t.Fatalf("parseHash(%q) accepted params %+v", encoded, p)
		}
		if len(salt) < 8 || len(sum) < 16 || len(sum) > 64 {
			t.Fatalf("parseHash(%q) accepted %d-byte salt, %d-byte sum", encoded, len(salt), len(sum))
		}
		// Re-encoding canonically parses to the same values.
		b64 := base64.RawStdEncoding.EncodeToString
		again := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads, b64(salt), b64(sum))
		p2, salt2, sum2, err := parseHash(again)
		if err != nil || p2 != p || string(salt2) != string(salt) || string(sum2) != string(sum) {
			t.Fatalf("re-encoded %q parses to %+v, %x, %x, %v", again, p2, salt2, sum2, err)
		}
	})
}
