package popapi

import "github.com/outpost-cdn/outpost/origin"

// Stats is the document GET /stats serves: the PoP's figures in total and
// per service, and its cache's counters.
type Stats struct {
	PoP           string  `json:"pop"`
	ConfigVersion string  `json:"config_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Draining      bool    `json:"draining"`
	Figures
	Cache    CacheStats              `json:"cache"`
	Services map[string]ServiceStats `json:"services"`
}

// ServiceStats are one service's figures and those of its origin servers.
type ServiceStats struct {
	Figures
	// OriginPolicy is the service's balancing policy.
	OriginPolicy origin.Policy `json:"origin_policy"`
	// OriginNoHealthy is true while no origin server is in rotation and
	// requests go to the one that failed least recently.
	OriginNoHealthy bool `json:"origin_no_healthy_server"`
	// OriginServers are the per-server figures, in configuration order.
	OriginServers []origin.ServerStats `json:"origin_servers"`
}

// CacheStats are the store's counters as /stats reports them.
type CacheStats struct {
	Items      int64  `json:"items"`
	Bytes      int64  `json:"bytes"`
	MaxBytes   int64  `json:"max_bytes"`
	Admissions uint64 `json:"admissions"`
	Rejections uint64 `json:"rejections"`
	Drops      uint64 `json:"drops"`
	Evictions  uint64 `json:"evictions"`
	Fills      int    `json:"fills_in_flight"`
	// Blobs and BlobBytes count the bodies kept outside the heap in
	// memory files (process-wide), including evicted ones whose memory the
	// next garbage collection returns; SendfileBytes are the body bytes
	// sent from them with sendfile; HeapFallbacks counts large bodies kept
	// on the heap because no blob could be made (the open-file limit).
	Blobs         int64  `json:"blobs"`
	BlobBytes     int64  `json:"blob_bytes"`
	SendfileBytes uint64 `json:"sendfile_bytes"`
	HeapFallbacks uint64 `json:"blob_heap_fallbacks"`
}
