package h2serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// readBufSize is the connection's read buffer: the frames the read loop
// handles before it writes out what they produced.
const readBufSize = 32 << 10

// flushAt is the write buffer's size at which the read loop writes it out
// before reading on (big inline bodies); it bounds the buffer to about
// this plus one answer.
const flushAt = 256 << 10

// conn is one HTTP/2 connection.
type conn struct {
	srv *Server
	o   *Options
	nc  net.Conn
	br  *bufio.Reader
	fr  *http2.Framer

	tlsState   *tls.ConnectionState
	remoteAddr string
	ctx        context.Context
	cancel     context.CancelFunc
	handlers   sync.WaitGroup // handler goroutines and body senders

	// Owned by the read loop.
	maxClientID uint32        // the highest stream the client opened
	lastSeen    atomic.Uint32 // maxClientID for other goroutines (GOAWAY)
	sender      Sender
	req         Request
	blockOpened int // streams opened in the current block of 1,000
	blockResets int // of them reset by the client or refused

	flushMu sync.Mutex // one write to nc at a time

	mu           sync.Mutex // guards what follows
	out          []byte     // frames to write
	spare        []byte     // the other write buffer
	streams      map[uint32]*stream
	slots        int // streams open plus handlers still running for closed ones
	sendWindow   int64
	peerWindow   int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame    int   // the client's SETTINGS_MAX_FRAME_SIZE
	connCredit   int64 // connection credit consumed but not yet given back
	connRecv     int64 // what the client may still send on the connection
	goingAway    bool  // GOAWAY sent: no new streams
	closed       bool  // nc is closed (or being)
	closedCh     chan struct{}
	werr         error
	idleDeadline bool // the idle read deadline is set
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		o:          &s.opts,
		nc:         nc,
		br:         bufio.NewReaderSize(nc, readBufSize),
		remoteAddr: nc.RemoteAddr().String(),
		streams:    make(map[uint32]*stream),
		sendWindow: initialWindow,
		peerWindow: initialWindow,
		peerFrame:  defaultFrame,
		closedCh:   make(chan struct{}),
		connRecv:   int64(s.opts.ConnWindow),
	}
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = c.o.MaxHeaderListSize
	c.fr.SetMaxReadFrameSize(defaultFrame) // what SETTINGS_MAX_FRAME_SIZE says by default
	c.sender.c = c
	return c
}

// connError is a connection error (RFC 9113 §5.4.1): GOAWAY with code.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string {
	return fmt.Sprintf("h2serve: connection error %v: %s", e.code, e.reason)
}

// serve runs the read loop.
func (c *conn) serve(ctx context.Context) error {
	c.ctx, c.cancel = context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, func() { c.closeNow() })
	defer func() {
		stop()
		c.closeNow()
		c.handlers.Wait()
		c.cancel()
	}()
	err := c.readLoop()
	var ce connError
	switch {
	case errors.As(err, &ce):
		c.goAway(ce.code)
		if ce.code != http2.ErrCodeNo {
			c.srv.n.goaways.Add(1)
		}
		if ce.code == http2.ErrCodeEnhanceYourCalm {
			c.srv.n.calm.Add(1)
		}
		c.flush()
		c.o.Logger.Debug("h2serve: connection error", "remote", c.remoteAddr, "err", err)
		// Let the GOAWAY reach the client before the close resets it:
		// stop reading, but drain briefly what it still sends.
		c.nc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
		return err
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	}
	return err
}

// readLoop reads the preface and then frames until an error.
func (c *conn) readLoop() error {
	c.nc.SetReadDeadline(time.Now().Add(c.o.ReadHeaderTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return fmt.Errorf("h2serve: reading the preface: %w", err)
	}
	if string(preface[:]) != http2.ClientPreface {
		return connError{http2.ErrCodeProtocol, "bad client preface"}
	}
	c.mu.Lock()
	c.out = appendSettings(c.out, false,
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.o.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: c.o.StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.o.MaxHeaderListSize},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
	)
	if d := c.o.ConnWindow - initialWindow; d > 0 {
		c.out = appendWindowUpdate(c.out, 0, d)
	}
	c.mu.Unlock()
	first := true
	for {
		if c.br.Buffered() == 0 || c.outLen() > flushAt {
			if err := c.flush(); err != nil {
				return err
			}
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.readError(err)
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return connError{http2.ErrCodeProtocol, "the first frame is not SETTINGS"}
			}
			first = false
			c.mu.Lock()
			c.updateIdleLocked()
			c.mu.Unlock()
		}
		if err := c.process(f); err != nil {
			return err
		}
	}
}

