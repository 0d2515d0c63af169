package pop

import (
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/buildinfo"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/latency"
	"github.com/outpost-cdn/outpost/popapi"
)

// result is what became of one request on a serving listener. Every request
// is exactly one of these (see the README's "figures").
type result int

const (
	resultHit          result = iota // served from storage without waiting on origin
	resultCollapsed                  // waited on another request's fill
	resultRevalidated                // origin answered 304, body from storage
	resultStaleOnError               // origin failed, stored body served
	resultMiss                       // cache-eligible, body from origin
	resultPass                       // not eligible for the cache
	resultError                      // the PoP could not answer
	numResults
)

// resultNames are the names results carry in /stats and /metrics.
var resultNames = [numResults]string{
	resultHit:          "hit",
	resultCollapsed:    "collapsed",
	resultRevalidated:  "revalidated",
	resultStaleOnError: "stale_on_error",
	resultMiss:         "miss",
	resultPass:         "pass",
	resultError:        "error",
}

// fromStorage reports whether the body of a request with this result came
// from storage, for the byte hit ratio.
func (r result) fromStorage() bool {
	switch r {
	case resultHit, resultCollapsed, resultRevalidated, resultStaleOnError:
		return true
	}
	return false
}

// counters are the figures of one service (or of requests that matched no
// service). They are plain atomics, read by /stats and the metrics
// collector; nothing else is kept per request.
type counters struct {
	results [numResults]atomic.Uint64
	// requests counts by method, status class and result, for /metrics.
	requests       [len(methods)][len(statusClasses)][numResults]atomic.Uint64
	bytesServed    atomic.Uint64     // body bytes sent to clients
	bytesFromCache atomic.Uint64     // of those, bytes that came from storage
	originBytes    atomic.Uint64     // body bytes read from origins
	originFetches  atomic.Uint64     // requests sent to origins
	latency        latency.Histogram // time from request to the last body byte written
	originLatency  latency.Histogram // time from sending to an origin to its response header
}

// record counts one finished request of r, answered with status (0 when
// the client left before an answer), and the body bytes it was sent.
func (c *counters) record(r *http.Request, status int, res result, bodyBytes int64) {
	c.recordMethod(r.Method, status, res, bodyBytes)
}

// recordMethod is record for a request known by its method only.
func (c *counters) recordMethod(method string, status int, res result, bodyBytes int64) {
	c.results[res].Add(1)
	c.requests[methodIndex(method)][statusClass(status)][res].Add(1)
	if bodyBytes > 0 {
		c.bytesServed.Add(uint64(bodyBytes))
		if res.fromStorage() {
			c.bytesFromCache.Add(uint64(bodyBytes))
		}
	}
}

// methods are the method label values; anything else counts as "other".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}

func methodIndex(m string) int {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return i
		}
	}
	return len(methods) - 1
}

// statusClasses are the status_class label values: "none" when the client
// left before an answer.
var statusClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// snapshot reads the counters, in the shape /stats reports them.
func (c *counters) snapshot() popapi.Figures {
	var f popapi.Figures
	f.Latency = percentiles(&c.latency)
	f.OriginLatency = percentiles(&c.originLatency)
	f.Hits = c.results[resultHit].Load()
	f.Collapsed = c.results[resultCollapsed].Load()
	f.Revalidated = c.results[resultRevalidated].Load()
	f.StaleOnError = c.results[resultStaleOnError].Load()
	f.Misses = c.results[resultMiss].Load()
	f.Passes = c.results[resultPass].Load()
	f.Errors = c.results[resultError].Load()
	f.Requests = f.Hits + f.Collapsed + f.Revalidated + f.StaleOnError + f.Misses + f.Passes + f.Errors
	f.OriginFetches = c.originFetches.Load()
	f.BytesServed = c.bytesServed.Load()
	f.BytesFromCache = c.bytesFromCache.Load()
	f.OriginBytes = c.originBytes.Load()
	f.Derive()
	return f
}

// percentiles are a histogram's percentiles as /stats reports them.
func percentiles(h *latency.Histogram) popapi.Percentiles {
	p := h.Percentiles()
	return popapi.Percentiles{P50: p.P50, P90: p.P90, P99: p.P99}
}

