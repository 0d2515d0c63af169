package pop

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// serveStored answers from a stored entry: a hit, a revalidated entry, or
// a stale one served because the origin failed. Conditional and range
// requests on a stored 200 are answered per RFC 9110 §13 and §14: 304,
// 412, 206 (multipart for several ranges) or 416.
func (p *PoP) serveStored(w http.ResponseWriter, r *http.Request, svc *service, e *cache.Entry, status cache.Status, res result) {
	now := p.now()
	h := w.Header()
	for name, values := range e.Header {
		h[name] = values // stored values are immutable and shared
	}
	p.dropTargeted(h)
	h["Age"] = []string{cache.AgeHeader(e.Age(now))}
	p.addVia(h, r)
	status.TTL, status.HasTTL = e.TTL(now), true
	p.addStatus(h, status)

	if e.Status == http.StatusOK && needsEvaluation(r) {
		if tooManyRanges(r.Header["Range"], p.cfg.Limits.MaxRanges) {
			// Hundreds of tiny ranges cost far more to answer than the
			// whole body (limits.max_ranges, Apache's MaxRanges): send it
			// whole, as RFC 9110 §14.2 allows.
			r = r.Clone(r.Context())
			delete(r.Header, "Range")
		}
		if notModifiedByDate(r, e) {
			delete(h, "Content-Length")
			delete(h, "Content-Type")
			delete(h, "Content-Encoding")
			w.WriteHeader(http.StatusNotModified)
			svc.stats.record(r, http.StatusNotModified, res, 0)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		modTime, _ := http.ParseTime(e.Header.Get("Last-Modified"))
		delete(h, "Content-Length") // ServeContent sets it for what it sends
		if _, typed := h["Content-Type"]; !typed {
			h["Content-Type"] = nil // keep ServeContent from sniffing one
		}
		http.ServeContent(cw, r, "", modTime, e.BodyReader())
		svc.stats.record(r, cw.status, res, cw.n)
		if res == resultHit {
			p.countDiskHit(e, cw.n)
		}
		return
	}
	w.WriteHeader(e.Status)
	var n int64
	if r.Method != http.MethodHead {
		n = writeBody(w, e)
	}
	svc.stats.record(r, e.Status, res, n)
	if res == resultHit {
		p.countDiskHit(e, n)
	}
}

// notModifiedByDate answers If-Modified-Since for a stored response
// without Last-Modified, which http.ServeContent would ignore: a cache
// compares it with the response's Date, or with when the response was
// received (RFC 9111 §4.3.2). If-None-Match, when present, takes
// precedence (RFC 9110 §13.2.2) and ServeContent handles it.
func notModifiedByDate(r *http.Request, e *cache.Entry) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header["If-None-Match"] != nil || e.Header["Last-Modified"] != nil {
		return false
	}
	ims, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	if err != nil {
		return false
	}
	date, err := http.ParseTime(e.Header.Get("Date"))
	if err != nil {
		date = e.ResponseTime
	}
	return !date.Truncate(time.Second).After(ims)
}

// tooManyRanges reports whether a Range field asks for more than max
// ranges.
func tooManyRanges(values []string, max int) bool {
	if max <= 0 {
		return false
	}
	n := 0
	for _, v := range values {
		n += strings.Count(v, ",") + 1
	}
	return n > max
}

// needsEvaluation reports whether a request carries preconditions or a
// range that the stored response must be checked against.
func needsEvaluation(r *http.Request) bool {
	h := r.Header
	return h["Range"] != nil || h["If-None-Match"] != nil || h["If-Modified-Since"] != nil ||
		h["If-Match"] != nil || h["If-Unmodified-Since"] != nil
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom lets a range of a blob body reach the connection's ReadFrom
// (sendfile) through http.ServeContent's io.CopyN.
func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := copyTo(c.ResponseWriter, src)
	c.n += n
	return n, err
}

// dropTargeted removes the cache-control fields aimed at this CDN (RFC
// 9213): they are not forwarded downstream.
func (p *PoP) dropTargeted(h http.Header) {
	cache.StripTargeted(h)
}

// refreshInBackground starts a refresh of a stale entry served under
// stale-while-revalidate, unless one is already in flight for its key or
// the detached-fill bounds are reached (no client waits for it).
func (p *PoP) refreshInBackground(r *http.Request, svc *service, l lookup) {
	if !p.acquireDetached(svc) {
		return
	}
	f, leader := p.fills.joinBackground(l.key)
	if !leader {
		p.releaseDetached(svc)
		return
	}
	p.startFill(f, r, svc, &l)
}

// copyHeader copies src into dst, sharing value slices (src is never
// modified after a fill publishes it). It is not inlined: its map
// iterator would sit in the frame of streamFill, above a miss's deepest
// point (see serveMiss).
//
//go:noinline
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

// remaining is an entry's freshness left, for Cache-Status on responses
// that were just fetched.
func remaining(lifetime, initialAge time.Duration, responseTime, now time.Time) time.Duration {
	return lifetime - initialAge - now.Sub(responseTime)
}
