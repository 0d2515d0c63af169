package pop

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/pop/h2serve"
)

// h2Cache is the PoP's side of pop/h2serve's seam (h2serve.Cache): the
// HTTP/2 twin of fastCache. It answers the fresh hits the HTTP/1.1 fast
// path would answer, with the header fields the PoP's handler and
// net/http's HTTP/2 server would send for them (TestH2MatchesNetHTTP
// compares them), and counts and logs them as theirs.
type h2Cache struct{ p *PoP }

var _ h2serve.Cache = h2Cache{}

// ServeH2 answers r from the store when it is a fresh stored 200 the
// handler would serve unchanged; anything else it declines, sending
// nothing.
func (h h2Cache) ServeH2(s *h2serve.Sender, r *h2serve.Request) {
	p := h.p
	host := hostOnly(r.Authority)
	svc := p.inlineService(host, r.TLS)
	if svc == nil || svc.signer != nil {
		return
	}
	hit, ok := p.inlineLookup(svc, r.TLS, host, r.Path, r.Query)
	if !ok {
		return
	}
	e, now := hit.e, hit.now
	hh := h2HeadOf(e, hit.fh)
	if !hh.ok {
		return
	}
	out := append(s.Block(), hh.block...)
	out = h2serve.AppendField(out, "age", cache.AgeHeader(e.Age(now)))
	out = h2serve.AppendField(out, "cache-status", hit.status)
	out = h2serve.AppendField(out, "via", p.via[1])
	if r.TLS {
		// The handler sets these before the stored fields, which win.
		if p.altSvc != "" && !hh.hasAltSvc {
			out = h2serve.AppendField(out, "alt-svc", p.altSvc)
		}
		if svc.hsts != "" && !hh.hasHSTS {
			out = h2serve.AppendField(out, "strict-transport-security", svc.hsts)
		}
	}
	if !hh.hasDate {
		var d [len(http.TimeFormat)]byte
		out = h2serve.AppendField(out, "date", string(time.Now().UTC().AppendFormat(d[:0], http.TimeFormat)))
	}
	n, _ := s.Send(out, e.Body, e.Blob)
	if r.Method == http.MethodHead {
		n = 0
	}
	total := p.countInlineHit(&hit, r.Method, n)
	if record, toLog := p.fastWant(); record { // accesslog.go
		client, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		p.access.log(accessRecord{
			at: hit.start, client: client, method: r.Method, host: r.Authority, path: r.Target,
			proto: "HTTP/2.0", status: http.StatusOK, bytes: n, cacheStatus: hit.status,
			userAgent: r.UserAgent, referer: r.Referer, requestID: fastRequestID([]byte(r.RequestID)),
			ttfb: total, total: total, toLog: toLog,
		})
	}
}

// h2Head is an entry's stored header fields as an HPACK block without
// the dynamic table (h2serve.AppendField): prepared once per entry and
// reused on every connection.
type h2Head struct {
	ok        bool // the entry may be answered inline at all
	hasDate   bool
	hasAltSvc bool
	hasHSTS   bool
	block     []byte // :status 200 and the stored fields but Age
}

// h2HeadOf returns the HTTP/2 block of e, whose prepared HTTP/1.1 head
// is fh (ok), making it on first use and keeping it beside fh, so it
// lives and goes with the entry's prepared head.
func h2HeadOf(e *cache.Entry, fh *fastHead) *h2Head {
	if hh := fh.h2.Load(); hh != nil {
		return hh
	}
	hh := prepareH2Head(e)
	if !fh.h2.CompareAndSwap(nil, hh) {
		return fh.h2.Load() // another stream made it first
	}
	return hh
}