// ops is what the PoP keeps for operators beyond its figures: which
// configuration runs, what a reload left for a restart, and the
// registration of the metrics that say so (opsCollector).
type ops struct {
	metricsOnce sync.Once
	mu          sync.Mutex
	// started is the version the PoP started with: the restart-only
	// settings still have its values. Set by the first Reload.
	started string
	// pending are the restart-only settings a reload changed.
	pending []string
	// reloads counts Reload's outcomes: applied, refused.
	reloads [2]atomic.Uint64
}

// restartOnly are the settings of a PoP that take effect only when it
// starts, by their keys in the file, with how to read each from a PoP's
// configuration. The rest of the file (services, origins, the purge token,
// certificate files' contents) a reload applies; location, address,
// weight and capacity are geo DNS's and the control plane's.
var restartOnly = []struct {
	key string
	get func(*config.POP) any
}{
	{"listen", func(c *config.POP) any { return c.Listen }},
	{"admin", func(c *config.POP) any { return c.Admin }},
	{"cache_size", func(c *config.POP) any { return c.CacheSize }},
	{"drain", func(c *config.POP) any { return c.Drain }},
	{"timeouts", func(c *config.POP) any { return c.Timeouts }},
	{"limits", func(c *config.POP) any { return c.Limits }},
	{"tls", func(c *config.POP) any { return c.TLS }},
	{"access_log", func(c *config.POP) any { return c.AccessLog }},
	{"disk", func(c *config.POP) any { return c.Disk }},
}

