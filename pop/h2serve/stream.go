package h2serve

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// stream is one request's state. Its fields are guarded by the
// connection's mu unless noted.
type stream struct {
	c  *conn
	id uint32

	sendWindow   int64
	recvWindow   int64 // what the client may still send
	recvUnacked  int64 // read by the handler, not yet given back
	remoteClosed bool  // the client ended its side (END_STREAM)
	localClosed  bool  // the response ended
	reset        bool  // reset by either side, or the connection closed
	closed       bool  // removed from the connection
	running      bool  // a goroutine still works for it (holds a slot)
	wake         chan struct{}

	// Owned by the read loop.
	declLen int64 // the request's Content-Length, or -1
	gotLen  int64 // DATA bytes received
	body    *requestBody
	trailer http.Header // the request's declared trailers, filled at the end

	cancel context.CancelFunc

	deadlineMu sync.Mutex
	writeDL    time.Time // ResponseController's write deadline
	readDL     time.Time // ResponseController's read deadline
}

// newStreamLocked registers a stream: it takes a slot.
func (c *conn) newStreamLocked(id uint32) *stream {
	st := &stream{
		c: c, id: id, sendWindow: c.peerWindow, recvWindow: int64(c.o.StreamWindow),
		wake: make(chan struct{}, 1), declLen: -1,
	}
	c.streams[id] = st
	c.slots++
	c.updateIdleLocked()
	return st
}

// wakeUp tells a writer waiting for credit to look again.
func (st *stream) wakeUp() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// streamDone is called when the goroutine working for st returns: its
// slot goes once the stream is closed too.
func (c *conn) streamDone(st *stream) {
	c.mu.Lock()
	st.running = false
	if st.closed {
		c.releaseSlotLocked()
	}
	c.mu.Unlock()
}

// onHeaders handles a complete header block: a new request, or trailers.
func (c *conn) onHeaders(mh *http2.MetaHeadersFrame) error {
	id := mh.StreamID
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "HEADERS on an even stream"}
	}
	if id <= c.maxClientID {
		st := c.stream(id)
		if st == nil {
			return connError{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
		}
		c.mu.Lock()
		remoteClosed := st.remoteClosed
		c.mu.Unlock()
		if remoteClosed {
			c.resetStream(st, http2.ErrCodeStreamClosed)
			return nil
		}
		// Trailers (RFC 9113 §8.1): they end the stream, and carry no
		// pseudo-header fields.
		if !mh.StreamEnded() || len(mh.PseudoFields()) > 0 {
			c.resetStream(st, http2.ErrCodeProtocol)
			return nil
		}
		if st.declLen >= 0 && st.gotLen != st.declLen {
			c.resetStream(st, http2.ErrCodeProtocol)
			return nil
		}
		if st.trailer != nil {
			for _, f := range mh.RegularFields() {
				k := http.CanonicalHeaderKey(f.Name)
				if _, declared := st.trailer[k]; declared {
					st.trailer[k] = append(st.trailer[k], f.Value)
				}
			}
		}
		c.endRemote(st, io.EOF)
		return nil
	}
	c.maxClientID = id
	c.lastSeen.Store(id)
	c.srv.n.streams.Add(1)
	if c.blockOpened++; c.blockOpened > 1000 {
		c.blockOpened, c.blockResets = 1, 0
	}
	if mh.HasPriority() && mh.Priority.StreamDep == id {
		c.sendRST(id, http2.ErrCodeProtocol)
		return nil
	}
	c.mu.Lock()
	refuse := c.goingAway || c.slots >= int(c.o.MaxConcurrentStreams)
	c.mu.Unlock()
	if refuse {
		c.srv.n.refused.Add(1)
		c.sendRST(id, http2.ErrCodeRefusedStream)
		if c.blockResets++; c.blockResets > c.o.MaxResets {
			return connError{http2.ErrCodeEnhanceYourCalm, "too many refused streams"}
		}
		return nil
	}
	if mh.Truncated {
		// Past MaxHeaderListSize: 431, as net/http answers.
		block := AppendStatus(nil, http.StatusRequestHeaderFieldsTooLarge)
		c.mu.Lock()
		c.out = appendHeaders(c.out, id, block, true, c.peerFrame)
		if !mh.StreamEnded() {
			c.out = appendRST(c.out, id, http2.ErrCodeNo)
		}
		c.mu.Unlock()
		return nil
	}
	h, err := checkRequest(mh.Fields)
	if err != nil {
		c.sendRST(id, http2.ErrCodeProtocol)
		return nil
	}
	if mh.StreamEnded() && h.contentLength > 0 {
		c.sendRST(id, http2.ErrCodeProtocol)
		return nil
	}
	if c.srv.cache != nil && mh.StreamEnded() && hitRequest(&h, c.tlsState != nil, &c.req) {
		s := &c.sender
		s.id, s.head, s.sent = id, h.method == http.MethodHead, false
		c.srv.cache.ServeH2(s, &c.req)
		if s.sent {
			c.srv.n.hits.Add(1)
			return nil
		}
	}
	return c.startHandler(mh, &h)
}

