// Package fastpath is how the PoP meets clients below net/http: the
// serving listeners' connections, and the HTTP/1.1 fast path for fresh hits.
//
// A Listener caps how many connections are open and gives each a send
// timeout and sendfile for blob bodies. On the clear listener, and on the
// TLS listener once it has run the handshake itself (tls.go), a Server
// reads each request head itself; when the PoP, through the Cache seam,
// answers it from storage, the Server writes that answer and reads the next
// request. Anything the Cache declines goes to net/http with every byte
// already read: a bodiless request is lent for that one answer, after which
// the connection comes back; any other connection is handed over for good.
// So net/http keeps every error answer, rule and limit, and the fast path
// sends only what net/http would have sent, byte for byte.
package fastpath

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// The HTTP/1.1 fast path serves the commonest request a PoP gets, a plain
// GET or HEAD for a fresh stored 200 on the clear or TLS listener, without
// net/http: it reads the request head from the connection's buffer, asks
// the Cache to answer it, and writes the stored header and body itself
// (the body with sendfile when it is in a blob). net/http's per-request
// machinery (a Request, its header map and URL, a ResponseWriter, a
// background read) costs more than the hit itself.
//
// The fast path only takes what it can answer exactly as net/http would;
// anything else — another method or version, a body, conditionals,
// ranges, request cache directives, credentials, a head it does not fully
// understand, or whatever the Cache declines — and the connection, with
// every byte already read, goes to net/http, which serves it from then on.

// Cache is the fast path's seam to the PoP, which keeps its caching rules,
// figures and access log to itself.
type Cache interface {
	// ServeFast answers r from storage when it is a response net/http
	// would send unchanged (a fresh stored 200, say): it builds the
	// response head in s.Buffer() — the status line and the header fields
	// as http.Header.Write orders and writes them (AppendField), Date,
	// Connection: close when r.Close, the blank line — and sends it with
	// s.Send, once. To decline it returns without calling Send: net/http
	// then answers r.
	ServeFast(s *Sender, r *Request)
}

// Request is a request head the fast path may answer: a GET or HEAD of
// HTTP/1.1, with one Host and without a body, conditionals, ranges, cache
// directives or credentials. Its byte slices alias the connection's
// buffer: they are valid only during ServeFast.
type Request struct {
	Method string // http.MethodGet or http.MethodHead
	Target []byte // the request target as sent
	Path   []byte // the target's path: only unreserved characters and '/'
	Query  []byte // the target's query, without '?'
	Host   []byte // the Host field's value as sent
	Close  bool   // the client sent Connection: close
	TLS    bool   // the request came over TLS (the TLS listener's fast path)

	// The fields the access log keeps, as net/http's Request.Header
	// would give them: values without surrounding white space, empty
	// when absent. They are read while the head is parsed, as windows of the
	// head, so they cost nothing when nobody logs them.
	UserAgent []byte // the first User-Agent field's value (Header.Get)
	Referer   []byte // the first Referer field's value (Header.Get)
	RequestID []byte // the X-Request-Id field's value when it is the only one; nil for none or several
}

// Sender writes the Cache's answer on a fast-path connection. One is made
// per connection and reused for its requests.
type Sender struct {
	c    *clientConn
	tc   *tls.Conn // non-nil: the answer goes through TLS (tls.go)
	head bool      // the request is HEAD: no body goes out
	buf  []byte    // the response head's buffer, reused
	sent bool      // Send was called for this request
	err  error     // the write's error
}

// Buffer returns an empty buffer for the response head; its storage is
// reused from one request on the connection to the next.
func (s *Sender) Buffer() []byte { return s.buf[:0] }

// RemoteAddr is the client's address.
func (s *Sender) RemoteAddr() net.Addr { return s.c.RemoteAddr() }

