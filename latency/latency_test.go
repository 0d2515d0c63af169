package latency

import (
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    Percentiles
	}{
		{"empty", nil, Percentiles{}},
		{"all in one bucket (1-2.5 ms)", repeat(2*time.Millisecond, 100), Percentiles{P50: 1.75, P90: 2.35, P99: 2.485}},
		{"a slow tail", append(repeat(300*time.Microsecond, 90), repeat(2*time.Second, 10)...), Percentiles{P50: 0.278, P90: 0.5, P99: 2350}},
		{"beyond the last bound", repeat(time.Minute, 10), Percentiles{P50: 10000, P90: 10000, P99: 10000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tt.samples {
				h.Observe(d)
			}
			if got := h.Percentiles(); got != tt.want {
				t.Errorf("percentiles = %+v, want %+v", got, tt.want)
			}
			buckets, count, _ := h.Snapshot()
			if count != uint64(len(tt.samples)) || count != h.Count() || buckets[10] > count {
				t.Errorf("snapshot count %d, buckets %v", count, buckets)
			}
		})
	}
}

func TestAddAndBounds(t *testing.T) {
	var a, b Histogram
	a.Observe(time.Millisecond)
	b.Observe(time.Second)
	b.Observe(-time.Second) // counted as zero
	a.Add(&b)
	cum, count, sum := a.Snapshot()
	if count != 3 || sum != 1.001 || cum[0.0005] != 1 || cum[10] != 3 {
		t.Errorf("after Add: %v, %d, %v", cum, count, sum)
	}
	if got := Bounds(); len(got) != len(cum) || got[0] != 0.0005 || got[len(got)-1] != 10 {
		t.Errorf("Bounds() = %v", got)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
