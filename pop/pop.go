// Package pop is Outpost's Point-of-Presence: an HTTP caching reverse proxy
// that serves each service's content from memory and fetches misses from
// the service's origin.
//
// A request finds its service by Host. A fresh stored response is served at
// once; otherwise the request joins the one fill in flight for its cache
// key, or starts it. A fill streams the origin's body to every request that
// waits on it while it reads it into memory, and offers the complete
// response to the store when the caching rules of package cache allow. An
// admin listener reports health, figures and Prometheus metrics, and says
// "draining" during shutdown so DNS can steer users away first.
package pop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/pop/fastpath"
	"github.com/outpost-cdn/outpost/pop/fill"
	"github.com/outpost-cdn/outpost/pop/h2serve"
	"github.com/outpost-cdn/outpost/pop/journal"
)

// Options are a PoP's dependencies beyond its configuration. Every field is
// optional.
type Options struct {
	// Logger receives the PoP's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it to age entries.
	Now func() time.Time
	// Store holds the cached entries; nil means a ristretto store of the
	// PoP's cache_size. It must implement cache.RemovalNotifier, so that
	// the purge index that wraps it learns of what it evicts. The PoP
	// closes it on Close.
	Store cache.Store
	// Registry receives the PoP's metrics; nil means a new registry with
	// the Go runtime and process collectors.
	Registry *prometheus.Registry
	// ShutdownGrace bounds how long in-flight requests may take to finish
	// after the drain delay; zero means 30s.
	ShutdownGrace time.Duration
	// NoDrain skips the drain delay at shutdown (the lab has no DNS
	// resolvers to steer away).
	NoDrain bool
	// NoFastPath sends every request on the clear and TLS listeners
	// through net/http, turning off the HTTP/1.1 fast path for fresh hits
	// on both (tls.fast_path: false turns it off on the TLS listener only).
	NoFastPath bool
	// BlobMin is the body size from which stored bodies are kept outside
	// the heap, in sealed memory files sent with sendfile (package
	// cache/blob); 0 means 16 KiB, and a negative value keeps every body
	// on the heap.
	BlobMin int
	// AllowPlaceholderToken lets the PoP start and reload with a known
	// placeholder purge token (config.IsPlaceholderToken), which it
	// otherwise refuses; it still logs a warning. Only `outpost lab`,
	// whose CDN runs on loopback for a few seconds, sets it.
	AllowPlaceholderToken bool
}

// PoP is one Point-of-Presence. Its zero value is not usable: make one with
// New.
type PoP struct {
	name  string
	cfg   *config.POP
	log   *slog.Logger
	now   func() time.Time
	store cache.Store // index, as the Store every Set and Delete goes through
	// rejections is the store's rejection report, if it keeps one.
	rejections cache.RejectionReporter
	registry   *prometheus.Registry
	grace      time.Duration
	noDrain    bool
	// allowPlaceholder is Options.AllowPlaceholderToken, for Reload.
	allowPlaceholder bool
	// blobMin is Options.BlobMin with its default applied; 0 means no
	// blobs. blobFailures counts bodies kept on the heap because no blob
	// could be made.
	noFastPath    bool
	fastHits      fastHitCounts // requests the HTTP/1.1 fast path answered
	blobMin       int
	blobFailures  atomic.Uint64
	sendfileBytes atomic.Uint64 // body bytes sent from blobs with sendfile
	releaseBlobs  func()        // takes back the cache's blob.Reserve; nil without blobs

	// routes are the services as loaded from the file; Reload swaps them
	// whole, so a request sees one configuration from start to end.
	routes   atomic.Pointer[routes]
	reloadMu sync.Mutex // one Reload at a time
	unrouted counters   // requests whose Host matched no service
	fills    fillGroup

	// inflight is the budget of bytes fills, relays and request bodies
	// hold (limits.inflight_bytes); detached bounds the fills that go on
	// with no client (limits.detached_fills); marks remembers keys that
	// answered uncacheable or too large (hit-for-miss).
	inflight *budget
	detached *slots
	marks    uncacheable

	compressing chan struct{} // PoP-wide bound on compressions at once (compress.go)

	access  *accessLog       // the request log; nil when off
	index   *purgeIndex      // the store, wrapped to index its keys and tags for purge
	purges  purgeLog         // recent purges, against fills in flight
	journal *journal.Journal // the purges on disk, with a disk tier; else nil
	disk    *diskTier        // the disk tier (disk.go); nil without one
	// diskPurgedOnLoad counts entries from an earlier run the journal
	// dropped as they loaded.
	diskPurgedOnLoad atomic.Uint64
	purgeStats       purgeCounters // purge figures for /metrics

	certs     *certStore // the HTTPS certificates, when the PoP has a TLS listener
	httpsPort string     // the HTTPS listener's port, for redirects
	altSvc    string     // the Alt-Svc value advertising HTTP/3, "" when off

	statusName string    // this PoP's Cache-Status identifier
	via        [3]string // Via members for HTTP/1.x, 2 and 3
	started    time.Time
	draining   atomic.Bool

	ops ops // config versions across reloads, the operating metrics (stats.go)
}

