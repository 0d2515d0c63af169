package fastpath

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// The fast path over TLS. With Options.TLS the Server accepts the TLS
// listener's connections itself, as net/http's ServeTLS would: the
// handshake (the PoP's tls.Config, certificates by SNI) runs on the
// connection's own goroutine within the read header timeout, so a client
// that never finishes one holds its slot on the Listener (limits.max_conns)
// for that long at most. Then by ALPN: "h2" goes to net/http (Handoff) as
// the *tls.Conn, which dispatches it as it would its own (to its HTTP/2
// server, or the one in its TLSNextProto); "http/1.1", or nothing, runs the
// same request loop as the clear listener over the *tls.Conn. A request the
// Cache declines is lent or handed to net/http in a wrapper that reports
// the TLS connection's ConnectionState, which net/http puts in
// Request.TLS as it would for a *tls.Conn (the PoP keys, redirects and
// adds HSTS and Alt-Svc by it).
//
// crypto/tls writes each record to the connection with a write of its own.
// A fast-path answer is written in one batch instead: the records of its
// head and body are kept below crypto/tls and go out in one write per
// tlsBatchMax bytes (a 100 KiB hit is one write, not seven or more). Blob
// bodies cannot go with sendfile under TLS: they are read into a pooled
// buffer, after the head, and encrypted from there in large writes.

// HandshakeResult is what became of one TLS connection's handshake.
type HandshakeResult int

// The results.
const (
	HandshakeH2      HandshakeResult = iota // done, ALPN "h2": handed to net/http
	HandshakeHTTP1                          // done, ALPN "http/1.1" or none: the fast path's
	HandshakeTimeout                        // not done within the read header timeout: closed
	HandshakeClosed                         // the client closed or reset the connection first (or shutdown did)
	HandshakeFailed                         // anything else: a bad ClientHello, no common version or cipher, plain HTTP
	numHandshakeResults
)

// String is the result's label in /metrics.
func (r HandshakeResult) String() string {
	return [...]string{"h2", "http/1.1", "timeout", "closed", "failed"}[r]
}

// HandshakeResults lists every result, in order.
func HandshakeResults() []HandshakeResult {
	out := make([]HandshakeResult, numHandshakeResults)
	for i := range out {
		out[i] = HandshakeResult(i)
	}
	return out
}

// Handshakes returns how many TLS handshakes ended with each result
// (indexed by HandshakeResult); nil when the Server runs none.
func (s *Server) Handshakes() []uint64 {
	if s.tls == nil {
		return nil
	}
	out := make([]uint64, numHandshakeResults)
	for i := range out {
		out[i] = s.handshakes[i].Load()
	}
	return out
}

// handshake runs the TLS handshake on fc within the read header timeout.
// It reports true when the fast path serves the connection from here on
// (fc.rw is then the TLS connection); otherwise the connection was handed
// to net/http (HTTP/2) or closed.
func (s *Server) handshake(fc *fastConn) bool {
	c := fc.c
	tc := tls.Server(c, s.tls)
	if s.readHeader > 0 {
		dl := time.Now().Add(s.readHeader)
		c.SetReadDeadline(dl)
		c.SetWriteDeadline(dl)
	}
	if err := tc.Handshake(); err != nil {
		res := handshakeFailure(err)
		s.handshakes[res].Add(1)
		reason := err.Error()
		// A client speaking plain HTTP gets net/http's answer to it.
		if re, ok := errors.AsType[tls.RecordHeaderError](err); ok && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			reason = "client sent an HTTP request to an HTTPS server"
		}
		s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "result", res.String(), "err", reason)
		c.Close()
		return false
	}
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.handshakes[HandshakeH2].Add(1)
		s.handoff.give(tc)
		return false
	}
	s.handshakes[HandshakeHTTP1].Add(1)
	fc.tc, fc.rw = tc, tc
	fc.send.tc = tc
	return true
}

