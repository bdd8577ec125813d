package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close, as nginx's lingering_close does: when kmsd closes a
// client connection it first shuts down its sending side (FIN), then reads
// and discards what the client still sends (its TLS close_notify, the rest
// of a refused body) for a short while, and only then closes the socket.
//
// Without it nearly every "Connection: close" exchange ended in an RST from
// kmsd: net/http closes such a connection as soon as the response is
// written, and the client's close_notify, sent when it closes after reading
// the response, reaches a closed socket, which the kernel answers with RST
// (TestLingeringClose shows it). BigDL's clients open a new connection per
// request, so that was every request. Behind kube-proxy those RSTs showed
// as sporadic "connection refused" on the Service's external IP for
// several seconds whenever a pod stopped (a rolling upgrade, a deleted
// pod): connection-tracking entries left in CLOSE state still DNAT to the
// old pod. With lingering close the same e2e steps see no refused
// connection.

const (
	lingerTimeout  = 2 * time.Second // longest wait for the client to close
	lingerMaxBytes = 64 << 10        // most bytes read and discarded
)

// lingerListener hands out connections that close gracefully.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, err
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close sends FIN at once and closes the socket in the background once the
// client has closed its side, or after lingerTimeout: callers such as
// http.Server.Shutdown close many connections in a row and must not wait.
func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if err := c.TCPConn.CloseWrite(); err != nil {
			c.TCPConn.Close()
			return
		}
		go func() {
			c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			io.Copy(io.Discard, io.LimitReader(c.TCPConn, lingerMaxBytes))
			c.TCPConn.Close()
		}()
	})
	return nil
}
