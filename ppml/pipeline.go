package ppml

import (
	"hash"
	"io"
	"sync/atomic"
)

// bufSize is the unit of work: large enough that goroutine hand-offs and
// syscalls cost nothing next to AES, small enough to keep memory flat.
const bufSize = 1 << 20

// nbuf buffers let the hasher lag the AES goroutine by up to two units.
const nbuf = 3

// job is a slice to hash and the buffer to recycle once it is hashed.
type job struct{ buf, data []byte }

// hasher runs HMAC on a second goroutine, pipelined with AES on the caller's.
// It owns a pool of buffers: get returns a free one, submit queues data for
// hashing (and, if w is set, writing to w) and recycles its buffer
// afterwards. With a nil hash it only recycles. A hasher is used by one
// goroutine.
type hasher struct {
	h    hash.Hash
	w    io.Writer
	free chan []byte
	jobs chan job
	done chan struct{}

	failed atomic.Bool // set after werr
	werr   error
}

func newHasher(h hash.Hash, size int, w io.Writer) *hasher {
	p := &hasher{h: h, w: w, free: make(chan []byte, nbuf)}
	for range nbuf {
		p.free <- make([]byte, size)
	}
	if h != nil {
		p.jobs = make(chan job, nbuf)
		p.done = make(chan struct{})
		go p.run()
	}
	return p
}

func (p *hasher) run() {
	defer close(p.done)
	for j := range p.jobs {
		p.h.Write(j.data)
		if p.w != nil && !p.failed.Load() {
			if _, err := p.w.Write(j.data); err != nil {
				p.werr = err
				p.failed.Store(true)
			}
		}
		p.free <- j.buf
	}
}

// err returns the first error from w, if there has been one yet.
func (p *hasher) err() error {
	if p.failed.Load() {
		return p.werr
	}
	return nil
}

// get returns a free buffer, waiting for the hasher if it needs to.
func (p *hasher) get() []byte { return <-p.free }

// submit hashes data, a part of buf, in order with earlier submissions.
// The caller may keep reading buf (not writing it) until its next get.
func (p *hasher) submit(buf, data []byte) {
	if p.h == nil {
		p.free <- buf
		return
	}
	p.jobs <- job{buf, data}
}

// wait stops the hasher after it has hashed everything submitted. After
// wait the caller may use p.h directly. It is safe to call more than once.
func (p *hasher) wait() {
	if p.jobs == nil {
		return
	}
	close(p.jobs)
	<-p.done
	p.jobs = nil
}

// tailReader reads r but holds back its last n bytes, so a decrypter can
// stream the ciphertext without knowing its length and find the tag at EOF.
type tailReader struct {
	r    io.Reader
	tail []byte // the last bytes seen, at most n
	n    int
	err  error
}

func newTailReader(r io.Reader, n int) *tailReader {
	return &tailReader{r: r, tail: make([]byte, 0, n), n: n}
}

// Read returns bytes that are known not to be among the last n of r. At EOF
// it returns io.EOF and the held bytes are available from held.
func (t *tailReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) <= t.n {
		// Slow path, never taken by this package: the fast path needs
		// room for the held bytes plus one.
		big := make([]byte, t.n+len(p))
		k, err := t.Read(big)
		return copy(p, big[:k]), err
	}
	m := copy(p, t.tail)
	for m <= t.n && t.err == nil {
		k, err := t.r.Read(p[m:])
		m += k
		t.err = err
	}
	if m <= t.n {
		t.tail = append(t.tail[:0], p[:m]...)
		return 0, t.err
	}
	t.tail = append(t.tail[:0], p[m-t.n:m]...)
	return m - t.n, nil
}

// held returns the bytes held back: the last n bytes of r, or all of r if
// it was shorter. It is meaningful only after Read has returned io.EOF.
func (t *tailReader) held() []byte { return t.tail }
