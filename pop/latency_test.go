package pop

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
			var h histogram
			for _, d := range tt.samples {
				h.observe(d)
			}
			if got := h.percentiles(); got != tt.want {
				t.Errorf("percentiles = %+v, want %+v", got, tt.want)
			}
			buckets, count, _ := h.snapshot()
			if count != uint64(len(tt.samples)) || buckets[10] > count {
				t.Errorf("snapshot count %d, buckets %v", count, buckets)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
