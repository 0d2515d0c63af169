package fastpath

import (
	"crypto/tls"
	"sync"
	"time"
)

// An HTTP/2 connection over TLS coalesces the TLS records of each write
// its server makes into one system call. net/http's HTTP/2 server writes
// through a 4 KiB buffer, so a 16 KiB DATA frame reaches crypto/tls as one
// write of 16,393 bytes, which leaves it as two records — a full one and a
// 9-byte one — and each record was one write to the socket: about 14
// writes for a 100 KiB response where 7 carry the same bytes.
//
// The server brackets every write it makes with write deadlines (its
// WriteByteTimeout, which the PoP sets to the send timeout): a deadline
// before, the zero time after. Below crypto/tls, the connection keeps the
// records written inside the bracket and sends them at its end, with the
// bracket's deadline, in one write. No record waits for anything but the
// rest of the same write, so nothing is delayed; outside a bracket (the
// handshake is over before HTTP/2 starts; a TLS 1.3 KeyUpdate answer comes
// inside or outside one) writes go straight out. A failed deferred write
// cannot be reported to the write it came from, which has returned: the
// connection is closed, so the server's next read or write fails.
//
// ConnState turns this on for a connection when its HTTP/2 server reports
// it active: after the handshake and the client's preface.

// coalesceMax is the most a bracket keeps before it sends what it has: a
// bracket holds one write of the HTTP/2 server, at most a frame of 16 KiB
// and its records' overhead.
const coalesceMax = 64 << 10

// coalescePool holds the buffers of brackets in progress; an idle
// connection keeps none.
var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, 20<<10); return &b }}

// coalescer is a clientConn's state while it coalesces (all guarded by mu).
type coalescer struct {
	mu      sync.Mutex
	bracket bool    // a write deadline in the future is set: writes are kept
	buf     *[]byte // the records kept, from coalescePool; nil when none
	err     error   // a deferred write failed: the connection is closed
}

// coalesceTLS makes c, when it is an HTTP/2 connection over TLS on a
// Listener, coalesce its records; it is a no-op after the first call.
func coalesceTLS(tc *tls.Conn) {
	cc, ok := tc.NetConn().(*clientConn)
	if !ok || cc.checked.Load() {
		return
	}
	cc.checked.Store(true)
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		cc.co.Store(new(coalescer))
	}
}

// coalesceWrite is Write on a coalescing connection: inside a bracket p
// is kept, outside it goes out at once (after anything kept).
func (c *clientConn) coalesceWrite(co *coalescer, p []byte) (int, error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.err != nil {
		return 0, co.err
	}
	if !co.bracket {
		if err := c.flushLocked(co); err != nil {
			return 0, err
		}
		return c.write(p)
	}
	if co.buf != nil && len(*co.buf)+len(p) > coalesceMax {
		if err := c.flushLocked(co); err != nil {
			return 0, err
		}
	}
	if co.buf == nil {
		co.buf = coalescePool.Get().(*[]byte)
	}
	*co.buf = append(*co.buf, p...)
	return len(p), nil
}

// flushLocked sends what the bracket kept, with the deadline in force;
// co.mu must be held. On failure the connection is closed.
func (c *clientConn) flushLocked(co *coalescer) error {
	if co.err != nil {
		return co.err
	}
	if co.buf == nil {
		return nil
	}
	b := *co.buf
	_, err := c.write(b)
	*co.buf = b[:0]
	coalescePool.Put(co.buf)
	co.buf = nil
	if err != nil {
		co.err = err
		c.closeConn()
	}
	return err
}

// coalesceDeadline is SetWriteDeadline on a coalescing connection: what
// the bracket kept goes out under the deadline it was kept under, then t
// opens a bracket (a time in the future) or closes it. A call from another
// goroutine while a deferred write is in progress (crypto/tls's Close)
// moves that write's deadline instead, and waits for nothing.
func (c *clientConn) coalesceDeadline(co *coalescer, t time.Time) error {
	if !co.mu.TryLock() {
		if t.IsZero() {
			return nil // keep the deadline of the write in progress
		}
		c.user.Store(t.UnixNano())
		return c.TCPConn.SetWriteDeadline(t)
	}
	defer co.mu.Unlock()
	c.flushLocked(co)
	co.bracket = !t.IsZero() && time.Until(t) > 0
	return c.setWriteDeadline(t)
}

// coalesceClose sends what a bracket kept, unless a deferred write is in
// progress (Close then cuts it short), before the connection closes.
func (c *clientConn) coalesceClose(co *coalescer) {
	if co.mu.TryLock() {
		c.flushLocked(co)
		co.mu.Unlock()
	}
}
