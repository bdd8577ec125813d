package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestLingeringClose: after a "Connection: close" exchange kmsd closes
// first, and the client's close_notify (which Go's and Java's clients send
// when they close) reaches a socket that still reads, so the connection
// ends with FIN on both sides and no RST (linger.go says why that matters
// behind kube-proxy). A closed socket would answer the close_notify with
// RST, and the client's next write would fail.
func TestLingeringClose(t *testing.T) {
	s := start(t, t.TempDir())
	for i := range 3 {
		raw, err := net.Dial("tcp", s.m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: kms\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		// The server's close_notify and FIN.
		if _, err := io.Copy(io.Discard, raw); err != nil {
			t.Fatalf("connection %d: waiting for the server's FIN: %v", i, err)
		}
		// Ours, after it: as a client that closes once it has read the
		// response.
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(10 * time.Second)) // CloseWrite set it to now
		time.Sleep(200 * time.Millisecond)
		if _, err := raw.Write([]byte{0}); err != nil {
			t.Fatalf("connection %d: the server reset the connection after its close: %v", i, err)
		}
		raw.(*net.TCPConn).CloseWrite()
	}
}
