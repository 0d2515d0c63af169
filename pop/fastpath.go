package pop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// The HTTP/1.1 fast path serves the commonest request a PoP gets, a plain
// GET or HEAD for a fresh stored 200 on the clear listener, without
// net/http: it reads the request head from the connection's buffer,
// answers from the store and writes the stored header and body itself
// (the body with sendfile when it is in a blob). net/http's per-request
// machinery (a Request, its header map and URL, a ResponseWriter, a
// background read) costs more than the hit itself.
//
// The fast path only takes what it can answer exactly as net/http and
// serveStored would; anything else — another method or version, a body,
// conditionals, ranges, request cache directives, credentials, a varying
// or stale or missing object, an access-logged request, a head it does
// not fully understand — and the connection, with every byte already
// read, goes to net/http, which serves it from then on. So every error
// answer, every rule and every limit stays net/http's.

// fastServer runs the fast path on the clear serving listener and hands
// connections to net/http: through handoff those it gives up before
// answering anything on them, through midway those it (or net/http, for a
// lent request) has answered on already, and lent ones. The two differ
// when h2c is on: net/http alone switches to HTTP/2 only on a connection
// that starts with the HTTP/2 preface, so midway goes to a server that
// speaks HTTP/1 only (a preface after a request is an HTTP/1 request to
// it, as to net/http alone). Without h2c they are one listener.
type fastServer struct {
	p          *PoP
	ln         net.Listener
	handoff    *handoffListener
	midway     *handoffListener
	readHeader time.Duration // per request head; 0 means none
	idle       time.Duration // between requests on a connection; 0 means readHeader

	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// fastConn is one connection while the fast path owns it.
type fastConn struct {
	c      *clientConn
	active bool // serving a request (guarded by fastServer.mu)
}

// fastHeadMax is the largest request head the fast path reads; a bigger
// one goes to net/http (whose limit is MaxHeaderBytes).
const fastHeadMax = 4096

// newFastServer makes the fast path's server; with separateMidway (h2c
// on) connections handed over mid-way get their own listener.
func newFastServer(p *PoP, ln net.Listener, readHeader, idle time.Duration, separateMidway bool) *fastServer {
	s := &fastServer{
		p:          p,
		ln:         ln,
		handoff:    newHandoffListener(ln.Addr()),
		readHeader: readHeader,
		idle:       idle,
		conns:      make(map[*fastConn]struct{}),
	}
	s.midway = s.handoff
	if separateMidway {
		s.midway = newHandoffListener(ln.Addr())
	}
	return s
}

// serve accepts connections until the listener is closed.
func (s *fastServer) serve() error {
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
			s.p.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		sc, ok := c.(*clientConn)
		if !ok {
			s.handoff.give(c)
			continue
		}
		fc := &fastConn{c: sc}
		if !s.track(fc) {
			c.Close()
			continue
		}
		s.wg.Go(func() { s.serveConn(fc) })
	}
}

// track registers a connection; false when the server is shutting down.
func (s *fastServer) track(fc *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[fc] = struct{}{}
	return true
}

func (s *fastServer) untrack(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
}

// setActive marks a connection busy or idle; it reports false when the
// server is shutting down and an idle connection should close.
func (s *fastServer) setActive(fc *fastConn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc.active = active
	return !s.closing
}

