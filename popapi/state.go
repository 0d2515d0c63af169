package popapi

import "time"

// State is what a PoP publishes about itself about once a second on the
// control plane (subject StateSubject + "." + PoP): whether it takes
// traffic, how loaded it is against its configured capacity, and which
// configuration and purges it has applied. DNS servers route on it where
// their own probes cannot reach the PoP; `outpost config status` and
// `outpost stats` read it.
type State struct {
	PoP  string    `json:"pop"`
	Time time.Time `json:"time"` // when the PoP made this report
	// Healthy is false while the PoP is draining, shutting down or still
	// catching up on purges it missed; DNS stops sending users to it.
	Healthy  bool `json:"healthy"`
	Draining bool `json:"draining,omitempty"`
	// RequestsPerSec and BytesPerSec are measured over the last interval;
	// CapacityRequests and CapacityBytes are the PoP's configured capacity
	// (0: not configured). Load is the larger of the two shares (0 when no
	// capacity is configured): 1.0 means at capacity.
	RequestsPerSec   float64 `json:"requests_per_sec"`
	BytesPerSec      float64 `json:"bytes_per_sec"`
	CapacityRequests float64 `json:"capacity_requests_per_sec,omitempty"`
	CapacityBytes    float64 `json:"capacity_bytes_per_sec,omitempty"`
	Load             float64 `json:"load"`
	HitRatio         float64 `json:"hit_ratio"`
	// ConfigRevision is the control plane's revision of the CDN file the
	// PoP runs; PendingRestart lists settings of a newer revision that
	// wait for a restart.
	ConfigRevision uint64   `json:"config_revision"`
	ConfigVersion  string   `json:"config_version"`
	PendingRestart []string `json:"pending_restart,omitempty"`
	// PurgeApplied is the stream sequence of the last purge applied;
	// PurgeLag is how many purges in the stream it has not applied yet.
	PurgeApplied uint64 `json:"purge_applied"`
	PurgeLag     uint64 `json:"purge_lag"`
}

// StateSubject is the control-plane subject prefix of PoP states; a PoP
// named p publishes on StateSubject + "." + p.
const StateSubject = "outpost.state"
