package pop

import (
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// ServeHTTP serves one request on a serving listener: it finds the service
// by Host, answers from storage when the caching rules allow, and otherwise
// fetches from the service's origin, once per key however many requests
// wait.
func (p *PoP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if record, toLog := p.wantRequest(r); record {
		p.serveLogged(w, r, toLog) // accesslog.go
		return
	}
	p.serve(w, r)
}

// serve is ServeHTTP without the access log. The checks before the
// cache and the uncommon requests are functions of their own, which keeps
// this frame small (see serveMiss).
func (p *PoP) serve(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	svc := p.routes.Load().byHost[host]
	if svc == nil {
		p.misdirected(w, r, host)
		return
	}
	start := time.Now()
	defer func() { svc.stats.latency.Observe(time.Since(start)) }()
	if !p.admit(w, r, svc, host) {
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == "" && r.Header.Get("Authorization") == "" {
		p.serveCacheable(w, r, svc, host)
		return
	}
	p.serveOther(w, r, svc, host)
}

// admit applies what comes before any answer of the service: loop
// detection, the HTTPS fields or the redirect to HTTPS, signed URLs. It
// returns false when it answered the request.
func (p *PoP) admit(w http.ResponseWriter, r *http.Request, svc *service, host string) bool {
	if p.looped(r) { // shield.go
		p.loopDetected(w, r, svc)
		return false
	}
	if r.TLS != nil {
		h := w.Header()
		if p.altSvc != "" && r.ProtoMajor < 3 {
			h["Alt-Svc"] = []string{p.altSvc}
		}
		if svc.hsts != "" {
			h["Strict-Transport-Security"] = []string{svc.hsts}
		}
	} else if svc.redirect && p.httpsPort != "" && !edgeHTTPS(r) {
		p.redirectToHTTPS(w, r, svc, host)
		return false
	}
	if svc.signer != nil && !p.checkSigned(w, r, svc) { // signed.go
		return false
	}
	return true
}

// serveOther serves a request that is not a plain GET or HEAD.
func (p *PoP) serveOther(w http.ResponseWriter, r *http.Request, svc *service, host string) {
	switch {
	case r.Method == http.MethodConnect || r.Method == http.MethodTrace:
		// A CDN is no tunnel, and TRACE would echo the client's cookies and
		// credentials (RFC 9110 §9.3.6, §9.3.8): neither reaches an origin.
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		p.plainError(w, r, svc, http.StatusMethodNotAllowed, cache.Status{Fwd: cache.FwdBypass, Detail: "method"},
			"outpost: "+r.Method+" is not allowed\n")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		p.pass(w, r, svc, cache.Status{Fwd: cache.FwdMethod}, resultPass)
	case r.Header.Get("Upgrade") != "":
		// Protocol switches go through.
		p.pass(w, r, svc, cache.Status{Fwd: cache.FwdRequest}, resultPass)
	case r.Header.Get("Authorization") != "":
		p.serveAuthorized(w, r, svc, host)
	default:
		p.serveCacheable(w, r, svc, host)
	}
}

// hostOnly lowercases a Host value and removes its port and a trailing dot.
// A Host without a colon has no port: SplitHostPort is not asked, as it
// would fail and allocate its error (most browsers' requests).
func hostOnly(host string) string {
	split := false
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host, split = h, true
		}
	}
	if !split && strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
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

// misdirected answers a request whose Host no service claims, without
// contacting any origin (RFC 9110 §15.5.20).
func (p *PoP) misdirected(w http.ResponseWriter, r *http.Request, host string) {
	body := "outpost: no service is configured for host " + quote(host) + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Status", cache.Status{Fwd: cache.FwdBypass, Detail: "unknown-host"}.Format(p.statusName))
	w.WriteHeader(http.StatusMisdirectedRequest)
	n, _ := io.WriteString(w, body)
	p.unrouted.record(r, http.StatusMisdirectedRequest, resultError, int64(n))
}

// quote makes an untrusted string safe to echo in a plain-text body.
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

func scheme(r *http.Request) string {
	if r.TLS != nil || edgeHTTPS(r) { // an edge PoP's fill for an https URL (shield.go)
		return "https"
	}
	return "http"
}

// lookup is what the store holds for a request.
type lookup struct {
	primary  string       // the URL's key
	key      string       // the key the response is (to be) stored under
	index    *cache.Entry // the variant index, when the response varies
	entry    *cache.Entry // the stored response, if any
	retried  bool         // a second try, for another variant of a fill
	alone    bool         // a fill no other request may join (credentials)
	meta     *sliceObject // the sliced object stored for key, when there is no entry
	noSlice  bool         // the object could not be sliced lately: fill without Range
	resliced bool         // a second try after a sliced object changed
	large    bool         // the object was found larger than max_object: slice it
}

// find looks a request for host (already normalized) up in the store,
// through the variant index when the URL's responses vary.
func (p *PoP) find(r *http.Request, svc *service, host string) lookup {
	l := lookup{primary: cache.Key(scheme(r), host, r.URL.EscapedPath(), r.URL.RawQuery, svc.query)}
	l.key = l.primary
	e, ok := p.store.Get(l.primary)
	if !ok {
		return l
	}
	if e.IsVaryIndex() {
		l.index = e
		l.key = cache.VariantKey(l.primary, e.VaryNonce, e.VaryFields, r.Header)
		if e, ok = p.store.Get(l.key); !ok {
			return l
		}
	}
	l.entry = e
	return l
}

// serveCacheable serves a GET or HEAD that may use storage. Its frame is
// kept small (what comes before a miss is a function of its own), so that
// a miss's handler stays within its goroutine's stack (see serveMiss).
func (p *PoP) serveCacheable(w http.ResponseWriter, r *http.Request, svc *service, host string) {
	var l lookup
	var status cache.Status
	if p.serveBeforeMiss(w, r, svc, host, &l, &status) {
		return
	}
	p.serveMiss(w, r, svc, &l, status)
}

// serveBeforeMiss looks r up and answers it when storage can, or when it
// may not go to the origin; it returns false when the request is a miss,
// with its lookup in l and its Cache-Status so far in status.
func (p *PoP) serveBeforeMiss(w http.ResponseWriter, r *http.Request, svc *service, host string, l *lookup, status *cache.Status) (answered bool) {
	rd := cache.ParseRequestDirectives(r.Header)
	*l = p.find(r, svc, host)
	now := p.now()
	if l.entry == nil && svc.slice > 0 {
		if l.meta = p.findSliced(l.key); l.meta != nil && p.serveSlicedHit(w, r, svc, l, &rd, now) {
			return true
		}
		l.noSlice = p.marks.unsliced(l.key, now)
	}
	var served bool
	if *status, served = p.serveUsable(w, r, svc, l, &rd, now); served {
		return true
	}
	if rd.OnlyIfCached || rd.NoStore {
		p.serveUnfetched(w, r, svc, rd.OnlyIfCached, *status)
		return true
	}
	if m, ok := p.marks.get(l.key, now); ok {
		return p.serveMarked(w, r, svc, l, status, m)
	}
	return false
}

// serveUsable answers from storage when what it holds for l may be used
// (fresh, or stale as the client or stale-while-revalidate allows), and
// otherwise returns the Cache-Status of the request that goes forward.
func (p *PoP) serveUsable(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, rd *cache.RequestDirectives, now time.Time) (status cache.Status, served bool) {
	status = cache.Status{Fwd: cache.FwdURIMiss}
	switch {
	case l.meta != nil:
		status.Fwd = cache.FwdStale
		if rd.NoCache || rd.HasMaxAge || rd.HasMinFresh {
			status.Fwd = cache.FwdRequest
		}
	case l.entry != nil:
		switch l.entry.Usable(now, *rd) {
		case cache.UseFresh:
			p.serveStored(w, r, svc, l.entry, cache.Status{Hit: true, Detail: tierDetail(l.entry)}, resultHit)
			return status, true
		case cache.UseStale:
			p.serveStored(w, r, svc, l.entry, cache.Status{Hit: true, Detail: "max-stale"}, resultHit)
			return status, true
		case cache.UseStaleRevalidate:
			p.refreshInBackground(r, svc, *l)
			p.serveStored(w, r, svc, l.entry, cache.Status{Hit: true, Detail: "stale-while-revalidate"}, resultHit)
			return status, true
		}
		status.Fwd = cache.FwdStale
		if rd.NoCache || rd.HasMaxAge || rd.HasMinFresh {
			status.Fwd = cache.FwdRequest
		}
	case l.index != nil:
		status.Fwd = cache.FwdVary
	case p.rejections != nil && p.rejections.Rejected(l.key):
		status.Detail = "rejected" // the store declined the last fill
	}
	return status, false
}

// serveUnfetched answers a request that storage could not and that may
// not fill: only-if-cached, or else no-store.
func (p *PoP) serveUnfetched(w http.ResponseWriter, r *http.Request, svc *service, onlyIfCached bool, status cache.Status) {
	if onlyIfCached {
		// Nothing usable is stored and the client forbids going to the
		// origin (RFC 9111 §5.2.1.7).
		status.Detail = "only-if-cached"
		p.plainError(w, r, svc, http.StatusGatewayTimeout, status, "outpost: nothing usable is stored and the request said only-if-cached\n")
		return
	}
	// Serve from storage when possible, but store nothing (§5.2.1.5).
	p.pass(w, r, svc, cache.Status{Fwd: cache.FwdRequest, Detail: string(cache.ReasonRequestNoStore)}, resultMiss)
}

// serveMarked handles a request for a key marked uncacheable lately
// (hit-for-miss, or too large). It answers the request itself and returns
// true, or adjusts l and status for serveMiss and returns false.
func (p *PoP) serveMarked(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, status *cache.Status, m mark) bool {
	if m.tooLarge && svc.slice > 0 && !l.noSlice {
		// Above max_object: from now on it is fetched and cached in
		// slices (slice.go), shared like any fill.
		l.large = true
		return false
	}
	if m.tooLarge && r.Header["Range"] != nil {
		// Above max_object: the origin answers the range itself.
		p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(cache.ReasonTooLarge)}, resultMiss)
		return true
	}
	// Hit-for-miss: the last answer could not be stored, so this
	// request fetches on its own instead of queueing behind others.
	l.alone = true
	status.Detail = detailHitForMiss
	return false
}

