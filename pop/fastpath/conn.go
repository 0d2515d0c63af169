package fastpath

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/rawsock"
)

// Client connections on the clear and TLS listeners go through a
// Listener, which caps how many are open at once (limits.max_conns: past
// it Accept waits and new connections stay in the kernel's queue), and
// come out as clientConn, which cuts off a client that stops reading
// (timeouts.send, as nginx's and Varnish's send_timeout): a write that
// makes no progress for the send timeout fails and closes the connection.
// It is a bound on each wait for the client, not on a whole response.
//
// A deadline per write would cost a timer update per write on the fast
// path, so the deadline is armed at 5/4 of the timeout and re-armed only
// when a quarter of the timeout has passed since it last was: a write
// waits at least the send timeout, at most 5/4 of it; one that stalls
// part-way, after some progress, gets another full period.

// Listener caps and counts the connections of one serving listener and
// wraps its TCP connections so that writes have the send timeout and
// blob bodies go out with sendfile (the connection's ReadFrom, which
// net/http's responses use too).
type Listener struct {
	net.Listener
	send  time.Duration  // the send timeout; 0 means none
	sent  *atomic.Uint64 // counts the bytes sent with sendfile
	slots chan struct{}  // one element per open connection; nil means no cap
	done  chan struct{}  // closed by Close
	once  sync.Once

	open         atomic.Int64  // connections open now
	capped       atomic.Uint64 // accepts that found every slot taken and waited
	sendTimeouts atomic.Uint64 // connections cut off by the send timeout

	proxy *proxyConfig // PROXY protocol headers (proxyproto.go); nil: none taken
}

// ListenerStats are a Listener's figures.
type ListenerStats struct {
	Open         int64  // connections open now
	Capped       uint64 // accepts that found maxConns connections open and waited
	SendTimeouts uint64 // connections cut off by the send timeout
}

// NewListener wraps ln; maxConns <= 0 means no cap, send <= 0 no send
// timeout. The bytes its connections send with sendfile are added to
// sent.
func NewListener(ln net.Listener, maxConns int, send time.Duration, sent *atomic.Uint64) *Listener {
	l := &Listener{
		Listener: ln,
		send:     send,
		sent:     sent,
		done:     make(chan struct{}),
	}
	if maxConns > 0 {
		l.slots = make(chan struct{}, maxConns)
	}
	return l
}

// Stats reads the listener's figures.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{Open: l.open.Load(), Capped: l.capped.Load(), SendTimeouts: l.sendTimeouts.Load()}
}

// Accept waits for a free slot, then for a connection. A TCP connection
// comes back wrapped, and its Close frees the slot.
func (l *Listener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			l.capped.Add(1)
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.open.Add(1)
	tc, ok := c.(*net.TCPConn)
	if !ok {
		// Not TCP (a test's listener): served as it is, without a slot.
		l.release()
		l.open.Add(-1)
		return c, nil
	}
	cc := &clientConn{TCPConn: tc, l: l, raw: rawsock.New(tc)}
	l.wrapProxy(cc)
	return cc, nil
}

