package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// blockingWriter blocks every Write until release is closed, then appends
// to buf.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newBlockingWriter() *blockingWriter { return &blockingWriter{release: make(chan struct{})} }

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func record(i int) Record {
	return Record{RequestID: "r" + string(rune('a'+i%26)), Identity: "user:alice", Operation: "get_data_key",
		Key: "alice/pk1/dk1", KeyVersion: 2, Context: map[string]string{"job": "etl"}, Result: "ok"}
}

func parseLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestRecordsAreJSONLines(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, err := New(Options{Writer: &buf})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.Log(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, buf.String())
	if len(lines) != 100 {
		t.Fatalf("%d lines, want 100", len(lines))
	}
	m := lines[0]
	for k, want := range map[string]any{"identity": "user:alice", "operation": "get_data_key",
		"key": "alice/pk1/dk1", "key_version": json.Number("2"), "result": "ok", "insecure": false} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if ctx, _ := m["context"].(map[string]any); ctx["job"] != "etl" {
		t.Errorf("context = %v", m["context"])
	}
	if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
}

func TestFailOpenDoesNotBlock(t *testing.T) {
	t.Parallel()
	w := newBlockingWriter()
	l, err := New(Options{Writer: w, QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var worst time.Duration
	for i := range n {
		start := time.Now()
		if err := l.Log(t.Context(), record(i)); err != nil {
			t.Fatalf("fail-open Log returned %v", err)
		}
		worst = max(worst, time.Since(start))
	}
	// The writer holds at most one batch and the queue 4 records; every
	// other record was dropped, without waiting for the sink.
	if worst > 50*time.Millisecond {
		t.Errorf("slowest Log took %v with a blocked sink", worst)
	}
	dropped := l.Dropped()
	if dropped < n-4-maxBatch || dropped > n {
		t.Fatalf("dropped %d of %d", dropped, n)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(parseLines(t, w.String())); uint64(got)+dropped != n {
		t.Fatalf("%d written + %d dropped != %d", got, dropped, n)
	}
}

func TestFailOpenCountsWriteErrors(t *testing.T) {
	t.Parallel()
	l, _ := New(Options{Writer: failingWriter{}})
	for i := range 10 {
		if err := l.Log(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if l.Dropped() != 10 {
		t.Fatalf("dropped %d, want 10", l.Dropped())
	}
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	t.Run("written before Log returns", func(t *testing.T) {
		t.Parallel()
		var buf syncBuffer
		l, _ := New(Options{Writer: &buf, FailClosed: true})
		defer l.Close()
		if err := l.Log(t.Context(), record(0)); err != nil {
			t.Fatal(err)
		}
		if len(parseLines(t, buf.String())) != 1 {
			t.Fatal("record not written when Log returned")
		}
	})
	t.Run("slow sink: deadline, then full queue", func(t *testing.T) {
		t.Parallel()
		w := newBlockingWriter()
		l, _ := New(Options{Writer: w, FailClosed: true, QueueSize: 2})
		defer func() { close(w.release); l.Close() }()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if err := l.Log(ctx, record(0)); !errors.Is(err, kms.ErrUnavailable) {
			t.Fatalf("Log with a blocked sink = %v, want ErrUnavailable", err)
		}
		// Fill the queue (the writer holds the first record).
		var err error
		start := time.Now()
		for i := 0; i < 10 && !errors.Is(err, ErrFull); i++ {
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			err = l.Log(ctx, record(i))
			cancel()
		}
		if !errors.Is(err, ErrFull) || !errors.Is(err, kms.ErrUnavailable) {
			t.Fatalf("Log with a full queue = %v, want ErrFull", err)
		}
		if time.Since(start) > time.Second {
			t.Fatal("a full queue blocked Log")
		}
		if l.Dropped() != 0 {
			t.Fatal("fail-closed counted a drop")
		}
	})
	t.Run("sink error", func(t *testing.T) {
		t.Parallel()
		l, _ := New(Options{Writer: failingWriter{}, FailClosed: true})
		defer l.Close()
		if err := l.Log(t.Context(), record(0)); !errors.Is(err, kms.ErrUnavailable) {
			t.Fatalf("Log with a failing sink = %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		l, _ := New(Options{Writer: &syncBuffer{}, FailClosed: true})
		l.Close()
		if err := l.Log(t.Context(), record(0)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Log after Close = %v", err)
		}
	})
}

func TestConcurrentLogAndClose(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, _ := New(Options{Writer: &buf, QueueSize: 16})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l.Log(context.Background(), record(g*1000+i))
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := uint64(len(parseLines(t, buf.String()))); got+l.Dropped() != 8*200 {
		t.Fatalf("%d written + %d dropped != 1600", got, l.Dropped())
	}
}

func TestFileSink(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	for range 2 { // appends across restarts
		l, err := New(Options{Path: path, FailClosed: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Log(t.Context(), record(0)); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseLines(t, string(b))); n != 2 {
		t.Fatalf("%d lines, want 2", n)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if _, err := New(Options{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "a.log")}); err == nil {
		t.Fatal("New opened a file in a missing directory")
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	if err := l.Log(t.Context(), record(0)); err != nil || l.Dropped() != 0 || l.Close() != nil {
		t.Fatal("nil Logger is not a no-op")
	}
}

// TestRecordCannotCarrySecrets pins the fields of Record. A new field must
// be reviewed: it may never hold key material, plaintext or a token.
func TestRecordCannotCarrySecrets(t *testing.T) {
	allowed := map[string]reflect.Kind{
		"Time": reflect.Struct, "RequestID": reflect.String, "Identity": reflect.String,
		"Remote": reflect.String, "Operation": reflect.String, "Key": reflect.String,
		"KeyVersion": reflect.Int, "Context": reflect.Map, "Result": reflect.String,
		"Insecure": reflect.Bool,
	}
	typ := reflect.TypeFor[Record]()
	if typ.NumField() != len(allowed) {
		t.Fatalf("Record has %d fields, want %d: review the new field", typ.NumField(), len(allowed))
	}
	for f := range typ.Fields() {
		kind, ok := allowed[f.Name]
		if !ok || f.Type.Kind() != kind {
			t.Errorf("field %s %v is not allowed", f.Name, f.Type)
		}
		lower := strings.ToLower(f.Name)
		for _, bad := range []string{"token", "secret", "plaintext", "material", "password"} {
			if strings.Contains(lower, bad) {
				t.Errorf("field %s looks like a secret", f.Name)
			}
		}
	}
	if typ.Field(7).Type != reflect.TypeFor[map[string]string]() {
		t.Error("Context must be map[string]string")
	}
}

func BenchmarkLogFailOpen(b *testing.B) {
	l, _ := New(Options{Writer: &syncBuffer{}})
	defer l.Close()
	r := record(0)
	for b.Loop() {
		l.Log(context.Background(), r)
	}
}