// shutdown stops accepting, closes idle connections, and waits for the
// requests in progress to finish or ctx to end (then it closes the rest).
func (s *fastServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for fc := range s.conns {
		if !fc.active {
			fc.c.Close()
		}
	}
	s.mu.Unlock()
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for fc := range s.conns {
			fc.c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// serveConn answers requests on one connection until it closes or a
// request goes to net/http.
func (s *fastServer) serveConn(fc *fastConn) {
	defer s.untrack(fc)
	c := fc.c
	br := bufio.NewReaderSize(c, fastHeadMax)
	var out []byte
	first := true // no request read yet
	fresh := true // nothing answered yet: a hand-off is net/http's start
	for {
		wait := s.idle
		if first || wait <= 0 {
			wait = s.readHeader
		}
		first = false
		setReadDeadline(c, wait)
		if _, err := br.Peek(1); err != nil {
			c.Close()
			return
		}
		if !s.setActive(fc, true) {
			c.Close()
			return
		}
		setReadDeadline(c, s.readHeader)
		head, ok := readHead(br)
		if !ok {
			s.handOff(fc, br, fresh)
			return
		}
		var keep, served bool
		out, keep, served = s.p.serveFast(c, head, out[:0])
		if !served {
			if !lendable(head) {
				s.handOff(fc, br, fresh)
				return
			}
			// net/http answers this one request; then the connection
			// comes back for the next.
			fresh = false
			loan := newLoanConn(c, head)
			br.Discard(len(head))
			c.SetReadDeadline(time.Time{})
			s.midway.give(loan)
			if !loan.returned() || !s.setActive(fc, false) {
				c.Close()
				return
			}
			continue
		}
		fresh = false
		br.Discard(len(head))
		if !keep || !s.setActive(fc, false) {
			c.Close()
			return
		}
	}
}

// handOff gives a connection, with what was read of it, to net/http: to
// the server for new connections when nothing was answered on it yet.
func (s *fastServer) handOff(fc *fastConn, br *bufio.Reader, fresh bool) {
	fc.c.SetReadDeadline(time.Time{})
	to := s.midway
	if fresh {
		to = s.handoff
	}
	to.give(&bufferedConn{clientConn: fc.c, br: br})
}

// setReadDeadline sets a read deadline d from now, or none for d <= 0.
func setReadDeadline(c net.Conn, d time.Duration) {
	if d <= 0 {
		c.SetReadDeadline(time.Time{})
		return
	}
	c.SetReadDeadline(time.Now().Add(d))
}

// readHead returns the buffered request head (through its blank line),
// reading more as needed; ok is false when the head is not complete
// within fastHeadMax bytes, uses bare LF line ends, or the connection
// failed with part of a head read — net/http then answers it. It is also
// false as soon as the lines read so far are ones net/http would already
// have rejected (see rejectedSoFar), so that net/http answers them as
// early as it would alone.
func readHead(br *bufio.Reader) (head []byte, ok bool) {
	checked := 0 // bytes of complete lines checked
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head = buf[:i+4]
			if bytes.Count(head, []byte("\n")) != bytes.Count(head, []byte("\r\n")) {
				return nil, false // a bare LF: leave the leniency to net/http
			}
			return head, true
		}
		if len(buf) >= fastHeadMax || bytes.Contains(buf, []byte("\n\n")) {
			return nil, false
		}
		for {
			j := bytes.IndexByte(buf[checked:], '\n')
			if j < 0 {
				break
			}
			end := checked + j + 1
			if !bytes.HasSuffix(buf[:end], []byte("\r\n")) || rejectedSoFar(buf, checked, end) {
				return nil, false
			}
			checked = end
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, false
		}
	}
}

// rejectedSoFar reports whether net/http, having read the complete line
// buf[start:end] of an incomplete head, would already answer with an error
// (a malformed request line or field line). It asks net/http's own parser,
// given the request line and that one line: it runs only while a head
// arrives in pieces. A continuation line is left for net/http to judge
// with the whole head.
func rejectedSoFar(buf []byte, start, end int) bool {
	var probe []byte
	if start == 0 {
		probe = buf[:end]
	} else {
		if start > bytes.IndexByte(buf, '\n')+1 && (buf[start] == ' ' || buf[start] == '\t') {
			return false
		}
		first := buf[:bytes.IndexByte(buf, '\n')+1]
		probe = append(slices.Clip(first), buf[start:end]...)
	}
	_, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(probe)))
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// fastRequest is what the fast path needs of a request head.
type fastRequest struct {
	target []byte // the request target as sent
	head   bool   // HEAD rather than GET
	path   []byte // the target's path: only unreserved characters and '/'
	query  []byte // the target's query, without '?'
	host   []byte
	close  bool // Connection: close
	method string
}

// parseFastRequest parses a request head the fast path may answer; ok is
// false for anything else.
func parseFastRequest(head []byte) (r fastRequest, ok bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line, r.method = line[4:], http.MethodGet
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, r.head, r.method = line[5:], true, http.MethodHead
	default:
		return r, false
	}
	target, version, found := bytes.Cut(line, []byte(" "))
	if !found || string(version) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return r, false
	}
	r.target = target
	r.path, r.query, _ = bytes.Cut(target, []byte("?"))
	for _, c := range r.path {
		if !isPathByte(c) {
			return r, false
		}
	}
	for _, c := range r.query {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return r, false
		}
	}
	hosts := 0
	for len(rest) > 2 { // the last line is the blank one
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || len(name) == 0 {
			return r, false
		}
		for _, c := range name {
			if !isTokenByte(c) {
				return r, false // includes obs-fold and whitespace before ':'
			}
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return r, false
			}
		}
		switch fastHeaderRole(name) {
		case roleHandOff:
			return r, false
		case roleHost:
			hosts++
			r.host = value
		case roleConnection:
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					r.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")), len(tok) == 0:
				default:
					return r, false // hop-by-hop fields named: net/http's job
				}
			}
		}
	}
	if hosts != 1 || len(r.host) == 0 {
		return r, false
	}
	for _, c := range r.host {
		if !isHostByte(c) {
			return r, false
		}
	}
	return r, true
}

// Roles of request header fields on the fast path.
const (
	roleIgnore     = iota // no bearing on a stored 200 without Vary
	roleHost              // Host
	roleConnection        // Connection
	roleHandOff           // changes what is answered: net/http's path
)

// fastHeaderRole classifies a request header field name.
func fastHeaderRole(name []byte) int {
	for _, f := range handOffFields {
		if len(f) == len(name) && bytes.EqualFold(name, []byte(f)) {
			return roleHandOff
		}
	}
	switch {
	case bytes.EqualFold(name, []byte("Host")):
		return roleHost
	case bytes.EqualFold(name, []byte("Connection")):
		return roleConnection
	}
	return roleIgnore
}

