package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the Pool itself: building it (one transport per server,
// the balancer, the health and load loops), choosing a server for an
// attempt, its figures, and closing it.

// Pool sends requests to a service's origin servers, choosing one per
// request by its Policy, and keeps each server's figures and health. It
// is safe for concurrent use.
type Pool struct {
	servers    []*server
	balancer   balancer
	policy     Policy
	hashKey    HashKey
	timeouts   Timeouts
	ejection   Ejection
	hostHeader string
	log        *slog.Logger
	now        func() time.Time

	loadGen   atomic.Uint64 // moves when a polled load changes
	noHealthy atomic.Bool   // the last pick found no server in rotation

	// cooling counts servers in their cool-down; reviveAt is the earliest
	// end of one (unix nanoseconds). reviveMu serializes revive scans.
	cooling  atomic.Int32
	reviveAt atomic.Int64
	reviveMu sync.Mutex

	probe     *http.Client // health checks and load polls, apart from the servers' connection caps
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewPool makes a pool over servers, which must not be empty, and starts
// its health checks and load polls, if any; Close stops them.
func NewPool(servers []Server, opts Options) (*Pool, error) {
	if len(servers) == 0 {
		return nil, errors.New("origin: pool needs at least one server")
	}
	p := &Pool{
		policy:     opts.Policy,
		hashKey:    opts.HashKey,
		timeouts:   opts.Timeouts.withDefaults(),
		ejection:   opts.Ejection.withDefaults(),
		hostHeader: opts.HostHeader,
		log:        opts.Logger,
		now:        opts.Now,
	}
	p.reviveAt.Store(math.MaxInt64)
	if p.policy == "" {
		p.policy = DefaultPolicy
	}
	if p.hashKey == "" {
		p.hashKey = DefaultHashKey
	}
	if p.hashKey != HashClientIP && p.hashKey != HashCacheKey {
		return nil, fmt.Errorf("origin: unknown hash key %q (want %s or %s)", p.hashKey, HashClientIP, HashCacheKey)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if opts.Name != "" {
		p.log = p.log.With("service", opts.Name)
	}
	if p.now == nil {
		p.now = time.Now
	}
	tlsConf, err := opts.TLS.config()
	if err != nil {
		return nil, err
	}
	maxHeader := opts.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	hosts := make(map[string]int)
	for _, s := range servers {
		if s.URL == nil || s.URL.Host == "" {
			return nil, errors.New("origin: server URL without a host")
		}
		hosts[s.URL.Host]++
	}
	for _, s := range servers {
		srv := newServer(s, &http.Client{
			Transport: newTransport(p.timeouts, tlsConf, s.MaxConns, maxHeader),
			// Redirects are responses to pass on (and maybe cache), not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		})
		if hosts[s.URL.Host] > 1 {
			srv.name = s.URL.Host + s.URL.EscapedPath()
		}
		p.servers = append(p.servers, srv)
	}
	p.balancer, err = newBalancer(p.policy, p.servers, &p.loadGen, p.now)
	if err != nil {
		p.closeTransports()
		return nil, err
	}
	p.probe = &http.Client{
		Transport:     newTransport(p.timeouts, tlsConf, 0, maxHeader),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if opts.Health != nil {
		hc := opts.Health.withDefaults()
		for _, s := range p.servers {
			p.wg.Go(func() { p.checkLoop(ctx, s, hc) })
		}
	}
	if p.policy == PolicyAdaptive {
		lp := opts.Load.withDefaults()
		for _, s := range p.servers {
			p.wg.Go(func() { p.loadLoop(ctx, s, lp) })
		}
	}
	return p, nil
}

// newTransport makes one server's transport: its own keep-alive pool and
// connection cap, and the bound on response headers.
func newTransport(t Timeouts, tlsConf *tls.Config, maxConns, maxHeader int) *http.Transport {
	dialer := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	idle := 256
	if maxConns > 0 {
		idle = min(idle, maxConns)
	}
	return &http.Transport{
		Proxy:                  nil, // origins are reached directly, whatever the environment says
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf.Clone(),
		TLSHandshakeTimeout:    t.Connect,
		ResponseHeaderTimeout:  t.FirstByte,
		MaxResponseHeaderBytes: int64(maxHeader),
		MaxIdleConns:           idle,
		MaxIdleConnsPerHost:    idle,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true, // bodies pass through as the origin encoded them
		ForceAttemptHTTP2:      true,
	}
}

// Close stops the health checks and load polls, waits for them, and
// releases the idle connections. It is safe to call more than once.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		if p.cancel != nil {
			p.cancel()
		}
		p.wg.Wait()
		p.closeTransports()
	})
}

func (p *Pool) closeTransports() {
	for _, s := range p.servers {
		s.client.CloseIdleConnections()
	}
	if p.probe != nil {
		p.probe.CloseIdleConnections()
	}
}

// pick chooses the server for one attempt; trial is true when the attempt
// is the trial of an ejected server whose cool-down is over. When no
// server is in rotation pick returns the one that failed least recently
// (and, unless this is a retry, flags and logs that the pool has no
// healthy server).
func (p *Pool) pick(c *pickContext) (s *server, trial bool) {
	if p.cooling.Load() > 0 {
		p.revive()
	}
	for range 4 {
		s := p.balancer.pick(c)
		if s == nil {
			break
		}
		if s.probing.Load() {
			if !s.claimTrial() {
				continue // another request took the trial; s is out of rotation again
			}
			trial = true
		}
		if c.exclude == nil && p.noHealthy.Load() && p.noHealthy.CompareAndSwap(true, false) {
			p.log.Info("origin pool has a healthy server again")
		}
		return s, trial
	}
	var best *server
	var bestFail time.Time
	for _, s := range p.servers {
		if s == c.exclude {
			continue
		}
		s.mu.Lock()
		lf := s.lastFail
		s.mu.Unlock()
		if best == nil || lf.Before(bestFail) {
			best, bestFail = s, lf
		}
	}
	if best == nil {
		return c.exclude, false // a one-server pool: try it again
	}
	if c.exclude == nil && p.noHealthy.CompareAndSwap(false, true) {
		p.log.Warn("origin pool has no healthy server; trying the least recently failed", "server", best.name)
	}
	return best, false
}

// Stats are a pool's figures.
type Stats struct {
	Policy Policy `json:"policy"`
	// NoHealthy is true while no server is in rotation and requests go to
	// the one that failed least recently.
	NoHealthy bool          `json:"no_healthy_server"`
	Servers   []ServerStats `json:"servers"`
}

// Stats returns a snapshot of the pool's figures, servers in configuration
// order.
func (p *Pool) Stats() Stats {
	st := Stats{Policy: p.policy, NoHealthy: p.noHealthy.Load(), Servers: make([]ServerStats, len(p.servers))}
	for i, s := range p.servers {
		st.Servers[i] = s.stats()
	}
	return st
}
