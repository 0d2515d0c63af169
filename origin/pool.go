package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one origin server of a service.
type Server struct {
	URL    *url.URL // scheme and host, and an optional path prefix
	Weight int      // share of requests under the weighted policies; values below 1 count as 1
	// MaxConns caps the connections to this server; requests beyond it
	// wait for one to free up. 0 means no cap.
	MaxConns int
}

// Timeouts bound each origin request. A zero field takes the default named
// on it.
type Timeouts struct {
	Connect   time.Duration // TCP (and TLS) connect; default 2s
	FirstByte time.Duration // from sending the request to its response header; default 15s
	Idle      time.Duration // longest pause while reading the body; default 30s
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = 2 * time.Second
	}
	if t.FirstByte <= 0 {
		t.FirstByte = 15 * time.Second
	}
	if t.Idle <= 0 {
		t.Idle = 30 * time.Second
	}
	return t
}

// HealthCheck configures active health checks: every Interval the pool
// sends GET Path to each server and expects a 2xx or 3xx answer within
// Timeout. Fall failures in a row make a server unhealthy, Rise successes
// in a row healthy again. Servers start healthy.
type HealthCheck struct {
	Path     string        // e.g. "/healthz"; may carry a query
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 2s, at most Interval
	Rise     int           // default 2
	Fall     int           // default 3
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Interval <= 0 {
		h.Interval = 5 * time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = min(2*time.Second, h.Interval)
	}
	if h.Rise <= 0 {
		h.Rise = 2
	}
	if h.Fall <= 0 {
		h.Fall = 3
	}
	return h
}

// Ejection configures passive ejection: a server that fails Failures
// requests in a row is out of rotation for Cooldown; then the next request
// picked for it is a trial (one at a time): if it succeeds the server is
// back, if it fails the cool-down starts again. Any success of a request
// sent after the ejection also brings the server back.
type Ejection struct {
	Failures int           // default 5
	Cooldown time.Duration // default 10s
}

func (e Ejection) withDefaults() Ejection {
	if e.Failures <= 0 {
		e.Failures = 5
	}
	if e.Cooldown <= 0 {
		e.Cooldown = 10 * time.Second
	}
	return e
}

// LoadProbe configures how PolicyAdaptive learns each server's load: every
// Interval it sends GET Path, whose answer must be 2xx with a body that is
// one non-negative number (surrounding space allowed); lower means less
// loaded, in any unit all servers share. A failed poll makes the load
// unknown, which counts as the pool's mean.
type LoadProbe struct {
	Path     string        // default "/_origin/load"
	Interval time.Duration // default 2s
	Timeout  time.Duration // default 1s, at most Interval
}

func (l LoadProbe) withDefaults() LoadProbe {
	if l.Path == "" {
		l.Path = "/_origin/load"
	}
	if l.Interval <= 0 {
		l.Interval = 2 * time.Second
	}
	if l.Timeout <= 0 {
		l.Timeout = min(time.Second, l.Interval)
	}
	return l
}

// TLS configures connections to https servers. The zero value verifies
// the server's certificate against the system roots, for the URL's host.
type TLS struct {
	// CAFile is a PEM file of the certificate authorities to trust instead
	// of the system roots; "" means the system roots.
	CAFile string
	// ServerName is sent as SNI and verified in the certificate; "" means
	// the host of each server's URL. Set it when the URLs are IP
	// addresses.
	ServerName string
	// InsecureSkipVerify accepts any certificate. For testing only: it
	// lets anyone on the path impersonate the origin.
	InsecureSkipVerify bool
}

// Options configure a pool. Every field is optional.
type Options struct {
	// Name names the pool (its service) in logs.
	Name string
	// Policy chooses the server for each request; "" means
	// PolicyRoundRobin.
	Policy Policy
	// HashKey is what PolicyIPHash hashes; "" means HashClientIP.
	HashKey HashKey
	// Timeouts bound each request.
	Timeouts Timeouts
	// Health enables active health checks; nil means none.
	Health *HealthCheck
	// Ejection configures passive ejection, which is always on; zero
	// fields take the defaults.
	Ejection Ejection
	// Load configures the load polls of PolicyAdaptive (other policies do
	// not poll); zero fields take the defaults.
	Load LoadProbe
	// TLS configures connections to https servers.
	TLS TLS
	// HostHeader is the Host sent to the servers; "" means each server
	// URL's host.
	HostHeader string
	// MaxHeaderBytes bounds the size of a server's response header (and
	// of each interim 1xx one); a larger one fails the request with a
	// KindProtocol error, which counts against the server. 0 means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logger receives state changes (ejections, recoveries, health);
	// nil means slog.Default(). Nothing is logged per request above debug.
	Logger *slog.Logger
	// Now is the clock for cool-downs, response times and their decay; nil
	// means time.Now.
	Now func() time.Time
}

