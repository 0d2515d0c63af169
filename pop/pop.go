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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/memstore"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin"
)

// Options are a PoP's dependencies beyond its configuration. Every field is
// optional.
type Options struct {
	// Logger receives the PoP's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it to age entries.
	Now func() time.Time
	// Store holds the cached entries; nil means a ristretto store of the
	// PoP's cache_size. The PoP closes it on Close.
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
}

// PoP is one Point-of-Presence. Its zero value is not usable: make one with
// New.
type PoP struct {
	name  string
	cfg   *config.POP
	log   *slog.Logger
	now   func() time.Time
	store cache.Store
	// rejections is the store's rejection report, if it keeps one.
	rejections cache.RejectionReporter
	registry   *prometheus.Registry
	grace      time.Duration
	noDrain    bool

	// routes are the services as loaded from the file; Reload swaps them
	// whole, so a request sees one configuration from start to end.
	routes   atomic.Pointer[routes]
	reloadMu sync.Mutex // one Reload at a time
	unrouted counters   // requests whose Host matched no service
	fills    fillGroup

	index      *keyIndex     // the keys the store holds, for purge
	purges     purgeLog      // recent purges, against fills in flight
	purgeStats purgeCounters // purge figures for /metrics

	statusName string    // this PoP's Cache-Status identifier
	via        [3]string // Via members for HTTP/1.x, 2 and 3
	started    time.Time
	draining   atomic.Bool
}

// service is a configured service as the PoP runs it.
type service struct {
	name      string
	policy    cache.Policy
	query     cache.QueryPolicy
	maxObject int64
	keep      time.Duration
	pool      *origin.Pool
	// stats outlive a reload: a service that keeps its name keeps them.
	stats *counters
}

// routes are the parts of the configuration a reload may change.
type routes struct {
	byHost     map[string]*service
	list       []*service
	version    string // the file's hash
	purgeToken string // purge.token
}

// routesFrom builds the services of cfg, reusing the figures of services
// in prev that keep their names. On error nothing is left open.
func routesFrom(cfg *config.Config, prev *routes, log *slog.Logger) (*routes, error) {
	r := &routes{byHost: make(map[string]*service), version: cfg.Version, purgeToken: cfg.Purge.Token}
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
	}
}

// New makes the PoP named popName of cfg (popName may be empty when cfg
// has exactly one PoP).
func New(cfg *config.Config, popName string, opts Options) (*PoP, error) {
	pc, err := cfg.POP(popName)
	if err != nil {
		return nil, err
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
		statusName: "outpost/" + pc.Name,
		index:      newKeyIndex(),
	}
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
	for i, proto := range []string{"1.1", "2", "3"} {
		p.via[i] = proto + " " + pc.Name + " (outpost)"
	}
	rt, err := routesFrom(cfg, nil, p.log)
	if err != nil {
		return nil, err
	}
	p.routes.Store(rt)
	if p.store == nil {
		st, err := memstore.New(memstore.Options{MaxBytes: pc.CacheSize, Logger: p.log, OnRemove: p.index.removed})
		if err != nil {
			p.closeServices()
			return nil, fmt.Errorf("pop %s: cache: %w", pc.Name, err)
		}
		p.store = st
	}
	p.rejections, _ = p.store.(cache.RejectionReporter)
	if p.registry == nil {
		p.registry = prometheus.NewRegistry()
		p.registry.MustRegister(
			prometheus.NewGoCollector(),
			prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		)
	}
	if err := p.registry.Register(&collector{p: p}); err != nil {
		p.Close()
		return nil, fmt.Errorf("pop %s: metrics: %w", pc.Name, err)
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
		query:     cache.QueryPolicy{Sort: sc.Cache.Query.Sort, Drop: sc.Cache.Query.Drop},
		maxObject: sc.Cache.MaxObject,
		keep:      sc.Cache.Keep,
		pool:      pool,
		stats:     new(counters),
	}, nil
}

func (p *PoP) closeServices() {
	if rt := p.routes.Load(); rt != nil {
		rt.close()
	}
}

func (p *PoP) warnPlaceholder(rt *routes) {
	if rt.purgeToken == PlaceholderToken {
		p.log.Warn("purge.token is the placeholder from the example files; replace it with a secret (e.g. openssl rand -hex 32)")
	}
}

// Reload replaces the PoP's services, origins and purge token with those
// of cfg, keeping the cache and the figures of services that keep their
// names. cfg must still name this PoP; its listen, admin and cache
// settings take effect only on restart. On error the running
// configuration stays.
func (p *PoP) Reload(cfg *config.Config) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	pc, err := cfg.POP(p.name)
	if err != nil {
		return fmt.Errorf("pop %s: reload: %w", p.name, err)
	}
	old := p.routes.Load()
	rt, err := routesFrom(cfg, old, p.log)
	if err != nil {
		return fmt.Errorf("pop %s: reload: %w", p.name, err)
	}
	p.routes.Store(rt)
	old.close() // requests in flight finish on their connections
	if pc.Listen != p.cfg.Listen || pc.Admin != p.cfg.Admin || pc.CacheSize != p.cfg.CacheSize {
		p.log.Warn("reload: listen, admin and cache_size changes take effect on restart")
	}
	p.warnPlaceholder(rt)
	p.log.Info("configuration reloaded", "config_version", rt.version, "services", len(rt.list))
	return nil
}

// Name is the PoP's name from the configuration.
func (p *PoP) Name() string { return p.name }

// Close releases the store and the origin connections. Call it after Serve
// or Run has returned.
func (p *PoP) Close() {
	p.closeServices()
	if p.store != nil {
		p.store.Close()
	}
}

// Run serves on the listen and admin addresses of the PoP's configuration
// until ctx is done, then shuts down gracefully (see Serve).
func (p *PoP) Run(ctx context.Context) error {
	var lc net.ListenConfig
	serveLn, err := lc.Listen(ctx, "tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("pop %s: listen: %w", p.name, err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", p.cfg.Admin)
	if err != nil {
		serveLn.Close()
		return fmt.Errorf("pop %s: admin listen: %w", p.name, err)
	}
	return p.Serve(ctx, serveLn, adminLn)
}

// Serve serves content on serveLn and the admin endpoints on adminLn until
// ctx is done. Then the PoP turns "draining" (its /healthz answers 503) for
// the configured drain delay while it still serves, so health checkers and
// DNS move users away; then it stops accepting connections, lets in-flight
// requests finish within the shutdown grace, and returns nil.
func (p *PoP) Serve(ctx context.Context, serveLn, adminLn net.Listener) error {
	timeouts := p.cfg.Timeouts
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: timeouts.ReadHeader,
		IdleTimeout:       timeouts.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	admin := &http.Server{
		Handler:           p.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(serveLn) }()
	go func() { errc <- admin.Serve(adminLn) }()
	p.log.Info("pop serving", "listen", serveLn.Addr().String(), "admin", adminLn.Addr().String(),
		"services", len(p.routes.Load().list), "cache_bytes", p.cfg.CacheSize, "config_version", p.routes.Load().version)

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
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		err = fmt.Errorf("pop %s: shutdown: %w", p.name, err)
		srv.Close()
	}
	if aerr := admin.Shutdown(shutdownCtx); aerr != nil {
		admin.Close()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	p.log.Info("pop stopped")
	return err
}
