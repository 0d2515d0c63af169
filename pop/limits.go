package pop

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
)

// budget bounds the bytes that fills in flight, relays and buffered
// request bodies hold in memory, PoP-wide (limits.inflight_bytes). Holders
// take bytes before they allocate them and give them back when they drop
// them; a fill that cannot take stops storing and relays at its readers'
// pace instead, and a relay waits for bytes to come back.
type budget struct {
	limit  int64
	used   atomic.Int64
	denied atomic.Uint64 // takes refused: fills turned into relays, relays that waited

	waiters atomic.Int32
	mu      sync.Mutex
	freed   chan struct{} // closed and replaced when bytes come back while someone waits
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, freed: make(chan struct{})}
}

// tryTake takes n bytes if the budget has them.
func (b *budget) tryTake(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			b.denied.Add(1)
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// take waits until n bytes can be taken, or ctx is done.
func (b *budget) take(ctx context.Context, n int64) error {
	if b.tryTake(n) {
		return nil
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	for {
		b.mu.Lock()
		freed := b.freed
		b.mu.Unlock()
		// Checked after freed is read: bytes given back from now on close
		// it.
		if b.tryTake(n) {
			return nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// give returns n bytes.
func (b *budget) give(n int64) {
	if n <= 0 {
		return
	}
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}
}

// slots bounds a count of things (detached fills, PoP-wide or per service).
type slots struct {
	limit   int64
	used    atomic.Int64
	refused atomic.Uint64
}

// acquire takes a slot if one is free.
func (s *slots) acquire() bool {
	if s.used.Add(1) > s.limit {
		s.used.Add(-1)
		s.refused.Add(1)
		return false
	}
	return true
}

func (s *slots) release() { s.used.Add(-1) }

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
	descDetachedRefused = prometheus.NewDesc("outpost_pop_detached_fills_refused_total",
		"Fills cancelled (or background refreshes skipped) because every client left and no detached-fill slot was free.", nil, nil)
	descHitForMiss = prometheus.NewDesc("outpost_pop_hit_for_miss_keys",
		"Keys remembered as uncacheable or too large (hit-for-miss; cache.hit_for_miss).", nil, nil)
)

// limitsCollector exports the figures of the PoP's limits at scrape time.
type limitsCollector struct{ p *PoP }

// Describe sends the limits' metric descriptions.
func (c limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInflightBytes, descInflightLimit, descInflightDenied,
		descDetachedFills, descDetachedRefused, descHitForMiss} {
		ch <- d
	}
}

// Collect reads the limits' figures.
func (c limitsCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descInflightBytes, float64(p.inflight.used.Load()))
	gauge(descInflightLimit, float64(p.inflight.limit))
	ch <- prometheus.MustNewConstMetric(descInflightDenied, prometheus.CounterValue, float64(p.inflight.denied.Load()))
	gauge(descDetachedFills, float64(p.detached.used.Load()))
	refused := p.detached.refused.Load()
	for _, svc := range p.routes.Load().list {
		refused += svc.detached.refused.Load()
	}
	ch <- prometheus.MustNewConstMetric(descDetachedRefused, prometheus.CounterValue, float64(refused))
	gauge(descHitForMiss, float64(p.marks.len()))
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
