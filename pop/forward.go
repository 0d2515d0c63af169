package pop

import (
	"net"
	"net/http"
	"strings"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
)

// forwardHeader returns the header fields to send to the origin for r:
// the client's end-to-end fields, Via, the client's address in
// X-Forwarded-For (appended to the client's own) and Forwarded (RFC 7239;
// the PoP's element only), X-Request-Id (accesslog.go), and Surrogate-Capability,
// which tells the origin that this surrogate obeys Surrogate-Control and
// the device token to target it with (W3C Edge Architecture 1.0).
func (p *PoP) forwardHeader(r *http.Request) http.Header {
	h := cloneHeader(r.Header)
	origin.RemoveHopByHop(h)
	client := clientIP(r)
	// The PoP's one-value fields share one backing array: a field set
	// with http.Header.Set costs an allocation each.
	own := make([]string, 0, forwardFields)
	set := func(name, value string) {
		own = append(own, value)
		h[name] = own[len(own)-1 : len(own) : len(own)]
	}
	if client != "" {
		if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
			set("X-Forwarded-For", strings.Join(prior, ", ")+", "+client)
		} else {
			set("X-Forwarded-For", client)
		}
	}
	proto := scheme(r)
	set("X-Forwarded-Host", r.Host)
	set("X-Forwarded-Proto", proto)
	// The client's own Forwarded elements are not passed on: ahead of the
	// PoP's they would read as hops the PoP vouches for (RFC 7239 §8.1).
	set("Forwarded", forwardedElement(client, r.Host, proto))
	h.Add("Via", p.viaFor(r))
	h.Add("Cdn-Loop", p.cdnLoopMember()) // RFC 8586 (shield.go)
	h.Add("Surrogate-Capability", surrogateCapability)
	// The request's ID: the one its log line has (serveLogged set it), the
	// client's, or a new one, so the origin's logs can name it too.
	ensureRequestID(h)
	return h
}

// surrogateCapability is the Surrogate-Capability value every origin
// request carries.
const surrogateCapability = cache.SurrogateDevice + `="Surrogate/1.0"`

// forwardFields is the most fields forwardHeader and fillRequest add to
// the client's: room for them is made up front.
const forwardFields = 12

// cloneHeader copies h as http.Header.Clone does (nil stays nil; the
// values of all fields share one array), into a map with room for
// forwardFields more fields, so that adding the PoP's own does not grow
// it.
func cloneHeader(h http.Header) http.Header {
	nv := 0
	for _, vv := range h {
		nv += len(vv)
	}
	values := make([]string, nv)
	c := make(http.Header, len(h)+forwardFields)
	for name, vv := range h {
		if vv == nil {
			c[name] = nil
			continue
		}
		n := copy(values, vv)
		c[name] = values[:n:n]
		values = values[n:]
	}
	return c
}

// fillRequest is the origin request that fills the cache for r: always a
// GET for the whole object, without the client's conditionals or range, so
// the answer can be stored and serve everyone. When a stored entry is being
// validated, it carries that entry's validators instead (RFC 9111 §4.3.1).
// Accept-Encoding is the folded value the variant key holds
// (cache.NormalizeAcceptEncoding), so whatever coding the origin picks
// suits every client of that variant.
func (p *PoP) fillRequest(r *http.Request, stale *cache.Entry) origin.Request {
	h := p.forwardHeader(r)
	for _, name := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"} {
		h.Del(name)
	}
	h["Accept-Encoding"] = []string{cache.NormalizeAcceptEncoding(r.Header["Accept-Encoding"])}
	if stale != nil {
		if etag := stale.Header.Get("ETag"); etag != "" {
			h.Set("If-None-Match", etag)
		}
		if lm := stale.Header.Get("Last-Modified"); lm != "" {
			h.Set("If-Modified-Since", lm)
		}
	}
	return origin.Request{Method: http.MethodGet, Target: r.URL.RequestURI(), Header: h, ClientIP: clientIP(r)}
}

// clientIP is the client's address without port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// forwardedElement formats one Forwarded element (RFC 7239 §4).
func forwardedElement(client, host, proto string) string {
	var b strings.Builder
	if client != "" {
		b.WriteString("for=")
		if strings.Contains(client, ":") {
			b.WriteString(`"[` + client + `]"`)
		} else {
			b.WriteString(client)
		}
		b.WriteByte(';')
	}
	b.WriteString(`host="` + strings.ReplaceAll(host, `"`, "") + `";proto=` + proto)
	return b.String()
}
