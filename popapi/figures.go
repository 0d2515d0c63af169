package popapi

// Figures are a PoP's counters (in total, or of one service) with the
// ratios derived from them, as /stats reports them. Package stats adds
// them up over the PoPs of a CDN.
type Figures struct {
	// Latency and OriginLatency are estimated from the PoP's histograms.
	// Sums leave them as they were: percentiles do not add up.
	Latency       Percentiles `json:"latency_ms"`
	OriginLatency Percentiles `json:"origin_latency_ms"`

	Requests       uint64  `json:"requests"`
	Hits           uint64  `json:"hits"`
	Collapsed      uint64  `json:"collapsed"`
	Revalidated    uint64  `json:"revalidated"`
	StaleOnError   uint64  `json:"stale_on_error"`
	Misses         uint64  `json:"misses"`
	Passes         uint64  `json:"passes"`
	Errors         uint64  `json:"errors"`
	HitRatio       float64 `json:"hit_ratio"`
	ByteHitRatio   float64 `json:"byte_hit_ratio"`
	OriginOffload  float64 `json:"origin_offload"`
	OriginFetches  uint64  `json:"origin_fetches"`
	BytesServed    uint64  `json:"bytes_served"`
	BytesFromCache uint64  `json:"bytes_from_cache"`
	OriginBytes    uint64  `json:"origin_bytes"`

	// MemoryHits and DiskHits split Hits, on a PoP with a disk tier
	// (pops[].disk), by the tier that answered: in the proportion of the
	// cache lookups each tier answered (the PoP counts lookups per tier;
	// each response's Cache-Status says which tier answered it).
	// MemoryHitRatio and DiskHitRatio are their shares of the requests, so
	// that they add up to hits / requests. All are 0, and left out of the
	// JSON, on a PoP without a disk tier and in the figures of one service
	// (the tiers are the PoP's).
	MemoryHits     uint64  `json:"memory_hits,omitempty"`
	DiskHits       uint64  `json:"disk_hits,omitempty"`
	MemoryHitRatio float64 `json:"memory_hit_ratio,omitempty"`
	DiskHitRatio   float64 `json:"disk_hit_ratio,omitempty"`
}

// Percentiles are latency percentiles in milliseconds, estimated from a
// histogram's buckets; 0 when nothing was counted.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Add sums the counters of o into f. The ratios are stale until Derive.
func (f *Figures) Add(o Figures) {
	f.Requests += o.Requests
	f.Hits += o.Hits
	f.Collapsed += o.Collapsed
	f.Revalidated += o.Revalidated
	f.StaleOnError += o.StaleOnError
	f.Misses += o.Misses
	f.Passes += o.Passes
	f.Errors += o.Errors
	f.OriginFetches += o.OriginFetches
	f.BytesServed += o.BytesServed
	f.BytesFromCache += o.BytesFromCache
	f.OriginBytes += o.OriginBytes
	f.MemoryHits += o.MemoryHits
	f.DiskHits += o.DiskHits
}

// Derive computes the ratios from the sums: hit_ratio = (hits + collapsed)
// / requests; byte_hit_ratio = bytes from storage / bytes served;
// origin_offload = 1 - origin bytes / bytes served; memory_hit_ratio and
// disk_hit_ratio = memory_hits and disk_hits / requests. A ratio with nothing to divide by is 0.
func (f *Figures) Derive() {
	f.HitRatio, f.ByteHitRatio, f.OriginOffload = 0, 0, 0
	f.MemoryHitRatio, f.DiskHitRatio = 0, 0
	if f.Requests > 0 {
		f.HitRatio = float64(f.Hits+f.Collapsed) / float64(f.Requests)
		f.MemoryHitRatio = float64(f.MemoryHits) / float64(f.Requests)
		f.DiskHitRatio = float64(f.DiskHits) / float64(f.Requests)
	}
	if f.BytesServed > 0 {
		f.ByteHitRatio = float64(f.BytesFromCache) / float64(f.BytesServed)
		f.OriginOffload = 1 - float64(f.OriginBytes)/float64(f.BytesServed)
	}
}
