package dnsgeo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/outpost-cdn/outpost/config"
)

// Options are a Server's dependencies beyond its configuration. Every
// field is optional.
type Options struct {
	// Logger receives the server's logs; nil means slog.Default(). Nothing
	// is logged at info level per query.
	Logger *slog.Logger
	// Registry receives the server's metrics; nil means a new registry
	// with the Go runtime and process collectors.
	Registry *prometheus.Registry
	// Now is the clock of health-change times, uptime, rate limits and
	// the age of PoP states; nil means time.Now.
	Now func() time.Time
	// Locators place clients, consulted in order; nil means the network
	// map of the configuration (dns.networks), when it has one.
	Locators []Locator
	// HTTPClient sends the health probes; nil means a client of the
	// server's own, whose idle connections are closed when Serve returns.
	HTTPClient *http.Client
	// ShutdownGrace bounds how long TCP queries in progress may take to
	// finish when the server stops; zero means 5s.
	ShutdownGrace time.Duration
	// AnswerCacheEntries is the number of slots of the UDP answer cache
	// (answercache.go, rounded up to a power of two); zero means the
	// configuration's dns.answer_cache, and a negative number turns the
	// cache off.
	AnswerCacheEntries int
}

// Server is the authoritative geo DNS server of one configuration. Make one
// with New; it is safe for concurrent use. What it derives from the
// configuration lives in an immutable state that Reload replaces whole.
type Server struct {
	version  string // of the file New was given, for the startup log
	log      *slog.Logger
	now      func() time.Time
	registry *prometheus.Registry
	client   *http.Client
	grace    time.Duration
	listen   []string // fixed for the server's life
	admin    string

	state         atomic.Pointer[state]
	reloadMu      sync.Mutex // serializes reloads
	fixedLocators bool       // Options.Locators were given: reloads keep them

	metrics *metrics
	probes  probeSet
	acme    *acmeStore // ACME challenge records (dns.acme)
	// lastState is when the newest state accepted from any PoP was made
	// (Unix ns by the server's clock; 0 = none yet): the server hears the
	// control plane while it is fresh.
	lastState atomic.Int64
	// answerGen is the answer cache's generation: bumped when a PoP's
	// health or state changes in a way an answer may depend on, so that
	// answers cached before are not served (answercache.go).
	answerGen     atomic.Uint64
	answerEntries int // Options.AnswerCacheEntries

	healthMu sync.Mutex // serializes health state changes, for fail-open logs
	failOpen [2]bool    // per family: no PoP healthy, as last logged

	retiredMu sync.Mutex
	retired   map[*time.Timer]*state // replaced states whose databases are still open
	stopped   bool                   // Serve returned: close replaced states at once

	started  time.Time
	draining atomic.Bool
	ready    chan struct{}
}