// release gives back one connection's slot.
func (l *Listener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// Close closes the listener; an Accept waiting for a slot returns.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// clientConn is a client's TCP connection on a serving listener: writes
// have the send timeout, Close frees the listener's slot (once), and
// ReadFrom sends blob bodies with sendfile.
type clientConn struct {
	*net.TCPConn
	l   *Listener
	raw *rawsock.Sock // the socket's raw reads and writes; nil: TCPConn's

	armed  atomic.Int64 // when the send deadline was last armed (Unix ns); 0: at the next write
	acked  atomic.Int64 // bytes the client had acknowledged at the last stall (0 before one)
	user   atomic.Int64 // the write deadline the connection's user set (Unix ns); 0: none
	cut    atomic.Bool  // cut off by the send timeout
	closed atomic.Bool

	checked atomic.Bool               // ConnState looked at its protocol
	co      atomic.Pointer[coalescer] // non-nil: HTTP/2 over TLS, coalescing (coalesce.go)

	// batch, while the fast path sends an answer over TLS, keeps the
	// records crypto/tls writes, for one write (tls.go). Only the fast
	// path's goroutine of the connection sets it and writes meanwhile.
	batch *[]byte

	// pp reads the PROXY protocol header and then the client's bytes, when
	// the listener takes headers (proxyproto.go); ppErr is the header's
	// failure, which every read returns.
	pp     *proxyproto.Conn
	ppOnce sync.Once
	ppErr  error
}

// sendChunk is the most one write or sendfile call is given before the
// send deadline is checked again.
const sendChunk = 1 << 20

// minSendProgress is, where the bytes a client acknowledged cannot be
// read (not Linux), the least a write or sendfile call that ran into the
// send deadline must have sent for the client to count as reading. 16 KiB
// per timeout is far below any real reader (a 56 kbit/s modem takes
// 400 KiB a minute).
const minSendProgress = 16 << 10

// Write writes p; it fails, and closes the connection, when the client
// takes nothing for the send timeout.
func (c *clientConn) Write(p []byte) (int, error) {
	if c.batch != nil {
		return c.batchWrite(p)
	}
	if co := c.co.Load(); co != nil {
		return c.coalesceWrite(co, p)
	}
	return c.write(p)
}

// write is Write without coalescing.
func (c *clientConn) write(p []byte) (int, error) {
	if c.l.send <= 0 {
		return c.sockWrite(p)
	}
	var n int
	for n < len(p) {
		c.arm(false)
		m, err := c.sockWrite(p[n:min(len(p), n+sendChunk)])
		n += m
		if err != nil {
			if c.stalled(int64(m), err) {
				continue
			}
			return n, err
		}
	}
	return n, nil
}

// sockWrite writes p to the socket, without the send timeout.
func (c *clientConn) sockWrite(p []byte) (int, error) {
	if c.raw != nil {
		return c.raw.Write(p)
	}
	return c.TCPConn.Write(p)
}

// sockRead reads from the socket.
func (c *clientConn) sockRead(p []byte) (int, error) {
	if c.raw != nil {
		return c.raw.Read(p)
	}
	return c.TCPConn.Read(p)
}

// SyscallConn returns the socket's raw connection (made once per
// connection: blob's sendfile asks for it on every body).
func (c *clientConn) SyscallConn() (syscall.RawConn, error) {
	if c.raw != nil {
		return c.raw.RawConn(), nil
	}
	return c.TCPConn.SyscallConn()
}

// arm sets the send deadline when a quarter of the timeout has passed since
// it was last set (always when force is true). A deadline the user set
// that comes sooner is kept.
func (c *clientConn) arm(force bool) {
	send := int64(c.l.send)
	now := time.Now().UnixNano()
	if !force && now-c.armed.Load() < send/4 {
		return
	}
	c.armed.Store(now)
	d := now + send + send/4
	if u := c.user.Load(); u != 0 && u < d {
		d = u
	}
	c.TCPConn.SetWriteDeadline(time.Unix(0, d))
}

// stalled handles a failed write or sendfile call that sent sent bytes:
// true when it was the send deadline and the client made progress, so the
// caller goes on (with the deadline re-armed). Progress is what the client
// acknowledged since the last stall (TCP_INFO's bytes_acked, read only
// here, off the hot path), not what the kernel took into its send buffer,
// which grows for a while under a client that reads nothing; where the
// acknowledged count is unknown, a call that sent minSendProgress bytes
// counts. Otherwise, when a write deadline passed (the send timeout's, or
// one a handler set with http.ResponseController: in the PoP those are the
// send timeout too) the client is cut off: counted, and the connection
// closed (a response cut part-way, or TLS after a failed write, cannot go
// on). A client that stops reading is so cut off within about 2.5 times
// the timeout: one stall may still see the acknowledgements of its last
// reads.
func (c *clientConn) stalled(sent int64, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	progress := sent >= minSendProgress
	if now := ackedBytes(c.TCPConn); now >= 0 {
		progress = now > c.acked.Swap(now)
	}
	if u := c.user.Load(); progress && (u == 0 || time.Now().UnixNano() < u) {
		c.arm(true)
		return true
	}
	if c.cut.CompareAndSwap(false, true) {
		c.l.sendTimeouts.Add(1)
		// Inside a raw read loop's step (rawloop.go) Close would wait for
		// the loop's read, held by this goroutine: the failed write ends
		// the step, and the loop then closes the connection.
		if c.raw == nil || !c.raw.InStep() {
			c.closeConn()
		}
	}
	return false
}

// SetWriteDeadline sets a deadline for writes, as net.Conn's does; the
// send timeout still applies when it comes sooner. The zero time leaves
// only the send timeout.
func (c *clientConn) SetWriteDeadline(t time.Time) error {
	if co := c.co.Load(); co != nil {
		return c.coalesceDeadline(co, t)
	}
	return c.setWriteDeadline(t)
}

// setWriteDeadline is SetWriteDeadline without coalescing.
func (c *clientConn) setWriteDeadline(t time.Time) error {
	var u int64
	if !t.IsZero() {
		u = t.UnixNano()
	}
	c.user.Store(u)
	c.armed.Store(0) // the next write arms the sooner of the two
	if u != 0 || c.l.send <= 0 {
		return c.TCPConn.SetWriteDeadline(t)
	}
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *clientConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// Close closes the connection and frees its slot on the listener.
func (c *clientConn) Close() error {
	if co := c.co.Load(); co != nil {
		c.coalesceClose(co)
	}
	return c.closeConn()
}

// closeConn is Close without sending what a coalescing bracket kept.
func (c *clientConn) closeConn() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.release()
	}
	return c.TCPConn.Close()
}

// ReadFrom sends what r reads: blob bodies (whole, or a range of one
// through io.LimitedReader) with sendfile, everything else through Write;
// either way with the send timeout. net/http's responses on the
// connection use it too: io.Copy of a blob's reader to a ResponseWriter
// reaches it once the header is written.
func (c *clientConn) ReadFrom(r io.Reader) (int64, error) {
	switch src := r.(type) {
	case *blob.Reader:
		return c.sendBlob(src, -1)
	case *io.LimitedReader:
		if br, ok := src.R.(*blob.Reader); ok {
			n, err := c.sendBlob(br, src.N)
			src.N -= n
			return n, err
		}
	}
	return io.Copy(writerOnly{c}, r)
}

// sendBlob sends up to limit bytes of r (all of it for a negative limit)
// with sendfile, sendChunk bytes per call so that the send deadline is
// re-armed as the client takes them.
func (c *clientConn) sendBlob(r *blob.Reader, limit int64) (int64, error) {
	var total int64
	for {
		want := int64(sendChunk)
		if limit >= 0 {
			want = min(want, limit-total)
		}
		if want <= 0 || r.Remaining() == 0 {
			return total, nil
		}
		if c.l.send > 0 {
			c.arm(false)
		}
		n, err := r.SendTo(c, want)
		total += n
		c.l.sent.Add(uint64(n))
		if err != nil {
			if c.l.send > 0 && c.stalled(n, err) {
				continue
			}
			return total, err
		}
	}
}

// writerOnly hides every method of a writer but Write (so io.Copy does not
// loop back into ReadFrom).
type writerOnly struct{ io.Writer }
