package pop

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop/fill"
)

// budget is the PoP's in-flight budget (limits.inflight_bytes): the bytes
// that fills in flight, relays and buffered request bodies hold, PoP-wide
// (package fill says how fills use it). used and denied read its figures
// under the names the PoP's tests use.
type budget struct {
	*fill.Budget
	used   loadInt64
	denied loadUint64
}

func newBudget(limit int64) *budget {
	b := fill.NewBudget(limit)
	return &budget{Budget: b, used: b.Used, denied: b.Denied}
}

// slots bounds the fills that go on with no client (PoP-wide, or per
// service); used reads how many are taken, as the PoP's tests do.
type slots struct {
	*fill.Slots
	used loadInt64
}

func newSlots(limit int64) *slots {
	s := fill.NewSlots(limit)
	return &slots{Slots: s, used: s.Used}
}

// loadInt64 and loadUint64 read a figure as an atomic's Load would.
type (
	loadInt64  func() int64
	loadUint64 func() uint64
)

func (f loadInt64) Load() int64   { return f() }
func (f loadUint64) Load() uint64 { return f() }

// maxMarks bounds the keys hit-for-miss remembers; past it the oldest
// marks are not found again (an arbitrary tenth is dropped).
const maxMarks = 64 << 10

// uncacheable remembers, for a while, the keys whose last response the PoP
// could not store (Varnish's hit-for-miss), so that later requests for
// them go to the origin in parallel instead of queueing behind one fill
// each; and the keys whose objects are above max_object, so that a range
// of one goes to the origin as a range.
type uncacheable struct {
	mu    sync.Mutex
	marks map[string]mark
	// noSlice remembers, until when, the keys whose objects could not be
	// sliced (slice.go), so their fills ask for no Range.
	noSlice map[string]time.Time
}

// setUnsliced remembers that key's object could not be sliced, until.
func (u *uncacheable) setUnsliced(key string, until time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.noSlice == nil {
		u.noSlice = make(map[string]time.Time)
	}
	if len(u.noSlice) >= maxMarks {
		drop := maxMarks / 10
		for k := range u.noSlice {
			delete(u.noSlice, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	u.noSlice[key] = until
}

// unsliced reports whether key's object could not be sliced lately.
func (u *uncacheable) unsliced(key string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	until, ok := u.noSlice[key]
	if ok && !now.Before(until) {
		delete(u.noSlice, key)
		return false
	}
	return ok
}

// mark is what is remembered of a key.
type mark struct {
	until    time.Time
	tooLarge bool // the object is above max_object
}

// get returns the key's mark while it lasts.
func (u *uncacheable) get(key string, now time.Time) (mark, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m, ok := u.marks[key]
	if ok && !now.Before(m.until) {
		delete(u.marks, key)
		return mark{}, false
	}
	return m, ok
}

// set marks key until m.until.
func (u *uncacheable) set(key string, m mark) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.marks == nil {
		u.marks = make(map[string]mark)
	}
	if len(u.marks) >= maxMarks {
		drop := maxMarks / 10
		for k := range u.marks { // map order is random enough
			delete(u.marks, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	u.marks[key] = m
}

// clear forgets key: its object may be stored again.
func (u *uncacheable) clear(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.marks, key)
}

// len returns how many keys are marked (expired ones included until seen).
func (u *uncacheable) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.marks)
}

var (
	descInflightBytes = prometheus.NewDesc("outpost_pop_inflight_bytes",
		"Bytes held now by fills in flight, relays and buffered request bodies (limits.inflight_bytes bounds them).", nil, nil)
	descInflightLimit = prometheus.NewDesc("outpost_pop_inflight_limit_bytes",
		"limits.inflight_bytes: the budget for bytes held by fills, relays and request bodies.", nil, nil)
	descInflightDenied = prometheus.NewDesc("outpost_pop_inflight_denied_total",
		"Times the in-flight budget had no bytes to give: a fill stopped storing and relayed, or a relay or request body waited or streamed.", nil, nil)
	descDetachedFills = prometheus.NewDesc("outpost_pop_detached_fills",
		"Fills going on with no client left (bounded by limits.detached_fills and each service's origin.detached_fills).", nil, nil)
	descInflightPeak = prometheus.NewDesc("outpost_pop_inflight_peak_bytes",
		"The most bytes fills, relays and request bodies held at once since the PoP started: what to size limits.inflight_bytes by.", nil, nil)
	descDetachedRefused = prometheus.NewDesc("outpost_pop_detached_fills_refused_total",
		"Fills cancelled (or background refreshes skipped) because every client left and no detached-fill slot was free.", nil, nil)
	descHitForMiss = prometheus.NewDesc("outpost_pop_hit_for_miss_keys",
		"Keys remembered as uncacheable or too large (hit-for-miss; cache.hit_for_miss).", nil, nil)
)

// limitsCollector exports the figures of the PoP's limits at scrape time.
type limitsCollector struct{ p *PoP }

// Describe sends the limits' metric descriptions.
func (c limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInflightBytes, descInflightLimit, descInflightPeak, descInflightDenied,
		descDetachedFills, descDetachedRefused, descHitForMiss} {
		ch <- d
	}
	describeSlices(ch)
}

// Collect reads the limits' figures.
func (c limitsCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descInflightBytes, float64(p.inflight.Used()))
	gauge(descInflightLimit, float64(p.inflight.Limit()))
	gauge(descInflightPeak, float64(p.inflight.Peak()))
	ch <- prometheus.MustNewConstMetric(descInflightDenied, prometheus.CounterValue, float64(p.inflight.Denied()))
	gauge(descDetachedFills, float64(p.detached.Used()))
	refused := p.detached.Refused()
	for _, svc := range p.routes.Load().list {
		refused += svc.detached.Refused()
	}
	ch <- prometheus.MustNewConstMetric(descDetachedRefused, prometheus.CounterValue, float64(refused))
	gauge(descHitForMiss, float64(p.marks.len()))
	collectSlices(p, ch)
}

// memoryHeadroom is what MemoryLimit allows beyond the cache and the
// in-flight budget: connections, buffers, the runtime itself.
const memoryHeadroom = 64 << 20

// MemoryLimit is the soft limit on the Go runtime's memory that suits a
// PoP: its cache_size, plus its limits.inflight_bytes, plus 64 MiB. The
// cache's bodies in memory files (package cache/blob) are outside the Go
// heap and lie within cache_size too, so the sum is also the PoP's bound on
// resident memory. `outpost pop` sets it (runtime/debug.SetMemoryLimit)
// unless GOMEMLIMIT is set, so the garbage collector works harder before
// garbage takes the process past it.
func MemoryLimit(pc *config.POP) int64 {
	return pc.CacheSize + pc.Limits.InflightBytes + memoryHeadroom
}
