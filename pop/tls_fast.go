package pop

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/pop/fastpath"
)

// The HTTP/1.1 fast path on the TLS listener (tls.fast_path, default on):
// the PoP accepts TLS connections itself (pop/fastpath, tls.go there),
// answers fresh hits over HTTP/1.1 through the same seam as on the clear
// listener (fastCache, which keys them "https" and adds HSTS and Alt-Svc
// as the handler does), and gives net/http's HTTPS server everything else:
// HTTP/2 connections as *tls.Conn (it dispatches them by ALPN as before,
// to its own HTTP/2 or to pop/h2serve), and declined HTTP/1.1 requests
// lent or handed over with the connection's TLS state, which net/http
// puts in Request.TLS.

// tlsFastPath reports whether the TLS listener runs the fast path.
func (p *PoP) tlsFastPath() bool {
	return !p.noFastPath && p.cfg.TLS.FastPath
}

// serveTLS serves the TLS listener: with the fast path in front of
// httpsSrv when it is on, else httpsSrv alone (ServeTLS). It returns the
// fast path's server (nil when off) and a function that removes its
// metrics; Serve's errors go to errc.
func (p *PoP) serveTLS(httpsSrv *http.Server, ln *fastpath.Listener, errc chan<- error) (*fastpath.Server, func()) {
	if !p.tlsFastPath() {
		go func() { errc <- httpsSrv.ServeTLS(ln, "", "") }()
		return nil, func() {}
	}
	t := p.cfg.Timeouts
	fast := fastpath.NewServer(ln, fastCache{p}, fastpath.Options{
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		// A Config of its own: net/http's Serve sets fields of
		// httpsSrv.TLSConfig (http2ConfigureServer) while handshakes run.
		TLS:    p.certs.tlsConfig(),
		Logger: p.log,
	})
	go func() { errc <- fast.Serve() }()
	// The connections come handshaken: net/http serves them with Serve,
	// and still dispatches HTTP/2 by ALPN (its TLSConfig offers h2).
	go func() { errc <- httpsSrv.Serve(fast.Handoff()) }()
	c := handshakeCollector{fast}
	if err := p.registry.Register(c); err != nil {
		return fast, func() {}
	}
	return fast, func() { p.registry.Unregister(c) }
}

// handshakeCollector exports the TLS fast path's handshake figures.
type handshakeCollector struct{ s *fastpath.Server }

// Describe sends the metric's description.
func (c handshakeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTLSHandshakes }

// Collect reads the figures.
func (c handshakeCollector) Collect(ch chan<- prometheus.Metric) {
	for i, n := range c.s.Handshakes() {
		ch <- prometheus.MustNewConstMetric(descTLSHandshakes, prometheus.CounterValue, float64(n), fastpath.HandshakeResult(i).String())
	}
}

var descTLSHandshakes = prometheus.NewDesc("outpost_pop_tls_handshakes_total",
	"TLS handshakes on the TLS listener run by the PoP's fast path (tls.fast_path), by result: h2 and http/1.1 (done, by ALPN; none counts as http/1.1), and the failed ones: timeout (not done within timeouts.read_header), closed (the client closed or reset the connection first), failed (a bad ClientHello, no common version or cipher, plain HTTP on the TLS port).",
	[]string{"result"}, nil)
