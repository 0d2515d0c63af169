package pop

import (
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/pop/fastpath"
)

// fastCache is the PoP's side of the HTTP/1.1 fast path's seam
// (fastpath.Cache): it answers fresh hits that net/http and serveStored
// would answer unchanged, and counts and logs them as they would.
type fastCache struct{ p *PoP }

var _ fastpath.Cache = fastCache{}

// ServeFast answers r from the store when it is a fresh stored 200 that
// net/http would have served unchanged, and writes what serveStored and
// net/http would write, byte for byte: the header fields sorted by name
// (as http.Header.Write), Date after them when the entry has none, then
// Connection: close when the client asked for it. Over TLS it keys the
// request "https" and adds Alt-Svc and Strict-Transport-Security as the
// handler does (admit), unless the entry has its own, which win. Anything
// else it declines, sending nothing.
func (f fastCache) ServeFast(s *fastpath.Sender, r *fastpath.Request) {
	p := f.p
	host := hostOnly(string(r.Host))
	svc := p.inlineService(host, r.TLS)
	if svc == nil {
		return
	}
	target := string(r.Target) // logged
	if svc.signer != nil {
		var ok bool
		if target, ok = fastSigned(svc, s, r, p.now()); !ok {
			return // net/http refuses it, and counts and logs why (signed.go)
		}
	}
	h, ok := p.inlineLookup(svc, r.TLS, host, string(r.Path), string(r.Query))
	if !ok {
		return
	}
	e, fh, now := h.e, h.fh, h.now
	// The stored fields, prepared once per entry, around the ones the PoP
	// writes per request, in net/http's (sorted) order.
	out := append(s.Buffer(), "HTTP/1.1 200 OK\r\n"...)
	out = append(out, fh.seg[0]...)
	out = fastpath.AppendField(out, "Age", cache.AgeHeader(e.Age(now)))
	out = append(out, fh.seg[1]...)
	if r.TLS && p.altSvc != "" && !fh.hasAltSvc {
		out = fastpath.AppendField(out, "Alt-Svc", p.altSvc)
	}
	out = append(out, fh.seg[2]...)
	out = fastpath.AppendField(out, "Cache-Status", h.status)
	out = append(out, fh.seg[3]...)
	if r.TLS && svc.hsts != "" && !fh.hasHSTS {
		out = fastpath.AppendField(out, "Strict-Transport-Security", svc.hsts)
	}
	out = append(out, fh.seg[4]...)
	out = fastpath.AppendField(out, "Via", p.via[0])
	out = append(out, fh.seg[5]...)
	if !fh.hasDate {
		out = append(out, "Date: "...)
		out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\n"...)
	}
	if r.Close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)

	n, _ := s.Send(out, e.Body, e.Blob)
	if r.TLS {
		p.fastHits.tls.Add(1)
	} else {
		p.fastHits.clear.Add(1)
	}
	total := p.countInlineHit(&h, r.Method, n)
	if record, toLog := p.fastWant(); record { // accesslog.go
		client, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		p.access.log(accessRecord{
			at: h.start, client: client, method: r.Method, host: string(r.Host), path: target,
			proto: "HTTP/1.1", status: http.StatusOK, bytes: n, cacheStatus: h.status,
			userAgent: string(r.UserAgent), referer: string(r.Referer), requestID: fastRequestID(r.RequestID),
			ttfb: total, total: total, toLog: toLog,
		})
	}
}

// fastHitCounts counts the requests the HTTP/1.1 fast path answered, by
// serving listener.
type fastHitCounts struct{ clear, tls atomic.Uint64 }

// Load returns the requests answered on both listeners.
func (c *fastHitCounts) Load() uint64 { return c.clear.Load() + c.tls.Load() }

// inlineService is the service a request for host gets answered by on an
// inline hit path (the HTTP/1.1 fast path, the HTTP/2 server's), or nil
// when the handler must answer it: an unknown host, a shield service (its
// requests are checked for loops), or a clear-text request the service
// redirects to HTTPS. Signed URLs are the caller's to check.
func (p *PoP) inlineService(host string, tls bool) *service {
	svc := p.routes.Load().byHost[host]
	if svc == nil || svc.isShield || (!tls && svc.redirect && p.httpsPort != "") {
		return nil
	}
	return svc
}

// inlineHit is a request an inline hit path answers: the fresh stored 200
// and what the response needs besides it.
type inlineHit struct {
	svc    *service
	e      *cache.Entry
	fh     *fastHead // e's prepared head, ok
	start  time.Time // when the lookup began, for the latency figures
	now    time.Time // the PoP's clock, for Age and TTL
	status string    // the Cache-Status field value
}

