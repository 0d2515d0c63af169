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
	Cache CacheStats `json:"cache"`
	// Tiers and Disks are the figures of a PoP's disk tier (pops[].disk):
	// the lookups by tier, and each cache directory's. Nil, and left out
	// of the JSON, on a PoP without one (Cache then is the memory tier's;
	// with one, it adds up every tier).
	Tiers    *TierStats              `json:"tiers,omitempty"`
	Disks    []DiskStats             `json:"disks,omitempty"`
	Services map[string]ServiceStats `json:"services"`
}

// TierStats are the lookups of a PoP with a disk tier by the tier that
// answered, its promotions, and the memory tier's own fill level.
type TierStats struct {
	MemoryHits uint64 `json:"memory_hits"` // lookups the memory tier answered
	DiskHits   uint64 `json:"disk_hits"`   // lookups the disk tier answered
	Misses     uint64 `json:"misses"`      // lookups neither answered
	// DiskServed and DiskServedBytes count the requests answered from a
	// disk copy (Cache-Status detail=disk), and their body bytes.
	DiskServed      uint64 `json:"disk_served"`
	DiskServedBytes uint64 `json:"disk_served_bytes"`
	Promoted        uint64 `json:"promoted"`      // disk hits copied into memory
	PromoteDrops    uint64 `json:"promote_drops"` // promotions skipped: the queue was full
	// MemoryItems, MemoryBytes and MemoryMaxBytes are the memory tier's
	// (cache_size).
	MemoryItems    int64 `json:"memory_items"`
	MemoryBytes    int64 `json:"memory_bytes"`
	MemoryMaxBytes int64 `json:"memory_max_bytes"`
}

// DiskStats are one cache directory's figures.
type DiskStats struct {
	Path string `json:"path"`
	// Healthy is false once an I/O error has taken the directory out of
	// service (the PoP serves from memory and the origin).
	Healthy bool  `json:"healthy"`
	Items   int64 `json:"items"`
	Bytes   int64 `json:"bytes"` // its files, in 4 KiB blocks
	// MaxBytes is the effective capacity: ConfiguredBytes (size), or less
	// after the file system ran full.
	MaxBytes        int64     `json:"max_bytes"`
	ConfiguredBytes int64     `json:"configured_bytes"`
	Writes          uint64    `json:"writes"`
	BytesWritten    uint64    `json:"bytes_written"`
	Admissions      uint64    `json:"admissions"`
	Rejections      uint64    `json:"rejections"` // kept off the disk by min_uses
	WriteDrops      uint64    `json:"write_drops"`
	Evictions       uint64    `json:"evictions"`
	Corrupt         uint64    `json:"corrupt"` // damaged files found and removed
	Errors          uint64    `json:"errors"`  // write (full disk included), read and I/O errors
	QueuedWrites    int64     `json:"queued_writes"`
	Load            LoadStats `json:"load"`
}

// LoadStats are how far a cache directory's loader has come indexing the
// files of an earlier run (it never holds serving back).
type LoadStats struct {
	Scanned uint64  `json:"scanned"` // files looked at
	Loaded  uint64  `json:"loaded"`  // files indexed
	Dropped uint64  `json:"dropped"` // corrupt, expired, stray or purged files removed
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds"` // how long it has run, or ran
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
