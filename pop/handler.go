package pop

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
)

// ServeHTTP serves one request on a serving listener: it finds the service
// by Host, answers from storage when it can, and otherwise fetches from the
// service's origin, once per key however many requests wait.
func (p *PoP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	svc := p.services[host]
	if svc == nil {
		p.misdirected(w, host)
		return
	}
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		p.pass(w, r, svc, cache.Status{Fwd: cache.FwdMethod}, resultPass)
	case bypassesCache(r):
		p.pass(w, r, svc, cache.Status{Fwd: cache.FwdRequest}, resultPass)
	default:
		p.serveCacheable(w, r, svc)
	}
}

// hostOnly lowercases a Host value and removes its port and a trailing dot.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// bypassesCache reports whether the request's own directives keep it away
// from storage: no-store or no-cache (or Pragma: no-cache without
// Cache-Control), credentials, or a protocol upgrade.
func bypassesCache(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" || r.Header.Get("Upgrade") != "" {
		return true
	}
	if len(r.Header.Values("Cache-Control")) == 0 {
		for _, v := range r.Header.Values("Pragma") {
			if strings.Contains(strings.ToLower(v), "no-cache") {
				return true
			}
		}
		return false
	}
	cc := cache.ParseCacheControl(r.Header)
	return cc.Has("no-store") || cc.Has("no-cache")
}

// misdirected answers a request whose Host no service claims, without
// contacting any origin (RFC 9110 §15.5.20).
func (p *PoP) misdirected(w http.ResponseWriter, host string) {
	body := "outpost: no service is configured for host " + quote(host) + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Status", cache.Status{Fwd: cache.FwdBypass, Detail: "unknown-host"}.Format(p.statusName))
	w.WriteHeader(http.StatusMisdirectedRequest)
	n, _ := io.WriteString(w, body)
	p.unrouted.record(resultError, int64(n))
}

func quote(s string) string {
	const maxLen = 255
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}

// serveCacheable serves a GET or HEAD that may use storage.
func (p *PoP) serveCacheable(w http.ResponseWriter, r *http.Request, svc *service) {
	key := cache.Key(scheme(r), hostOnly(r.Host), r.URL.EscapedPath(), r.URL.RawQuery, svc.query)
	now := p.now()
	status := cache.Status{Fwd: cache.FwdURIMiss}
	if e, ok := p.store.Get(key); ok {
		if e.Fresh(now) {
			p.serveHit(w, r, svc, e, now)
			return
		}
		status.Fwd = cache.FwdStale
	} else if p.rejections != nil && p.rejections.Rejected(key) {
		status.Detail = "rejected" // the store declined the last fill
	}
	p.serveMiss(w, r, svc, key, status)
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// serveHit answers from a fresh stored entry.
func (p *PoP) serveHit(w http.ResponseWriter, r *http.Request, svc *service, e *cache.Entry, now time.Time) {
	h := w.Header()
	for name, values := range e.Header {
		h[name] = values // stored values are immutable and shared
	}
	h["Age"] = []string{cache.AgeHeader(e.Age(now))}
	p.addVia(h, r)
	p.addStatus(h, cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true})
	w.WriteHeader(e.Status)
	var n int
	if r.Method != http.MethodHead {
		n, _ = w.Write(e.Body)
	}
	svc.stats.record(resultHit, int64(n))
}

// serveMiss fetches key's object from origin, joining a fill in flight
// when there is one.
func (p *PoP) serveMiss(w http.ResponseWriter, r *http.Request, svc *service, key string, status cache.Status) {
	fwd := status.Fwd
	f, leader := p.fills.join(key)
	role := resultMiss
	if !leader {
		role = resultCollapsed
	}
	if leader {
		go p.runFill(f, svc, p.fillRequest(r))
	}
	select {
	case <-f.ready:
	case <-r.Context().Done():
		if leader {
			f.abandon()
		}
		svc.stats.record(role, 0)
		return
	}

	status.Collapsed = !leader
	if f.err != nil {
		p.originFailed(w, svc, status, f.err)
		return
	}
	status.FwdStatus = f.resp.StatusCode
	if !f.shared {
		if leader {
			status.Detail = f.reason
			p.relay(w, r, svc, f.resp, status, resultMiss)
			return
		}
		// The response is not to be shared: fetch this request's own.
		p.pass(w, r, svc, cache.Status{Fwd: fwd}, resultMiss)
		return
	}
	reader := f.attach()
	if reader == nil { // the body outgrew the object limit and was trimmed
		p.pass(w, r, svc, cache.Status{Fwd: fwd, Detail: cache.ReasonTooLarge}, resultMiss)
		return
	}
	defer reader.detach()

	h := w.Header()
	copyHeader(h, f.resp.Header)
	if age := cache.InitialAge(f.resp.Header, f.requestTime, f.responseTime) + p.now().Sub(f.responseTime); age >= time.Second {
		h.Set("Age", cache.AgeHeader(age))
	}
	status.Stored = true
	status.HasTTL = true
	status.TTL = f.lifetime - f.initialAge - p.now().Sub(f.responseTime)
	p.addVia(h, r)
	p.addStatus(h, status)
	w.WriteHeader(f.resp.StatusCode)
	if r.Method == http.MethodHead {
		svc.stats.record(role, 0)
		return
	}
	flusher := http.NewResponseController(w)
	var sent int64
	for {
		chunk, done, err := reader.next(r.Context())
		if done || err != nil {
			if err != nil && !errors.Is(err, context.Canceled) && r.Context().Err() == nil {
				// The origin failed mid-body: cut the client's response
				// short so it cannot mistake it for a whole one.
				svc.stats.record(resultError, sent)
				panic(http.ErrAbortHandler)
			}
			svc.stats.record(role, sent)
			return
		}
		n, werr := w.Write(chunk)
		sent += int64(n)
		if werr != nil {
			svc.stats.record(role, sent)
			return
		}
		_ = flusher.Flush()
	}
}