// Send writes head, the whole response head through its blank line, and
// then the body, from the heap (body) or from a blob (b, with sendfile);
// for a HEAD request only the head. It returns the body bytes written.
// After an error the connection closes once ServeFast returns.
func (s *Sender) Send(head, body []byte, b *blob.Blob) (int64, error) {
	s.sent = true
	if s.tc != nil {
		return s.sendTLS(head, body, b)
	}
	var n int64
	var err error
	switch {
	case s.head:
		_, err = s.c.Write(head)
	case b != nil:
		if _, err = s.c.Write(head); err == nil {
			n, err = s.c.ReadFrom(b.NewReader())
		}
	default:
		// One write for a small answer: head and body in one packet.
		out := append(head, body...)
		var w int
		w, err = s.c.Write(out)
		n = int64(max(w-len(head), 0))
		head = out // keeps the grown buffer
	}
	s.buf, s.err = head[:0], err
	return n, err
}

// Options configure a Server. Every field is optional.
type Options struct {
	// ReadHeaderTimeout bounds the reading of each request head; zero
	// means none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a connection;
	// zero means ReadHeaderTimeout.
	IdleTimeout time.Duration
	// SeparateMidway gives the connections handed over after an answer
	// (Midway) a listener of their own; set it when the server on Handoff
	// speaks h2c (see Server).
	SeparateMidway bool
	// H2C, when set, is given the connections that start with the HTTP/2
	// client preface (h2c with prior knowledge) instead of Handoff, with
	// what was read of them; it runs on a goroutine of its own.
	H2C func(net.Conn)
	// TLS, when set, makes the Server run the TLS handshake on each
	// connection itself, with this configuration, within
	// ReadHeaderTimeout (tls.go). A connection that negotiates "h2" goes
	// to Handoff as the *tls.Conn, for net/http to dispatch by ALPN; one
	// that negotiates "http/1.1" or nothing gets the fast path over TLS.
	// The servers on Handoff and Midway then serve with Serve, never
	// ServeTLS.
	TLS *tls.Config
	// Logger receives accept errors; nil means slog.Default().
	Logger *slog.Logger
}

// Server runs the fast path on the clear serving listener and hands
// connections to net/http: through Handoff those it gives up before
// answering anything on them, through Midway those it (or net/http, for a
// lent request) has answered on already, and lent ones. The two differ
// when h2c is on: net/http alone switches to HTTP/2 only on a connection
// that starts with the HTTP/2 preface, so Midway goes to a server that
// speaks HTTP/1 only (a preface after a request is an HTTP/1 request to
// it, as to net/http alone). Without Options.SeparateMidway they are one
// listener.
type Server struct {
	cache      Cache
	ln         net.Listener
	handoff    *handoffListener
	midway     *handoffListener
	readHeader time.Duration
	idle       time.Duration
	h2c        func(net.Conn)
	tls        *tls.Config
	log        *slog.Logger

	handshakes [numHandshakeResults]atomic.Uint64 // TLS handshakes by result (tls.go)

	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// fastConn is one connection while the fast path owns it.
type fastConn struct {
	c      *clientConn
	rw     net.Conn  // what requests are read from: c, or tc over it
	tc     *tls.Conn // the TLS connection over c; nil on the clear listener
	active bool      // serving a request (written by the connection's goroutine under Server.mu; it reads it without)
	req    Request
	send   Sender

	// Owned by the connection's serving goroutine:
	first     bool  // no request read yet: the wait for one is read_header's
	answered  bool  // something was answered: a hand-off goes to Midway
	idleArmed int64 // when the idle read deadline in force was set (Unix ns); 0: another one is (armWait)
}

// headMax is the largest request head the fast path reads; a bigger one
// goes to net/http (whose limit is MaxHeaderBytes).
const headMax = 4096

// NewServer makes the fast path's server for ln, whose connections should
// come from a Listener (others go straight to Handoff); c answers hits.
func NewServer(ln net.Listener, c Cache, o Options) *Server {
	s := &Server{
		cache:      c,
		ln:         ln,
		handoff:    newHandoffListener(ln.Addr()),
		readHeader: o.ReadHeaderTimeout,
		idle:       o.IdleTimeout,
		h2c:        o.H2C,
		tls:        o.TLS,
		log:        o.Logger,
		conns:      make(map[*fastConn]struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.midway = s.handoff
	if o.SeparateMidway {
		s.midway = newHandoffListener(ln.Addr())
	}
	return s
}

// Handoff is the listener for net/http's server: the connections the fast
// path gives up before answering anything on them.
func (s *Server) Handoff() net.Listener { return s.handoff }

// Midway is the listener for the connections handed over after an answer,
// and lent ones; it is Handoff unless Options.SeparateMidway.
func (s *Server) Midway() net.Listener { return s.midway }

// Serve accepts connections until the listener is closed; it then closes
// Handoff and Midway and returns the listener's error.
func (s *Server) Serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.handoff.Close()
				s.midway.Close()
				return err
			}
			// Out of descriptors and the like: back off and retry, as
			// net/http does, rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		sc, ok := c.(*clientConn)
		if !ok {
			if s.tls != nil {
				c = tls.Server(c, s.tls) // net/http runs the handshake
			}
			s.handoff.give(c)
			continue
		}
		fc := &fastConn{c: sc, rw: sc}
		fc.send.c = sc
		if !s.track(fc) {
			c.Close()
			continue
		}
		s.wg.Go(func() { s.serveConn(fc) })
	}
}

