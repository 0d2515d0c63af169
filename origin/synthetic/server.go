package synthetic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// DefaultCacheControl is the Cache-Control of /obj responses when neither
// Options.DefaultCacheControl nor ?cc= says otherwise.
const DefaultCacheControl = "public, max-age=3600"

// DefaultListen is the address Run listens on when Options.Listen is empty.
const DefaultListen = "127.0.0.1:8000"

// Options configure a Server. Every field is optional; the zero value is
// a well-behaved origin on DefaultListen.
type Options struct {
	// Listen is the TCP address Run listens on; default DefaultListen.
	Listen string

	// DefaultCacheControl is the Cache-Control of /obj responses that do
	// not carry ?cc=. Empty means DefaultCacheControl; "none" sends no
	// Cache-Control at all.
	DefaultCacheControl string

	// ErrorRate is the fraction of content requests, from 0 to 1, answered
	// 503 instead. The choice is a pseudo-random sequence fixed by Seed:
	// the k-th content request gets the same answer on every run with the
	// same seed.
	ErrorRate float64

	// Latency is added before every content response's header. If
	// LatencyMax is above it, the added latency is drawn uniformly from
	// [Latency, LatencyMax] instead (from a sequence fixed by Seed).
	Latency    time.Duration
	LatencyMax time.Duration

	// Seed fixes the error and latency draws.
	Seed uint64

	// ShutdownGrace bounds how long Serve waits for in-flight requests
	// once its context is done; default 10s. Then it closes the
	// connections that are left.
	ShutdownGrace time.Duration

	// Logger receives the server's logs; nil discards them. Nothing is
	// logged per request above debug level.
	Logger *slog.Logger
}

// Server is the synthetic origin. It is safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	cc      string // the default Cache-Control; "" sends none
	handler http.Handler

	errDraws, latDraws draws
	stats              *counters
	inFlight           atomic.Int64
	load               atomic.Uint64 // math.Float64bits of the override; loadUnset when none

	// onContent, if set, is called at the start of every content request,
	// after it is counted. Tests use it to hold a request in flight.
	onContent func(*http.Request)
}

// loadUnset marks that no load override is set (a NaN no caller can set).
var loadUnset = math.Float64bits(math.NaN())

// New checks opts and returns a Server. It reports every bad option at
// once.
func New(opts Options) (*Server, error) {
	var errs []error
	if !(opts.ErrorRate >= 0 && opts.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("error rate %v is not between 0 and 1", opts.ErrorRate))
	}
	if opts.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v is negative", opts.Latency))
	}
	if opts.LatencyMax != 0 && opts.LatencyMax < opts.Latency {
		errs = append(errs, fmt.Errorf("latency range %v-%v ends before it starts", opts.Latency, opts.LatencyMax))
	}
	if opts.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown grace %v is negative", opts.ShutdownGrace))
	}
	if !validFieldValue(opts.DefaultCacheControl) {
		errs = append(errs, fmt.Errorf("default Cache-Control %q: %w", opts.DefaultCacheControl, errFieldValue))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("synthetic: %w", errors.Join(errs...))
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		errDraws: draws{seed: splitmix(opts.Seed ^ 0x6572726f72)}, // "error"
		latDraws: draws{seed: splitmix(opts.Seed ^ 0x6c6174656e6379)},
		stats:    newCounters(),
	}
	switch opts.DefaultCacheControl {
	case "":
		s.cc = DefaultCacheControl
	case "none":
		s.cc = ""
	default:
		s.cc = opts.DefaultCacheControl
	}
	s.load.Store(loadUnset)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler returns the origin's HTTP handler: /obj/{id}, the /_origin/…
// endpoints, and 404 for the rest.
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns the counters of content requests.
func (s *Server) Stats() Stats { return s.stats.snapshot(false) }

// ResetStats returns the counters and zeroes them.
func (s *Server) ResetStats() Stats { return s.stats.snapshot(true) }

// Load returns the load figure /_origin/load publishes: the override if
// one is set, else the number of content requests in flight.
func (s *Server) Load() float64 {
	if bits := s.load.Load(); bits != loadUnset {
		return math.Float64frombits(bits)
	}
	return float64(s.inFlight.Load())
}

// SetLoad makes /_origin/load report v until ClearLoad. Like the pollers
// that read it, it takes only finite numbers ≥ 0.
func (s *Server) SetLoad(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("synthetic: load %v is not a finite number ≥ 0", v)
	}
	s.load.Store(math.Float64bits(v))
	return nil
}

// ClearLoad makes /_origin/load report in-flight requests again.
func (s *Server) ClearLoad() { s.load.Store(loadUnset) }

// Run listens on Options.Listen and serves until ctx is done (see Serve).
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("synthetic: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP/1.1 on ln until ctx is done, then stops accepting
// connections, lets in-flight requests finish within Options.ShutdownGrace,
// closes what is left and returns nil. It returns an error if ln fails or
// the grace period ran out.
//
// The server has a ReadHeaderTimeout (10s) and an IdleTimeout (2m) but no
// ReadTimeout or WriteTimeout: ?delay= and ?slow= stretch a response over
// minutes on purpose, and a write deadline would cut exactly the bodies
// that are meant to be slow. A client that stops reading holds its handler
// until it goes away or the server shuts down.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("origin serving", "listen", ln.Addr().String(), "cache_control", s.cc,
		"error_rate", s.opts.ErrorRate, "latency", s.opts.Latency, "latency_max", s.opts.LatencyMax,
		"seed", s.opts.Seed)

	select {
	case err := <-errc:
		return fmt.Errorf("synthetic: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("origin shutting down", "grace", s.opts.ShutdownGrace, "in_flight", s.inFlight.Load())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("synthetic: shutdown: %w", err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("synthetic: serve: %w", serr)
	}
	s.log.Info("origin stopped")
	return err
}

// draws is a lock-free pseudo-random sequence: the k-th call to next
// returns the k-th output of SplitMix64 from seed, whichever goroutine
// makes it.
type draws struct {
	seed uint64
	n    atomic.Uint64
}

func (d *draws) next() uint64 { return splitmix(d.seed + d.n.Add(1)*golden) }

// float returns the next draw as a number in [0, 1).
func (d *draws) float() float64 { return float64(d.next()>>11) / (1 << 53) }

// latency returns the latency to add to one content request.
func (s *Server) latency() time.Duration {
	lo, hi := s.opts.Latency, s.opts.LatencyMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.latDraws.next()%uint64(hi-lo+1))
}

// injectError reports whether to answer this content request with 503.
func (s *Server) injectError() bool {
	switch r := s.opts.ErrorRate; {
	case r <= 0:
		return false
	case r >= 1:
		return true
	default:
		return s.errDraws.float() < r
	}
}
