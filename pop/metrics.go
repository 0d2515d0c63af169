package pop

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the PoP's counters as Prometheus metrics at scrape
// time, so the request path only touches its own atomics.
type collector struct{ p *PoP }

var (
	descRequests = prometheus.NewDesc("outpost_pop_requests_total",
		"Requests on the serving listeners by service and cache result (hit, collapsed, revalidated, stale_on_error, miss, pass, error).",
		[]string{"service", "result"}, nil)
	descServedBytes = prometheus.NewDesc("outpost_pop_served_bytes_total",
		"Response body bytes sent to clients, by service.", []string{"service"}, nil)
	descCacheServedBytes = prometheus.NewDesc("outpost_pop_served_from_cache_bytes_total",
		"Response body bytes sent to clients that came from storage, by service.", []string{"service"}, nil)
	descOriginBytes = prometheus.NewDesc("outpost_pop_origin_bytes_total",
		"Response body bytes read from origins, by service.", []string{"service"}, nil)
	descOriginFetches = prometheus.NewDesc("outpost_pop_origin_requests_total",
		"Requests sent to origins, by service.", []string{"service"}, nil)
	descDraining = prometheus.NewDesc("outpost_pop_draining",
		"1 while the PoP is draining for shutdown.", nil, nil)
	descFills = prometheus.NewDesc("outpost_pop_fills_in_flight",
		"Origin fills running now.", nil, nil)
	descItems = prometheus.NewDesc("outpost_cache_items",
		"Entries held in the cache.", nil, nil)
	descBytes = prometheus.NewDesc("outpost_cache_bytes",
		"Cost in bytes of the entries held in the cache.", nil, nil)
	descMaxBytes = prometheus.NewDesc("outpost_cache_max_bytes",
		"The cache's capacity in bytes.", nil, nil)
	descAdmissions = prometheus.NewDesc("outpost_cache_admissions_total",
		"Entries the cache's admission policy accepted.", nil, nil)
	descRejections = prometheus.NewDesc("outpost_cache_rejections_total",
		"Entries the cache's admission policy declined.", nil, nil)
	descDrops = prometheus.NewDesc("outpost_cache_drops_total",
		"Entries lost before reaching the admission policy.", nil, nil)
	descEvictions = prometheus.NewDesc("outpost_cache_evictions_total",
		"Entries removed to make room or because they expired.", nil, nil)
)

// unroutedService labels requests whose Host matched no service.
const unroutedService = "_unknown_host"

// Describe sends every metric description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descServedBytes, descCacheServedBytes,
		descOriginBytes, descOriginFetches, descDraining, descFills, descItems, descBytes,
		descMaxBytes, descAdmissions, descRejections, descDrops, descEvictions} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	emit := func(name string, cs *counters) {
		for r := range numResults {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue,
				float64(cs.results[r].Load()), name, resultNames[r])
		}
		ch <- prometheus.MustNewConstMetric(descServedBytes, prometheus.CounterValue, float64(cs.bytesServed.Load()), name)
		ch <- prometheus.MustNewConstMetric(descCacheServedBytes, prometheus.CounterValue, float64(cs.bytesFromCache.Load()), name)
		ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(cs.originBytes.Load()), name)
		ch <- prometheus.MustNewConstMetric(descOriginFetches, prometheus.CounterValue, float64(cs.originFetches.Load()), name)
	}
	for _, svc := range p.serviceList {
		emit(svc.name, &svc.stats)
	}
	emit(unroutedService, &p.unrouted)
	draining := 0.0
	if p.draining.Load() {
		draining = 1
	}
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, draining)
	ch <- prometheus.MustNewConstMetric(descFills, prometheus.GaugeValue, float64(p.fills.inFlight()))
	st := p.store.Stats()
	ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(st.Items))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descMaxBytes, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(descAdmissions, prometheus.CounterValue, float64(st.Admissions))
	ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(st.Rejections))
	ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(st.Drops))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(st.Evictions))
}
