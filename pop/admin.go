package pop

import (
	"encoding/json"
	"github.com/outpost-cdn/outpost/cache/blob"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outpost-cdn/outpost/origin"
)

// AdminHandler serves the admin endpoints: /healthz ("ok", or 503
// "draining" during shutdown), /stats (the PoP's figures as JSON) and
// /metrics (Prometheus text). All are read-only and need no credentials;
// bind the admin listener to an address only operators reach.
func (p *PoP) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", p.serveHealth)
	mux.HandleFunc("GET /stats", p.serveStats)
	mux.HandleFunc("POST /purge", p.servePurge)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	return mux
}

func (p *PoP) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if p.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// Stats is the document /stats serves: the PoP's figures in total and per
// service, and its cache's counters.
type Stats struct {
	PoP           string  `json:"pop"`
	ConfigVersion string  `json:"config_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Draining      bool    `json:"draining"`
	Figures
	Cache    CacheStats              `json:"cache"`
	Services map[string]ServiceStats `json:"services"`
}

// ServiceStats are one service's figures and those of its origin servers.
type ServiceStats struct {
	Figures
	// OriginPolicy is the service's balancing policy.
	OriginPolicy origin.Policy `json:"origin_policy"`
	// OriginNoHealthy is true while no origin server is in rotation and
	// requests go to the one that failed least recently.
	OriginNoHealthy bool `json:"origin_no_healthy_server"`
	// OriginServers are the per-server figures, in configuration order.
	OriginServers []origin.ServerStats `json:"origin_servers"`
}

// CacheStats are the store's counters as /stats reports them.
type CacheStats struct {
	Items      int64  `json:"items"`
	Bytes      int64  `json:"bytes"`
	MaxBytes   int64  `json:"max_bytes"`
	Admissions uint64 `json:"admissions"`
	Rejections uint64 `json:"rejections"`
	Drops      uint64 `json:"drops"`
	Evictions  uint64 `json:"evictions"`
	Fills      int    `json:"fills_in_flight"`
	// Blobs and BlobBytes count the bodies kept outside the heap in
	// memory files (process-wide), including evicted ones whose memory the
	// next garbage collection returns; SendfileBytes are the body bytes
	// sent from them with sendfile; HeapFallbacks counts large bodies kept
	// on the heap because no blob could be made (the open-file limit).
	Blobs         int64  `json:"blobs"`
	BlobBytes     int64  `json:"blob_bytes"`
	SendfileBytes uint64 `json:"sendfile_bytes"`
	HeapFallbacks uint64 `json:"blob_heap_fallbacks"`
}

// Stats returns a snapshot of the PoP's figures.
func (p *PoP) Stats() Stats {
	rt := p.routes.Load()
	s := Stats{
		PoP:           p.name,
		ConfigVersion: rt.version,
		UptimeSeconds: p.now().Sub(p.started).Round(time.Millisecond).Seconds(),
		Draining:      p.draining.Load(),
		Services:      make(map[string]ServiceStats, len(rt.list)),
	}
	total := p.unrouted.snapshot()
	var latency, originLatency histogram
	for _, svc := range rt.list {
		latency.add(&svc.stats.latency)
		originLatency.add(&svc.stats.originLatency)
		f := svc.stats.snapshot()
		ps := svc.pool.Stats()
		s.Services[svc.name] = ServiceStats{
			Figures:         f,
			OriginPolicy:    ps.Policy,
			OriginNoHealthy: ps.NoHealthy,
			OriginServers:   ps.Servers,
		}
		total.Add(f)
	}
	total.Derive()
	total.Latency, total.OriginLatency = latency.percentiles(), originLatency.percentiles()
	s.Figures = total
	st := p.store.Stats()
	s.Cache = CacheStats{
		Items: st.Items, Bytes: st.Bytes, MaxBytes: st.MaxBytes,
		Admissions: st.Admissions, Rejections: st.Rejections, Drops: st.Drops, Evictions: st.Evictions,
		Fills:         p.fills.inFlight(),
		SendfileBytes: p.sendfileBytes.Load(),
		HeapFallbacks: p.blobFailures.Load(),
	}
	s.Cache.Blobs, s.Cache.BlobBytes = blob.Open()
	return s
}

func (p *PoP) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p.Stats()); err != nil {
		p.log.Debug("writing stats", "err", err)
	}
}
