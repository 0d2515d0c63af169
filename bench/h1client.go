package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Limits of the HTTP/1.1 client.
const (
	h1BufferSize   = 16 << 10 // read buffer, and the longest header line
	bodyChunk      = 64 << 10 // reads of large bodies, past the buffer
	maxHeaderLines = 256
)

// h1Client is a lean HTTP/1.1 client on one keep-alive connection: one
// request at a time, no pipelining, Content-Length, chunked and
// close-delimited bodies, interim 1xx responses skipped. Its hot path
// allocates nothing: the request is built in a reused buffer, header lines
// are read in place from the bufio.Reader, and bodies are discarded (or fed
// to a verifier) from its buffer, large ones in 64 KiB reads straight from
// the connection.
type h1Client struct {
	addr   string
	tls    *tls.Config // nil for http
	dialer net.Dialer

	conn net.Conn
	br   *bufio.Reader
	// unwatch stops the watch that breaks the connection's I/O when the
	// run is cancelled.
	unwatch func() bool

	method []byte
	head   bool   // HEAD responses have no body
	suffix []byte // " HTTP/1.1\r\nHost: …\r\n…\r\n"
	req    []byte
	chunk  []byte // scratch for large bodies, allocated on first use
}

var _ client = (*h1Client)(nil)

// newH1Client makes a client for requests with the given method, Host
// header and extra header lines ("Name: value"), to addr.
func newH1Client(addr, method, host string, header []string, tlsConfig *tls.Config, timeout time.Duration) *h1Client {
	suffix := []byte(" HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: outpost-bench\r\n")
	for _, h := range header {
		suffix = append(suffix, h...)
		suffix = append(suffix, "\r\n"...)
	}
	suffix = append(suffix, "\r\n"...)
	return &h1Client{
		addr:   addr,
		tls:    tlsConfig,
		dialer: net.Dialer{Timeout: timeout},
		br:     bufio.NewReaderSize(nil, h1BufferSize),
		method: []byte(method),
		head:   method == "HEAD",
		suffix: suffix,
		req:    make([]byte, 0, 512),
	}
}

func (c *h1Client) setAddr(addr string) {
	if addr != c.addr {
		c.close()
		c.addr = addr
	}
}

func (c *h1Client) close() {
	if c.unwatch != nil {
		c.unwatch()
		c.unwatch = nil
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *h1Client) dial(ctx context.Context, deadline time.Time) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, "tcp", c.addr)
	if err != nil {
		return failure(errConnect, err)
	}
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return failure(errTLS, err)
		}
		conn = tc
	}
	c.conn = conn
	c.br.Reset(conn)
	// Cancelling the run (Ctrl-C) must end a request blocked on a silent
	// server now, not at its timeout: a deadline in the past does that.
	c.unwatch = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (c *h1Client) do(ctx context.Context, path []byte, deadline time.Time, resp *response) error {
	c.req = append(append(append(append(c.req[:0], c.method...), ' '), path...), c.suffix...)
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx, deadline); err != nil {
				return err
			}
		}
		resp.addr = c.addr
		started, err := c.roundTrip(ctx, deadline, resp)
		if err == nil {
			return nil
		}
		c.close()
		// A kept-alive connection the server closed meanwhile fails before
		// any byte of the answer: send again on a new one, once, as
		// net/http does for idempotent requests.
		if reused && !started && attempt == 0 && staleConn(err) {
			continue
		}
		return err
	}
}

// staleConn reports errors of a connection the server had closed.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip writes the request and reads the response. started reports
// whether any byte of the response arrived.
func (c *h1Client) roundTrip(ctx context.Context, deadline time.Time, resp *response) (started bool, err error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return false, failure(errWrite, err)
	}
	if err := ctx.Err(); err != nil {
		// Cancelled before the deadline was set: the watch's deadline in
		// the past may have been overwritten.
		return false, failure(errWrite, err)
	}
	if _, err := c.conn.Write(c.req); err != nil {
		return false, failure(errWrite, err)
	}
	return c.readResponse(resp)
}

// errMalformed reports a response that is not valid HTTP/1.1.
var errMalformed = errors.New("malformed HTTP/1.1 response")

func malformed(what string) error {
	return failure(errProtocol, fmt.Errorf("%w: %s", errMalformed, what))
}

// readResponse reads one final response (skipping interim 1xx ones).
func (c *h1Client) readResponse(resp *response) (started bool, err error) {
	for {
		line, err := c.readLine()
		if err != nil {
			return started || len(line) > 0, err
		}
		started = true
		status, http10, ok := parseStatusLine(line)
		if !ok {
			return true, malformed("status line")
		}
		h, err := c.readHeader(resp)
		if err != nil {
			return true, err
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // interim response: the final one follows
		}
		resp.status = status
		closeAfter := h.close || (http10 && !h.keepAlive)
		switch {
		case c.head, status == 204, status == 304, status < 200:
		case h.chunked:
			err = c.readChunked(resp)
		case h.length >= 0:
			err = c.readBody(h.length, resp)
		default:
			err = c.readToClose(resp)
			closeAfter = true
		}
		if err != nil {
			return true, err
		}
		if closeAfter {
			c.close()
		}
		return true, nil
	}
}

