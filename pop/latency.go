package pop

import (
	"math"
	"sort"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms: Prometheus classic buckets from 0.5 ms to 10 s.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram counts durations into latencyBuckets with atomics only, so
// the request path takes no lock; the metrics collector and /stats read it.
type histogram struct {
	counts [15]atomic.Uint64 // one per bucket, the last for +Inf
	sumNs  atomic.Uint64
}

// observe counts one duration.
func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, s)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

// snapshot returns the cumulative bucket counts (as Prometheus wants
// them), the total count and the sum in seconds.
func (h *histogram) snapshot() (cumulative map[float64]uint64, count uint64, sum float64) {
	cumulative = make(map[float64]uint64, len(latencyBuckets))
	for i, le := range latencyBuckets {
		count += h.counts[i].Load()
		cumulative[le] = count
	}
	count += h.counts[len(latencyBuckets)].Load()
	return cumulative, count, float64(h.sumNs.Load()) / 1e9
}

// add sums o's counts into h (for totals over services).
func (h *histogram) add(o *histogram) {
	for i := range h.counts {
		h.counts[i].Add(o.counts[i].Load())
	}
	h.sumNs.Add(o.sumNs.Load())
}

// Percentiles are latency percentiles in milliseconds, estimated from a
// histogram's buckets by linear interpolation inside the bucket (as
// Prometheus's histogram_quantile does); 0 when nothing was counted.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// percentiles estimates p50, p90 and p99.
func (h *histogram) percentiles() Percentiles {
	var counts [15]uint64
	var total uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	q := func(phi float64) float64 {
		if total == 0 {
			return 0
		}
		rank := phi * float64(total)
		var seen float64
		for i, c := range counts {
			if seen+float64(c) >= rank && c > 0 {
				lo := 0.0
				if i > 0 {
					lo = latencyBuckets[i-1]
				}
				if i == len(latencyBuckets) {
					return 1000 * latencyBuckets[i-1] // beyond the last bound
				}
				hi := latencyBuckets[i]
				return 1000 * (lo + (hi-lo)*(rank-seen)/float64(c))
			}
			seen += float64(c)
		}
		return 1000 * latencyBuckets[len(latencyBuckets)-1]
	}
	round := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	return Percentiles{P50: round(q(0.5)), P90: round(q(0.9)), P99: round(q(0.99))}
}
