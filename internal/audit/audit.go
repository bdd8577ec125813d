// Package audit writes the audit log: one JSON line per key access or
// admin action, on a stream separate from the operational log (a file or
// stdout).
//
// # What a record holds
//
// A [Record] says who (identity, request id, remote address), what
// (operation, key, key version, encryption context), and the result. It
// has no field that could carry key material, plaintext or a token, and
// must never gain one: the encryption context is, by definition (as in AWS
// KMS), not secret, and callers must not put secrets in it.
//
// # When the sink is slow or full
//
// Records go through a bounded queue to one writer goroutine, so a slow
// disk or a blocked stdout pipe never stalls request handling by itself.
// What happens when the queue is full is the operator's choice:
//
//   - Fail-open (the default): the record is dropped, [Logger.Dropped]
//     (exported as kms_audit_dropped_total) increments, and a warning is
//     logged at most every 10 seconds. The server keeps serving. This is
//     the opposite of Vault, whose blocked audit device freezes every
//     request.
//   - Fail-closed ([Options.FailClosed]): [Logger.Log] waits until the
//     record is written, and returns an error wrapping kms.ErrUnavailable
//     (HTTP 503) when the queue is full, the sink fails, or ctx ends first.
//     The caller must then refuse the operation; for reads it calls Log
//     before returning the key, so no key leaves unaudited.
//
// "Written" means the write to the file or stdout returned; the audit log
// is not fsynced per record.
//
// See docs/operations.md, section "Audit".
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppmlkms/kms/internal/kms"
)

// DroppedMetric is the name under which the server exports [Logger.Dropped].
const DroppedMetric = "kms_audit_dropped_total"

// Defaults for [Options].
const (
	DefaultQueueSize    = 4096
	DefaultDrainTimeout = 5 * time.Second
	warnEvery           = 10 * time.Second
	maxBatch            = 256
)

// Record is one audit event. Every field is safe to store and show to an
// auditor; none may ever hold key material, plaintext or a token.
type Record struct {
	// Time of the event; Log sets it to now when zero.
	Time time.Time `json:"time"`
	// RequestID correlates the record with the operational log.
	RequestID string `json:"request_id,omitempty"`
	// Identity is the authenticated caller ("user:alice", "admin"), or ""
	// if authentication failed.
	Identity string `json:"identity"`
	// Remote is the client address.
	Remote string `json:"remote,omitempty"`
	// Operation names the action ("get_data_key", "rotate_root", ...).
	Operation string `json:"operation"`
	// Key names the key acted on (for example "alice/pk1" or
	// "alice/pk1/dk1"), if any.
	Key string `json:"key,omitempty"`
	// KeyVersion is the key version used, if any.
	KeyVersion int `json:"key_version,omitempty"`
	// Context is the caller's encryption context, which is not secret.
	Context map[string]string `json:"context,omitempty"`
	// Result is "ok" or the error code returned ("not_found", ...).
	Result string `json:"result"`
	// Insecure marks a request that used a weaker path the server allows
	// for compatibility (for example a BigDL token in the URL).
	Insecure bool `json:"insecure"`
}

// Options configure a [Logger]. Zero values take the defaults.
type Options struct {
	// Path is the file records are appended to (created with mode 0600);
	// "" or "-" means stdout.
	Path string
	// Writer, if set, receives the records instead of Path. It is not
	// closed by Close.
	Writer io.Writer
	// FailClosed makes Log wait for the write and fail when the record
	// cannot be written (see the package doc).
	FailClosed bool
	// QueueSize bounds the records waiting for the writer (default 4096).
	QueueSize int
	// DrainTimeout bounds how long Close waits for queued records to be
	// written (default 5s).
	DrainTimeout time.Duration
	// Logger receives warnings about dropped records; none if nil.
	Logger *slog.Logger
}

// Errors returned by Log in fail-closed mode. They wrap kms.ErrUnavailable.
var (
	ErrFull   = fmt.Errorf("audit log queue is full: %w", kms.ErrUnavailable)
	ErrClosed = fmt.Errorf("audit log is closed: %w", kms.ErrUnavailable)
)

// Logger writes audit records. It is safe for concurrent use. A nil
// *Logger discards records (audit disabled).
type Logger struct {
	opt     Options
	w       io.Writer
	file    *os.File // owned, closed by Close
	queue   chan entry
	stopped chan struct{}
	log     *slog.Logger

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool

	dropped  atomic.Uint64
	lastWarn atomic.Int64 // unix nanoseconds of the last drop warning
}