// readError turns a read error into what ends the loop: a connection
// error to send, or the end of the connection.
func (c *conn) readError(err error) error {
	var ce http2.ConnectionError
	var se http2.StreamError
	switch {
	case errors.As(err, &se):
		// The Framer found a malformed header block: the stream is
		// malformed (RFC 9113 §8.1.1); the HPACK state is intact.
		if se.StreamID > c.maxClientID && se.StreamID%2 == 1 {
			c.maxClientID = se.StreamID
		}
		if st := c.stream(se.StreamID); st != nil {
			c.resetStream(st, se.Code)
		} else {
			c.sendRST(se.StreamID, se.Code)
		}
		return nil
	case errors.As(err, &ce):
		return connError{http2.ErrCode(ce), "frame: " + errorDetail(c.fr, err)}
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connError{http2.ErrCodeFrameSize, "frame too large"}
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.mu.Lock()
		idle := c.slots == 0
		c.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeNo, "idle"}
		}
		return err
	}
	return err
}

func errorDetail(fr *http2.Framer, err error) string {
	if d := fr.ErrorDetail(); d != nil {
		return d.Error()
	}
	return err.Error()
}

// process handles one frame.
func (c *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.StreamID != 0 {
			return connError{http2.ErrCodeProtocol, "PING on a stream"}
		}
		if !f.IsAck() {
			c.mu.Lock()
			c.out = appendPingAck(c.out, f.Data)
			c.mu.Unlock()
		}
	case *http2.RSTStreamFrame:
		if f.StreamID > c.maxClientID || f.StreamID%2 == 0 {
			return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
		}
		if st := c.stream(f.StreamID); st != nil {
			c.srv.n.resetsIn.Add(1)
			c.closeStream(st, errStreamReset)
			c.blockResets++
			if c.blockResets > c.o.MaxResets {
				return connError{http2.ErrCodeEnhanceYourCalm, "too many resets"}
			}
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.sendRST(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		// The client opens no more streams; those in flight finish.
		c.mu.Lock()
		c.goingAway = true
		done := c.slots == 0
		c.mu.Unlock()
		if done {
			// Our GOAWAY, and the connection drained before it closes,
			// so what the client sent meanwhile does not reset it.
			return connError{http2.ErrCodeNo, "the client sent GOAWAY"}
		}
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	case *http2.ContinuationFrame:
		return connError{http2.ErrCodeProtocol, "CONTINUATION without HEADERS"}
	}
	return nil // unknown frames are ignored (RFC 9113 §5.5)
}

func (c *conn) stream(id uint32) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if f.HasDuplicates() {
		// Harmless: the last value wins (RFC 9113 §6.5).
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return connError{http2.ErrCodeFlowControl, "a stream's window overflowed"}
				}
				st.wakeUp()
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		}
		return nil
	})
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return connError{http2.ErrCode(ce), "invalid setting"}
		}
		return err
	}
	c.out = appendSettings(c.out, true)
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return connError{http2.ErrCodeFlowControl, "the connection's window overflowed"}
		}
		for _, st := range c.streams {
			st.wakeUp()
		}
		return nil
	}
	if f.StreamID > c.maxClientID || f.StreamID%2 == 0 {
		return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil // closed: ignored
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > maxWindow {
		c.mu.Unlock()
		c.resetStream(st, http2.ErrCodeFlowControl)
		c.mu.Lock()
		return nil
	}
	st.wakeUp()
	return nil
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	if id > c.maxClientID || id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
	}
	size := int64(f.Length) // padding counts (RFC 9113 §6.9.1)
	c.mu.Lock()
	// The connection's credit: given back at once for frames nobody
	// reads, as the handlers read for the rest.
	st := c.streams[id]
	if st == nil || st.remoteClosed {
		c.returnConnCreditLocked(size)
		c.mu.Unlock()
		if st != nil {
			c.resetStream(st, http2.ErrCodeStreamClosed)
		} else {
			c.sendRST(id, http2.ErrCodeStreamClosed)
		}
		return nil
	}
	if size > st.recvWindow {
		c.mu.Unlock()
		return connError{http2.ErrCodeFlowControl, "DATA beyond the stream's window"}
	}
	if st.localClosed && !st.running {
		// The response is over: the rest of the body is not wanted.
		c.returnConnCreditLocked(size)
		c.mu.Unlock()
		c.resetStream(st, http2.ErrCodeNo)
		return nil
	}
	st.recvWindow -= size
	data := f.Data()
	pad := size - int64(len(data))
	c.mu.Unlock()
	if pad > 0 {
		c.giveCredit(st, pad)
	}
	st.gotLen += int64(len(data))
	if st.declLen >= 0 && (st.gotLen > st.declLen || f.StreamEnded() && st.gotLen != st.declLen) {
		c.resetStream(st, http2.ErrCodeProtocol)
		return nil
	}
	if st.body != nil && st.body.write(data) {
	} else if len(data) > 0 {
		c.giveCredit(st, int64(len(data)))
	}
	if f.StreamEnded() {
		c.endRemote(st, io.EOF)
	}
	return nil
}

