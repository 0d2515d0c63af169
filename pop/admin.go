package pop

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/latency"
	"github.com/outpost-cdn/outpost/popapi"
)

// AdminHandler serves the admin endpoints. The GET endpoints read and need
// no credentials: /healthz ("ok", or 503 "draining" during shutdown),
// /stats (the PoP's figures as JSON, a popapi.Stats) and /metrics
// (Prometheus text). POST /purge changes the cache (a popapi.PurgeRequest
// in, a popapi.PurgeResult out) and needs Authorization: Bearer
// <purge.token>: without a token in the configuration it answers 403,
// without the right one 401 (RFC 6750 §3). GET /tail streams the requests
// matching a filter as they finish (tail.go) and needs the same token: it
// shows clients' addresses and URLs. Bind the admin listener to an
// address only operators reach all the same: the figures are not public.
func (p *PoP) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", p.serveHealth)
	mux.HandleFunc("GET /stats", p.serveStats)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	mux.Handle("POST /purge", p.withPurgeToken(http.HandlerFunc(p.servePurge)))
	mux.HandleFunc("GET /tail", p.serveTail) // tail.go
	p.registerOpsMetrics()
	return mux
}

// withPurgeToken lets a request through to next only with the purge token
// as its bearer credential, and counts the refusals.
func (p *PoP) withPurgeToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token := p.routes.Load().purgeToken
		if token == "" {
			p.purgeStats.denied.Add(1)
			http.Error(w, "outpost: purge is disabled: no purge.token in the configuration", http.StatusForbidden)
			return
		}
		if !validBearer(r.Header.Get("Authorization"), token) {
			p.purgeStats.denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="outpost purge"`)
			http.Error(w, "outpost: purge needs Authorization: Bearer <purge.token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validBearer compares the Authorization field with the token in constant
// time.
func validBearer(field, token string) bool {
	scheme, cred, ok := strings.Cut(field, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(token)) == 1
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

// Stats, ServiceStats and Figures are the /stats document's types, defined
// in package popapi so that clients need not link the PoP; the aliases
// keep their old names in this package.
type (
	Stats        = popapi.Stats
	ServiceStats = popapi.ServiceStats
	Figures      = popapi.Figures
)

// Stats returns a snapshot of the PoP's figures.
func (p *PoP) Stats() popapi.Stats {
	rt := p.routes.Load()
	s := popapi.Stats{
		PoP:           p.name,
		ConfigVersion: rt.version,
		UptimeSeconds: p.now().Sub(p.started).Round(time.Millisecond).Seconds(),
		Draining:      p.draining.Load(),
		Services:      make(map[string]popapi.ServiceStats, len(rt.list)),
	}
	total := p.unrouted.snapshot()
	var latencies, originLatency latency.Histogram
	for _, svc := range rt.list {
		latencies.Add(&svc.stats.latency)
		originLatency.Add(&svc.stats.originLatency)
		f := svc.stats.snapshot()
		ps := svc.pool.Stats()
		s.Services[svc.name] = popapi.ServiceStats{
			Figures:         f,
			OriginPolicy:    ps.Policy,
			OriginNoHealthy: ps.NoHealthy,
			OriginServers:   ps.Servers,
		}
		total.Add(f)
	}
	total.Derive()
	total.Latency = percentiles(&latencies)
	total.OriginLatency = percentiles(&originLatency)
	s.Figures = total
	st := p.store.Stats()
	s.Cache = popapi.CacheStats{
		Items: st.Items, Bytes: st.Bytes, MaxBytes: st.MaxBytes,
		Admissions: st.Admissions, Rejections: st.Rejections, Drops: st.Drops, Evictions: st.Evictions,
		Fills:         p.fills.inFlight(),
		SendfileBytes: p.sendfileBytes.Load(),
		HeapFallbacks: p.blobFailures.Load(),
	}
	s.Cache.Blobs, s.Cache.BlobBytes = blob.Open()
	p.opsStats(&s) // stats.go: build, restart-only settings a reload changed
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
