package pop

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Client connections on the clear and TLS listeners go through a
// clientListener, which caps how many are open at once (limits.max_conns:
// past it Accept waits and new connections stay in the kernel's queue),
// and come out as clientConn, which cuts off a client that stops reading
// (timeouts.send, as nginx's and Varnish's send_timeout): a write that
// makes no progress for the send timeout fails and closes the connection.
// It is a bound on each wait for the client, not on a whole response.
//
// A deadline per write would cost a timer update per write on the fast
// path, so the deadline is armed at 5/4 of the timeout and re-armed only
// when a quarter of the timeout has passed since it last was: a write
// waits at least the send timeout, at most 5/4 of it; one that stalls
// part-way, after some progress, gets another full period.
//
// HTTP/2 and HTTP/3 streams can also stall on flow control while their
// connection is busy with others; streamDeadlines gives their writes the
// send timeout through http.ResponseController.

// clientListener caps and counts the connections of one serving listener
// and wraps its TCP connections in clientConn.
type clientListener struct {
	net.Listener
	stats *listenerStats
	send  time.Duration  // the send timeout; 0 means none
	sent  *atomic.Uint64 // counts the bytes sent with sendfile
	slots chan struct{}  // one element per open connection; nil means no cap
	done  chan struct{}  // closed by Close
	once  sync.Once
}

// listenerStats are a listener's figures for /metrics.
type listenerStats struct {
	name         string        // "clear" or "tls"
	open         atomic.Int64  // connections open now
	capped       atomic.Uint64 // accepts that found every slot taken and waited
	sendTimeouts atomic.Uint64 // connections cut off by the send timeout
}

// newClientListener wraps ln; maxConns <= 0 means no cap, send <= 0 no
// send timeout.
func newClientListener(ln net.Listener, name string, maxConns int, send time.Duration, sent *atomic.Uint64) *clientListener {
	l := &clientListener{
		Listener: ln,
		stats:    &listenerStats{name: name},
		send:     send,
		sent:     sent,
		done:     make(chan struct{}),
	}
	if maxConns > 0 {
		l.slots = make(chan struct{}, maxConns)
	}
	return l
}

// Accept waits for a free slot, then for a connection. A TCP connection
// comes back as a *clientConn, whose Close frees the slot.
func (l *clientListener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			l.stats.capped.Add(1)
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
	l.stats.open.Add(1)
	tc, ok := c.(*net.TCPConn)
	if !ok {
		// Not TCP (a test's listener): served as it is, without a slot.
		l.release()
		l.stats.open.Add(-1)
		return c, nil
	}
	return &clientConn{TCPConn: tc, l: l}, nil
}

// release gives back one connection's slot.
func (l *clientListener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// Close closes the listener; an Accept waiting for a slot returns.
func (l *clientListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// clientConn is a client's TCP connection on a serving listener: writes
// have the send timeout, Close frees the listener's slot (once), and
// ReadFrom sends blob bodies with sendfile (body.go).
type clientConn struct {
	*net.TCPConn
	l *clientListener

	armed  atomic.Int64 // when the send deadline was last armed (Unix ns); 0: at the next write
	user   atomic.Int64 // the write deadline the connection's user set (Unix ns); 0: none
	cut    atomic.Bool  // cut off by the send timeout
	closed atomic.Bool
}

// sendChunk is the most one write or sendfile call is given before the
// send deadline is checked again.
const sendChunk = 1 << 20

// Write writes p; it fails, and closes the connection, when the client
// takes nothing for the send timeout.
func (c *clientConn) Write(p []byte) (int, error) {
	if c.l.send <= 0 {
		return c.TCPConn.Write(p)
	}
	var n int
	for n < len(p) {
		c.arm(false)
		m, err := c.TCPConn.Write(p[n:min(len(p), n+sendChunk)])
		n += m
		if err != nil {
			if c.stalled(m > 0, err) {
				continue
			}
			return n, err
		}
	}
	return n, nil
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

// stalled handles a failed write or sendfile call: true when it was the
// send deadline and the call made progress, so the caller goes on (with the
// deadline re-armed). Otherwise, when a write deadline passed (the send
// timeout's, or one a handler set with http.ResponseController: in this
// server those are the send timeout too) the client is cut off: counted,
// and the connection closed (a response cut part-way, or TLS after a
// failed write, cannot go on).
func (c *clientConn) stalled(progress bool, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if u := c.user.Load(); progress && (u == 0 || time.Now().UnixNano() < u) {
		c.arm(true)
		return true
	}
	if c.cut.CompareAndSwap(false, true) {
		c.l.stats.sendTimeouts.Add(1)
		c.Close()
	}
	return false
}

// SetWriteDeadline sets a deadline for writes, as net.Conn's does; the
// send timeout still applies when it comes sooner. The zero time leaves
// only the send timeout.
func (c *clientConn) SetWriteDeadline(t time.Time) error {
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
	return c.TCPConn.SetReadDeadline(t)
}

// Close closes the connection and frees its slot on the listener.
func (c *clientConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.stats.open.Add(-1)
		c.l.release()
	}
	return c.TCPConn.Close()
}

// streamDeadlines gives the writes of HTTP/2 and HTTP/3 responses the send
// timeout through http.ResponseController, as clientConn gives it to
// connections: a stream whose client stops granting flow-control credit
// is reset instead of holding its handler for ever. HTTP/1 responses pass
// through untouched (their connection has the timeout).
func streamDeadlines(h http.Handler, send time.Duration) http.Handler {
	if send <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 2 {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), send: send}, r)
	})
}

// streamWriter is an HTTP/2 or HTTP/3 ResponseWriter whose writes have the
// send timeout: large writes go in chunks, and the stream's write deadline
// is moved on (by the rule of clientConn.arm) before each.
type streamWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	send  time.Duration
	armed time.Time
}

// streamChunk is the most of one Write given to the stream at once.
const streamChunk = 256 << 10

func (s *streamWriter) Write(p []byte) (int, error) {
	var n int
	for {
		if now := time.Now(); now.Sub(s.armed) >= s.send/4 {
			s.armed = now
			s.rc.SetWriteDeadline(now.Add(s.send + s.send/4))
		}
		m, err := s.ResponseWriter.Write(p[n:min(len(p), n+streamChunk)])
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
}

// Unwrap lets http.ResponseController reach the stream (Flush, deadlines).
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// connCollector exports the figures of the serving listeners.
type connCollector struct{ listeners []*listenerStats }

// Describe sends the metric descriptions.
func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnsOpen
	ch <- descConnCapReached
	ch <- descSendTimeouts
}

// Collect reads the figures.
func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.listeners {
		ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(s.open.Load()), s.name)
		ch <- prometheus.MustNewConstMetric(descConnCapReached, prometheus.CounterValue, float64(s.capped.Load()), s.name)
		ch <- prometheus.MustNewConstMetric(descSendTimeouts, prometheus.CounterValue, float64(s.sendTimeouts.Load()), s.name)
	}
}