// New makes the DNS server of cfg, which must have a dns section. It
// reads the network map, if the configuration names one, and checks that
// every PoP it names exists.
func New(cfg *config.Config, opts Options) (*Server, error) {
	dc, err := cfg.DNSConfig()
	if err != nil {
		return nil, err
	}
	s := &Server{
		version:       cfg.Version,
		log:           opts.Logger,
		now:           opts.Now,
		registry:      opts.Registry,
		client:        opts.HTTPClient,
		grace:         opts.ShutdownGrace,
		listen:        slices.Clone(dc.Listen),
		admin:         dc.Admin,
		fixedLocators: opts.Locators != nil,
		metrics:       newMetrics(),
		answerEntries: opts.AnswerCacheEntries,
		retired:       make(map[*time.Timer]*state),
		ready:         make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.acme = newACMEStore(s.now)
	if s.grace <= 0 {
		s.grace = 5 * time.Second
	}
	st, err := s.buildState(cfg, nil, opts.Locators)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	if s.client == nil {
		s.client = &http.Client{
			Transport: &http.Transport{
				Proxy:               nil, // probes go straight to the PoPs
				MaxIdleConnsPerHost: 1,
				IdleConnTimeout:     2 * st.health.Interval,
				DisableCompression:  true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	if err := s.registry.Register(&collector{s: s}); err != nil {
		s.closeState(st)
		return nil, fmt.Errorf("dnsgeo: metrics: %w", err)
	}
	s.started = s.now()
	return s, nil
}

// Listeners are the sockets a Server serves on: a UDP socket and a TCP
// listener per DNS address, and an optional admin listener.
type Listeners struct {
	UDP   []net.PacketConn
	TCP   []net.Listener
	Admin net.Listener // nil means no admin endpoints
}

// Close closes every socket.
func (l Listeners) Close() {
	for _, c := range l.UDP {
		c.Close()
	}
	for _, c := range l.TCP {
		c.Close()
	}
	if l.Admin != nil {
		l.Admin.Close()
	}
}

// Listen opens a UDP socket and a TCP listener on each of addrs, on the
// same port even when the port is 0, and a TCP listener on admin unless it
// is "".
func Listen(ctx context.Context, addrs []string, admin string) (Listeners, error) {
	var ls Listeners
	for _, a := range addrs {
		pc, ln, err := listenPair(ctx, a)
		if err != nil {
			ls.Close()
			return Listeners{}, err
		}
		ls.UDP = append(ls.UDP, pc)
		ls.TCP = append(ls.TCP, ln)
	}
	if admin != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", admin)
		if err != nil {
			ls.Close()
			return Listeners{}, fmt.Errorf("dnsgeo: admin listen: %w", err)
		}
		ls.Admin = ln
	}
	return ls, nil
}

// listenPair listens on addr over UDP and TCP. With port 0 it takes the
// port the UDP socket got for TCP too, trying again a few times when
// another program holds that TCP port.
func listenPair(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsgeo: listen %q: %w", addr, err)
	}
	for try := 0; ; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsgeo: listen udp: %w", err)
		}
		tcpAddr := addr
		if port == "0" {
			_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
			tcpAddr = net.JoinHostPort(host, p)
		}
		ln, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || try == 10 {
			return nil, nil, fmt.Errorf("dnsgeo: listen tcp: %w", err)
		}
	}
}

// Run serves on the configured addresses until ctx is done (see Serve).
func (s *Server) Run(ctx context.Context) error {
	ls, err := Listen(ctx, s.listen, s.admin)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ls)
}