// pendingSettings are the restart-only settings whose values differ
// between the running PoP's configuration and next.
func pendingSettings(running, next *config.POP) []string {
	var keys []string
	for _, s := range restartOnly {
		if !reflect.DeepEqual(s.get(running), s.get(next)) {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// configVersion is the version of cfg a PoP reports: over the file and
// the files it names (config.ContentVersion); the file's alone, with a
// warning, when a named file cannot be read now.
func configVersion(cfg *config.Config, log *slog.Logger) string {
	v, err := cfg.ContentVersion()
	if err != nil {
		log.Warn("config version: a named file does not read; reporting the file's own version", "err", err)
		return cfg.Version
	}
	return v
}

// opsStats adds the build, what waits for a restart and the disk tier's
// figures (disk_stats.go) to s.
func (p *PoP) opsStats(s *popapi.Stats) {
	p.diskStats(s)
	b := buildinfo.Read()
	s.Build = &b
	p.ops.mu.Lock()
	defer p.ops.mu.Unlock()
	if len(p.ops.pending) > 0 {
		s.Pending = &popapi.ConfigPending{RunningVersion: p.ops.started, Settings: slices.Clone(p.ops.pending)}
	}
}

// registerOpsMetrics registers opsCollector, once: AdminHandler calls it,
// so the metrics are there wherever /metrics is served.
func (p *PoP) registerOpsMetrics() {
	p.ops.metricsOnce.Do(func() {
		if err := p.registry.Register(opsCollector{p}); err != nil {
			p.log.Warn("metrics: the build, config and tail metrics are not registered", "err", err)
		}
	})
}

// opsCollector exports the operating metrics: the build, the config
// versions, reloads, the access log's file and queue, the live tail.
type opsCollector struct{ p *PoP }

var (
	descBuildInfo = prometheus.NewDesc("outpost_build_info",
		"The running binary: 1, labelled with its version (dev for a build from a clone), the commit it was built from (vcs.revision; \"\" when not recorded), whether the tree was modified, and the Go version.",
		[]string{"version", "revision", "modified", "go_version"}, nil)
	descConfigInfo = prometheus.NewDesc("outpost_pop_config_info",
		"1, labelled with the version of the configuration applied (the file and the files it names) and the version whose restart-only settings run (running_version: the one the PoP started with).",
		[]string{"version", "running_version"}, nil)
	descConfigPending = prometheus.NewDesc("outpost_pop_config_pending_restart",
		"1 for each restart-only setting (listen, admin, cache_size, drain, timeouts, limits, tls, access_log, disk) a reload changed: its new value waits for a restart.",
		[]string{"setting"}, nil)
	descConfigReloads = prometheus.NewDesc("outpost_pop_config_reloads_total",
		"Reloads by result: applied, or refused (the running configuration stays).", []string{"result"}, nil)
	descAccessQueued = prometheus.NewDesc("outpost_pop_access_log_queued",
		"Access log lines waiting for the writer (at most access_log.buffer; past it lines are dropped).", nil, nil)
	descAccessBuffer = prometheus.NewDesc("outpost_pop_access_log_buffer",
		"The access log's queue capacity in lines (access_log.buffer).", nil, nil)
	descAccessReopens = prometheus.NewDesc("outpost_pop_access_log_reopens_total",
		"Reopens of the access log's file (SIGUSR1) by result: ok, or failed (the old file stays in use).", []string{"result"}, nil)
	descTailSubscribers = prometheus.NewDesc("outpost_pop_tail_subscribers",
		"Live tails (GET /tail) open now.", nil, nil)
	descTailMax = prometheus.NewDesc("outpost_pop_tail_max_subscribers",
		"The most live tails that may be open at once; more are refused.", nil, nil)
	descTailLines = prometheus.NewDesc("outpost_pop_tail_lines_total",
		"Lines queued to live tails.", nil, nil)
	descTailDropped = prometheus.NewDesc("outpost_pop_tail_dropped_lines_total",
		"Lines dropped because a live tail's client read more slowly than requests came (each tail buffers 1024 lines).", nil, nil)
	descTailRefused = prometheus.NewDesc("outpost_pop_tail_refused_total",
		"Live tails refused: no or a wrong token, or too many open.", nil, nil)
)

// Describe sends every metric description.
func (opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuildInfo, descConfigInfo, descConfigPending, descConfigReloads,
		descAccessQueued, descAccessBuffer, descAccessReopens,
		descTailSubscribers, descTailMax, descTailLines, descTailDropped, descTailRefused} {
		ch <- d
	}
}

// Collect reads the figures.
func (c opsCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	b := buildinfo.Read()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1,
		b.Version, b.Revision, strconv.FormatBool(b.Modified), b.GoVersion)
	version := p.routes.Load().version
	p.ops.mu.Lock()
	running, pending := p.ops.started, slices.Clone(p.ops.pending)
	p.ops.mu.Unlock()
	if running == "" || len(pending) == 0 {
		running = version
	}
	ch <- prometheus.MustNewConstMetric(descConfigInfo, prometheus.GaugeValue, 1, version, running)
	for _, s := range pending {
		ch <- prometheus.MustNewConstMetric(descConfigPending, prometheus.GaugeValue, 1, s)
	}
	ch <- prometheus.MustNewConstMetric(descConfigReloads, prometheus.CounterValue, float64(p.ops.reloads[0].Load()), "applied")
	ch <- prometheus.MustNewConstMetric(descConfigReloads, prometheus.CounterValue, float64(p.ops.reloads[1].Load()), "refused")
	l := p.access
	if l == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descAccessQueued, prometheus.GaugeValue, float64(len(l.records)))
	ch <- prometheus.MustNewConstMetric(descAccessBuffer, prometheus.GaugeValue, float64(cap(l.records)))
	ch <- prometheus.MustNewConstMetric(descAccessReopens, prometheus.CounterValue, float64(l.reopens.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descAccessReopens, prometheus.CounterValue, float64(l.failed.Load()), "failed")
	t := l.tail
	ch <- prometheus.MustNewConstMetric(descTailSubscribers, prometheus.GaugeValue, float64(t.n.Load()))
	ch <- prometheus.MustNewConstMetric(descTailMax, prometheus.GaugeValue, maxTailSubscribers)
	ch <- prometheus.MustNewConstMetric(descTailLines, prometheus.CounterValue, float64(t.lines.Load()))
	ch <- prometheus.MustNewConstMetric(descTailDropped, prometheus.CounterValue, float64(t.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descTailRefused, prometheus.CounterValue, float64(t.refused.Load()))
}