// prepareH2Head encodes e's stored fields as net/http's HTTP/2 server
// would send them from serveStored, for an entry whose fast-path head is
// ok (prepareFastHead). ok is false where a field would be dropped or sent
// otherwise by net/http's HTTP/2 server.
func prepareH2Head(e *cache.Entry) *h2Head {
	hh := &h2Head{}
	size := 1
	for name, values := range e.Header {
		for _, v := range values {
			size += len(name) + len(v) + 4
		}
	}
	hh.block = h2serve.AppendStatus(make([]byte, 0, size), http.StatusOK)
	for name, values := range e.Header {
		if cache.IsTargeted(name) || name == "Age" {
			continue
		}
		switch name {
		case "Date":
			hh.hasDate = true
		case "Alt-Svc":
			hh.hasAltSvc = true
		case "Strict-Transport-Security":
			hh.hasHSTS = true
		case "Keep-Alive", "Proxy-Connection", "Upgrade":
			return &h2Head{}
		}
		lower := strings.ToLower(name)
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &h2Head{} // net/http drops it
			}
			hh.block = h2serve.AppendField(hh.block, lower, v)
		}
	}
	hh.ok = true
	return hh
}

// h2Collector exports the figures of the PoP's own HTTP/2 server.
type h2Collector struct{ s *h2serve.Server }

var (
	descH2Conns = prometheus.NewDesc("outpost_pop_h2_connections",
		"HTTP/2 connections the PoP's own server (tls.http2: outpost) is serving, over TLS and h2c.", nil, nil)
	descH2ConnsTotal = prometheus.NewDesc("outpost_pop_h2_connections_total",
		"HTTP/2 connections the PoP's own server has served.", nil, nil)
	descH2Streams = prometheus.NewDesc("outpost_pop_h2_streams_total",
		"HTTP/2 requests (streams) the PoP's own server received.", nil, nil)
	descH2Hits = prometheus.NewDesc("outpost_pop_h2_inline_hits_total",
		"HTTP/2 requests answered inline from the cache, without the handler (counted in the services' hits too).", nil, nil)
	descH2Refused = prometheus.NewDesc("outpost_pop_h2_streams_refused_total",
		"HTTP/2 streams refused (REFUSED_STREAM): over SETTINGS_MAX_CONCURRENT_STREAMS, or during shutdown.", nil, nil)
	descH2Resets = prometheus.NewDesc("outpost_pop_h2_resets_total",
		"RST_STREAM frames, by direction: received (from clients) or sent.", []string{"direction"}, nil)
	descH2GoAways = prometheus.NewDesc("outpost_pop_h2_goaways_total",
		"GOAWAY frames sent with an error code (protocol errors, flow-control errors, abuse).", nil, nil)
	descH2Calm = prometheus.NewDesc("outpost_pop_h2_calm_total",
		"HTTP/2 connections closed with ENHANCE_YOUR_CALM: too many resets or refused streams (rapid reset, CVE-2023-44487).", nil, nil)
)

// Describe sends the metric descriptions.
func (c h2Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descH2Conns, descH2ConnsTotal, descH2Streams, descH2Hits, descH2Refused, descH2Resets, descH2GoAways, descH2Calm} {
		ch <- d
	}
}

// Collect reads the figures.
func (c h2Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descH2Conns, prometheus.GaugeValue, float64(s.ConnsOpen))
	ch <- prometheus.MustNewConstMetric(descH2ConnsTotal, prometheus.CounterValue, float64(s.Conns))
	ch <- prometheus.MustNewConstMetric(descH2Streams, prometheus.CounterValue, float64(s.Streams))
	ch <- prometheus.MustNewConstMetric(descH2Hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(descH2Refused, prometheus.CounterValue, float64(s.StreamsRefused))
	ch <- prometheus.MustNewConstMetric(descH2Resets, prometheus.CounterValue, float64(s.ResetsReceived), "received")
	ch <- prometheus.MustNewConstMetric(descH2Resets, prometheus.CounterValue, float64(s.ResetsSent), "sent")
	ch <- prometheus.MustNewConstMetric(descH2GoAways, prometheus.CounterValue, float64(s.GoAways))
	ch <- prometheus.MustNewConstMetric(descH2Calm, prometheus.CounterValue, float64(s.Calm))
}