// readLine returns the next line without its CRLF (or LF). The slice is
// valid until the next read.
func (c *h1Client) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, malformed("line longer than 64 KiB")
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return line, failure(errRead, err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatusLine parses "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, http10, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, false, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, false
		}
		status = status*10 + int(d-'0')
	}
	return status, line[7] == '0', status >= 100
}

// header is what the client needs of a response's header section.
type header struct {
	length    int64 // -1 when absent
	chunked   bool
	close     bool
	keepAlive bool
}

// readHeader reads the header section. It keeps the last Cache-Status
// line's value in resp.
func (c *h1Client) readHeader(resp *response) (header, error) {
	h := header{length: -1}
	resp.cacheStatus = resp.cacheStatus[:0]
	hasTE := false
	for i := 0; ; i++ {
		if i > maxHeaderLines {
			return h, malformed("too many header lines")
		}
		line, err := c.readLine()
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, malformed("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return h, malformed("header line without a name")
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (h.length >= 0 && n != h.length) {
				return h, malformed("Content-Length")
			}
			h.length = n
		case equalFold(name, "transfer-encoding"):
			hasTE = true
			h.chunked = hasSuffixFold(value, "chunked")
		case equalFold(name, "connection"):
			h.close = h.close || hasToken(value, "close")
			h.keepAlive = h.keepAlive || hasToken(value, "keep-alive")
		case equalFold(name, "cache-status"):
			resp.cacheStatus = append(resp.cacheStatus[:0], value...)
		}
	}
	if hasTE {
		// Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a
		// coding other than chunked last means the body runs to close.
		h.length = -1
	}
	return h, nil
}

// readBody consumes a body of n bytes: first what the buffer holds, then
// the rest straight from the connection in large reads (exactly n bytes,
// so nothing of a next response is taken).
func (c *h1Client) readBody(n int64, resp *response) error {
	if buffered := c.br.Buffered(); buffered > 0 {
		take := int(min(n, int64(buffered)))
		if resp.body != nil {
			b, _ := c.br.Peek(take)
			resp.body.Write(b)
		}
		c.br.Discard(take)
		n -= int64(take)
		resp.bodyBytes += int64(take)
	}
	if n == 0 {
		return nil
	}
	if c.chunk == nil {
		c.chunk = make([]byte, bodyChunk)
	}
	for n > 0 {
		m, err := io.ReadFull(c.conn, c.chunk[:min(n, int64(len(c.chunk)))])
		resp.bodyBytes += int64(m)
		n -= int64(m)
		if resp.body != nil {
			resp.body.Write(c.chunk[:m])
		}
		if err != nil {
			return failure(errRead, unexpectedEOF(err))
		}
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readChunked consumes a chunked body and its trailer section.
func (c *h1Client) readChunked(resp *response) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, ok := parseHex(trimOWS(line))
		if !ok {
			return malformed("chunk size")
		}
		if size == 0 {
			break
		}
		if err := c.readBody(size, resp); err != nil {
			return err
		}
		if crlf, err := c.readLine(); err != nil {
			return err
		} else if len(crlf) != 0 {
			return malformed("chunk not followed by CRLF")
		}
	}
	for i := 0; ; i++ { // the trailer section
		if i > maxHeaderLines {
			return malformed("too many trailer lines")
		}
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// readToClose consumes a body delimited by the end of the connection.
func (c *h1Client) readToClose(resp *response) error {
	for {
		buf, err := c.br.Peek(1)
		if len(buf) == 0 {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return failure(errRead, err)
		}
		n := c.br.Buffered()
		if err := c.readBody(int64(n), resp); err != nil {
			return err
		}
	}
}

// parseLength parses a Content-Length value.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// parseHex parses a chunk size.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		switch {
		case d >= '0' && d <= '9':
			d -= '0'
		case d >= 'a' && d <= 'f':
			d -= 'a' - 10
		case d >= 'A' && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// equalFold compares an ASCII header name with a lowercase one.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(b []byte, lower string) bool {
	return len(b) >= len(lower) && equalFold(b[len(b)-len(lower):], lower)
}

// hasToken reports whether a comma-separated list has the token.
func hasToken(b []byte, lower string) bool {
	for len(b) > 0 {
		var item []byte
		item, b, _ = bytes.Cut(b, []byte{','})
		if equalFold(trimOWS(item), lower) {
			return true
		}
	}
	return false
}