type entry struct {
	line []byte
	done chan error // fail-closed only; buffered, receives the write result
}

// New opens the sink and starts the writer goroutine. It returns an error
// if the file cannot be opened. Call Close to drain and stop.
func New(opt Options) (*Logger, error) {
	if opt.QueueSize <= 0 {
		opt.QueueSize = DefaultQueueSize
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = DefaultDrainTimeout
	}
	l := &Logger{opt: opt, w: opt.Writer, log: opt.Logger,
		queue: make(chan entry, opt.QueueSize), stopped: make(chan struct{})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.w == nil {
		if opt.Path == "" || opt.Path == "-" {
			l.w = os.Stdout
		} else {
			f, err := os.OpenFile(opt.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return nil, fmt.Errorf("open audit log: %w", err)
			}
			l.w, l.file = f, f
		}
	}
	go l.run()
	return l, nil
}

// Log queues r for writing; it sets r.Time to now if zero.
//
// Fail-open (default): Log never blocks and returns nil; when the queue is
// full or the logger is closed, the record is dropped and counted.
//
// Fail-closed: Log returns after the record is written, or an error
// wrapping kms.ErrUnavailable if the queue is full ([ErrFull]), the logger
// is closed ([ErrClosed]), the write fails, or ctx ends first (the record
// may then still be written later).
func (l *Logger) Log(ctx context.Context, r Record) error {
	if l == nil {
		return nil
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	line, err := json.Marshal(r)
	if err != nil { // cannot happen for Record; be safe
		return l.lost(fmt.Errorf("encode audit record: %w", kms.ErrUnavailable))
	}
	e := entry{line: append(line, '\n')}
	if l.opt.FailClosed {
		e.done = make(chan error, 1)
	}
	if err := l.enqueue(e); err != nil {
		return l.lost(err)
	}
	if !l.opt.FailClosed {
		return nil
	}
	select {
	case err := <-e.done:
		if err != nil {
			return fmt.Errorf("write audit log: %v: %w", err, kms.ErrUnavailable)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit log did not confirm the write: %v: %w", ctx.Err(), kms.ErrUnavailable)
	}
}

func (l *Logger) enqueue(e entry) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.queue <- e:
		return nil
	default:
		return ErrFull
	}
}

// lost accounts for a record that was not queued: fail-open counts it and
// returns nil, fail-closed returns err.
func (l *Logger) lost(err error) error {
	if l.opt.FailClosed {
		return err
	}
	l.drop(1, err)
	return nil
}

// Dropped returns how many records were lost in fail-open mode (queue full,
// logger closed, or write error) since start. Fail-closed mode never drops
// silently: its losses are errors returned by Log. Exported as
// [DroppedMetric].
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

func (l *Logger) drop(n int, cause error) {
	total := l.dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last >= int64(warnEvery) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("audit records dropped", "dropped_total", total, "cause", cause.Error())
	}
}

// Close stops accepting records, waits up to DrainTimeout for the queued
// ones to be written, and closes the file it opened. It returns an error if
// the sink did not drain in time (the file is then left open for the
// blocked writer). Close is idempotent.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	select {
	case <-l.stopped:
	case <-time.After(l.opt.DrainTimeout):
		return fmt.Errorf("audit log did not drain within %v; %d records pending", l.opt.DrainTimeout, len(l.queue))
	}
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

// run is the writer goroutine: it writes queued records in batches, one
// flush per batch, and reports each batch's result.
func (l *Logger) run() {
	defer close(l.stopped)
	bw := bufio.NewWriterSize(l.w, 64<<10)
	batch := make([]entry, 0, maxBatch)
	dirty := false // the last failed batch may have left a partial line
	for e := range l.queue {
		batch = append(batch[:0], e)
		for len(batch) < maxBatch && len(l.queue) > 0 {
			batch = append(batch, <-l.queue)
		}
		var err error
		if dirty {
			bw.WriteByte('\n')
		}
		for _, e := range batch {
			bw.Write(e.line) // the error is sticky; Flush returns it
		}
		err = bw.Flush()
		if err != nil {
			bw.Reset(l.w) // bufio errors are sticky; start clean
		}
		dirty = err != nil
		l.report(batch, err)
	}
}

func (l *Logger) report(batch []entry, err error) {
	lost := 0
	for _, e := range batch {
		if e.done != nil {
			e.done <- err
		} else if err != nil {
			lost++
		}
	}
	if lost > 0 {
		l.drop(lost, errors.New("write failed: "+err.Error()))
	}
}