// endRemote marks the client's side of st done: the body reads err.
func (c *conn) endRemote(st *stream, err error) {
	c.mu.Lock()
	st.remoteClosed = true
	done := st.localClosed
	c.mu.Unlock()
	if st.body != nil {
		st.body.closeWithError(err)
	}
	if done {
		c.closeStream(st, nil)
	}
}

// giveCredit gives back n bytes of the connection's and st's receive
// windows, once enough has gathered to be worth a frame.
func (c *conn) giveCredit(st *stream, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.returnConnCreditLocked(n)
	if st == nil || st.remoteClosed || st.reset {
		return
	}
	st.recvUnacked += n
	if st.recvUnacked >= int64(c.o.StreamWindow)/4 || st.recvUnacked >= 16<<10 {
		c.out = appendWindowUpdate(c.out, st.id, uint32(st.recvUnacked))
		st.recvWindow += st.recvUnacked
		st.recvUnacked = 0
	}
}

func (c *conn) returnConnCreditLocked(n int64) {
	if n <= 0 {
		return
	}
	c.connCredit += n
	if c.connCredit >= int64(c.o.ConnWindow)/4 || c.connCredit >= 16<<10 {
		c.out = appendWindowUpdate(c.out, 0, uint32(c.connCredit))
		c.connRecv += c.connCredit
		c.connCredit = 0
	}
}

// sendRST queues RST_STREAM for a stream with no state.
func (c *conn) sendRST(id uint32, code http2.ErrCode) {
	c.srv.n.resetsOut.Add(1)
	c.mu.Lock()
	c.out = appendRST(c.out, id, code)
	c.mu.Unlock()
}

// resetStream sends RST_STREAM for st and closes it.
func (c *conn) resetStream(st *stream, code http2.ErrCode) {
	c.mu.Lock()
	if st.reset || st.closed {
		c.mu.Unlock()
		return
	}
	c.out = appendRST(c.out, st.id, code)
	c.mu.Unlock()
	c.srv.n.resetsOut.Add(1)
	c.closeStream(st, errStreamReset)
	if c.o.Logger != nil && code != http2.ErrCodeNo && code != http2.ErrCodeCancel {
		c.o.Logger.Debug("h2serve: stream reset", "remote", c.remoteAddr, "stream", st.id, "code", code.String())
	}
}