// service is a configured service as the PoP runs it.
type service struct {
	name      string
	policy    cache.Policy
	query     cache.QueryPolicy
	maxObject int64
	slice     int64 // cache.slice.size when slicing is on, else 0
	// sliceProbe asks every fill for a slice (cache.slice.probe); without
	// it only objects found larger than max_object are sliced.
	sliceProbe bool
	keep       time.Duration
	pool       *origin.Pool
	redirect   bool   // answer plain HTTP with a redirect to https
	hsts       string // Strict-Transport-Security for HTTPS responses, or ""
	// fillTimeout bounds a storing fill from request to last byte;
	// hitForMiss is how long an uncacheable answer is remembered.
	fillTimeout time.Duration
	hitForMiss  time.Duration
	// detached bounds this service's fills that go on with no client;
	// fillHooks are what its fills are given (setFillHooks), made once
	// rather than per fill.
	detached  *slots
	fillHooks fill.Hooks
	// stats outlive a reload: a service that keeps its name keeps them
	// (slices too: setFillHooks carries them over).
	stats  *counters
	slices *sliceCounters
	// signer checks signed URLs (signed.go); nil when the service needs
	// none. edge counts what the edge features did (edge.go); it outlives
	// a reload as stats do (setFillHooks carries it over).
	signer *signer
	edge   *edgeCounters
	// compress compresses responses for clients that accept it
	// (compress.go); nil when the service does not.
	compress *compressor
	// shield is the tier this PoP sends the service's fills to, nil when
	// none (shield.go); isShield says this PoP is one of its shields.
	shield   *shieldTier
	isShield bool
	conf     *config.Service // as loaded, for what needs the PoP too (setShield)
}

// routes are the parts of the configuration a reload may change.
type routes struct {
	byHost     map[string]*service
	list       []*service
	version    string // the file's and the files it names (configVersion)
	purgeToken string // purge.token
}

// routesFrom builds the services of cfg, reusing the figures of services
// in prev that keep their names. On error nothing is left open.
func routesFrom(cfg *config.Config, prev *routes, log *slog.Logger) (*routes, error) {
	r := &routes{byHost: make(map[string]*service), version: configVersion(cfg, log), purgeToken: cfg.Purge.Token}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		svc, err := newService(sc, log)
		if err != nil {
			r.close()
			return nil, err
		}
		if prev != nil {
			for _, old := range prev.list {
				if old.name == svc.name {
					svc.stats = old.stats
				}
			}
		}
		r.list = append(r.list, svc)
		for _, host := range sc.Hostnames {
			r.byHost[host] = svc
		}
	}
	return r, nil
}

// close releases the origin pools.
func (r *routes) close() {
	for _, svc := range r.list {
		svc.pool.Close()
		svc.shield.close()
	}
}

