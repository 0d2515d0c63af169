package pop

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
)

// This file gathers what the edge features (signed URLs, PROXY protocol,
// compression, the origin shield) count, and exports it.

// edgeCounters are one service's figures of the edge features. Like its
// other figures they outlive a reload (setFillHooks carries them over).
type edgeCounters struct {
	signDenied signCounters // signed URLs refused, by reason
}

// keyDrop is the query parameters a service's cache key leaves out: the
// configured ones, and the signature parameters of a signed service.
func keyDrop(sc *config.Service) []string {
	drop := slices.Clone(sc.Cache.Query.Drop)
	if sc.SignedURLs.Enabled() {
		drop = append(drop, signParams...)
	}
	return drop
}

var descSignDenied = prometheus.NewDesc("outpost_pop_signed_url_denied_total",
	"Requests refused (403) by a service that requires signed URLs, by reason: missing, malformed, expired, ip, signature.",
	[]string{"service", "reason"}, nil)

// edgeCollector exports the edge features' figures.
type edgeCollector struct{ p *PoP }

// Describe sends the metric descriptions.
func (c edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSignDenied
}

// Collect reads the figures.
func (c edgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, svc := range c.p.routes.Load().list {
		if svc.signer != nil {
			for r := signMissing; r < numSignReasons; r++ {
				ch <- prometheus.MustNewConstMetric(descSignDenied, prometheus.CounterValue, float64(svc.edge.signDenied[r].Load()), svc.name, r.String())
			}
		}
	}
}
