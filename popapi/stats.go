package popapi

import "github.com/outpost-cdn/outpost/origin"

// Stats is the document GET /stats serves: the PoP's figures in total and
// per service, and its cache's counters.
type Stats struct {
	PoP           string  `json:"pop"`
	ConfigVersion string  `json:"config_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Draining      bool    `json:"draining"`
	// Pending, when set, names the settings of a reloaded file that wait
	// for a restart: ConfigVersion's services, origins and token run, but
	// these still have the values of the version the PoP started with.
	Pending *ConfigPending `json:"config_pending_restart,omitempty"`
	// Build is the binary's own version; nil from PoPs older than it.
	Build *Build `json:"build,omitempty"`
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

// ConfigPending is the part of a reloaded configuration that takes effect
// only on restart.
type ConfigPending struct {
	// RunningVersion is the version whose values those settings still
	// have: the one the PoP started with.
	RunningVersion string `json:"running_version"`
	// Settings are their keys, as in the file (listen, cache_size, ...).
	Settings []string `json:"settings"`
}

// Build says which binary runs: what `outpost version` prints, and the
// outpost_build_info metric's labels.
type Build struct {
	// Version is the release (set with -ldflags), the module version, or
	// "dev" for a build from a clone (Revision then says which commit).
	Version string `json:"version"`
	// Revision is the commit the binary was built from (vcs.revision), ""
	// when the build did not record it; Modified is true when the work
	// tree had uncommitted changes.
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}