// track registers a connection; false when the server is shutting down.
func (s *Server) track(fc *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[fc] = struct{}{}
	return true
}

func (s *Server) untrack(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
}

// setActive marks a connection busy or idle; it reports false when the
// server is shutting down and an idle connection should close.
func (s *Server) setActive(fc *fastConn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc.active = active
	return !s.closing
}

// Shutdown stops accepting, closes idle connections, and waits for the
// requests in progress to finish or ctx to end (then it closes the rest
// and returns ctx's error). Connections already handed to net/http are
// its servers' to shut down.
func (s *Server) Shutdown(ctx context.Context) error {
	// Connections are closed after the lock is let go: a Close waits for
	// a read in progress, and the clear listener's serving loop reads
	// while it answers (rawloop.go), marking the connection idle or busy
	// under the lock. A connection found idle that turns busy meanwhile
	// sees closing and closes itself; it answers nothing more.
	s.mu.Lock()
	s.closing = true
	idle := s.connsWhere(func(fc *fastConn) bool { return !fc.active })
	s.mu.Unlock()
	closeAll(idle)
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		all := s.connsWhere(func(*fastConn) bool { return true })
		s.mu.Unlock()
		closeAll(all)
		<-done
		return ctx.Err()
	}
}

// connsWhere lists the tracked connections that match; s.mu must be held.
func (s *Server) connsWhere(match func(*fastConn) bool) []*clientConn {
	var cs []*clientConn
	for fc := range s.conns {
		if match(fc) {
			cs = append(cs, fc.c)
		}
	}
	return cs
}

// closeAll closes the connections.
func closeAll(cs []*clientConn) {
	for _, c := range cs {
		c.Close()
	}
}