// startHandler runs the handler for a request on a goroutine of its own.
func (c *conn) startHandler(mh *http2.MetaHeadersFrame, h *reqHead) error {
	id := mh.StreamID
	var u *url.URL
	var err error
	if h.method == http.MethodConnect {
		u = &url.URL{Host: h.authority}
	} else if h.path == "*" {
		u = &url.URL{Path: "*"}
	} else if u, err = url.ParseRequestURI(h.path); err != nil {
		c.sendRST(id, http2.ErrCodeProtocol)
		return nil
	}
	hdr := h.header()
	host := h.authority
	if host == "" {
		host = hdr.Get("Host")
	}
	ctx, cancel := context.WithCancel(c.ctx)
	req := &http.Request{
		Method:     h.method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     hdr,
		Host:       host,
		RemoteAddr: c.remoteAddr,
		RequestURI: h.path,
		TLS:        c.tlsState,
	}
	c.mu.Lock()
	st := c.newStreamLocked(id)
	st.running = true
	st.cancel = cancel
	st.declLen = h.contentLength
	if mh.StreamEnded() {
		st.remoteClosed = true
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		st.body = &requestBody{st: st, ready: make(chan struct{}, 1)}
		req.Body, req.ContentLength = st.body, h.contentLength
	}
	c.mu.Unlock()
	for _, v := range hdr["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch k {
			case "", "Transfer-Encoding", "Trailer", "Content-Length":
				continue
			}
			if st.trailer == nil {
				st.trailer = make(http.Header)
			}
			st.trailer[k] = nil
		}
	}
	req.Trailer = st.trailer
	req = req.WithContext(ctx)
	w := &responseWriter{st: st, req: req, header: make(http.Header)}
	c.handlers.Add(1)
	go c.runHandler(w)
	return nil
}

// runHandler runs the handler for one stream and ends its response.
func (c *conn) runHandler(w *responseWriter) {
	st := w.st
	defer c.handlers.Done()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.o.Logger.Error("h2serve: panic serving", "remote", c.remoteAddr, "panic", fmt.Sprint(p), "stack", string(buf))
			}
			c.resetStream(st, http2.ErrCodeInternal)
		} else {
			w.finish()
		}
		st.cancel()
		c.streamDone(st)
		c.flush()
	}()
	c.srv.handler.ServeHTTP(w, w.req)
}

// sendData sends p in DATA frames as the windows allow, waiting for credit
// up to the stream's write deadline (or the send timeout); end ends the
// stream with the last frame.
func (st *stream) sendData(p []byte, end bool) error {
	c := st.c
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errConnClosed
		}
		if st.reset {
			c.mu.Unlock()
			return errStreamReset
		}
		n := min(int64(len(p)), int64(c.peerFrame), st.sendWindow, c.sendWindow)
		if n <= 0 && len(p) > 0 {
			c.mu.Unlock()
			c.flush() // what is queued may be what the client waits for
			if err := st.waitCredit(); err != nil {
				return err
			}
			continue
		}
		last := int(n) == len(p)
		var flags http2.Flags
		if last && end {
			flags = http2.FlagDataEndStream
			st.localClosed = true
		}
		if n > 0 || flags != 0 {
			c.out = appendFrameHeader(c.out, int(n), http2.FrameData, flags, st.id)
			c.out = append(c.out, p[:n]...)
		}
		st.sendWindow -= n
		c.sendWindow -= n
		full := len(c.out) >= flushAt
		c.mu.Unlock()
		p = p[n:]
		if full {
			if err := c.flush(); err != nil {
				return err
			}
		}
		if last {
			return nil
		}
	}
}

// waitCredit waits for a WINDOW_UPDATE (or SETTINGS) that may let st send.
func (st *stream) waitCredit() error {
	st.deadlineMu.Lock()
	dl := st.writeDL
	st.deadlineMu.Unlock()
	if dl.IsZero() && st.c.o.SendTimeout > 0 {
		dl = time.Now().Add(st.c.o.SendTimeout)
	}
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-st.wake:
		return nil
	case <-st.c.closedCh:
		return errConnClosed
	case <-timeout:
		st.c.resetStream(st, http2.ErrCodeInternal)
		return os.ErrDeadlineExceeded
	}
}

// requestBody is a request's body: DATA frames' bytes, buffered up to the
// stream's receive window (the client may send no more), handed to the
// handler as it reads, each read giving the credit back.
type requestBody struct {
	st    *stream
	mu    sync.Mutex
	buf   []byte
	err   error // io.EOF at the end, or why it failed
	ready chan struct{}
}

// write adds a DATA frame's bytes (the read loop).
func (b *requestBody) write(p []byte) bool {
	b.mu.Lock()
	ok := b.err == nil
	if ok {
		b.buf = append(b.buf, p...)
	}
	b.mu.Unlock()
	b.signal()
	return ok
}

func (b *requestBody) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// closeWithError ends the body: reads return err once the buffer is read
// (at once for any error but io.EOF).
func (b *requestBody) closeWithError(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
		if err != io.EOF {
			b.buf = nil
		}
	}
	b.mu.Unlock()
	b.signal()
}

// drop discards what is buffered and reports how much.
func (b *requestBody) drop() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.buf)
	b.buf = nil
	return int64(n)
}

// Read reads the body, waiting for DATA up to the read deadline.
func (b *requestBody) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if len(b.buf) > 0 {
			n := copy(p, b.buf)
			b.buf = b.buf[n:]
			if len(b.buf) == 0 {
				b.buf = b.buf[:0:0]
			}
			b.mu.Unlock()
			b.st.c.giveCredit(b.st, int64(n))
			return n, nil
		}
		if b.err != nil {
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()
		b.st.deadlineMu.Lock()
		dl := b.st.readDL
		b.st.deadlineMu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(dl))
			} else {
				timer.Reset(time.Until(dl))
			}
			timeout = timer.C
		}
		select {
		case <-b.ready:
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Close stops the body: the client's further DATA is discarded (and the
// stream reset when the response ends before the body does).
func (b *requestBody) Close() error {
	b.closeWithError(errBodyClosed)
	if n := b.drop(); n > 0 {
		b.st.c.giveCredit(b.st, n)
	}
	return nil
}

var errBodyClosed = fmt.Errorf("h2serve: read on closed body: %w", http.ErrBodyReadAfterClose)