// DefaultMaxHeaderBytes is the bound on a response header when
// Options.MaxHeaderBytes is 0: 64 KiB, the order of nginx's proxy buffers,
// and far above what real origins send.
const DefaultMaxHeaderBytes = 64 << 10

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
		p.policy = PolicyRoundRobin
	}
	if p.hashKey == "" {
		p.hashKey = HashClientIP
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

// config builds the tls.Config for t.
func (t TLS) config() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // documented as testing-only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("origin: tls ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("origin: tls ca_file %s: no PEM certificates in it", t.CAFile)
		}
		c.RootCAs = roots
	}
	return c, nil
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

// Request is what the PoP asks of an origin.
type Request struct {
	Method string
	// Target is the path and query as the client sent them.
	Target string
	// Header holds the fields to send; the caller has removed hop-by-hop
	// fields. The pool does not modify it.
	Header http.Header
	// Body is the request content, if any, of ContentLength bytes (-1 when
	// unknown).
	Body          io.Reader
	ContentLength int64
	// GetBody, if set, returns a new copy of Body, which makes the request
	// replayable: an idempotent request whose connection attempt failed is
	// then retried on another server. A Body that is a *bytes.Buffer,
	// *bytes.Reader or *strings.Reader is replayable without it.
	GetBody func() (io.ReadCloser, error)
	// ClientIP is the client's address, without port: the key of
	// PolicyIPHash with HashClientIP. "" sends the request round robin.
	ClientIP string
	// CacheKey is the request's cache key: the key of PolicyIPHash with
	// HashCacheKey. "" means Target is hashed instead.
	CacheKey string
	// Got1xx, if set, is called with each interim (1xx) response the
	// origin sends before the final one, e.g. 103 Early Hints.
	Got1xx func(code int, header textproto.MIMEHeader) error
}

// key returns what PolicyIPHash hashes for r.
func (p *Pool) key(r *Request) string {
	if p.policy != PolicyIPHash {
		return ""
	}
	if p.hashKey == HashCacheKey {
		if r.CacheKey != "" {
			return r.CacheKey
		}
		return r.Target
	}
	return r.ClientIP
}

// idempotent lists the methods whose requests may be sent twice
// (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// Do sends one request to a server chosen by the pool's policy. If no
// connection to that server can be made and the request is idempotent
// with no body or a replayable one (see Request.GetBody), it is sent once
// more, to another server. The response body must be closed; reading it
// fails with a *Error of kind KindTimeout if the origin pauses longer than
// the idle timeout or ctx's deadline passes. Errors are *Error values
// naming the server. A failure to read r.Body, the client's content, is a
// KindClient error (Status 400, or 408 when the body's read deadline
// passed), before or after the response header, and never counts against
// the server; see the package doc for what does.
func (p *Pool) Do(ctx context.Context, r Request) (*http.Response, error) {
	if r.Got1xx != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: r.Got1xx})
	}
	c := pickContext{key: p.key(&r)}
	s, trial := p.pick(&c)
	body, getBody := r.Body, r.GetBody
	if getBody == nil {
		getBody = replayable(body)
	}
	resp, err := p.send(ctx, s, trial, &r, body, getBody)
	if err == nil {
		return resp, nil
	}
	retry := len(p.servers) > 1 && ctx.Err() == nil && idempotent(r.Method) &&
		(body == nil || body == http.NoBody || getBody != nil) && connectFailed(err)
	if !retry {
		return nil, err
	}
	c.exclude = s
	next, trial := p.pick(&c)
	if next == s {
		return nil, err
	}
	if body != nil && body != http.NoBody {
		rc, gerr := getBody() // the transport closes it
		if gerr != nil {
			p.endTrial(next, trial)
			return nil, err
		}
		body = rc
	}
	p.log.Debug("origin connect failed; retrying on another server", "server", s.name, "next", next.name, "err", err)
	resp, err2 := p.send(ctx, next, trial, &r, body, getBody)
	if err2 != nil {
		oe2, ok2 := errors.AsType[*Error](err2)
		oe1, ok1 := errors.AsType[*Error](err)
		if !ok1 || !ok2 {
			return nil, err2
		}
		return nil, &Error{Kind: oe2.Kind, Server: oe2.Server, Err: fmt.Errorf("%w (after %s failed: %v)", oe2.Err, oe1.Server, oe1.Err)}
	}
	return resp, nil
}

