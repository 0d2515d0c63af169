package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one origin server of a service.
type Server struct {
	URL    *url.URL // scheme and host, and an optional path prefix
	Weight int      // share of requests; values below 1 count as 1
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

// Pool sends requests to a service's origin servers in weighted round robin.
// It is safe for concurrent use.
type Pool struct {
	rotation []*url.URL // each server repeated Weight times, interleaved
	next     atomic.Uint64
	client   *http.Client
	timeouts Timeouts
}

// NewPool makes a pool over servers, which must not be empty.
func NewPool(servers []Server, timeouts Timeouts) (*Pool, error) {
	if len(servers) == 0 {
		return nil, errors.New("origin: pool needs at least one server")
	}
	timeouts = timeouts.withDefaults()
	dialer := &net.Dialer{Timeout: timeouts.Connect, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 nil, // origins are reached directly, whatever the environment says
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   timeouts.Connect,
		ResponseHeaderTimeout: timeouts.FirstByte,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // bodies pass through as the origin encoded them
		ForceAttemptHTTP2:     true,
	}
	return &Pool{
		rotation: interleave(servers),
		client: &http.Client{
			Transport: transport,
			// Redirects are responses to pass on (and maybe cache), not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeouts: timeouts,
	}, nil
}

// interleave spreads each server over the rotation as often as its weight,
// so that weights 2 and 1 give a, b, a rather than a, a, b.
func interleave(servers []Server) []*url.URL {
	remaining := make([]int, len(servers))
	total := 0
	for i, s := range servers {
		remaining[i] = max(s.Weight, 1)
		total += remaining[i]
	}
	rotation := make([]*url.URL, 0, total)
	for len(rotation) < total {
		for i, s := range servers {
			if remaining[i] > 0 {
				rotation = append(rotation, s.URL)
				remaining[i]--
			}
		}
	}
	return rotation
}

// Close releases the pool's idle connections.
func (p *Pool) Close() {
	p.client.CloseIdleConnections()
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
}

// Do sends one request to the next origin server. The response body must be
// closed; reading it fails with a *Error of kind KindTimeout if the origin
// pauses longer than the idle timeout. Errors are *Error values.
func (p *Pool) Do(ctx context.Context, r Request) (*http.Response, error) {
	base := p.rotation[int(p.next.Add(1)-1)%len(p.rotation)]
	u, err := resolve(base, r.Target)
	if err != nil {
		return nil, &Error{Kind: KindRequest, Server: base.Host, Err: err}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), r.Body)
	if err != nil {
		cancel(nil)
		return nil, &Error{Kind: KindRequest, Server: base.Host, Err: err}
	}
	req.Header = r.Header
	if r.Body != nil {
		req.ContentLength = r.ContentLength
	}
	resp, err := p.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, classify(base.Host, err)
	}
	resp.Body = newIdleBody(resp.Body, p.timeouts.Idle, base.Host, cancel)
	return resp, nil
}

// resolve joins the server's URL (with its optional path prefix) and the
// client's request target.
func resolve(base *url.URL, target string) (*url.URL, error) {
	t, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("bad request target %q: %w", target, err)
	}
	u := *base
	u.Path = joinPath(base.Path, t.Path)
	u.RawPath = ""
	if t.RawPath != "" {
		u.RawPath = joinPath(base.EscapedPath(), t.RawPath)
	}
	u.RawQuery = t.RawQuery
	return &u, nil
}

func joinPath(prefix, path string) string {
	if prefix == "" || prefix == "/" {
		return path
	}
	if len(prefix) > 0 && prefix[len(prefix)-1] == '/' {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + path
}

// errIdle is the cancellation cause when the body pauses too long.
var errIdle = errors.New("origin: body idle timeout")

// idleBody cancels the request when no Read completes within the idle
// timeout, and turns the resulting error into a *Error.
type idleBody struct {
	body   io.ReadCloser
	server string
	cancel context.CancelCauseFunc
	idle   time.Duration

	mu    sync.Mutex
	timer *time.Timer
	fired bool
}

func newIdleBody(body io.ReadCloser, idle time.Duration, server string, cancel context.CancelCauseFunc) *idleBody {
	b := &idleBody{body: body, server: server, cancel: cancel, idle: idle}
	b.timer = time.AfterFunc(idle, b.expire)
	return b
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
	if err != nil && err != io.EOF {
		b.mu.Lock()
		fired := b.fired
		b.mu.Unlock()
		if fired {
			return n, &Error{Kind: KindTimeout, Server: b.server, Err: errIdle}
		}
		return n, &Error{Kind: KindBody, Server: b.server, Err: err}
	}
	return n, err
}

// Close closes the body and releases the request's resources.
func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}
