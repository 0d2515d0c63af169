package pop

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/latency"

	"github.com/outpost-cdn/outpost/origin"
)

// collector exports the PoP's counters as Prometheus metrics at scrape
// time, so the request path only touches its own atomics.
type collector struct{ p *PoP }

var (
	descRequests = prometheus.NewDesc("outpost_pop_requests_total",
		"Requests on the serving listeners by service, method, status class (none when the client left before an answer) and cache result (hit, collapsed, revalidated, stale_on_error, miss, pass, error). Only combinations that occurred are exported.",
		[]string{"service", "method", "status_class", "result"}, nil)
	descServedBytes = prometheus.NewDesc("outpost_pop_served_bytes_total",
		"Response body bytes sent to clients, by service.", []string{"service"}, nil)
	descCacheServedBytes = prometheus.NewDesc("outpost_pop_served_from_cache_bytes_total",
		"Response body bytes sent to clients that came from storage, by service.", []string{"service"}, nil)
	descOriginBytes = prometheus.NewDesc("outpost_pop_origin_bytes_total",
		"Response body bytes read from origins, by service.", []string{"service"}, nil)
	descOriginFetches = prometheus.NewDesc("outpost_pop_origin_requests_total",
		"Requests sent to origins, by service.", []string{"service"}, nil)
	descLatency = prometheus.NewDesc("outpost_pop_request_duration_seconds",
		"Time from a request's arrival to its last body byte written, by service.", []string{"service"}, nil)
	descOriginLatency = prometheus.NewDesc("outpost_pop_origin_duration_seconds",
		"Time from sending a request to an origin to its response header, by service.", []string{"service"}, nil)
	descDraining = prometheus.NewDesc("outpost_pop_draining",
		"1 while the PoP is draining for shutdown.", nil, nil)
	descFills = prometheus.NewDesc("outpost_pop_fills_in_flight",
		"Origin fills running now.", nil, nil)
	descFillWorkers = prometheus.NewDesc("outpost_pop_fill_workers",
		"Goroutines that run origin fills, running one or waiting for the next (at most 128 wait, each for 50 ms).", nil, nil)
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
	descPurges = prometheus.NewDesc("outpost_pop_purges_total",
		"Purges applied, by kind (url, prefix, tag) and mode (hard, soft).", []string{"kind", "mode"}, nil)
	descPurgedObjects = prometheus.NewDesc("outpost_pop_purged_objects_total",
		"Objects deleted or marked stale by purges.", nil, nil)
	descPurgesDenied = prometheus.NewDesc("outpost_pop_purges_denied_total",
		"Purge requests refused for lack of a valid token.", nil, nil)
	descAccessDropped = prometheus.NewDesc("outpost_pop_access_log_dropped_total",
		"Access log lines dropped because the writer was behind.", nil, nil)
	descIndexKeys = prometheus.NewDesc("outpost_pop_indexed_keys",
		"Keys in the purge index (the keys the cache holds).", nil, nil)
	descEvictions = prometheus.NewDesc("outpost_cache_evictions_total",
		"Entries removed to make room or because they expired.", nil, nil)
	descBlobs = prometheus.NewDesc("outpost_cache_blobs",
		"Bodies kept outside the heap in memory files, including evicted ones the next garbage collection frees.", nil, nil)
	descBlobBytes = prometheus.NewDesc("outpost_cache_blob_bytes",
		"Bytes of the bodies kept in memory files.", nil, nil)
	descSendfileBytes = prometheus.NewDesc("outpost_pop_sendfile_bytes_total",
		"Body bytes sent to clients with sendfile, from memory files.", nil, nil)
	descFastPath = prometheus.NewDesc("outpost_pop_fast_path_requests_total",
		"Fresh hits answered by the HTTP/1.1 fast path rather than net/http, by serving listener: clear or tls (also counted in outpost_pop_requests_total).", []string{"listener"}, nil)
	descBlobFallbacks = prometheus.NewDesc("outpost_cache_blob_heap_fallbacks_total",
		"Large bodies kept on the heap because no memory file could be made (the open-file limit).", nil, nil)

	// Per serving listener (clear, tls); exported by connCollector.
	descConnsOpen = prometheus.NewDesc("outpost_pop_client_connections",
		"Client connections open on a serving listener (HTTP/3 is not counted).", []string{"listener"}, nil)
	descConnCapReached = prometheus.NewDesc("outpost_pop_connection_limit_reached_total",
		"Times a serving listener had limits.max_conns connections open and new ones waited in the kernel's accept queue.", []string{"listener"}, nil)
	descSendTimeouts = prometheus.NewDesc("outpost_pop_send_timeouts_total",
		"Client connections closed because the client took nothing for timeouts.send.", []string{"listener"}, nil)

	// Per origin server; server is the URL's host:port (with its path when
	// two servers of a service share a host), bounded by the config.
	originLabels       = []string{"service", "server"}
	descOriginRequests = prometheus.NewDesc("outpost_origin_requests_total",
		"Requests sent to an origin server, retries included.", originLabels, nil)
	descOriginFailures = prometheus.NewDesc("outpost_origin_failures_total",
		"Requests to an origin server that failed: no connection, timeout, broken answer or body, 502, 503 or 504.", originLabels, nil)
	descOriginInFlight = prometheus.NewDesc("outpost_origin_in_flight",
		"Requests to an origin server in flight, until their body is read.", originLabels, nil)
	descOriginHealthy = prometheus.NewDesc("outpost_origin_healthy",
		"1 while an origin server is in rotation, 0 while it is ejected or failing health checks.", originLabels, nil)
	descOriginResponse = prometheus.NewDesc("outpost_origin_response_seconds",
		"Time from sending a request to an origin server to its response header.", originLabels, nil)
	descOriginNoHealthy = prometheus.NewDesc("outpost_origin_no_healthy_server",
		"1 while no origin server of a service is in rotation (requests go to the one that failed least recently).", []string{"service"}, nil)
)

