package pop

import (
	"net"
	"net/http"
	"slices"
	"strconv"
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
// Connection: close when the client asked for it. Anything else it
// declines, sending nothing.
func (f fastCache) ServeFast(s *fastpath.Sender, r *fastpath.Request) {
	p := f.p
	host := hostOnly(string(r.Host))
	svc := p.routes.Load().byHost[host]
	if svc == nil || (svc.redirect && p.httpsPort != "") {
		return
	}
	start := time.Now()
	key := cache.Key("http", host, string(r.Path), string(r.Query), svc.query)
	e, ok := p.store.Get(key)
	if !ok || e.IsVaryIndex() || e.Status != http.StatusOK || e.Header["Content-Type"] == nil {
		return // (net/http sniffs a missing Content-Type)
	}
	now := p.now()
	if e.Usable(now, cache.RequestDirectives{}) != cache.UseFresh {
		return
	}
	var sizeBuf [20]byte
	if cl := e.Header["Content-Length"]; len(cl) != 1 || cl[0] != string(strconv.AppendInt(sizeBuf[:0], e.BodySize(), 10)) {
		return // net/http would frame the body otherwise
	}

	// The fields serveStored sends, in net/http's order.
	var namesBuf [32]string
	names := namesBuf[:0]
	hasDate := false
	for name := range e.Header {
		if cache.IsTargeted(name) {
			continue // targeted at this CDN (RFC 9213): not forwarded
		}
		switch name {
		case "Age", "Via", "Cache-Status":
			continue // replaced or added to below
		case "Connection", "Transfer-Encoding", "Trailer":
			return // net/http rewrites these
		case "Date":
			hasDate = true
		}
		if !fastpath.ValidFieldName(name) {
			return // net/http drops it
		}
		names = append(names, name)
	}
	names = append(names, "Age", "Via", "Cache-Status")
	slices.Sort(names)
	status := cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true}.Format(p.statusName)
	out := append(s.Buffer(), "HTTP/1.1 200 OK\r\n"...)
	for _, name := range names {
		switch name {
		case "Age":
			out = fastpath.AppendField(out, name, cache.AgeHeader(e.Age(now)))
			continue
		}
		for _, v := range e.Header[name] {
			out = fastpath.AppendField(out, name, v)
		}
		switch name {
		case "Via":
			out = fastpath.AppendField(out, name, p.via[0])
		case "Cache-Status":
			out = fastpath.AppendField(out, name, status)
		}
	}
	if !hasDate {
		out = append(out, "Date: "...)
		out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\n"...)
	}
	if r.Close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)

	n, _ := s.Send(out, e.Body, e.Blob)
	p.fastHits.Add(1)
	svc.stats.recordMethod(r.Method, http.StatusOK, resultHit, n)
	total := time.Since(start)
	svc.stats.latency.Observe(total)
	if p.access != nil && p.access.sampled() {
		client, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		p.access.log(accessRecord{
			at: start, client: client, method: r.Method, host: string(r.Host), path: string(r.Target),
			proto: "HTTP/1.1", status: http.StatusOK, bytes: n, cacheStatus: status, total: total,
		})
	}
}
