package fastpath

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/localca"
)

// coalescingPair returns a Listener's connection with coalescing on, and
// the client's end of it.
func coalescingPair(t *testing.T) (*clientConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, 0, 10*time.Second, new(atomic.Uint64))
	t.Cleanup(func() { l.Close() })
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := c.(*clientConn)
	t.Cleanup(func() { cc.Close() })
	cc.co.Store(new(coalescer))
	return cc, peer
}

// kept is what the connection's bracket holds.
func kept(c *clientConn) string {
	co := c.co.Load()
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.buf == nil {
		return ""
	}
	return string(*co.buf)
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCoalesceBracket checks the rule: writes between a write deadline in
// the future and the next SetWriteDeadline are kept and then sent, in
// order; outside a bracket, and under a deadline already past, they go
// straight out; Close sends what a bracket kept.
func TestCoalesceBracket(t *testing.T) {
	t.Run("kept inside a bracket, sent at its end", func(t *testing.T) {
		c, peer := coalescingPair(t)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		c.Write([]byte("one "))
		c.Write([]byte("two "))
		if got := kept(c); got != "one two " {
			t.Fatalf("kept %q, want both writes", got)
		}
		c.SetWriteDeadline(time.Time{})
		if got := kept(c); got != "" {
			t.Fatalf("kept %q after the bracket", got)
		}
		c.Write([]byte("three"))
		if got := kept(c); got != "" {
			t.Fatalf("kept %q outside a bracket", got)
		}
		if got := readN(t, peer, 13); got != "one two three" {
			t.Fatalf("peer read %q", got)
		}
	})
	t.Run("a new deadline ends the bracket", func(t *testing.T) {
		c, peer := coalescingPair(t)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		c.Write([]byte("a"))
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		if got := kept(c); got != "" {
			t.Fatalf("kept %q", got)
		}
		if got := readN(t, peer, 1); got != "a" {
			t.Fatalf("peer read %q", got)
		}
	})
	t.Run("a deadline already past opens no bracket", func(t *testing.T) {
		c, _ := coalescingPair(t)
		c.SetWriteDeadline(time.Now().Add(-time.Second))
		if _, err := c.Write([]byte("late")); err == nil || kept(c) != "" {
			t.Fatalf("write under a past deadline: err %v, kept %q", err, kept(c))
		}
	})
	t.Run("Close sends what was kept", func(t *testing.T) {
		c, peer := coalescingPair(t)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		c.Write([]byte("bye"))
		c.Close()
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(peer); string(got) != "bye" || err != nil {
			t.Fatalf("peer read %q, %v", got, err)
		}
	})
	t.Run("past coalesceMax the bracket sends what it has", func(t *testing.T) {
		c, peer := coalescingPair(t)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		big := bytes.Repeat([]byte("x"), coalesceMax)
		c.Write(big)
		c.Write([]byte("y"))
		if got := kept(c); got != "y" {
			t.Fatalf("kept %d bytes, want the last write only", len(got))
		}
		if got := readN(t, peer, coalesceMax); got != string(big) {
			t.Fatal("peer read other bytes")
		}
		c.SetWriteDeadline(time.Time{})
		if got := readN(t, peer, 1); got != "y" {
			t.Fatalf("peer read %q", got)
		}
	})
}

// TestCoalesceHTTP2 serves HTTP/2 and HTTP/1.1 over TLS from a Listener as
// the PoP does (ConnState, WriteByteTimeout): HTTP/2 connections coalesce
// and their responses arrive whole; HTTP/1.1 ones do not coalesce.
func TestCoalesceHTTP2(t *testing.T) {
	leaf, ca, err := localca.SelfSigned([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, 0, 10*time.Second, new(atomic.Uint64))
	body := strings.Repeat("0123456789abcdef", 100<<10) // 1.6 MB
	var coalescing atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 {
				io.WriteString(w, body)
				return
			}
			io.WriteString(w, "h1")
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, NextProtos: []string{"h2", "http/1.1"}},
		ConnState: func(c net.Conn, s http.ConnState) {
			ConnState(c, s)
			if tc, ok := c.(*tls.Conn); ok && s == http.StateActive {
				if tc.NetConn().(*clientConn).co.Load() != nil {
					coalescing.Add(1)
				} else {
					coalescing.Add(-1000)
				}
			}
		},
		HTTP2: &http.HTTP2Config{WriteByteTimeout: 10 * time.Second},
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	defer func() { srv.Close(); <-done }()

	for _, proto := range []string{"h2", "http/1.1"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
		if proto == "http/1.1" {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		coalescing.Store(0)
		for range 3 {
			resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := body
			if proto == "http/1.1" {
				want = "h1"
			}
			if err != nil || string(got) != want {
				t.Fatalf("%s: %d bytes, %v", proto, len(got), err)
			}
		}
		tr.CloseIdleConnections()
		if n := coalescing.Load(); (proto == "h2") != (n > 0) {
			t.Errorf("%s: coalescing %d", proto, n)
		}
	}
}