// replayable returns a function that reads body again from its start when
// body is one of the in-memory readers net/http can replay, else nil.
func replayable(body io.Reader) func() (io.ReadCloser, error) {
	switch v := body.(type) {
	case *bytes.Buffer:
		buf := v.Bytes()
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	case *bytes.Reader:
		snapshot := *v
		return func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
	case *strings.Reader:
		snapshot := *v
		return func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
	}
	return nil
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

// endTrial puts a server whose trial request ended without a verdict (it
// was never sent, or the caller gave up) back to waiting for one.
func (p *Pool) endTrial(s *server, trial bool) {
	if !trial {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eject == onTrial {
		s.eject = probing
		s.setUpLocked()
	}
}

// revive starts the trial phase of every server whose cool-down is over.
func (p *Pool) revive() {
	now := p.now()
	if now.UnixNano() < p.reviveAt.Load() {
		return
	}
	p.reviveMu.Lock()
	defer p.reviveMu.Unlock()
	p.reviveAt.Store(math.MaxInt64)
	next := int64(math.MaxInt64)
	for _, s := range p.servers {
		s.mu.Lock()
		if s.eject == coolingDown {
			if !now.Before(s.until) {
				s.eject = probing
				s.setUpLocked()
				p.cooling.Add(-1)
			} else {
				next = min(next, s.until.UnixNano())
			}
		}
		s.mu.Unlock()
	}
	p.noteCooldown(next)
}

// noteCooldown lowers reviveAt to at.
func (p *Pool) noteCooldown(at int64) {
	for {
		cur := p.reviveAt.Load()
		if at >= cur || p.reviveAt.CompareAndSwap(cur, at) {
			return
		}
	}
}

// coolDownLocked starts s's cool-down; s.mu is held.
func (p *Pool) coolDownLocked(s *server, now time.Time) {
	if s.eject != coolingDown {
		p.cooling.Add(1)
	}
	s.eject = coolingDown
	s.until = now.Add(p.ejection.Cooldown)
	s.setUpLocked()
	p.noteCooldown(s.until.UnixNano())
}

// attempt is one request to one server, from send to the end of its body.
type attempt struct {
	s     *server
	trial bool       // the trial request of an ejected server
	epoch uint64     // the server's ejection epoch when it was sent
	body  *bodyState // the client's request body; nil without one
	start time.Time
	wrote atomic.Bool // the whole request, body included, reached the connection
	done  atomic.Bool
}

// send makes one attempt of r on s with body, which getBody, if not nil,
// returns a new copy of.
func (p *Pool) send(ctx context.Context, s *server, trial bool, r *Request, body io.Reader, getBody func() (io.ReadCloser, error)) (*http.Response, error) {
	u, err := resolve(s.url, r.Target)
	if err != nil {
		p.endTrial(s, trial)
		return nil, &Error{Kind: KindRequest, Server: s.url.Host, Err: err}
	}
	a := &attempt{s: s, trial: trial, epoch: s.epoch.Load()}
	actx, cancel := context.WithCancelCause(ctx)
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { a.wrote.Store(i.Err == nil) },
	})
	req, err := http.NewRequestWithContext(actx, r.Method, u.String(), body)
	if err != nil {
		cancel(nil)
		p.endTrial(s, trial)
		return nil, &Error{Kind: KindRequest, Server: s.url.Host, Err: err}
	}
	if r.Header != nil {
		req.Header = r.Header
	}
	if body != nil && body != http.NoBody && r.ContentLength != 0 {
		req.ContentLength = r.ContentLength
	}
	if getBody != nil {
		req.GetBody = getBody // lets the transport replay it on a stale keep-alive connection
	}
	if p.hostHeader != "" {
		req.Host = p.hostHeader
	}
	a.start = p.now()
	if req.Body != nil && req.Body != http.NoBody {
		a.body = &bodyState{}
		req.Body = &clientBody{r: req.Body, st: a.body}
		if gb := req.GetBody; gb != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				rc, err := gb()
				if err != nil || rc == nil || rc == http.NoBody {
					return rc, err
				}
				return &clientBody{r: rc, st: a.body}, nil
			}
		}
	}
	s.requests.Add(1)
	s.inFlight.Add(1)
	resp, err := s.client.Do(req)
	if err != nil {
		cancel(nil)
		oe, blame := judge(a, classify(s.url.Host, err), ctx.Err(), false)
		p.finish(a, oe, blame)
		return nil, oe
	}
	now := p.now()
	s.observe(now.Sub(a.start), now)
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		p.failed(a, fmt.Errorf("answered %s", resp.Status))
	default:
		p.succeeded(a)
	}
	ib := &idleBody{
		body: resp.Body, server: s.url.Host, cancel: cancel, idle: p.timeouts.Idle,
		gone: ctx.Err, pool: p, attempt: a,
	}
	ib.start()
	resp.Body = ib
	return resp, nil
}