// New makes the PoP named popName of cfg (popName may be empty when cfg
// has exactly one PoP).
func New(cfg *config.Config, popName string, opts Options) (*PoP, error) {
	pc, err := cfg.POP(popName)
	if err != nil {
		return nil, err
	}
	if !opts.AllowPlaceholderToken {
		if err := cfg.CheckPurgeToken(); err != nil {
			return nil, fmt.Errorf("pop %s: %w", pc.Name, err)
		}
	}
	p := &PoP{
		name:       pc.Name,
		cfg:        pc,
		log:        opts.Logger,
		now:        opts.Now,
		store:      opts.Store,
		registry:   opts.Registry,
		grace:      opts.ShutdownGrace,
		noDrain:    opts.NoDrain,
		blobMin:    opts.BlobMin,
		noFastPath: opts.NoFastPath,
		statusName: "outpost/" + pc.Name,
	}
	p.allowPlaceholder = opts.AllowPlaceholderToken
	inflight := pc.Limits.InflightBytes
	if inflight <= 0 { // a Config built by hand rather than parsed
		inflight = 256 << 20
	}
	p.inflight = newBudget(inflight)
	p.detached = newSlots(int64(pc.Limits.DetachedFills))
	p.compressing = newCompressSlots() // compress.go
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("pop", pc.Name)
	if p.now == nil {
		p.now = time.Now
	}
	if p.grace <= 0 {
		p.grace = 30 * time.Second
	}
	switch {
	case p.blobMin == 0:
		p.blobMin = defaultBlobMin
	case p.blobMin < 0:
		p.blobMin = 0
	}
	if p.blobMin > 0 {
		p.releaseBlobs = blob.Reserve(pc.CacheSize)
	}
	for i, proto := range []string{"1.1", "2", "3"} {
		p.via[i] = proto + " " + pc.Name + " (outpost)"
	}
	rt, err := routesFrom(cfg, nil, p.log)
	if err != nil {
		return nil, err
	}
	p.setFillHooks(rt)
	p.routes.Store(rt)
	if p.access, err = newAccessLog(pc.Name, pc.AccessLog); err != nil {
		rt.close()
		return nil, fmt.Errorf("pop %s: %w", pc.Name, err)
	}
	if pc.TLS.Enabled() {
		if p.certs, err = newCertStore(&pc.TLS, tlsHosts(cfg, &pc.TLS), p.log); err != nil {
			rt.close()
			return nil, fmt.Errorf("pop %s: %w", pc.Name, err)
		}
	}
	x := newPurgeIndex()
	if p.store == nil {
		st, err := p.openStore(pc, x)
		if err != nil {
			p.closeServices()
			return nil, fmt.Errorf("pop %s: cache: %w", pc.Name, err)
		}
		p.store = st
	}
	p.rejections, _ = p.store.(cache.RejectionReporter)
	if err := x.wrap(p.store); err != nil {
		p.Close()
		return nil, fmt.Errorf("pop %s: cache: %w", pc.Name, err)
	}
	p.index = x
	p.store = x
	if p.registry == nil {
		p.registry = prometheus.NewRegistry()
		p.registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	if err := p.registry.Register(limitsCollector{p: p}); err != nil {
		p.Close()
		return nil, fmt.Errorf("pop %s: metrics: %w", pc.Name, err)
	}
	if err := p.registry.Register(&collector{p: p}); err != nil {
		p.Close()
		return nil, fmt.Errorf("pop %s: metrics: %w", pc.Name, err)
	}
	if p.disk != nil {
		if err := p.registry.Register(diskCollector{p: p}); err != nil {
			p.Close()
			return nil, fmt.Errorf("pop %s: metrics: %w", pc.Name, err)
		}
	}
	p.warnPlaceholder(rt)
	p.started = p.now()
	return p, nil
}

// newService makes the running form of a service: its cache settings and
// its origin pool. The pool keeps real time (the PoP's clock is for cache
// ages in tests) and logs its servers' state changes to log.
func newService(sc *config.Service, log *slog.Logger) (*service, error) {
	o := &sc.Origin
	servers := make([]origin.Server, len(o.Servers))
	for i, s := range o.Servers {
		servers[i] = origin.Server{URL: s.URL, Weight: s.Weight, MaxConns: s.MaxConns}
	}
	opts := origin.Options{
		Name:    sc.Name,
		Policy:  origin.Policy(o.Policy),
		HashKey: origin.HashKey(o.HashKey),
		Timeouts: origin.Timeouts{
			Connect:   o.Timeouts.Connect,
			FirstByte: o.Timeouts.FirstByte,
			Idle:      o.Timeouts.Idle,
		},
		Ejection:   origin.Ejection{Failures: o.Ejection.Failures, Cooldown: o.Ejection.Cooldown},
		TLS:        origin.TLS{CAFile: o.TLS.CAFile, ServerName: o.TLS.ServerName, InsecureSkipVerify: o.TLS.InsecureSkipVerify},
		HostHeader: o.HostHeader,
		Logger:     log,
	}
	if h := o.Health; h != nil {
		opts.Health = &origin.HealthCheck{Path: h.Path, Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
	}
	if l := o.Load; l != nil {
		opts.Load = origin.LoadProbe{Path: l.Path, Interval: l.Interval, Timeout: l.Timeout}
	}
	pool, err := origin.NewPool(servers, opts)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", sc.Name, err)
	}
	return &service{
		name: sc.Name,
		policy: cache.Policy{
			DefaultTTL: sc.Cache.DefaultTTL,
			MinTTL:     sc.Cache.MinTTL,
			MaxTTL:     sc.Cache.MaxTTL,

			StaleIfError: sc.Cache.StaleIfError,
		},
		query:     cache.QueryPolicy{Sort: sc.Cache.Query.Sort, Drop: keyDrop(sc)},
		maxObject: sc.Cache.MaxObject, slice: sliceSize(sc.Cache.Slice), sliceProbe: sc.Cache.Slice.Probe, slices: new(sliceCounters),
		keep:        sc.Cache.Keep,
		pool:        pool,
		redirect:    sc.HTTPS.Redirect,
		hsts:        hstsValue(sc.HTTPS.HSTS),
		fillTimeout: o.Timeouts.Fill,
		hitForMiss:  sc.Cache.HitForMiss,
		detached:    newSlots(int64(o.DetachedFills)),
		stats:       new(counters),
		signer:      newSigner(sc.SignedURLs),
		edge:        new(edgeCounters),
		compress:    newCompressor(sc.Compress),
		conf:        sc,
	}, nil
}

func (p *PoP) closeServices() {
	if rt := p.routes.Load(); rt != nil {
		rt.close()
	}
}

// warnPlaceholder warns while a placeholder purge token is in use, which
// New and Reload allow only with Options.AllowPlaceholderToken.
func (p *PoP) warnPlaceholder(rt *routes) {
	if config.IsPlaceholderToken(rt.purgeToken) {
		p.log.Warn("the purge token is a placeholder from the examples; replace it with a secret (e.g. openssl rand -hex 32)")
	}
}

// Reload replaces the PoP's services, origins and purge token with those
// of cfg, keeping the cache and the figures of services that keep their
// names. cfg must still name this PoP; its listen, admin, cache and the
// other restart-only settings (restartOnly in stats.go) take effect only
// on restart: until then /stats and /metrics name them, with the version
// whose values run. On error the running configuration stays.
func (p *PoP) Reload(cfg *config.Config) error {
	err := p.reload(cfg)
	if err != nil {
		p.ops.reloads[1].Add(1)
	} else {
		p.ops.reloads[0].Add(1)
	}
	return err
}

func (p *PoP) reload(cfg *config.Config) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	pc, err := cfg.POP(p.name)
	if err != nil {
		return fmt.Errorf("pop %s: reload: %w", p.name, err)
	}
	if !p.allowPlaceholder {
		if err := cfg.CheckPurgeToken(); err != nil {
			return fmt.Errorf("pop %s: reload: %w", p.name, err)
		}
	}
	old := p.routes.Load()
	rt, err := routesFrom(cfg, old, p.log)
	if err != nil {
		return fmt.Errorf("pop %s: reload: %w", p.name, err)
	}
	p.setFillHooks(rt)
	p.routes.Store(rt)
	old.close() // requests in flight finish on their connections
	if p.certs != nil && len(p.certs.files) > 0 {
		if err := p.certs.load(); err != nil {
			p.log.Error("reload: certificates do not load; keeping the current ones", "err", err)
		}
	}
	pending := pendingSettings(p.cfg, pc)
	p.ops.mu.Lock()
	if p.ops.started == "" {
		p.ops.started = old.version
	}
	p.ops.pending = pending
	running := p.ops.started
	p.ops.mu.Unlock()
	if len(pending) > 0 {
		p.log.Warn("reload: these settings take effect on restart; until then they keep the values of the running version",
			"pending_restart", pending, "running_version", running)
	}
	p.warnPlaceholder(rt)
	// The version covers the file and the files it names, never a token;
	// say whether the token changed (never the token).
	p.log.Info("configuration reloaded", "config_version", rt.version, "services", len(rt.list),
		"purge_token_changed", rt.purgeToken != old.purgeToken)
	return nil
}