// Ready is closed once every DNS listener serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Serve answers queries on ls and probes the PoPs until ctx is done. Then
// it reports "draining" on the admin /healthz, stops reading queries,
// lets TCP queries in progress finish within the shutdown grace, stops
// probing, closes ls and the databases and returns nil. A listener that fails stops the
// server, and its error is returned. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	defer ls.Close()
	defer s.closeRetired()
	var servers []*running
	stopped := make(chan *running, len(ls.UDP)+len(ls.TCP))
	run := func(addr net.Addr, serve func(started func()) error, shutdown func(context.Context) error) {
		r := &running{shutdown: shutdown, addr: addr, started: make(chan struct{}), done: make(chan struct{})}
		servers = append(servers, r)
		go func() {
			r.err = serve(func() { close(r.started) })
			close(r.done)
			stopped <- r
		}()
	}
	start := func(srv *dns.Server, addr net.Addr) {
		srv.Handler = s
		srv.UDPSize = udpReadSize
		srv.MsgAcceptFunc = s.accept
		if srv.Net == "tcp" {
			// Over TCP the handler screens the parsed message, so that
			// its error replies keep the question and the OPT record;
			// the FORMERR the dns package sends to what does not parse
			// is rebuilt the same way (reject.go).
			srv.MsgAcceptFunc = s.acceptTCP
			raw := &tcpRaw{st: s.state.Load}
			srv.DecorateReader, srv.DecorateWriter = raw.reader, raw.writer
			srv.MaxTCPQueries = -1 // each connection ends on a failed read: see tcpRaw
		}
		srv.MsgInvalidFunc = s.invalid
		run(addr, func(started func()) error {
			srv.NotifyStartedFunc = started
			return srv.ActivateAndServe()
		}, srv.ShutdownContext)
	}
	for _, pc := range ls.UDP {
		if u := newUDPServer(s, pc); u != nil {
			run(pc.LocalAddr(), u.serve, u.shutdown)
			continue
		}
		start(&dns.Server{PacketConn: pc, Net: "udp"}, pc.LocalAddr())
	}
	for _, ln := range ls.TCP {
		start(&dns.Server{Listener: ln, Net: "tcp"}, ln.Addr())
	}

	s.probes.start(s, context.WithoutCancel(ctx))
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watchStates(watchCtx)
	}()

	var admin *http.Server
	adminDone := make(chan error, 1)
	if ls.Admin != nil {
		admin = &http.Server{
			Handler:           s.AdminHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		go func() { adminDone <- admin.Serve(ls.Admin) }()
	}

	// Wait until every listener serves, then until ctx is done; a listener
	// that stops on its own ends either wait.
	var serveErr error
	for _, r := range servers {
		select {
		case <-r.started:
		case <-r.done:
			serveErr = r.failure()
		}
		if serveErr != nil {
			break
		}
	}
	if serveErr == nil {
		close(s.ready)
		st := s.state.Load()
		s.log.Info("dns serving", "listen", addrList(servers), "admin", adminAddr(ls.Admin), "zone", strings.TrimSuffix(st.zone.name, "."),
			"pops", len(st.pops), "networks", st.networks, "config_version", st.version, "rate_limit", st.rrl != nil)
		select {
		case <-ctx.Done():
		case r := <-stopped:
			serveErr = r.failure()
		case err := <-adminDone:
			serveErr = fmt.Errorf("dnsgeo: admin: %w", err)
		}
	}

	s.draining.Store(true)
	s.log.Info("dns shutting down", "grace", s.grace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	for _, r := range servers {
		select {
		case <-r.started:
			if err := r.shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Debug("dns listener shutdown", "addr", r.addr, "err", err)
			}
		case <-r.done:
		}
	}
	for _, r := range servers {
		<-r.done
	}
	if admin != nil {
		if err := admin.Shutdown(shutdownCtx); err != nil {
			admin.Close()
		}
	}
	s.probes.stop(s)
	stopWatch()
	<-watchDone
	if serveErr != nil {
		return serveErr
	}
	s.log.Info("dns stopped")
	return nil
}

// running is one listener's server in Serve.
type running struct {
	shutdown func(context.Context) error
	addr     net.Addr
	started  chan struct{} // closed once it serves
	done     chan struct{} // closed once ActivateAndServe returned, with err set
	err      error
}

// failure is the error of a listener that stopped on its own.
func (r *running) failure() error {
	if r.err == nil {
		return fmt.Errorf("dnsgeo: %s listener %s stopped", r.addr.Network(), r.addr)
	}
	return fmt.Errorf("dnsgeo: %s listener %s: %w", r.addr.Network(), r.addr, r.err)
}

func addrList(rs []*running) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.addr.Network() + "/" + r.addr.String())
	}
	return b.String()
}

func adminAddr(ln net.Listener) string {
	if ln == nil {
		return "none"
	}
	return ln.Addr().String()
}

// accept screens a UDP message's header before it is parsed
// (dns.MsgAcceptFunc): answers get no reply, opcodes other than QUERY get
// NOTIMP, and anything but one question, with no answer records, at most
// one authority record (an IXFR query's SOA, RFC 1995 §3) and at most two
// additional records (OPT, TSIG), gets FORMERR. respond checks the rest
// once the message is parsed.
func (s *Server) accept(h dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	switch {
	case h.Bits&qr != 0:
		return dns.MsgIgnore
	case int(h.Bits>>11)&0xF != dns.OpcodeQuery:
		s.metrics.rejected.Add(1)
		return dns.MsgRejectNotImplemented
	case h.Qdcount != 1 || h.Ancount != 0 || h.Nscount > 1 || h.Arcount > 2:
		s.metrics.rejected.Add(1)
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// acceptTCP is accept for TCP, where a reply cannot be used to amplify
// and parsing the message first costs little: answers get no reply, and
// every other message is parsed and screened by respond, whose error
// replies keep the question and the OPT record.
func (s *Server) acceptTCP(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// invalid counts messages that could not be parsed (dns.MsgInvalidFunc).
// The dns package answers those whose header it could read with FORMERR.
func (s *Server) invalid(_ []byte, _ error) { s.metrics.invalid.Add(1) }