// handOffFields are the request fields whose presence sends a request to
// net/http: they carry a body, preconditions, ranges, cache directives,
// credentials or protocol changes.
var handOffFields = [...]string{
	"Cache-Control", "Pragma", "Range", "If-Range", "If-Match", "If-None-Match",
	"If-Modified-Since", "If-Unmodified-Since", "Authorization", "Upgrade",
	"Content-Length", "Transfer-Encoding", "Expect", "Http2-Settings", "TE",
}

func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isTokenByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
}

// serveFast answers the request head from the store when it is a fresh
// stored 200 that net/http would have served unchanged, and writes what
// serveStored and net/http would write, byte for byte: the header fields
// sorted by name (as http.Header.Write), Date after them when the entry
// has none, then Connection: close when the client asked for it. out is a
// reusable buffer for the response header. served is false when the
// request must go to net/http, with nothing written; keep says whether the
// connection stays open.
func (p *PoP) serveFast(c *clientConn, head, out []byte) (_ []byte, keep, served bool) {
	r, ok := parseFastRequest(head)
	if !ok {
		return out, false, false
	}
	host := hostOnly(string(r.host))
	svc := p.routes.Load().byHost[host]
	if svc == nil || (svc.redirect && p.httpsPort != "") {
		return out, false, false
	}
	start := time.Now()
	key := cache.Key("http", host, string(r.path), string(r.query), svc.query)
	e, ok := p.store.Get(key)
	if !ok || e.IsVaryIndex() || e.Status != http.StatusOK || e.Header["Content-Type"] == nil {
		return out, false, false // (net/http sniffs a missing Content-Type)
	}
	now := p.now()
	if e.Usable(now, cache.RequestDirectives{}) != cache.UseFresh {
		return out, false, false
	}
	var sizeBuf [20]byte
	if cl := e.Header["Content-Length"]; len(cl) != 1 || cl[0] != string(strconv.AppendInt(sizeBuf[:0], e.BodySize(), 10)) {
		return out, false, false // net/http would frame the body otherwise
	}

	// The fields serveStored sends, in net/http's order.
	var namesBuf [32]string
	names := namesBuf[:0]
	hasDate := false
	for name := range e.Header {
		if cache.IsTargeted(name) {
			continue // targeted at this CDN (RFC 9213): not forwarded
		}
		switch name {
		case "Age", "Via", "Cache-Status":
			continue // replaced or added to below
		case "Connection", "Transfer-Encoding", "Trailer":
			return out, false, false // net/http rewrites these
		case "Date":
			hasDate = true
		}
		if !validFieldName(name) {
			return out, false, false // net/http drops it
		}
		names = append(names, name)
	}
	names = append(names, "Age", "Via", "Cache-Status")
	slices.Sort(names)
	status := cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true}.Format(p.statusName)
	out = append(out, "HTTP/1.1 200 OK\r\n"...)
	for _, name := range names {
		switch name {
		case "Age":
			out = appendField(out, name, cache.AgeHeader(e.Age(now)))
			continue
		}
		for _, v := range e.Header[name] {
			out = appendField(out, name, v)
		}
		switch name {
		case "Via":
			out = appendField(out, name, p.via[0])
		case "Cache-Status":
			out = appendField(out, name, status)
		}
	}
	if !hasDate {
		out = append(out, "Date: "...)
		out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\n"...)
	}
	if r.close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)

	var n int64
	var err error
	switch {
	case r.head:
		_, err = c.Write(out)
	case e.Blob != nil:
		if _, err = c.Write(out); err == nil {
			n, err = c.ReadFrom(e.Blob.NewReader())
		}
	default:
		out = append(out, e.Body...)
		var w int
		w, err = c.Write(out)
		n = int64(max(w-(len(out)-len(e.Body)), 0))
		out = out[:len(out)-len(e.Body)]
	}
	p.fastHits.Add(1)
	svc.stats.recordMethod(r.method, http.StatusOK, resultHit, n)
	total := time.Since(start)
	svc.stats.latency.observe(total)
	if p.access != nil && p.access.sampled() {
		client, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		p.access.log(accessRecord{
			at: start, client: client, method: r.method, host: string(r.host), path: string(r.target),
			proto: "HTTP/1.1", status: http.StatusOK, bytes: n, cacheStatus: status, total: total,
		})
	}
	return out, err == nil && !r.close, true
}

// appendField appends one header field line as http.Header.Write does:
// CR and LF in the value become spaces, and surrounding white space goes.
func appendField(out []byte, name, value string) []byte {
	if value != "" && (isFieldSpace(value[0]) || isFieldSpace(value[len(value)-1]) || strings.ContainsAny(value, "\r\n")) {
		value = textproto.TrimString(strings.NewReplacer("\n", " ", "\r", " ").Replace(value))
	}
	out = append(out, name...)
	out = append(out, ": "...)
	out = append(out, value...)
	return append(out, "\r\n"...)
}

func isFieldSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// validFieldName reports whether name is a token, as net/http requires of
// the fields it writes.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return false
		}
	}
	return true
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

// handoffListener is the listener net/http serves: it accepts the
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
