package fastpath

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// A request the fast path cannot answer (a miss, a conditional, a range)
// but that has no body is lent to net/http for that one request: net/http
// reads it from a loanConn, answers it on the real connection, and once
// it has finished (the connection turns idle) the loanConn reports the end
// of input, net/http lets go, and the fast path reads the next request. So
// a keep-alive connection whose first request was a miss still has its
// hits answered by the fast path. Requests with a body, protocol upgrades
// and heads the fast path does not understand still hand the connection
// to net/http for good (bufferedConn).

// loanConn is the connection net/http sees for one lent request: reads
// return the request head, then block until net/http has answered (or a
// read deadline passes, as net/http's background read expects), then end;
// everything written goes to the real connection. Meanwhile watchClient
// reads the real connection, so that a client that resets or closes it is
// noticed at once, as net/http's own background read would: its next Read
// fails and net/http cancels the request's context (a lent miss then stops
// fetching for no one).
type loanConn struct {
	c  *clientConn // the TCP connection
	tc *tls.Conn   // the TLS connection over c; nil on the clear listener
	w  net.Conn    // where answers go (c or tc): writes, addresses, write deadlines

	mu       sync.Mutex
	head     []byte        // what is left to read of the request head
	idle     bool          // net/http answered and turned the connection idle
	closed   bool          // net/http closed it
	deadline time.Time     // the read deadline net/http set
	gone     error         // the client reset or closed the connection
	changed  chan struct{} // closed and replaced when any of the above change
	done     chan struct{} // closed by Close
}