// Name is the PoP's name from the configuration.
func (p *PoP) Name() string { return p.name }

// Close releases the store and the origin connections. Call it after Serve
// or Run has returned.
func (p *PoP) Close() {
	p.closeServices()
	if p.access != nil {
		p.access.close()
	}
	if p.store != nil {
		p.store.Close()
	}
	p.closeDisk()
	if p.releaseBlobs != nil {
		p.releaseBlobs()
	}
}

// Run serves on the addresses of the PoP's configuration until ctx is
// done, then shuts down gracefully (see ServeListeners).
func (p *PoP) Run(ctx context.Context) error {
	ls, err := p.Listen(ctx)
	if err != nil {
		return err
	}
	return p.ServeListeners(ctx, ls)
}

// Listeners are the sockets a PoP serves on. TLS and QUIC are nil when the
// PoP has no HTTPS listener (QUIC also when HTTP/3 is off).
type Listeners struct {
	Serve, Admin net.Listener
	TLS          net.Listener   // HTTPS: HTTP/1.1 and HTTP/2
	QUIC         net.PacketConn // HTTP/3, on the TLS listener's port
}

// Close closes every socket.
func (l Listeners) Close() {
	for _, c := range []io.Closer{l.Serve, l.Admin, l.TLS, l.QUIC} {
		if c != nil && !reflect.ValueOf(c).IsNil() {
			c.Close()
		}
	}
}

