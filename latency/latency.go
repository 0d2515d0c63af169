// Package latency counts durations into a histogram of fixed buckets with
// atomics only, so the request path takes no lock, and reads it back as
// Prometheus wants it (cumulative counts per upper bound, count, sum) and
// as percentiles.
//
// The buckets are Prometheus' classic bounds from 0.5 ms to 10 s, one for
// every histogram Outpost keeps (request latency, origin latency, origin
// server response times), so their figures compare bucket for bucket.
// Percentiles are estimated by linear interpolation inside the bucket that
// holds the rank, as Prometheus's histogram_quantile does.
package latency

import (
	"math"
	"sort"
	"sync/atomic"
	"time"
)

// bounds are the buckets' upper bounds in seconds.
var bounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Bounds returns the buckets' upper bounds in seconds (the last bucket,
// beyond them, is +Inf).
func Bounds() []float64 { return append([]float64(nil), bounds[:]...) }

// Histogram counts durations. Its zero value is ready to use; it must not
// be copied after first use.
type Histogram struct {
	counts [len(bounds) + 1]atomic.Uint64 // one per bucket, the last for +Inf
	sumNs  atomic.Uint64
}

// Observe counts one duration (a negative one as zero).
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[sort.SearchFloat64s(bounds[:], d.Seconds())].Add(1)
	h.sumNs.Add(uint64(d))
}

// Snapshot returns the cumulative count at each bound, the total count and
// the sum in seconds.
func (h *Histogram) Snapshot() (cumulative map[float64]uint64, count uint64, sum float64) {
	cumulative = make(map[float64]uint64, len(bounds))
	for i, le := range bounds {
		count += h.counts[i].Load()
		cumulative[le] = count
	}
	count += h.counts[len(bounds)].Load()
	return cumulative, count, float64(h.sumNs.Load()) / 1e9
}

// Count is the number of durations observed; Sum their total.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum is the total of the durations observed.
func (h *Histogram) Sum() time.Duration { return time.Duration(h.sumNs.Load()) }

// Add sums o's counts into h (for totals over services).
func (h *Histogram) Add(o *Histogram) {
	for i := range h.counts {
		h.counts[i].Add(o.counts[i].Load())
	}
	h.sumNs.Add(o.sumNs.Load())
}

// Percentiles are latency percentiles in milliseconds; 0 when nothing was
// counted, the last bound when the rank lies beyond it.
type Percentiles struct {
	P50, P90, P99 float64
}

// Percentiles estimates p50, p90 and p99, rounded to the microsecond.
func (h *Histogram) Percentiles() Percentiles {
	var counts [len(bounds) + 1]uint64
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
				if i == len(bounds) {
					return 1000 * bounds[i-1] // beyond the last bound
				}
				lo := 0.0
				if i > 0 {
					lo = bounds[i-1]
				}
				hi := bounds[i]
				return 1000 * (lo + (hi-lo)*(rank-seen)/float64(c))
			}
			seen += float64(c)
		}
		return 1000 * bounds[len(bounds)-1]
	}
	round := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	return Percentiles{P50: round(q(0.5)), P90: round(q(0.9)), P99: round(q(0.99))}
}