func newLoanConn(c *clientConn, tc *tls.Conn, head []byte) *loanConn {
	l := &loanConn{
		c:       c,
		tc:      tc,
		w:       c,
		head:    bytes.Clone(head),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if tc != nil {
		l.w = tc
	}
	return l
}

// conn is the connection net/http is lent: on the clear listener one whose
// ReadFrom sends blob bodies with sendfile; over TLS one without (the bytes
// must go through TLS) whose ConnectionState net/http puts in Request.TLS,
// as it does for a *tls.Conn.
func (l *loanConn) conn() net.Conn {
	if l.tc != nil {
		return &tlsLoan{l}
	}
	return &clearLoan{l}
}

// clearLoan is a loanConn on the clear listener.
type clearLoan struct{ *loanConn }

// ReadFrom sends what r reads through the connection's ReadFrom
// (sendfile for blob bodies).
func (l *clearLoan) ReadFrom(r io.Reader) (int64, error) { return l.c.ReadFrom(r) }

// tlsLoan is a loanConn over TLS.
type tlsLoan struct{ *loanConn }

// ConnectionState is the TLS connection's state (net/http's Request.TLS).
func (l *tlsLoan) ConnectionState() tls.ConnectionState { return l.tc.ConnectionState() }

// Write writes to the client.
func (l *loanConn) Write(p []byte) (int, error) { return l.w.Write(p) }

// LocalAddr is the connection's local address.
func (l *loanConn) LocalAddr() net.Addr { return l.w.LocalAddr() }

// RemoteAddr is the client's address.
func (l *loanConn) RemoteAddr() net.Addr { return l.w.RemoteAddr() }

// SetWriteDeadline sets the write deadline of the real connection.
func (l *loanConn) SetWriteDeadline(t time.Time) error { return l.w.SetWriteDeadline(t) }

// notify wakes a blocked Read; l.mu must be held.
func (l *loanConn) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Read returns the request head, then blocks until the loan ends (io.EOF)
// or the read deadline passes.
func (l *loanConn) Read(p []byte) (int, error) {
	for {
		l.mu.Lock()
		if len(l.head) > 0 {
			n := copy(p, l.head)
			l.head = l.head[n:]
			l.mu.Unlock()
			return n, nil
		}
		if l.idle || l.closed {
			l.mu.Unlock()
			return 0, io.EOF
		}
		if l.gone != nil {
			err := l.gone
			l.mu.Unlock()
			return 0, err
		}
		deadline, changed := l.deadline, l.changed
		l.mu.Unlock()
		if deadline.IsZero() {
			<-changed
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		timer := time.NewTimer(wait)
		select {
		case <-changed:
			timer.Stop()
		case <-timer.C:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// SetReadDeadline sets the deadline of Read (the real connection is not
// read while it is lent).
func (l *loanConn) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	l.deadline = t
	l.notify()
	l.mu.Unlock()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (l *loanConn) SetDeadline(t time.Time) error {
	l.SetReadDeadline(t)
	return l.w.SetWriteDeadline(t)
}

// setIdle records that net/http has answered the request and would read
// the next one: the loan is over.
func (l *loanConn) setIdle() {
	l.mu.Lock()
	l.idle = true
	l.notify()
	l.mu.Unlock()
}

// Close ends the loan. The real connection stays open only when net/http
// answered in full and would have kept it (it turned idle first); the
// fast path then reads the next request.
func (l *loanConn) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.notify()
		close(l.done)
	}
	return nil
}

// CloseWrite ends the loan for good: net/http half-closes a connection it
// is about to close.
func (l *loanConn) CloseWrite() error {
	l.mu.Lock()
	l.idle = false
	l.mu.Unlock()
	if l.tc != nil {
		return l.tc.CloseWrite()
	}
	return l.c.CloseWrite()
}

// clientGone records that the client reset or closed the connection.
func (l *loanConn) clientGone(err error) {
	l.mu.Lock()
	l.gone = err
	l.notify()
	l.mu.Unlock()
}

// watchClient reads the real connection while a request is lent, so that
// the loan learns at once when the client goes away (see loanConn). It
// peeks through br, so a byte of a pipelined request stays there for the
// fast path; when one is already buffered there is nothing to watch. stop
// ends the watch (through a read deadline in the past) and must be called
// before br is used again.
func watchClient(c net.Conn, br *bufio.Reader, loan *loanConn) (stop func()) {
	if br.Buffered() > 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			loan.clientGone(err)
		}
	}()
	return func() {
		c.SetReadDeadline(time.Unix(1, 0))
		<-done
		c.SetReadDeadline(time.Time{})
	}
}

// returned waits until net/http lets go of the connection and reports
// whether it may be used for another request.
func (l *loanConn) returned() bool {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle
}

// ConnState is http.Server.ConnState for the servers of the serving
// listeners (on Handoff, Midway and the TLS Listener). When net/http turns
// a connection idle it clears the write deadline a handler may have set
// (net/http keeps it into the next request when, as in the PoP,
// WriteTimeout is not set; the send timeout stays), and ends a loan. An
// HTTP/2 connection over TLS, once active, coalesces its TLS records
// (coalesce.go); its handlers' deadlines are their streams'.
func ConnState(c net.Conn, state http.ConnState) {
	tc, isTLS := c.(*tls.Conn)
	if isTLS && state == http.StateActive {
		coalesceTLS(tc)
	}
	if state != http.StateIdle {
		return
	}
	if isTLS {
		if cc, ok := tc.NetConn().(*clientConn); ok && cc.co.Load() != nil {
			return
		}
	}
	c.SetWriteDeadline(time.Time{})
	switch l := c.(type) {
	case *clearLoan:
		l.setIdle()
	case *tlsLoan:
		l.setIdle()
	}
}

// lendable reports whether net/http may be lent the connection for the
// request with this head: an HTTP/1.1 request without a body or a
// protocol change, which net/http will answer and then read past.
func lendable(head []byte) bool {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) || bytes.HasPrefix(line, []byte("PRI ")) {
		return false
	}
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			return false
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")),
			bytes.EqualFold(name, []byte("Transfer-Encoding")),
			bytes.EqualFold(name, []byte("Upgrade")),
			bytes.EqualFold(name, []byte("Expect")),
			bytes.EqualFold(name, []byte("Http2-Settings")):
			return false
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.Contains(bytes.ToLower(value), []byte("upgrade")) {
				return false
			}
		}
	}
	return true
}