// unroutedService labels requests whose Host matched no service.
const unroutedService = "_unknown_host"

// Describe sends every metric description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descServedBytes, descCacheServedBytes,
		descOriginBytes, descOriginFetches, descDraining, descFills, descFillWorkers, descItems, descBytes,
		descMaxBytes, descAdmissions, descRejections, descDrops, descEvictions,
		descPurges, descPurgedObjects, descPurgesDenied, descIndexKeys, descAccessDropped, descLatency, descOriginLatency,
		descOriginRequests, descOriginFailures, descOriginInFlight, descOriginHealthy,
		descOriginResponse, descOriginNoHealthy, descBlobs, descBlobBytes, descSendfileBytes,
		descFastPath, descBlobFallbacks} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	emit := func(name string, cs *counters) {
		for m := range cs.requests {
			for c := range cs.requests[m] {
				for r := range cs.requests[m][c] {
					if n := cs.requests[m][c][r].Load(); n > 0 {
						ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue,
							float64(n), name, methods[m], statusClasses[c], resultNames[r])
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(descServedBytes, prometheus.CounterValue, float64(cs.bytesServed.Load()), name)
		ch <- prometheus.MustNewConstMetric(descCacheServedBytes, prometheus.CounterValue, float64(cs.bytesFromCache.Load()), name)
		ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(cs.originBytes.Load()), name)
		ch <- prometheus.MustNewConstMetric(descOriginFetches, prometheus.CounterValue, float64(cs.originFetches.Load()), name)
		for desc, h := range map[*prometheus.Desc]*latency.Histogram{descLatency: &cs.latency, descOriginLatency: &cs.originLatency} {
			buckets, count, sum := h.Snapshot()
			ch <- prometheus.MustNewConstHistogram(desc, count, sum, buckets, name)
		}
	}
	for _, svc := range p.routes.Load().list {
		emit(svc.name, svc.stats)
		ps := svc.pool.Stats()
		ch <- prometheus.MustNewConstMetric(descOriginNoHealthy, prometheus.GaugeValue, boolValue(ps.NoHealthy), svc.name)
		for _, s := range ps.Servers {
			ch <- prometheus.MustNewConstMetric(descOriginRequests, prometheus.CounterValue, float64(s.Requests), svc.name, s.Name)
			ch <- prometheus.MustNewConstMetric(descOriginFailures, prometheus.CounterValue, float64(s.Failures), svc.name, s.Name)
			ch <- prometheus.MustNewConstMetric(descOriginInFlight, prometheus.GaugeValue, float64(s.InFlight), svc.name, s.Name)
			ch <- prometheus.MustNewConstMetric(descOriginHealthy, prometheus.GaugeValue, boolValue(s.State == origin.StateHealthy), svc.name, s.Name)
			ch <- prometheus.MustNewConstHistogram(descOriginResponse, s.Responses, s.ResponseSeconds, s.ResponseBuckets, svc.name, s.Name)
		}
	}
	emit(unroutedService, &p.unrouted)
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, boolValue(p.draining.Load()))
	ch <- prometheus.MustNewConstMetric(descFills, prometheus.GaugeValue, float64(p.fills.inFlight()))
	ch <- prometheus.MustNewConstMetric(descFillWorkers, prometheus.GaugeValue, float64(p.fills.workers.Live()))
	st := p.store.Stats()
	ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(st.Items))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descMaxBytes, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(descAdmissions, prometheus.CounterValue, float64(st.Admissions))
	ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(st.Rejections))
	ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(st.Drops))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(st.Evictions))
	blobs, blobBytes := blob.Open()
	ch <- prometheus.MustNewConstMetric(descBlobs, prometheus.GaugeValue, float64(blobs))
	ch <- prometheus.MustNewConstMetric(descBlobBytes, prometheus.GaugeValue, float64(blobBytes))
	ch <- prometheus.MustNewConstMetric(descSendfileBytes, prometheus.CounterValue, float64(p.sendfileBytes.Load()))
	ch <- prometheus.MustNewConstMetric(descFastPath, prometheus.CounterValue, float64(p.fastHits.clear.Load()), "clear")
	ch <- prometheus.MustNewConstMetric(descFastPath, prometheus.CounterValue, float64(p.fastHits.tls.Load()), "tls")
	ch <- prometheus.MustNewConstMetric(descBlobFallbacks, prometheus.CounterValue, float64(p.blobFailures.Load()))
	for k, kind := range purgeKinds {
		for m, mode := range [2]string{"hard", "soft"} {
			ch <- prometheus.MustNewConstMetric(descPurges, prometheus.CounterValue,
				float64(p.purgeStats.requests[k][m].Load()), kind, mode)
		}
	}
	ch <- prometheus.MustNewConstMetric(descPurgedObjects, prometheus.CounterValue, float64(p.purgeStats.objects.Load()))
	ch <- prometheus.MustNewConstMetric(descPurgesDenied, prometheus.CounterValue, float64(p.purgeStats.denied.Load()))
	ch <- prometheus.MustNewConstMetric(descIndexKeys, prometheus.GaugeValue, float64(p.index.len()))
	var dropped uint64
	if p.access != nil {
		dropped = p.access.dropped.Load()
	}
	ch <- prometheus.MustNewConstMetric(descAccessDropped, prometheus.CounterValue, float64(dropped))
}

// boolValue is 1 for true and 0 for false, for gauges.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