// handshakeFailure classifies a failed handshake.
func handshakeFailure(err error) HandshakeResult {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return HandshakeTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return HandshakeClosed
	}
	return HandshakeFailed
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request (as net/http's check).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// tlsBufferedConn is a TLS connection handed to net/http with bytes the
// fast path already read from it. Its ConnectionState (the *tls.Conn's)
// gives net/http Request.TLS; it has no ReadFrom, so nothing bypasses TLS.
type tlsBufferedConn struct {
	*tls.Conn
	br *bufio.Reader
}

// Read reads the buffered bytes first, then the connection.
func (c *tlsBufferedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// tlsBatchMax is the most a batch keeps before it writes: a 100 KiB
// response and its records' overhead go out in one write.
const tlsBatchMax = 128 << 10

// tlsBatchPool holds the batches of answers being written; at most one per
// connection sending a fast-path answer (so at most limits.max_conns).
var tlsBatchPool = sync.Pool{New: func() any { b := make([]byte, 0, tlsBatchMax+tlsRecordOverhead); return &b }}

// tlsRecordOverhead bounds the bytes a TLS record adds to its payload.
const tlsRecordOverhead = 5 + 1 + 16 + 256

// tlsCopySize is the plaintext read from a blob per write to TLS: four
// full records.
const tlsCopySize = 64 << 10

// tlsCopyPool holds the plaintext buffers of blob bodies sent over TLS.
var tlsCopyPool = sync.Pool{New: func() any { b := make([]byte, tlsCopySize); return &b }}

// sendTLS is Send over TLS: the head and body are written through the TLS
// connection in one batch (startBatch), a blob's body read into a pooled
// buffer after the head.
func (s *Sender) sendTLS(head, body []byte, b *blob.Blob) (int64, error) {
	var n int64
	var err error
	s.c.startBatch()
	switch {
	case s.head:
		_, err = s.tc.Write(head)
	case b != nil:
		n, err = s.copyBlob(head, b)
	default:
		out := append(head, body...)
		var w int
		w, err = s.tc.Write(out)
		n = int64(max(w-len(head), 0))
		head = out // keeps the grown buffer
	}
	if ferr := s.c.endBatch(); err == nil {
		err = ferr
	}
	s.buf, s.err = head[:0], err
	return n, err
}

// copyBlob writes head and then b's body through TLS, tlsCopySize bytes
// of plaintext per write, the head sharing the first; it returns the body
// bytes written.
func (s *Sender) copyBlob(head []byte, b *blob.Blob) (int64, error) {
	bp := tlsCopyPool.Get().(*[]byte)
	defer tlsCopyPool.Put(bp)
	buf := *bp
	k := 0
	if len(head) < len(buf)/2 {
		k = copy(buf, head)
	} else if _, err := s.tc.Write(head); err != nil {
		return 0, err
	}
	r := b.NewReader()
	var n int64
	for {
		m, rerr := io.ReadFull(r, buf[k:])
		if k+m > 0 {
			if _, err := s.tc.Write(buf[:k+m]); err != nil {
				return n, err
			}
		}
		n += int64(m)
		k = 0
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return n, nil
		default:
			return n, rerr
		}
	}
}

// startBatch makes the connection's writes, from the goroutine that calls
// it, go into a batch until endBatch; only the fast path's goroutine of
// the connection, while it sends an answer, uses a batch.
func (c *clientConn) startBatch() {
	c.batch = tlsBatchPool.Get().(*[]byte)
}

// endBatch writes what the batch holds and ends it.
func (c *clientConn) endBatch() error {
	err := c.flushBatch()
	*c.batch = (*c.batch)[:0]
	tlsBatchPool.Put(c.batch)
	c.batch = nil
	return err
}

// batchWrite is Write while a batch is on: p is kept, after what the batch
// holds is written when p would not fit.
func (c *clientConn) batchWrite(p []byte) (int, error) {
	if len(*c.batch)+len(p) > cap(*c.batch) {
		if err := c.flushBatch(); err != nil {
			return 0, err
		}
		if len(p) > cap(*c.batch) {
			return c.write(p)
		}
	}
	*c.batch = append(*c.batch, p...)
	return len(p), nil
}

// flushBatch writes what the batch holds, with the send timeout.
func (c *clientConn) flushBatch() error {
	b := *c.batch
	if len(b) == 0 {
		return nil
	}
	*c.batch = b[:0]
	_, err := c.write(b)
	return err
}
