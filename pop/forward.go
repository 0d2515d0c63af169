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
	h := r.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	origin.RemoveHopByHop(h)
	client := clientIP(r)
	if client != "" {
		if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
			h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+client)
		} else {
			h.Set("X-Forwarded-For", client)
		}
	}
	h.Set("X-Forwarded-Host", r.Host)
	h.Set("X-Forwarded-Proto", scheme(r))
	// The client's own Forwarded elements are not passed on: ahead of the
	// PoP's they would read as hops the PoP vouches for (RFC 7239 §8.1).
	h["Forwarded"] = []string{forwardedElement(client, r.Host, scheme(r))}
	h.Add("Via", p.viaFor(r))
	h.Add("Cdn-Loop", p.cdnLoopMember()) // RFC 8586 (shield.go)
	h.Add("Surrogate-Capability", cache.SurrogateDevice+`="Surrogate/1.0"`)
	// The request's ID: the one its log line has (serveLogged set it), the
	// client's, or a new one, so the origin's logs can name it too.
	ensureRequestID(h)
	return h
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
