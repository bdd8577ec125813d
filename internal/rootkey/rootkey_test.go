package rootkey

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// bigdlRootKey is the root key from the BigDL KMS spec: the bytes 0x40..0x5f.
const bigdlRootKey = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

// logBuffer is a slog destination safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	var buf logBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// writeKeyFile writes text to dir/root.key with exactly mode perm.
func writeKeyFile(tb testing.TB, text string, perm os.FileMode) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "root.key")
	if err := os.WriteFile(p, []byte(text), perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // not subject to umask
		tb.Fatal(err)
	}
	return p
}

func bigdlKeyBytes() []byte {
	want := make([]byte, Len)
	for i := range want {
		want[i] = byte(0x40 + i)
	}
	return want
}

func TestFileCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	path := filepath.Join(dir, "root.key")
	logger, logs := newLogger()
	f := &File{Path: path, Create: true, Logger: logger}

	key, err := f.RootKey(t.Context())
	if err != nil {
		t.Fatalf("RootKey (create): %v", err)
	}
	if len(key) != Len {
		t.Fatalf("created key has %d bytes, want %d", len(key), Len)
	}
	if bytes.Equal(key, make([]byte, Len)) {
		t.Fatal("created key is all zeros")
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text))); err != nil || !bytes.Equal(got, key) {
		t.Errorf("file holds %q, not the base64 of the returned key", text)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only root.key (temp file left behind?)", len(entries))
	}

	if !strings.Contains(logs.String(), "GENERATED A NEW ROOT KEY") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning about the new key in the log:\n%s", logs)
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(text))) {
		t.Error("the log contains the key")
	}

	// The next start loads the same key, with or without Create, and
	// does not claim to generate one.
	for _, create := range []bool{true, false} {
		logger2, logs2 := newLogger()
		again, err := (&File{Path: path, Create: create, Logger: logger2}).RootKey(t.Context())
		if err != nil {
			t.Fatalf("RootKey (Create=%v, existing): %v", create, err)
		}
		if !bytes.Equal(again, key) {
			t.Errorf("RootKey (Create=%v, existing) returned another key", create)
		}
		if logs2.String() != "" {
			t.Errorf("loading a 0600 key file logged:\n%s", logs2)
		}
	}
}

func TestFileCreateDistinctKeys(t *testing.T) {
	t.Parallel()
	k1, err1 := (&File{Path: filepath.Join(t.TempDir(), "root.key"), Create: true}).RootKey(t.Context())
	k2, err2 := (&File{Path: filepath.Join(t.TempDir(), "root.key"), Create: true}).RootKey(t.Context())
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if bytes.Equal(k1, k2) {
		t.Error("two created root keys are equal")
	}
}

func TestFileMissingWithoutCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "root.key")
	_, err := (&File{Path: path}).RootKey(t.Context())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RootKey = %v, want an error wrapping fs.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RootKey without Create created %s", path)
	}
}

func TestFilePermissions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		perm os.FileMode
		warn bool
	}{
		{"0600 quiet", 0o600, false},
		{"0400 quiet", 0o400, false},
		{"0640 warns", 0o640, true},
		{"0604 warns", 0o604, true},
		{"0644 warns", 0o644, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeKeyFile(t, bigdlRootKey+"\n", tt.perm)
			logger, logs := newLogger()
			key, err := (&File{Path: path, Logger: logger}).RootKey(t.Context())
			if err != nil {
				t.Fatalf("RootKey: %v", err)
			}
			if !bytes.Equal(key, bigdlKeyBytes()) {
				t.Errorf("RootKey = %x", key)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "readable by group or others")
			if warned != tt.warn {
				t.Errorf("warned = %v, want %v; log:\n%s", warned, tt.warn, logs)
			}
			if strings.Contains(logs.String(), bigdlRootKey) {
				t.Error("the log contains the key")
			}
		})
	}
}

func TestFileBadContent(t *testing.T) {
	t.Parallel()
	const secret = "c2VjcmV0LWJ1dC1ub3QtYS1yb290LWtleQ=="
	path := writeKeyFile(t, secret, 0o600)
	_, err := (&File{Path: path, Create: true}).RootKey(t.Context())
	if err == nil {
		t.Fatal("RootKey accepted a 25-byte key")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the file's content", err)
	}
	// Create never replaces an existing (bad) file.
	if b, _ := os.ReadFile(path); string(b) != secret {
		t.Errorf("key file was rewritten to %q", b)
	}
}

var errorForm = regexp.MustCompile(`^root key (is not valid base64|must decode to 32 bytes, got \d+)$`)