// judge decides whose fault oe, the failure of attempt a, is, and returns
// the error to report and whether it counts against the server (blame).
// callerErr is the caller's context's Err; inBody says the response
// header had arrived.
//
//   - The client's request body failed to read: a KindClient error, never
//     the server's fault, whatever error the transport made of it.
//   - The caller's deadline passed: a KindTimeout error, which counts
//     only while the request, written in full, waited for the response
//     header, as FirstByte would have; a long body is not the server's
//     fault (the idle timeout catches a stalled one), nor is a slow
//     upload or a wait for a connection under MaxConns.
//   - The caller cancelled: oe, not the server's fault.
//   - Anything else is the server's fault.
func judge(a *attempt, oe *Error, callerErr error, inBody bool) (*Error, bool) {
	if err := a.body.failed(); err != nil {
		return &Error{Kind: KindClient, Server: oe.Server, Err: fmt.Errorf("reading the request body: %w", err)}, false
	}
	switch {
	case errors.Is(callerErr, context.DeadlineExceeded):
		return &Error{Kind: KindTimeout, Server: oe.Server, Err: fmt.Errorf("the caller's deadline passed: %w", callerErr)}, !inBody && a.wrote.Load()
	case callerErr != nil:
		return oe, false
	}
	return oe, true
}

// finish ends attempt a: it leaves the server's in-flight count; a
// failure (err != nil) counts against the server when blame is true, and
// otherwise gives back the trial the attempt may have held, unused.
func (p *Pool) finish(a *attempt, err error, blame bool) {
	if !a.done.CompareAndSwap(false, true) {
		return
	}
	a.s.inFlight.Add(-1)
	switch {
	case err != nil && blame:
		p.failed(a, err)
	case err != nil:
		p.endTrial(a.s, a.trial)
	}
}

// failed records a failure of attempt a and ejects the server after
// Ejection.Failures in a row; a failure of a request sent to an ejected
// server restarts its cool-down.
func (p *Pool) failed(a *attempt, err error) {
	s := a.s
	s.failures.Add(1)
	n := s.consecutive.Add(1)
	now := p.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
	s.lastFail = now
	switch {
	case s.eject != inRotation:
		if a.epoch == s.epoch.Load() {
			p.coolDownLocked(s, now)
		}
	case n >= int64(p.ejection.Failures):
		s.epoch.Add(1)
		p.coolDownLocked(s, now)
		p.log.Warn("origin server ejected", "server", s.name, "failures", n, "cooldown", p.ejection.Cooldown, "err", err)
	}
}

// succeeded records a success of attempt a: it resets the failure run and
// brings an ejected server back when a was sent after the ejection.
func (p *Pool) succeeded(a *attempt) {
	s := a.s
	if s.consecutive.Load() != 0 {
		s.consecutive.Store(0)
	}
	if s.up.Load() && !s.probing.Load() {
		return // the common case: nothing to change
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eject == inRotation || a.epoch != s.epoch.Load() {
		return
	}
	if s.eject == coolingDown {
		p.cooling.Add(-1)
	}
	s.eject = inRotation
	s.setUpLocked()
	p.log.Info("origin server back in rotation", "server", s.name)
}

// connectFailed reports whether err is a failure to connect, after which
// the request has certainly not reached the server.
func connectFailed(err error) bool {
	opErr, ok := errors.AsType[*net.OpError](err)
	return ok && opErr.Op == "dial"
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

// errIdle is the cancellation cause when the body pauses too long.
var errIdle = errors.New("origin: body idle timeout")

// idleBody cancels the request when no Read completes within the idle
// timeout, turns the resulting error into a *Error, and ends the attempt
// (in-flight count, failure) at EOF, error or Close.
type idleBody struct {
	body    io.ReadCloser
	server  string
	cancel  context.CancelCauseFunc
	idle    time.Duration
	gone    func() error // the caller's context's Err
	pool    *Pool
	attempt *attempt

	mu    sync.Mutex
	timer *time.Timer
	fired bool
}

func (b *idleBody) start() {
	b.timer = time.AfterFunc(b.idle, b.expire)
}

func (b *idleBody) expire() {
	b.mu.Lock()
	b.fired = true
	b.mu.Unlock()
	b.cancel(errIdle)
}

// Read reads from the origin body, restarting the idle clock.
func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.timer.Reset(b.idle)
	if err == io.EOF {
		b.pool.finish(b.attempt, nil, false)
		return n, err
	}
	if err != nil {
		b.mu.Lock()
		fired := b.fired
		b.mu.Unlock()
		var oe *Error
		var blame bool
		if fired && b.attempt.body.failed() == nil {
			oe, blame = &Error{Kind: KindTimeout, Server: b.server, Err: errIdle}, true
		} else {
			oe, blame = judge(b.attempt, &Error{Kind: KindBody, Server: b.server, Err: err}, b.gone(), true)
		}
		b.pool.finish(b.attempt, oe, blame)
		return n, oe
	}
	return n, nil
}

// Close closes the body and releases the request's resources.
func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	b.pool.finish(b.attempt, nil, false)
	return err
}