// closeStream removes st: its context ends, its body fails with err
// (unless it ended), waiters wake.
func (c *conn) closeStream(st *stream, err error) {
	c.mu.Lock()
	if st.closed {
		c.mu.Unlock()
		return
	}
	st.closed = true
	if err != nil {
		st.reset = true
	}
	delete(c.streams, st.id)
	// Credit the client sent for a body nobody will read goes back.
	unread := int64(0)
	if st.body != nil {
		unread = st.body.drop()
	}
	c.returnConnCreditLocked(unread)
	st.wakeUp()
	release := !st.running
	if release {
		c.releaseSlotLocked()
	}
	c.mu.Unlock()
	// The request's context ends before its body fails, so a handler
	// that sees the body fail can tell that the client left.
	if st.cancel != nil && err != nil {
		st.cancel()
	}
	if st.body != nil && err != nil {
		st.body.closeWithError(err)
	}
}

// releaseSlotLocked frees one stream slot.
func (c *conn) releaseSlotLocked() {
	c.slots--
	c.updateIdleLocked()
	if c.slots == 0 && c.goingAway {
		// Shutdown, or the client's GOAWAY: the last stream is done.
		c.closeAfterFlushLocked()
	}
}

// closeAfterFlushLocked closes the connection once what is buffered has
// been written (by whoever flushes next, or a goroutine).
func (c *conn) closeAfterFlushLocked() {
	go func() {
		c.flush()
		c.closeNow()
	}()
}

// updateIdleLocked arms the idle timeout when no stream is open, and
// disarms it when one is.
func (c *conn) updateIdleLocked() {
	if c.closed {
		return
	}
	switch {
	case c.slots == 0 && c.o.IdleTimeout > 0:
		c.nc.SetReadDeadline(time.Now().Add(c.o.IdleTimeout))
		c.idleDeadline = true
	case c.slots == 0 || c.idleDeadline:
		c.nc.SetReadDeadline(time.Time{})
		c.idleDeadline = false
	}
}

// goAway queues GOAWAY with code and the last stream this server
// processed; no stream opens after it.
func (c *conn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goingAway = true
	c.out = appendGoAway(c.out, c.lastSeen.Load(), code)
}

// goAwayGraceful is Shutdown's GOAWAY: the streams in flight finish, and
// the connection closes when the last does.
func (c *conn) goAwayGraceful() {
	c.mu.Lock()
	if c.goingAway {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.out = appendGoAway(c.out, c.lastSeen.Load(), http2.ErrCodeNo)
	if c.slots == 0 {
		c.closeAfterFlushLocked()
	}
	c.mu.Unlock()
	go c.flush()
}

// outLen is how much is buffered to write.
func (c *conn) outLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

// flush writes the buffered frames in one write, with the send timeout.
func (c *conn) flush() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	if c.werr != nil {
		c.mu.Unlock()
		return c.werr
	}
	buf := c.out
	c.out, c.spare = c.spare[:0], nil
	c.mu.Unlock()
	if len(buf) == 0 {
		c.mu.Lock()
		c.spare = buf
		c.mu.Unlock()
		return nil
	}
	if c.o.SendTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.o.SendTimeout))
	}
	_, err := c.nc.Write(buf)
	if c.o.SendTimeout > 0 {
		c.nc.SetWriteDeadline(time.Time{})
	}
	c.mu.Lock()
	if cap(buf) <= 2*flushAt {
		c.spare = buf[:0]
	}
	if err != nil && c.werr == nil {
		c.werr = fmt.Errorf("h2serve: write: %w", err)
	}
	err = c.werr
	c.mu.Unlock()
	if err != nil {
		c.closeNow()
	}
	return err
}

// closeNow closes the connection: every stream ends.
func (c *conn) closeNow() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.closedCh)
	streams := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		streams = append(streams, st)
	}
	c.mu.Unlock()
	c.nc.Close()
	for _, st := range streams {
		c.closeStream(st, errConnClosed)
	}
}

var (
	errStreamReset = errors.New("h2serve: stream reset")
	errConnClosed  = errors.New("h2serve: connection closed")
)
