package h2serve

import (
	"net"
	"slices"

	"golang.org/x/net/http2"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// Cache is the server's seam to the PoP, which keeps its caching rules,
// figures and access log to itself: the HTTP/2 twin of fastpath.Cache.
type Cache interface {
	// ServeH2 answers r from storage when it is a response the PoP's
	// handler would send unchanged (a fresh stored 200, say): it builds
	// the response's header block in s.Block() — AppendStatus, then
	// AppendField for each field, lowercase names, as net/http's HTTP/2
	// server would send them — and sends it with s.Send, once. To decline
	// it returns without calling Send: the handler then answers r.
	ServeH2(s *Sender, r *Request)
}

// Request is a request the Cache may answer: a GET or HEAD without a body,
// conditionals, ranges, cache directives or credentials, with a target and
// authority the HTTP/1.1 fast path would also take. It is reused: valid
// only during ServeH2.
type Request struct {
	Method    string // http.MethodGet or http.MethodHead
	Target    string // :path as sent
	Path      string // the target's path: only unreserved characters and '/'
	Query     string // the target's query, without '?'
	Authority string // :authority, or the Host field
	TLS       bool   // the connection is over TLS

	// The fields the access log keeps, as Header.Get would give them.
	UserAgent string
	Referer   string
	RequestID string // when there is exactly one
}

// inlineMax is the most of one body the read loop queues itself; beyond
// it (or beyond the windows) the stream's own goroutine sends the rest, so
// the write buffer stays near flushAt however big the object and the
// client's windows.
const inlineMax = flushAt

// Sender sends the Cache's answer on the connection; one is reused for
// the connection's requests.
type Sender struct {
	c     *conn
	id    uint32 // the stream
	head  bool   // HEAD: no body goes out
	sent  bool
	block []byte
}

// Block returns an empty buffer for the response's header block; its
// storage is reused from one request to the next.
func (s *Sender) Block() []byte { return s.block[:0] }

// RemoteAddr is the client's address.
func (s *Sender) RemoteAddr() net.Addr { return s.c.nc.RemoteAddr() }

// Send queues the response: HEADERS with block, then the body, from the
// heap (body) or from a blob (b), in DATA frames as the peer's windows and
// frame size allow; for HEAD only the headers. What the windows do not
// take now is sent as the client grants credit, from body or b, not a
// copy. It returns the body bytes the response carries.
func (s *Sender) Send(block, body []byte, b *blob.Blob) (int64, error) {
	s.sent = true
	s.block = block[:0]
	c := s.c
	size := int64(len(body))
	if b != nil {
		size = b.Size()
	}
	if s.head {
		size = 0
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, errConnClosed
	}
	c.out = appendHeaders(c.out, s.id, block, size == 0, c.peerFrame)
	if size == 0 {
		c.mu.Unlock()
		return 0, nil
	}
	// As much as the windows allow now, up to inlineMax: the rest of a
	// big body goes out from a goroutine, a buffer's worth at a time.
	n := min(size, c.sendWindow, c.peerWindow, inlineMax)
	var off int64
	for off < n {
		m := min(n-off, int64(c.peerFrame))
		var flags http2.Flags
		if off+m == size {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrameHeader(c.out, int(m), http2.FrameData, flags, s.id)
		if b != nil {
			start := len(c.out)
			c.out = slices.Grow(c.out, int(m))[:start+int(m)]
			if _, err := b.ReadAt(c.out[start:], off); err != nil {
				// The file failed under us: the stream cannot go on.
				c.out = c.out[:start-frameHeaderLen]
				c.out = appendRST(c.out, s.id, http2.ErrCodeInternal)
				c.mu.Unlock()
				return off, err
			}
		} else {
			c.out = append(c.out, body[off:off+m]...)
		}
		off += m
	}
	c.sendWindow -= n
	if off == size {
		c.mu.Unlock()
		return size, nil
	}
	// The rest waits for credit: a stream of its own, sent by a goroutine.
	st := c.newStreamLocked(s.id)
	st.sendWindow -= n
	st.remoteClosed = true
	st.running = true
	c.mu.Unlock()
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		var err error
		if b != nil {
			buf := make([]byte, min(size-off, 64<<10))
			for err == nil && off < size {
				m, rerr := b.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
				if rerr != nil && m == 0 {
					err = rerr
					break
				}
				off += int64(m)
				err = st.sendData(buf[:m], off == size)
			}
		} else {
			err = st.sendData(body[off:], true)
		}
		if err != nil {
			c.resetStream(st, http2.ErrCodeInternal)
		} else {
			c.closeStream(st, nil)
		}
		c.streamDone(st)
		c.flush()
	}()
	return size, nil
}
