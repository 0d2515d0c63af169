package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is one request's way through a pool: Do picks a server and
// retries a failed connect once elsewhere; send makes one attempt; judge
// decides whose fault a failure is; idleBody enforces the idle timeout on
// the response body and ends the attempt at EOF, error or Close.

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
	// Host, if set, is the Host sent for this request, over the pool's
	// (a shield tier is asked for the client's host).
	Host string
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

// attempt is one request to one server, from send to the end of its body.
type attempt struct {
	s     *server
	trial bool       // the trial request of an ejected server
	epoch uint64     // the server's ejection epoch when it was sent
	body  *bodyState // the client's request body; nil without one
	start time.Time
	wrote atomic.Bool // the whole request, body included, reached the connection
	trace httptrace.ClientTrace
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
	a.trace = httptrace.ClientTrace{
		WroteRequest:   func(i httptrace.WroteRequestInfo) { a.wrote.Store(i.Err == nil) },
		Got1xxResponse: r.Got1xx,
	}
	actx, cancel := context.WithCancelCause(ctx)
	actx = httptrace.WithClientTrace(actx, &a.trace) // one trace per attempt: composing two costs more
	req, err := newRequest(actx, r.Method, u, r.Header, body)
	if err != nil {
		cancel(nil)
		p.endTrial(s, trial)
		return nil, &Error{Kind: KindRequest, Server: s.url.Host, Err: err}
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
	if r.Host != "" {
		req.Host = r.Host
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
	resp, err := s.roundTrip(req)
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

// connectFailed reports whether err is a failure to connect, after which
// the request has certainly not reached the server.
func connectFailed(err error) bool {
	opErr, ok := errors.AsType[*net.OpError](err)
	return ok && opErr.Op == "dial"
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

// newRequest is http.NewRequestWithContext for a URL already resolved,
// with header as its header (an empty one if nil): a request without a
// body is made as NewRequestWithContext would make it, without printing u
// and parsing it again (a tenth of a miss's allocations in the origin
// client); one with a body goes through NewRequestWithContext, which
// knows the in-memory readers' lengths.
func newRequest(ctx context.Context, method string, u *url.URL, header http.Header, body io.Reader) (*http.Request, error) {
	if header == nil {
		header = make(http.Header)
	}
	if body != nil && body != http.NoBody {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
		if err != nil {
			return nil, err
		}
		req.Header = header
		return req, nil
	}
	host := u.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i == len(host)-1 && strings.LastIndexByte(host, ']') < i {
		host = host[:i] // an empty port, as NewRequestWithContext drops it
		u.Host = host
	}
	req := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
	}
	return req.WithContext(ctx), nil
}

// roundTrip sends req on the server's transport. It is what the server's
// http.Client would do for the pool, whose redirects are answers to pass
// on and which has no cookie jar nor client timeout, without the client's
// per-request work (a copy of the header kept for redirects, a deadline
// timer): errors are wrapped in a *url.Error as the client's are. A
// server URL with user information goes through the client, which turns
// it into an Authorization field.
func (s *server) roundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.User != nil {
		return s.client.Do(req)
	}
	resp, err := s.client.Transport.RoundTrip(req)
	if err != nil {
		if tlsErr, ok := errors.AsType[tls.RecordHeaderError](err); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch // as http.Client says it
		}
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(), Err: err}
	}
	return resp, nil
}

// urlErrorOp is the Op of http.Client's *url.Error for method: "Get" for
// GET.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	if lower := strings.ToLower(method); lower != method {
		return method[:1] + lower[1:]
	}
	return method
}