// serveConn answers requests on one connection until it closes or a
// request goes to net/http. On the clear listener (without PROXY protocol
// headers) a rawLoop answers the requests whose heads come whole and the
// Cache answers; serveConn reads the rest itself (a head in pieces, with
// its deadline) and lends or hands off what the Cache declines, as it
// does for every request on TLS and PROXY protocol connections.
func (s *Server) serveConn(fc *fastConn) {
	defer s.untrack(fc)
	if s.tls != nil && !s.handshake(fc) {
		return
	}
	c := fc.rw
	rd := &connReader{conn: c}
	br := bufio.NewReaderSize(rd, headMax)
	var loop *rawLoop
	if fc.tc == nil && fc.c.raw != nil && fc.c.pp == nil {
		loop = newRawLoop(s, fc, br, rd) // rawloop.go
	}
	fc.first = true
	headDeadline := func() {
		fc.idleArmed = 0
		setReadDeadline(c, s.readHeader)
	}
	for {
		s.armWait(fc)
		var head []byte // a whole head the Cache declined
		if loop != nil {
			switch loop.run() {
			case exitClose:
				c.Close()
				return
			case exitDeclined:
				head = loop.head
			}
		} else {
			if _, err := br.Peek(1); err != nil {
				c.Close()
				return
			}
			if !s.setActive(fc, true) {
				c.Close()
				return
			}
		}
		if head == nil {
			// The head's own deadline once readHead must read more than
			// came with the first bytes (rarely: a request head comes in
			// one segment); setting a deadline updates a timer.
			var ok bool
			if head, ok = readHead(br, headDeadline); !ok {
				s.handOff(fc, br, !fc.answered)
				return
			}
			if s.answer(fc, head) {
				fc.answered = true
				br.Discard(len(head))
				if fc.send.err != nil || fc.req.Close || !s.setActive(fc, false) {
					c.Close()
					return
				}
				continue
			}
		}
		if !lendable(head) {
			s.handOff(fc, br, !fc.answered)
			return
		}
		// net/http answers this one request; then the connection comes
		// back for the next.
		fc.answered = true
		loan := newLoanConn(fc.c, fc.tc, head)
		br.Discard(len(head))
		fc.idleArmed = 0
		c.SetReadDeadline(time.Time{})
		stop := watchClient(c, br, loan)
		s.midway.give(loan.conn())
		back := loan.returned()
		stop()
		if !back || !s.setActive(fc, false) {
			c.Close()
			return
		}
	}
}

// answer offers the request with this head to the Cache; it reports
// whether the Cache answered it (false with nothing written).
func (s *Server) answer(fc *fastConn, head []byte) bool {
	if !parseRequest(head, &fc.req) {
		return false
	}
	fc.send.head = fc.req.Method == "HEAD"
	fc.req.TLS = fc.tc != nil
	fc.send.sent, fc.send.err = false, nil
	s.cache.ServeFast(&fc.send, &fc.req)
	return fc.send.sent
}

// handOff gives a connection, with what was read of it, to net/http: to
// Handoff when nothing was answered on it yet, else to Midway; or, when it
// starts with the HTTP/2 preface, to H2C.
func (s *Server) handOff(fc *fastConn, br *bufio.Reader, fresh bool) {
	if fresh && s.h2c != nil && fc.tc == nil {
		// (Within the read deadline still set: a preface cut short goes
		// to net/http.)
		if b, _ := br.Peek(len(h2Preface)); string(b) == h2Preface {
			go s.h2c(&bufferedConn{clientConn: fc.c, br: br})
			return
		}
	}
	fc.rw.SetReadDeadline(time.Time{})
	to := s.midway
	if fresh {
		to = s.handoff
	}
	if fc.tc != nil {
		to.give(&tlsBufferedConn{Conn: fc.tc, br: br})
		return
	}
	to.give(&bufferedConn{clientConn: fc.c, br: br})
}

// h2Preface is the HTTP/2 client preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// setReadDeadline sets a read deadline d from now, or none for d <= 0.
func setReadDeadline(c net.Conn, d time.Duration) {
	if d <= 0 {
		c.SetReadDeadline(time.Time{})
		return
	}
	c.SetReadDeadline(time.Now().Add(d))
}

// bufferedConn is a connection handed to net/http with bytes the fast
// path already read from it.
type bufferedConn struct {
	*clientConn
	br *bufio.Reader
}

// Read reads the buffered bytes first, then the connection.
func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.clientConn.Read(p)
}

// handoffListener is a listener net/http serves: it accepts the
// connections the fast path gives it.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// give hands a connection to net/http, or closes it when net/http has
// stopped accepting.
func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept returns the next connection handed over.
func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections given after it are closed.
func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the serving listener's address.
func (l *handoffListener) Addr() net.Addr { return l.addr }
