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
	signDenied signCounters     // signed URLs refused, by reason
	compress   compressCounters // compression (compress.go)
	shield     shieldCounters   // the origin shield (shield.go)
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

var (
	descCompressed = prometheus.NewDesc("outpost_pop_compressed_responses_total",
		"Origin responses the PoP compressed for an Accept-Encoding variant, by codec.", []string{"service", "codec"}, nil)
	descCompressBytes = prometheus.NewDesc("outpost_pop_compress_bytes_total",
		"Bytes into (direction=in) and out of (out) the PoP's compression, by codec.", []string{"service", "codec", "direction"}, nil)
	descCompressSkipped = prometheus.NewDesc("outpost_pop_compress_skipped_total",
		"Compressible responses stored uncompressed: busy (every compression slot taken), no-transform.", []string{"service", "reason"}, nil)
	descCompressing = prometheus.NewDesc("outpost_pop_compressions_in_flight",
		"Compressions running now (bounded by compress.concurrency).", []string{"service"}, nil)
)

var (
	descShield = prometheus.NewDesc("outpost_pop_shield_requests_total",
		"Fills this PoP sent to the service's shield (result=sent), and those that no shield answered and went to the origin (fell_back).", []string{"service", "result"}, nil)
	descLoops = prometheus.NewDesc("outpost_pop_loops_detected_total",
		"Requests answered 508 because their CDN-Loop or Via already named this PoP.", []string{"service"}, nil)
)

// edgeCollector exports the edge features' figures.
type edgeCollector struct{ p *PoP }

// Describe sends the metric descriptions.
func (c edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSignDenied
	ch <- descCompressed
	ch <- descCompressBytes
	ch <- descCompressSkipped
	ch <- descCompressing
	ch <- descShield
	ch <- descLoops
}

// Collect reads the figures.
func (c edgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, svc := range c.p.routes.Load().list {
		if svc.signer != nil {
			for r := signMissing; r < numSignReasons; r++ {
				ch <- prometheus.MustNewConstMetric(descSignDenied, prometheus.CounterValue, float64(svc.edge.signDenied[r].Load()), svc.name, r.String())
			}
		}
		if svc.shield != nil {
			ch <- prometheus.MustNewConstMetric(descShield, prometheus.CounterValue, float64(svc.edge.shield.sent.Load()), svc.name, "sent")
			ch <- prometheus.MustNewConstMetric(descShield, prometheus.CounterValue, float64(svc.edge.shield.fellBack.Load()), svc.name, "fell_back")
		}
		ch <- prometheus.MustNewConstMetric(descLoops, prometheus.CounterValue, float64(svc.edge.shield.loops.Load()), svc.name)
		if svc.compress != nil {
			cc := &svc.edge.compress
			for i, codec := range codecs {
				ch <- prometheus.MustNewConstMetric(descCompressed, prometheus.CounterValue, float64(cc.responses[i].Load()), svc.name, codec)
				ch <- prometheus.MustNewConstMetric(descCompressBytes, prometheus.CounterValue, float64(cc.in[i].Load()), svc.name, codec, "in")
				ch <- prometheus.MustNewConstMetric(descCompressBytes, prometheus.CounterValue, float64(cc.out[i].Load()), svc.name, codec, "out")
			}
			ch <- prometheus.MustNewConstMetric(descCompressSkipped, prometheus.CounterValue, float64(cc.busy.Load()), svc.name, "busy")
			ch <- prometheus.MustNewConstMetric(descCompressSkipped, prometheus.CounterValue, float64(cc.noTrans.Load()), svc.name, "no-transform")
			ch <- prometheus.MustNewConstMetric(descCompressing, prometheus.GaugeValue, float64(len(svc.compress.slots)), svc.name)
		}
	}
}