func TestDecode(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	key32 := bytes.Repeat([]byte{0xa5}, 32)
	tests := []struct {
		name    string
		in      string
		want    []byte // nil: error
		wantErr string
	}{
		{name: "BigDL spec key", in: bigdlRootKey, want: bigdlKeyBytes()},
		{name: "trailing newline", in: bigdlRootKey + "\n", want: bigdlKeyBytes()},
		{name: "CRLF and surrounding blanks", in: " \t" + bigdlRootKey + " \r\n", want: bigdlKeyBytes()},
		{name: "leading newlines", in: "\n\n" + b64(key32), want: key32},
		{name: "empty", in: "", wantErr: "got 0"},
		{name: "blank", in: " \n\t", wantErr: "got 0"},
		{name: "not base64", in: "this is my root key, see!", wantErr: "not valid base64"},
		{name: "URL alphabet", in: strings.ReplaceAll(strings.ReplaceAll(b64(bytes.Repeat([]byte{0xfb, 0xff}, 16)), "+", "-"), "/", "_"), wantErr: "not valid base64"},
		{name: "hex, not base64", in: "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f", wantErr: "got 48"},
		{name: "16 bytes", in: b64(key32[:16]), wantErr: "got 16"},
		{name: "31 bytes", in: b64(key32[:31]), wantErr: "got 31"},
		{name: "33 bytes", in: b64(append(key32, 1)), wantErr: "got 33"},
		{name: "64 bytes", in: b64(append(key32, key32...)), wantErr: "got 64"},
		{name: "space inside", in: bigdlRootKey[:20] + " " + bigdlRootKey[20:], wantErr: "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			got, err := Decode(in)
			if string(in) != tt.in {
				t.Error("Decode modified its input")
			}
			if tt.want != nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("Decode = %x, %v; want %x", got, err, tt.want)
				}
				if len(got) != Len || cap(got) < Len {
					t.Errorf("len %d", len(got))
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode(%q) = %x, want an error", tt.in, got)
			}
			if got != nil {
				t.Errorf("Decode returned %x with the error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if !errorForm.MatchString(err.Error()) {
				t.Errorf("error %q is not one of the fixed forms (may leak input)", err)
			}
			if s := strings.TrimSpace(tt.in); len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains the input", err)
			}
		})
	}
}

func TestDecodeReturnsFreshSlice(t *testing.T) {
	t.Parallel()
	k1, _ := Decode([]byte(bigdlRootKey))
	k2, _ := Decode([]byte(bigdlRootKey))
	clear(k1) // the caller may zero its copy
	if !bytes.Equal(k2, bigdlKeyBytes()) {
		t.Error("zeroing one decoded key changed another")
	}
}

// Not parallel: t.Setenv.
func TestValueEnv(t *testing.T) {
	const name = "KMS_ROOTKEY_TEST_ROOT_KEY"
	v := &Value{Env: name}
	if d := v.Describe(); !strings.Contains(d, name) {
		t.Errorf("Describe() = %q, want it to name %s", d, name)
	}

	t.Run("unset", func(t *testing.T) {
		_, err := (&Value{Env: "KMS_ROOTKEY_TEST_NEVER_SET"}).RootKey(t.Context())
		if err == nil || !strings.Contains(err.Error(), "KMS_ROOTKEY_TEST_NEVER_SET") {
			t.Errorf("RootKey with the variable unset = %v, want an error naming it", err)
		}
	})
	t.Run("BigDL ROOT_KEY", func(t *testing.T) {
		t.Setenv(name, bigdlRootKey)
		key, err := v.RootKey(t.Context())
		if err != nil || !bytes.Equal(key, bigdlKeyBytes()) {
			t.Errorf("RootKey = %x, %v; want %x", key, err, bigdlKeyBytes())
		}
		if strings.Contains(v.Describe(), bigdlRootKey) {
			t.Error("Describe() contains the key")
		}
	})
	t.Run("with newline", func(t *testing.T) {
		t.Setenv(name, bigdlRootKey+"\n")
		if key, err := v.RootKey(t.Context()); err != nil || !bytes.Equal(key, bigdlKeyBytes()) {
			t.Errorf("RootKey = %x, %v", key, err)
		}
	})
	t.Run("set but empty", func(t *testing.T) {
		t.Setenv(name, "")
		if _, err := v.RootKey(t.Context()); err == nil {
			t.Error("RootKey accepted an empty variable")
		}
	})
	t.Run("invalid value not in error", func(t *testing.T) {
		const bad = "c2hvcnQtc2VjcmV0LXZhbHVl" // 18 bytes
		t.Setenv(name, bad)
		_, err := v.RootKey(t.Context())
		if err == nil {
			t.Fatal("RootKey accepted an 18-byte key")
		}
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q contains the value", err)
		}
	})
}

func TestValueFile(t *testing.T) {
	t.Parallel()
	t.Run("mounted secret", func(t *testing.T) {
		t.Parallel()
		path := writeKeyFile(t, bigdlRootKey+"\n", 0o644)
		v := &Value{Path: path}
		key, err := v.RootKey(t.Context())
		if err != nil || !bytes.Equal(key, bigdlKeyBytes()) {
			t.Errorf("RootKey = %x, %v", key, err)
		}
		if d := v.Describe(); !strings.Contains(d, path) {
			t.Errorf("Describe() = %q, want it to name %s", d, path)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := (&Value{Path: filepath.Join(t.TempDir(), "nope")}).RootKey(t.Context())
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("RootKey = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("bad content not in error", func(t *testing.T) {
		t.Parallel()
		const bad = "not-a-key but a secret!"
		_, err := (&Value{Path: writeKeyFile(t, bad, 0o600)}).RootKey(t.Context())
		if err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("RootKey = %v, want an error without the content", err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(bigdlRootKey))
	f.Add([]byte(" " + bigdlRootKey + "\r\n"))
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, 31))))
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, 33))))
	f.Add([]byte("root key"))
	f.Add([]byte("===="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		key, err := Decode(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if key != nil {
				t.Fatalf("Decode returned a key with error %v", err)
			}
			if !errorForm.MatchString(err.Error()) {
				t.Fatalf("error %q is not one of the fixed forms", err)
			}
			return
		}
		if len(key) != Len {
			t.Fatalf("Decode returned %d bytes", len(key))
		}
		// Parse then marshal gives back the input, up to surrounding space.
		if enc := base64.StdEncoding.EncodeToString(key); enc != string(bytes.TrimSpace(in)) {
			// Non-canonical encodings (unused low bits set) decode too;
			// they must at least decode to the same key.
			again, err := Decode([]byte(enc))
			if err != nil || !bytes.Equal(again, key) {
				t.Fatalf("re-encoded %q decodes to %x, %v; want %x", enc, again, err, key)
			}
		}
	})
}
