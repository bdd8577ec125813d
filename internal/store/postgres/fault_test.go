package postgres

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ppmlkms/kms/internal/kms"
)

// TestUnreachable checks that Open fails fast, with ErrUnavailable and a
// message that names the server but not the password.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close() // nothing listens there now
	start := time.Now()
	dsn := fmt.Sprintf("postgres://kms:%s@127.0.0.1:%d/kms?sslmode=disable", password, addr.Port)
	_, err = Open(t.Context(), dsn, Options{QueryTimeout: 2 * time.Second}, nil)
	if !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("open unreachable: want ErrUnavailable, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("open unreachable took %v", d)
	}
	msg := err.Error()
	if strings.Contains(msg, password) || !strings.Contains(msg, fmt.Sprint(addr.Port)) {
		t.Errorf("message should name port %d and not the password: %s", addr.Port, msg)
	}
	t.Log(msg)
	for _, bad := range []string{
		"postgres://kms:" + password + "@127.0.0.1:notaport/kms",
		"postgres://kms:" + password + "@127.0.0.1/kms?sslmode=bogus",
		"host=127.0.0.1 password=" + password + " sslmode=bogus",
		"host=127.0.0.1 password='" + password + "' port=x",
	} {
		_, err := Open(t.Context(), bad, Options{}, nil)
		if err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("invalid DSN: want an error without the password, got %v", err)
		}
	}
}

// TestReconnectAfterTerminate terminates every connection of the pool on
// the server; the next calls must succeed on new connections.
func TestReconnectAfterTerminate(t *testing.T) {
	t.Parallel()
	name, dsn := newSchema(t)
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	if err := s.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 { // fill the pool with several connections
		wg.Go(func() { s.User(ctx, "alice") })
	}
	wg.Wait()
	killed := terminate(t, adminDB(t), name)
	if killed < 1 {
		t.Fatal("no pool connection to terminate")
	}
	t.Logf("terminated %d connections", killed)
	for i := range 10 {
		if _, err := s.User(ctx, "alice"); err != nil {
			t.Fatalf("read %d after terminate: %v", i, err)
		}
		if err := s.CreateUser(ctx, kms.User{Name: fmt.Sprint("u", i), TokenHash: "h", Created: time.Now()}); err != nil {
			t.Fatalf("write %d after terminate: %v", i, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// terminate ends the server sessions whose application_name is name and
// waits until they are gone.
func terminate(t *testing.T, admin *sql.DB, name string) int {
	t.Helper()
	var n int
	err := admin.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left int
		err := admin.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&left)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("terminated sessions are still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleSessionTimeout lets the server close idle sessions
// (idle_session_timeout, PostgreSQL 14 or newer) while the pool is told to
// keep them for an hour; calls after the timeout must succeed.
func TestIdleSessionTimeout(t *testing.T) {
	t.Parallel()
	_, dsn := newSchema(t)
	var num int
	if err := adminDB(t).QueryRow(`SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		t.Fatal(err)
	}
	if num < 140000 {
		t.Skip("idle_session_timeout needs PostgreSQL 14")
	}
	s := openStore(t, withParams(t, dsn, map[string]string{"idle_session_timeout": "1000"}),
		Options{ConnMaxIdleTime: time.Hour, ConnMaxLifetime: time.Hour})
	ctx := t.Context()
	if err := s.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		time.Sleep(1500 * time.Millisecond)
		if _, err := s.User(ctx, "alice"); err != nil {
			t.Fatalf("read %d after idle_session_timeout: %v", i, err)
		}
		if err := s.CreateUser(ctx, kms.User{Name: fmt.Sprint("u", i), TokenHash: "h", Created: time.Now()}); err != nil {
			t.Fatalf("write %d after idle_session_timeout: %v", i, err)
		}
	}
}

// TestDatabaseDown cuts the network to the server: calls fail fast with
// ErrUnavailable, and succeed again once the server is back.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	_, dsn := newSchema(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
	_, port, _ := net.SplitHostPort(p.addr())
	s := openStore(t, withParams(t, dsn, map[string]string{"host": "127.0.0.1", "port": port}), Options{QueryTimeout: 2 * time.Second})
	ctx := t.Context()
	if err := s.CreateUser(ctx, kms.User{Name: "alice", TokenHash: "h", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p.setDown(true)
	start := time.Now()
	_, err = s.User(ctx, "alice")
	if !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("read while down: want ErrUnavailable, got %v", err)
	}
	t.Log(err)
	if err := s.CreateUser(ctx, kms.User{Name: "bob", TokenHash: "h", Created: time.Now()}); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("write while down: want ErrUnavailable, got %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("ping while down: want ErrUnavailable, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("three calls while down took %v, want fast failures", d)
	}
	// The lifecycle calls: lists, a compare-and-swap and a transaction.
	_, listErr := s.ListUsers(ctx)
	_, putErr := s.PutDoc(ctx, kms.Doc{Kind: "k", ID: "i", Revision: 1})
	for name, err := range map[string]error{
		"list":    listErr,
		"put doc": putErr,
		"destroy": s.DestroyPrimaryKey(ctx, "alice", "pk"),
	} {
		if !errors.Is(err, kms.ErrUnavailable) {
			t.Errorf("%s while down: want ErrUnavailable, got %v", name, err)
		}
	}
	p.setDown(false)
	if _, err := s.User(ctx, "alice"); err != nil {
		t.Fatalf("read after recovery: %v", err)
	}
	if err := s.CreateUser(ctx, kms.User{Name: "bob", TokenHash: "h", Created: time.Now()}); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
}

// proxy forwards TCP connections to a server. While down, it cuts every
// connection and refuses new ones, as a server that went away would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// track registers a forwarded pair, or closes it if the proxy is down.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		if p.down {
			c.Close()
		} else {
			p.conns[c] = struct{}{}
		}
	}
	return !p.down
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