// Listen opens the sockets of the PoP's configuration; the QUIC socket
// gets the TLS listener's port.
func (p *PoP) Listen(ctx context.Context) (Listeners, error) {
	var lc net.ListenConfig
	var ls Listeners
	fail := func(what string, err error) (Listeners, error) {
		ls.Close()
		return Listeners{}, fmt.Errorf("pop %s: %s: %w", p.name, what, err)
	}
	var err error
	if ls.Serve, err = lc.Listen(ctx, "tcp", p.cfg.Listen); err != nil {
		return fail("listen", err)
	}
	if ls.Admin, err = lc.Listen(ctx, "tcp", p.cfg.Admin); err != nil {
		return fail("admin listen", err)
	}
	if tc := p.cfg.TLS; tc.Enabled() {
		if ls.TLS, err = lc.Listen(ctx, "tcp", tc.Listen); err != nil {
			return fail("tls listen", err)
		}
		if tc.HTTP3 {
			host, _, _ := net.SplitHostPort(tc.Listen)
			_, port, _ := net.SplitHostPort(ls.TLS.Addr().String())
			if ls.QUIC, err = lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port)); err != nil {
				return fail("http3 (udp) listen", err)
			}
		}
	}
	return ls, nil
}

// Serve serves content on serveLn and the admin endpoints on adminLn until
// ctx is done (see ServeListeners); it has no HTTPS listener.
func (p *PoP) Serve(ctx context.Context, serveLn, adminLn net.Listener) error {
	return p.ServeListeners(ctx, Listeners{Serve: serveLn, Admin: adminLn})
}

