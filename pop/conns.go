package pop

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/pop/fastpath"
)

// Client connections on the clear and TLS listeners are capped and given
// the send timeout by fastpath.Listener. HTTP/2 and HTTP/3 streams can
// also stall on flow control while their connection is busy with others;
// streamDeadlines gives their writes the send timeout through
// http.ResponseController.

// streamDeadlines gives the writes of HTTP/2 and HTTP/3 responses the send
// timeout through http.ResponseController, as fastpath.Listener gives it
// to connections: a stream whose client stops granting flow-control
// credit is reset instead of holding its handler for ever. HTTP/1
// responses pass through untouched (their connection has the timeout).
func streamDeadlines(h http.Handler, send time.Duration) http.Handler {
	if send <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 2 {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), send: send}, r)
	})
}

// streamWriter is an HTTP/2 or HTTP/3 ResponseWriter whose writes have the
// send timeout: large writes go in chunks, and the stream's write deadline
// is moved on before each, by the connections' rule (armed at 5/4 of the
// timeout, re-armed once a quarter of it has passed).
type streamWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	send  time.Duration
	armed time.Time
}

// streamChunk is the most of one Write given to the stream at once.
const streamChunk = 256 << 10

func (s *streamWriter) Write(p []byte) (int, error) {
	var n int
	for {
		if now := time.Now(); now.Sub(s.armed) >= s.send/4 {
			s.armed = now
			s.rc.SetWriteDeadline(now.Add(s.send + s.send/4))
		}
		m, err := s.ResponseWriter.Write(p[n:min(len(p), n+streamChunk)])
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
}

// Unwrap lets http.ResponseController reach the stream (Flush, deadlines).
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// servingListener is a serving listener with its label in /metrics.
type servingListener struct {
	name string // "clear" or "tls"
	ln   *fastpath.Listener
}

// servingListener wraps one of the PoP's serving sockets (clear or TLS):
// limits.max_conns, the send timeout, sendfile, and PROXY protocol when
// the PoP's proxy_protocol names trusted networks.
func (p *PoP) newServingListener(ln net.Listener) *fastpath.Listener {
	l := fastpath.NewListener(ln, p.cfg.Limits.MaxConns, p.cfg.Timeouts.Send, &p.sendfileBytes)
	l.AcceptProxyProtocol(p.cfg.ProxyProtocol.Trusted, p.cfg.ProxyProtocol.Timeout)
	return l
}

// connCollector exports the figures of the serving listeners.
type connCollector struct{ listeners []servingListener }

// Describe sends the metric descriptions.
func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnsOpen
	ch <- descConnCapReached
	ch <- descSendTimeouts
	ch <- descProxyProtocol
}

// Collect reads the figures.
func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.listeners {
		s := l.ln.Stats()
		ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(s.Open), l.name)
		ch <- prometheus.MustNewConstMetric(descConnCapReached, prometheus.CounterValue, float64(s.Capped), l.name)
		ch <- prometheus.MustNewConstMetric(descSendTimeouts, prometheus.CounterValue, float64(s.SendTimeouts), l.name)
		for i, n := range l.ln.ProxyCounts() {
			ch <- prometheus.MustNewConstMetric(descProxyProtocol, prometheus.CounterValue, float64(n), l.name, fastpath.ProxyResult(i).String())
		}
	}
}

var descProxyProtocol = prometheus.NewDesc("outpost_pop_proxy_protocol_connections_total",
	"Connections on a serving listener with proxy_protocol, by what their PROXY protocol header did: accepted, local, direct (untrusted source, no header), and the closed ones: untrusted (a header from outside the trusted networks), missing (none from a trusted source in time), malformed.",
	[]string{"listener", "result"}, nil)
