package pop

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
)

// The slice figures, per service; limitsCollector exports them.
var (
	descSliceFetches = prometheus.NewDesc("outpost_pop_slice_fetches_total",
		"Slices of large objects requested from the origin (cache.slice).", []string{"service"}, nil)
	descSliceHits = prometheus.NewDesc("outpost_pop_slice_hits_total",
		"Slices of large objects served from storage.", []string{"service"}, nil)
	descSliceChanges = prometheus.NewDesc("outpost_pop_slice_validator_changes_total",
		"Sliced objects dropped because a slice came from another representation (ETag, Last-Modified or length changed).", []string{"service"}, nil)
	descSliceErrors = prometheus.NewDesc("outpost_pop_slice_errors_total",
		"Slice responses refused: bad status, Content-Range or length; never stored or served.", []string{"service"}, nil)
	descSliceFallbacks = prometheus.NewDesc("outpost_pop_slice_fallbacks_total",
		"Ranged fills asked again without Range because the object could not be sliced (no validator, Vary, coded, not storable, bad Content-Range).", []string{"service"}, nil)
)

func describeSlices(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSliceFetches, descSliceHits, descSliceChanges, descSliceErrors, descSliceFallbacks} {
		ch <- d
	}
}

func collectSlices(p *PoP, ch chan<- prometheus.Metric) {
	for _, svc := range p.routes.Load().list {
		s := svc.slices
		for _, m := range []struct {
			d *prometheus.Desc
			v uint64
		}{
			{descSliceFetches, s.fetches.Load()}, {descSliceHits, s.hits.Load()}, {descSliceChanges, s.validatorChanges.Load()},
			{descSliceErrors, s.errors.Load()}, {descSliceFallbacks, s.fallbacks.Load()},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), svc.name)
		}
	}
}

// sliceSize is a service's slice size when slicing is on, else 0.
func sliceSize(s config.SlicePolicy) int64 {
	if !s.Enabled {
		return 0
	}
	return s.Size
}