// ServeListeners serves content on ls.Serve (HTTP/1.1, and h2c when
// configured), ls.TLS (HTTPS: HTTP/1.1 and HTTP/2 by ALPN) and ls.QUIC
// (HTTP/3), all from one cache, and the admin endpoints on ls.Admin, until
// ctx is done. Then the PoP turns "draining" (its /healthz answers 503) for
// the configured drain delay while it still serves, so health checkers and
// DNS move users away; then every server stops accepting, HTTP/1, HTTP/2
// and HTTP/3 together, in-flight requests finish within the shutdown
// grace, and it returns nil.
func (p *PoP) ServeListeners(ctx context.Context, ls Listeners) error {
	timeouts := p.cfg.Timeouts
	errLog := slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	// Every write to a client has the send timeout: HTTP/1 and HTTP/2
	// through the connection (fastpath.Listener, and HTTP/2's own
	// WriteByteTimeout), HTTP/2 and HTTP/3 streams through streamDeadlines.
	handler := streamDeadlines(p, timeouts.Send)
	h2 := &http.HTTP2Config{WriteByteTimeout: timeouts.Send}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: timeouts.ReadHeader,
		IdleTimeout:       timeouts.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
		ConnState:         fastpath.ConnState,
		HTTP2:             h2,
	}
	// midway serves the connections the fast path hands over after
	// answering on them: HTTP/1 only, as net/http alone would be by then.
	midway := srv
	if p.cfg.TLS.H2C {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		if !p.noFastPath {
			midway = &http.Server{
				Handler:           handler,
				ReadHeaderTimeout: timeouts.ReadHeader,
				IdleTimeout:       timeouts.Idle,
				MaxHeaderBytes:    64 << 10,
				ErrorLog:          errLog,
				ConnState:         fastpath.ConnState,
			}
		}
	}
	admin := &http.Server{
		Handler:           p.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          errLog,
	}
	if ls.TLS != nil && p.certs != nil {
		// Set before any server runs: handlers read them.
		_, port, _ := net.SplitHostPort(ls.TLS.Addr().String())
		p.httpsPort = port
		if ls.QUIC != nil {
			p.altSvc = fmt.Sprintf(`h3=":%s"; ma=%d`, port, int(p.cfg.TLS.AltSvcMaxAge.Seconds()))
		}
	}
	errc := make(chan error, 8) // one per Serve below
	// The clear and TLS listeners cap their connections (limits.max_conns)
	// and give them the send timeout; HTTP/3 has quic-go's own limits.
	serveLn := p.newServingListener(ls.Serve) // conns.go
	conns := connCollector{listeners: []servingListener{{"clear", serveLn}}}
	var tlsLn *fastpath.Listener
	if ls.TLS != nil && p.certs != nil {
		tlsLn = p.newServingListener(ls.TLS)
		conns.listeners = append(conns.listeners, servingListener{"tls", tlsLn})
	}
	if err := p.registry.Register(conns); err == nil {
		defer p.registry.Unregister(conns)
	}
	if err := p.registry.Register(edgeCollector{p}); err == nil { // edge.go
		defer p.registry.Unregister(edgeCollector{p})
	}
	if err := p.registry.Register(shieldCollector{p}); err == nil { // shield.go
		defer p.registry.Unregister(shieldCollector{p})
	}
	if err := p.registry.Register(compressCollector{p}); err == nil { // compress.go
		defer p.registry.Unregister(compressCollector{p})
	}
	// HTTP/2 over TLS and h2c by the PoP's own server (pop/h2serve), when
	// tls.http2 says so: fresh hits answered inline through h2seam.go,
	// the rest by handler, on a goroutine per stream.
	var h2s *h2serve.Server
	if p.cfg.TLS.HTTP2 == config.HTTP2Outpost {
		h2s = h2serve.New(handler, h2Cache{p}, h2serve.Options{
			ReadHeaderTimeout: timeouts.ReadHeader,
			IdleTimeout:       timeouts.Idle,
			SendTimeout:       timeouts.Send,
			Logger:            p.log,
		})
		if err := p.registry.Register(h2Collector{h2s}); err == nil { // h2seam.go
			defer p.registry.Unregister(h2Collector{h2s})
		}
	}
	// h2Conns serves a connection with h2s; its context is not ctx, which
	// ends before the graceful shutdown (h2s.Shutdown) does.
	h2Conn := func(c net.Conn) { h2s.ServeConn(context.WithoutCancel(ctx), c) }
	var fast *fastpath.Server
	if p.noFastPath {
		go func() { errc <- srv.Serve(serveLn) }()
	} else {
		// Fresh hits are answered without net/http, through the seam in
		// fastseam.go; the rest go to srv (and midway).
		fo := fastpath.Options{
			ReadHeaderTimeout: timeouts.ReadHeader,
			IdleTimeout:       timeouts.Idle,
			SeparateMidway:    midway != srv,
			Logger:            p.log,
		}
		if h2s != nil && p.cfg.TLS.H2C {
			fo.H2C = h2Conn
		}
		fast = fastpath.NewServer(serveLn, fastCache{p}, fo)
		go func() { errc <- fast.Serve() }()
		go func() { errc <- srv.Serve(fast.Handoff()) }()
		if midway != srv {
			go func() { errc <- midway.Serve(fast.Midway()) }()
		}
	}
	go func() { errc <- admin.Serve(ls.Admin) }()
	var httpsSrv *http.Server
	var tlsFast *fastpath.Server // the fast path on the TLS listener; nil when off
	var h3 *http3.Server
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if ls.TLS != nil && p.certs != nil {
		httpsSrv = &http.Server{
			Handler:           handler,
			TLSConfig:         p.certs.tlsConfig(),
			ReadHeaderTimeout: timeouts.ReadHeader,
			IdleTimeout:       timeouts.Idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errLog,
			ConnState:         fastpath.ConnState,
			HTTP2:             h2,
		}
		if h2s != nil {
			// net/http hands over each connection that negotiated h2
			// after the handshake, and then configures no HTTP/2 of its
			// own. Its Shutdown waits for these connections (they are
			// active to it) while h2s.Shutdown ends them.
			httpsSrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
				"h2": func(_ *http.Server, tc *tls.Conn, _ http.Handler) {
					fastpath.ConnState(tc, http.StateActive) // coalesced TLS records
					h2Conn(tc)
				},
			}
		}
		var unregister func()
		tlsFast, unregister = p.serveTLS(httpsSrv, tlsLn, errc) // tls_fast.go
		defer unregister()
		go p.certs.watch(watchCtx, 2*time.Second)
		if ls.QUIC != nil {
			h3 = &http3.Server{
				Handler:        handler,
				TLSConfig:      http3.ConfigureTLSConfig(p.certs.tlsConfig()),
				QUICConfig:     &quic.Config{Allow0RTT: p.cfg.TLS.ZeroRTT},
				IdleTimeout:    timeouts.Idle,
				MaxHeaderBytes: 64 << 10,
				Logger:         p.log,
			}
			go func() { errc <- h3.Serve(ls.QUIC) }()
		}
	}
	p.log.Info("pop serving", "listen", ls.Serve.Addr().String(), "admin", ls.Admin.Addr().String(),
		"https", addrOf(ls.TLS), "http3", ls.QUIC != nil,
		"services", len(p.routes.Load().list), "cache_bytes", p.cfg.CacheSize, "config_version", p.routes.Load().version,
		"http1_fast_path", !p.noFastPath, "tls_fast_path", tlsFast != nil, "http2", p.cfg.TLS.HTTP2, "blob_min_bytes", p.blobMin, "blob_limit", blob.Limit())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("pop %s: serve: %w", p.name, serveErr)
	}

	p.draining.Store(true)
	if serveErr == nil && p.cfg.Drain > 0 && !p.noDrain {
		p.log.Info("pop draining", "delay", p.cfg.Drain)
		timer := time.NewTimer(p.cfg.Drain)
		select {
		case <-timer.C:
		case serveErr = <-errc:
			timer.Stop()
		}
	}
	p.log.Info("pop shutting down", "grace", p.grace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), p.grace)
	defer cancel()
	var wg sync.WaitGroup
	var shutdownErr error
	var errMu sync.Mutex
	stopOne := func(name string, shutdown func(context.Context) error, closeNow func() error) {
		wg.Go(func() {
			if err := shutdown(shutdownCtx); err != nil {
				closeNow()
				errMu.Lock()
				shutdownErr = errors.Join(shutdownErr, fmt.Errorf("pop %s: %s shutdown: %w", p.name, name, err))
				errMu.Unlock()
			}
		})
	}
	stopOne("http", srv.Shutdown, srv.Close)
	if midway != srv {
		stopOne("http midway", midway.Shutdown, midway.Close)
	}
	if fast != nil {
		stopOne("http fast path", fast.Shutdown, func() error { return nil })
	}
	if tlsFast != nil {
		stopOne("https fast path", tlsFast.Shutdown, func() error { return nil })
	}
	if httpsSrv != nil {
		stopOne("https", httpsSrv.Shutdown, httpsSrv.Close)
	}
	if h2s != nil {
		stopOne("http2", h2s.Shutdown, h2s.Close)
	}
	if h3 != nil {
		stopOne("http3", h3.Shutdown, h3.Close)
	}
	wg.Wait()
	if err := admin.Shutdown(shutdownCtx); err != nil {
		admin.Close()
	}
	if ls.QUIC != nil {
		ls.QUIC.Close()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, quic.ErrServerClosed) {
		return serveErr
	}
	p.log.Info("pop stopped")
	return shutdownErr
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
