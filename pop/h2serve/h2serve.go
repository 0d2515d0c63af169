// Package h2serve is the PoP's own HTTP/2 server (RFC 9113), built for
// fresh cache hits: it answers them inline from its read loop and sends the
// frames of every stream answered in one batch in one write.
//
// The algorithm: one goroutine per connection reads frames with
// golang.org/x/net/http2's Framer (HPACK decoding, CONTINUATION assembly and
// the header-list bound are the Framer's). Each complete request goes first
// to the one-method Cache seam, which may answer it from storage by
// appending a HEADERS block and the body to the connection's write buffer
// (the window permitting; otherwise the rest of the body is sent by a
// goroutine as the peer grants credit, from the stored body, not a copy).
// Every other request runs the http.Handler on a goroutine of its own,
// bounded by MaxConcurrentStreams, writing through the same buffer. The
// read loop goes on reading while its bufio.Reader holds bytes and writes
// the buffer out once when it runs dry, so the ten requests a client sends
// at once are answered with one write, not twenty.
//
// Response header blocks are encoded without the HPACK dynamic table
// (literals without indexing, static-table names), as nginx does, so a
// block of stored fields can be prepared once per cache entry and reused on
// any connection, and blocks may leave in any order.
package h2serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. Every field is optional.
type Options struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: streams
	// beyond it are refused (REFUSED_STREAM). Zero means 250, as net/http.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds a request's decoded header fields (and
	// each HPACK string); zero means 64 KiB.
	MaxHeaderListSize uint32
	// StreamWindow is the receive window of each stream, and so the most
	// of a request body buffered per stream; zero means 1 MiB.
	StreamWindow uint32
	// ConnWindow is the receive window of the connection, the most of all
	// its request bodies buffered at once; zero means 1 MiB.
	ConnWindow uint32
	// ReadHeaderTimeout bounds the wait for the client preface and its
	// first SETTINGS frame; zero means 10 seconds.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes (with GOAWAY) a connection with no open stream
	// for this long; zero means none.
	IdleTimeout time.Duration
	// SendTimeout bounds each write to the connection and each wait of a
	// stream for flow-control credit; zero means none.
	SendTimeout time.Duration
	// MaxResets is how many streams a client may reset (or have refused)
	// per 1,000 streams it opens before the connection is closed with
	// GOAWAY ENHANCE_YOUR_CALM (the rapid-reset attack, CVE-2023-44487);
	// zero means 200.
	MaxResets int
	// Logger gets connection errors at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 250
	}
	if o.MaxHeaderListSize == 0 {
		o.MaxHeaderListSize = 64 << 10
	}
	if o.StreamWindow == 0 {
		o.StreamWindow = 1 << 20
	}
	if o.ConnWindow == 0 {
		o.ConnWindow = 1 << 20
	}
	o.StreamWindow = min(o.StreamWindow, maxWindow)
	o.ConnWindow = min(max(o.ConnWindow, initialWindow), maxWindow)
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.MaxResets == 0 {
		o.MaxResets = 200
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Stats are a Server's figures since it was made.
type Stats struct {
	ConnsOpen      int64 // connections being served
	Conns          int64 // connections served, in all
	Streams        int64 // requests received
	Hits           int64 // requests the Cache answered inline
	StreamsRefused int64 // streams refused (over MaxConcurrentStreams, or during shutdown)
	ResetsReceived int64 // RST_STREAM frames from clients
	ResetsSent     int64 // RST_STREAM frames sent (stream errors, aborted handlers)
	GoAways        int64 // GOAWAY frames sent with an error code (not NO_ERROR)
	Calm           int64 // connections closed for abuse (ENHANCE_YOUR_CALM)
}

type counters struct {
	connsOpen, conns, streams, hits, refused, resetsIn, resetsOut, goaways, calm atomic.Int64
}

// Server serves HTTP/2 connections handed to it by ServeConn.
type Server struct {
	opts    Options
	handler http.Handler
	cache   Cache
	n       counters

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown chan struct{} // closed by Shutdown
	wg       sync.WaitGroup
}

// ErrServerClosed is ServeConn's error for a connection handed over after
// Shutdown began.
var ErrServerClosed = errors.New("h2serve: server closed")

// New makes a Server that answers hits through c (nil: none) and every
// other request with h.
func New(h http.Handler, c Cache, o Options) *Server {
	return &Server{
		opts:     o.withDefaults(),
		handler:  h,
		cache:    c,
		conns:    make(map[*conn]struct{}),
		shutdown: make(chan struct{}),
	}
}

// Stats returns the server's figures.
func (s *Server) Stats() Stats {
	return Stats{
		ConnsOpen: s.n.connsOpen.Load(), Conns: s.n.conns.Load(), Streams: s.n.streams.Load(),
		Hits: s.n.hits.Load(), StreamsRefused: s.n.refused.Load(), ResetsReceived: s.n.resetsIn.Load(),
		ResetsSent: s.n.resetsOut.Load(), GoAways: s.n.goaways.Load(), Calm: s.n.calm.Load(),
	}
}

// ServeConn serves HTTP/2 on nc, which starts with the client preface
// (after TLS's handshake, or h2c with prior knowledge), until the client
// goes, an error, or Shutdown; it then closes nc. ctx's end closes the
// connection too; its values reach the handlers' requests.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	c := newConn(s, nc)
	s.mu.Lock()
	select {
	case <-s.shutdown:
		s.mu.Unlock()
		nc.Close()
		return ErrServerClosed
	default:
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.n.conns.Add(1)
	s.n.connsOpen.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.n.connsOpen.Add(-1)
		s.wg.Done()
	}()
	return c.serve(ctx)
}

// Shutdown sends every connection GOAWAY with the last stream it will
// answer, lets the streams in flight finish, and waits until the
// connections have closed or ctx ends (then it closes them and returns
// ctx's error). Connections handed over afterwards are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
	for c := range s.conns {
		c.goAwayGraceful()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	return nil
}