// detailHitForMiss is the Cache-Status detail of a request sent to the
// origin on its own because its key recently answered uncacheable.
const detailHitForMiss = "hit-for-miss"

// plainError answers with a short text body and counts an error.
func (p *PoP) plainError(w http.ResponseWriter, r *http.Request, svc *service, code int, status cache.Status, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Status", status.Format(p.statusName))
	w.WriteHeader(code)
	n, _ := io.WriteString(w, body)
	svc.stats.record(r, code, resultError, int64(n))
}

// redirectToHTTPS answers a plain-HTTP request with 308 to the same URL
// over HTTPS on the PoP's TLS port.
func (p *PoP) redirectToHTTPS(w http.ResponseWriter, r *http.Request, svc *service, host string) {
	target := "https://" + host
	if p.httpsPort != "443" {
		target = "https://" + net.JoinHostPort(host, p.httpsPort)
	}
	target += r.URL.RequestURI()
	w.Header().Set("Location", target)
	w.Header().Set("Cache-Status", cache.Status{Fwd: cache.FwdBypass, Detail: "https-redirect"}.Format(p.statusName))
	w.WriteHeader(http.StatusPermanentRedirect)
	svc.stats.record(r, http.StatusPermanentRedirect, resultPass, 0)
}

// serveSlicedHit answers a request for a sliced object whose stored
// header may be used (fresh, or stale as the client allows) from its
// slices. A stale object within stale-while-revalidate is revalidated
// before use, as the slices in flight could not be told apart from a
// refresh's. It returns false when the object must be validated first.
func (p *PoP) serveSlicedHit(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, rd *cache.RequestDirectives, now time.Time) bool {
	status := cache.Status{Hit: true}
	switch l.meta.meta.Usable(now, *rd) {
	case cache.UseFresh:
	case cache.UseStale:
		status.Detail = "max-stale"
	default:
		return false
	}
	if !p.serveSliced(w, r, svc, l.meta, status, resultHit, nil, true) {
		// The object changed under the request: fetch it anew, once.
		p.serveMiss(w, r, svc, &lookup{primary: l.primary, key: l.key, index: l.index, resliced: true}, cache.Status{Fwd: cache.FwdURIMiss})
	}
	return true
}