// pass sends the request to origin on its own and relays the answer; the
// response is not stored.
func (p *PoP) pass(w http.ResponseWriter, r *http.Request, svc *service, status cache.Status, res result) {
	out := origin.Request{
		Method: r.Method,
		Target: r.URL.RequestURI(),
		Header: p.forwardHeader(r),
	}
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = r.Body
		out.ContentLength = r.ContentLength
	}
	svc.stats.originFetches.Add(1)
	resp, err := svc.pool.Do(r.Context(), out)
	if err != nil {
		if r.Context().Err() != nil {
			svc.stats.record(res, 0)
			return
		}
		p.originFailed(w, svc, status, err)
		return
	}
	origin.RemoveHopByHop(resp.Header)
	status.FwdStatus = resp.StatusCode
	p.relay(w, r, svc, resp, status, res)
}

// relay streams an origin response that is not stored to the client, and
// closes its body.
func (p *PoP) relay(w http.ResponseWriter, r *http.Request, svc *service, resp *http.Response, status cache.Status, res result) {
	defer resp.Body.Close()
	h := w.Header()
	copyHeader(h, resp.Header)
	p.addVia(h, r)
	p.addStatus(h, status)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		svc.stats.record(res, 0)
		return
	}
	n, err := copyFlushing(w, resp.Body)
	svc.stats.originBytes.Add(uint64(n))
	if err != nil {
		var oe *origin.Error
		if errors.As(err, &oe) {
			svc.stats.record(resultError, n)
			panic(http.ErrAbortHandler)
		}
	}
	svc.stats.record(res, n)
}

// copyFlushing copies src to the client, flushing after each read so a
// slow origin's bytes reach the client as they come. The error is src's
// (an *origin.Error) or the client's.
func copyFlushing(w http.ResponseWriter, src io.Reader) (int64, error) {
	flusher := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			written, werr := w.Write(buf[:n])
			total += int64(written)
			if werr != nil {
				return total, werr
			}
			_ = flusher.Flush()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// originFailed answers when no response header came from the origin.
func (p *PoP) originFailed(w http.ResponseWriter, svc *service, status cache.Status, err error) {
	code := origin.StatusFor(err)
	detail := "origin-error"
	if code == http.StatusGatewayTimeout {
		detail = "origin-timeout"
	}
	status.Detail = detail
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Status", status.Format(p.statusName))
	w.WriteHeader(code)
	n, _ := io.WriteString(w, "outpost: "+http.StatusText(code)+": the origin did not answer\n")
	p.log.Warn("origin request failed", "service", svc.name, "status", code, "err", err)
	svc.stats.record(resultError, int64(n))
}

// copyHeader copies src into dst, sharing value slices (src is never
// modified after a fill publishes it).
func copyHeader(dst, src http.Header) {
	for name, values := range src {
		dst[name] = values
	}
}

// addVia appends this PoP to the Via field (RFC 9110 §7.6.3).
func (p *PoP) addVia(h http.Header, r *http.Request) {
	h["Via"] = append(slices.Clip(h["Via"]), p.viaFor(r))
}

// addStatus appends this PoP's member to Cache-Status (RFC 9211 §2): the
// origin's and upstream caches' members come first.
func (p *PoP) addStatus(h http.Header, s cache.Status) {
	h["Cache-Status"] = append(slices.Clip(h["Cache-Status"]), s.Format(p.statusName))
}

// viaFor returns this PoP's Via member for the request's protocol.
func (p *PoP) viaFor(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return p.via[1]
	case 3:
		return p.via[2]
	}
	return p.via[0]
}
