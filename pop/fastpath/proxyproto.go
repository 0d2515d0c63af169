package fastpath

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol (v1 and v2, haproxy.org's proxy-protocol.txt) on a
// serving listener: behind an L4 load balancer every connection comes from
// the balancer, which tells the client's address in a header before the
// client's first byte. A Listener told to (AcceptProxyProtocol) wraps each
// connection's reads in go-proxyproto's Conn: from a trusted network the
// header is required, and its source address becomes the connection's
// RemoteAddr (what net/http, the fast path, the access log,
// X-Forwarded-For and the signed-URL check see); from anywhere else a
// header is refused. The header is read on the connection's first Read or
// RemoteAddr, on the connection's own goroutine (never in Accept, so a
// silent client holds no one up), within the header timeout. A connection
// whose header is missing, refused or malformed is closed and counted.

// ProxyResult is what became of one connection's PROXY protocol header.
type ProxyResult int

// The results.
const (
	ProxyAccepted  ProxyResult = iota // a trusted source's valid header: the client's address is used
	ProxyLocal                        // a trusted source's LOCAL header (health checks): the socket's address is used
	ProxyDirect                       // an untrusted source without a header: served as it is
	ProxyUntrusted                    // a header from a source outside the trusted networks: closed
	ProxyMissing                      // no header from a trusted source within the timeout: closed
	ProxyMalformed                    // a header that does not parse: closed
	numProxyResults
)

// String is the result's label in /metrics.
func (r ProxyResult) String() string {
	return [...]string{"accepted", "local", "direct", "untrusted", "missing", "malformed"}[r]
}

// ProxyResults lists every result, in order.
func ProxyResults() []ProxyResult {
	out := make([]ProxyResult, numProxyResults)
	for i := range out {
		out[i] = ProxyResult(i)
	}
	return out
}

// proxyConfig is a Listener's PROXY protocol setting.
type proxyConfig struct {
	trusted []netip.Prefix
	timeout time.Duration
	counts  [numProxyResults]atomic.Uint64
}

// AcceptProxyProtocol makes the listener read a PROXY protocol header on
// each connection: required from the trusted networks, refused from any
// other source; timeout bounds the wait for it (0 means 5s). Call it
// before the first Accept. Without trusted networks it does nothing.
func (l *Listener) AcceptProxyProtocol(trusted []netip.Prefix, timeout time.Duration) {
	if len(trusted) == 0 {
		return
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	l.proxy = &proxyConfig{trusted: trusted, timeout: timeout}
}

// ProxyCounts returns how many connections ended with each result
// (indexed by ProxyResult); nil when the listener takes no headers.
func (l *Listener) ProxyCounts() []uint64 {
	if l.proxy == nil {
		return nil
	}
	out := make([]uint64, numProxyResults)
	for i := range out {
		out[i] = l.proxy.counts[i].Load()
	}
	return out
}

// trusts reports whether a connection from addr may send a header.
func (pc *proxyConfig) trusts(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range pc.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// wrapProxy gives c its PROXY protocol reader, when the listener takes
// headers.
func (l *Listener) wrapProxy(c *clientConn) {
	if l.proxy == nil {
		return
	}
	policy := proxyproto.REJECT
	if l.proxy.trusts(c.TCPConn.RemoteAddr()) {
		policy = proxyproto.REQUIRE
	}
	c.pp = proxyproto.NewConn(c.TCPConn, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(l.proxy.timeout))
}

// proxyHeader reads the connection's header, once, counts the result, and
// closes the connection when it is refused. It returns the error reads
// return from then on.
func (c *clientConn) proxyHeader() error {
	c.ppOnce.Do(func() {
		// A read of nothing processes the header and reads no further.
		_, err := c.pp.Read(nil)
		var res ProxyResult
		switch h := c.pp.ProxyHeader(); {
		case err == nil && h == nil:
			res = ProxyDirect
		case err == nil && h.Command.IsLocal():
			res = ProxyLocal
		case err == nil:
			res = ProxyAccepted
		case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
			res = ProxyUntrusted
		case errors.Is(err, proxyproto.ErrNoProxyProtocol):
			res = ProxyMissing
		default:
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				res = ProxyMissing
			} else {
				res = ProxyMalformed
			}
		}
		c.l.proxy.counts[res].Add(1)
		if err != nil {
			c.ppErr = err
			c.Close()
		}
	})
	return c.ppErr
}

// Read reads from the connection, after its PROXY protocol header when
// the listener takes them.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.pp == nil {
		return c.sockRead(p)
	}
	if err := c.proxyHeader(); err != nil {
		return 0, err
	}
	return c.pp.Read(p)
}

// WriteTo keeps io.Copy from the connection on Read's path: the bytes a
// header read buffered come first.
func (c *clientConn) WriteTo(w io.Writer) (int64, error) {
	if c.pp == nil {
		return c.TCPConn.WriteTo(w)
	}
	if err := c.proxyHeader(); err != nil {
		return 0, err
	}
	return c.pp.WriteTo(w)
}

// RemoteAddr is the client's address: the PROXY protocol header's source
// when a trusted balancer sent one, else the socket's peer.
func (c *clientConn) RemoteAddr() net.Addr {
	if c.pp == nil {
		return c.TCPConn.RemoteAddr()
	}
	c.proxyHeader()
	return c.pp.RemoteAddr()
}

// SetReadDeadline sets the read deadline; with PROXY protocol through its
// reader, which keeps it across the header's own deadline.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	if c.pp == nil {
		return c.TCPConn.SetReadDeadline(t)
	}
	return c.pp.SetReadDeadline(t)
}