// inlineLookup finds the entry for a request to svc and says whether an
// inline hit path may answer it: a fresh stored 200 with a Content-Type
// (net/http sniffs a missing one) whose prepared head is ok, that the
// handler would serve unchanged. Both inline paths ask it, so they
// answer the same requests.
func (p *PoP) inlineLookup(svc *service, tls bool, host, path, query string) (inlineHit, bool) {
	start := time.Now()
	scheme := "http"
	if tls {
		scheme = "https"
	}
	key := cache.Key(scheme, host, path, query, svc.query)
	e, ok := p.store.Get(key)
	if !ok || e.IsVaryIndex() || e.Status != http.StatusOK || e.Header["Content-Type"] == nil {
		return inlineHit{}, false
	}
	now := p.now()
	if e.Usable(now, cache.RequestDirectives{}) != cache.UseFresh {
		return inlineHit{}, false
	}
	fh, _ := e.Prepared.(*fastHead)
	if fh == nil {
		fh = prepareFastHead(e) // an entry the PoP did not make itself
	}
	if !fh.ok {
		return inlineHit{}, false
	}
	status := cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true, Detail: tierDetail(e)}.Format(p.statusName)
	return inlineHit{svc: svc, e: e, fh: fh, start: start, now: now, status: status}, true
}

// countInlineHit counts an answered inline hit of n body bytes as the
// handler counts its hits, and returns the time it took.
func (p *PoP) countInlineHit(h *inlineHit, method string, n int64) time.Duration {
	h.svc.stats.recordMethod(method, http.StatusOK, resultHit, n)
	p.countDiskHit(h.e, n)
	total := time.Since(h.start)
	h.svc.stats.latency.Observe(total)
	return total
}

// fastHead is the part of a stored entry's response head the fast path
// sends unchanged, rendered once when the entry is made (cache.Entry's
// Prepared) instead of on every hit: the stored fields net/http would
// write, sorted by name, in six segments around the Age, Alt-Svc,
// Cache-Status, Strict-Transport-Security and Via lines the PoP writes per
// request (a stored Cache-Status or Via comes before the PoP's own, as
// serveStored appends to them; a stored Alt-Svc or
// Strict-Transport-Security replaces the PoP's, which is then not sent).
type fastHead struct {
	ok        bool // the fast path may answer from the entry at all
	hasDate   bool // the entry has its own Date
	hasAltSvc bool // ... its own Alt-Svc
	hasHSTS   bool // ... its own Strict-Transport-Security
	seg       [6][]byte
	// h2 is the same head as an HPACK block for the HTTP/2 server, made
	// on the entry's first HTTP/2 hit (h2HeadOf). It is not counted in
	// the entry's cost: it exists only for entries asked over HTTP/2, and
	// is about as large as seg.
	h2 atomic.Pointer[h2Head]
}

// fastHeadBounds are the last names of the fastHead's segments but the
// last: a field goes into the first segment whose bound is not below its
// name.
var fastHeadBounds = [5]string{"Age", "Alt-Svc", "Cache-Status", "Strict-Transport-Security", "Via"}

// Size is the bytes the prepared head holds, counted in the entry's cost.
func (fh *fastHead) Size() int64 {
	var n int
	for _, s := range fh.seg {
		n += len(s)
	}
	return int64(n)
}

// prepareFastHead renders e's stored fields for the fast path. ok is false
// when net/http would send the entry otherwise than the fast path can:
// not a 200, no Content-Type (net/http sniffs one), a Content-Length that
// is not the body's, fields it rewrites or drops.
func prepareFastHead(e *cache.Entry) *fastHead {
	fh := &fastHead{}
	if e.IsVaryIndex() || e.Status != http.StatusOK || e.Header["Content-Type"] == nil {
		return fh
	}
	var cl [20]byte
	if v := e.Header["Content-Length"]; len(v) != 1 || v[0] != string(strconv.AppendInt(cl[:0], e.BodySize(), 10)) {
		return fh
	}
	var names [32]string // on the stack for the usual number of fields
	sorted := names[:0]
	size := 0
	for name, values := range e.Header {
		if cache.IsTargeted(name) || name == "Age" {
			continue // targeted at this CDN (RFC 9213), or replaced per request
		}
		switch name {
		case "Connection", "Transfer-Encoding", "Trailer":
			return fh // net/http rewrites these
		case "Date":
			fh.hasDate = true
		case "Alt-Svc":
			fh.hasAltSvc = true
		case "Strict-Transport-Security":
			fh.hasHSTS = true
		}
		if !fastpath.ValidFieldName(name) {
			return fh // net/http drops it
		}
		sorted = append(sorted, name)
		for _, v := range values {
			size += len(name) + len(v) + 4
		}
	}
	slices.Sort(sorted)
	// The names are sorted, so the segments follow one another: one buffer
	// holds them all, each segment a window of it.
	buf := make([]byte, 0, size)
	const n = len(fh.seg)
	var start [n]int
	seg := 0
	for _, name := range sorted {
		i := 0 // the segment
		for i < n-1 && name > fastHeadBounds[i] {
			i++
		}
		for ; seg < i; seg++ {
			start[seg+1] = len(buf)
		}
		for _, v := range e.Header[name] {
			buf = fastpath.AppendField(buf, name, v)
		}
	}
	for ; seg < n-1; seg++ {
		start[seg+1] = len(buf)
	}
	for i := range n {
		end := len(buf)
		if i < n-1 {
			end = start[i+1]
		}
		fh.seg[i] = buf[start[i]:end:end]
	}
	fh.ok = true
	return fh
}
