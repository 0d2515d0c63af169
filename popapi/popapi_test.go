package popapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/origin"
)

// figures is a Figures with every field set.
var figures = Figures{Latency: Percentiles{P50: 1.5, P90: 2.25, P99: 9}, OriginLatency: Percentiles{P50: 10, P90: 20, P99: 30},
	Requests: 10, Hits: 4, Collapsed: 1, Revalidated: 1, StaleOnError: 1, Misses: 2, Passes: 1, Errors: 0,
	HitRatio: 0.5, ByteHitRatio: 0.25, OriginOffload: 0.75, OriginFetches: 3, BytesServed: 4000, BytesFromCache: 1000, OriginBytes: 1000}

// TestWireFormat pins the JSON of every type to the bytes the PoP sent
// before these types left package pop: clients of other versions read it.
func TestWireFormat(t *testing.T) {
	load := 0.5
	stats := Stats{PoP: "prg", ConfigVersion: "abc", UptimeSeconds: 1.5, Draining: true, Figures: figures,
		Cache: CacheStats{Items: 1, Bytes: 2, MaxBytes: 3, Admissions: 4, Rejections: 5, Drops: 6, Evictions: 7, Fills: 8, Blobs: 9, BlobBytes: 10, SendfileBytes: 11, HeapFallbacks: 12},
		Services: map[string]ServiceStats{"demo": {Figures: figures, OriginPolicy: "round_robin", OriginNoHealthy: true,
			OriginServers: []origin.ServerStats{{URL: "http://o", Name: "o", Weight: 1, State: "healthy", Requests: 2, Failures: 1, InFlight: 1,
				Responses: 2, ResponseSeconds: 0.5, ResponseBuckets: map[float64]uint64{0.001: 1}, LatencyEWMAMillis: 3, Load: &load, LoadErrors: 1,
				LastError: "x", LastErrorTime: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}}}}}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"Stats", stats, wantStats},
		{"Stats of a PoP with a disk tier", Stats{PoP: "prg", Services: map[string]ServiceStats{},
			Figures: Figures{Requests: 4, Hits: 3, MemoryHits: 2, DiskHits: 1, HitRatio: 0.75, MemoryHitRatio: 0.5, DiskHitRatio: 0.25},
			Tiers:   &TierStats{MemoryHits: 2, DiskHits: 1, Misses: 1, Promoted: 1, MemoryItems: 1, MemoryBytes: 2, MemoryMaxBytes: 3},
			Disks: []DiskStats{{Path: "/d", Healthy: true, Items: 1, Bytes: 4096, MaxBytes: 5, ConfiguredBytes: 6, Writes: 1, BytesWritten: 7,
				Admissions: 1, Evictions: 2, Corrupt: 3, Errors: 4, QueuedWrites: 5, Load: LoadStats{Scanned: 2, Loaded: 1, Dropped: 1, Done: true, Seconds: 0.5}}}},
			wantDiskStats},
		{"PurgeRequest by URL", PurgeRequest{ID: "i", URL: "http://a/"}, `{"id":"i","url":"http://a/"}`},
		{"PurgeRequest by prefix, soft", PurgeRequest{ID: "i", Prefix: "http://a/", Soft: true}, `{"id":"i","prefix":"http://a/","soft":true}`},
		{"PurgeRequest by tag, no ID", PurgeRequest{Tag: "t"}, `{"id":"","tag":"t"}`},
		{"PurgeResult", PurgeResult{ID: "i", PoP: "prg", Kind: "tag", Soft: true, Purged: 3, Duplicate: true},
			`{"id":"i","pop":"prg","kind":"tag","soft":true,"purged":3,"duplicate":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// wantStats is what package pop sent for the Stats above.
const wantStats = `{"pop":"prg","config_version":"abc","uptime_seconds":1.5,"draining":true,"latency_ms":{"p50":1.5,"p90":2.25,"p99":9},"origin_latency_ms":{"p50":10,"p90":20,"p99":30},"requests":10,"hits":4,"collapsed":1,"revalidated":1,"stale_on_error":1,"misses":2,"passes":1,"errors":0,"hit_ratio":0.5,"byte_hit_ratio":0.25,"origin_offload":0.75,"origin_fetches":3,"bytes_served":4000,"bytes_from_cache":1000,"origin_bytes":1000,"cache":{"items":1,"bytes":2,"max_bytes":3,"admissions":4,"rejections":5,"drops":6,"evictions":7,"fills_in_flight":8,"blobs":9,"blob_bytes":10,"sendfile_bytes":11,"blob_heap_fallbacks":12},"services":{"demo":{"latency_ms":{"p50":1.5,"p90":2.25,"p99":9},"origin_latency_ms":{"p50":10,"p90":20,"p99":30},"requests":10,"hits":4,"collapsed":1,"revalidated":1,"stale_on_error":1,"misses":2,"passes":1,"errors":0,"hit_ratio":0.5,"byte_hit_ratio":0.25,"origin_offload":0.75,"origin_fetches":3,"bytes_served":4000,"bytes_from_cache":1000,"origin_bytes":1000,"origin_policy":"round_robin","origin_no_healthy_server":true,"origin_servers":[{"url":"http://o","name":"o","weight":1,"state":"healthy","requests":2,"failures":1,"in_flight":1,"responses":2,"response_seconds_total":0.5,"latency_ewma_ms":3,"load":0.5,"load_errors":1,"last_error":"x","last_error_time":"2026-12-06T00:00:00Z"}]}}}`

// wantDiskStats is the JSON of a PoP with a disk tier: the tier fields
// appear only there (wantStats has none of them).
const wantDiskStats = `{"pop":"prg","config_version":"","uptime_seconds":0,"draining":false,"latency_ms":{"p50":0,"p90":0,"p99":0},"origin_latency_ms":{"p50":0,"p90":0,"p99":0},"requests":4,"hits":3,"collapsed":0,"revalidated":0,"stale_on_error":0,"misses":0,"passes":0,"errors":0,"hit_ratio":0.75,"byte_hit_ratio":0,"origin_offload":0,"origin_fetches":0,"bytes_served":0,"bytes_from_cache":0,"origin_bytes":0,"memory_hits":2,"disk_hits":1,"memory_hit_ratio":0.5,"disk_hit_ratio":0.25,"cache":{"items":0,"bytes":0,"max_bytes":0,"admissions":0,"rejections":0,"drops":0,"evictions":0,"fills_in_flight":0,"blobs":0,"blob_bytes":0,"sendfile_bytes":0,"blob_heap_fallbacks":0},"tiers":{"memory_hits":2,"disk_hits":1,"misses":1,"disk_served":0,"disk_served_bytes":0,"promoted":1,"promote_drops":0,"memory_items":1,"memory_bytes":2,"memory_max_bytes":3},"disks":[{"path":"/d","healthy":true,"items":1,"bytes":4096,"max_bytes":5,"configured_bytes":6,"writes":1,"bytes_written":7,"admissions":1,"rejections":0,"write_drops":0,"evictions":2,"corrupt":3,"errors":4,"queued_writes":5,"load":{"scanned":2,"loaded":1,"dropped":1,"done":true,"seconds":0.5}}],"services":{}}`

// TestFiguresAddDerive checks that sums add the counters and that the
// ratios come from the sums, not from the ratios added.
func TestFiguresAddDerive(t *testing.T) {
	tests := []struct {
		name  string
		parts []Figures
		want  Figures
	}{
		{"nothing counted: every ratio is 0", nil, Figures{}},
		{"a quiet PoP weighs by its requests",
			[]Figures{
				{Requests: 1, Hits: 1, HitRatio: 1, BytesServed: 100, BytesFromCache: 100, ByteHitRatio: 1, OriginOffload: 1},
				{Requests: 3, Misses: 2, Collapsed: 1, HitRatio: 1.0 / 3, BytesServed: 300, OriginBytes: 200, OriginFetches: 2},
			},
			Figures{Requests: 4, Hits: 1, Collapsed: 1, Misses: 2, HitRatio: 0.5, OriginFetches: 2,
				BytesServed: 400, BytesFromCache: 100, OriginBytes: 200, ByteHitRatio: 0.25, OriginOffload: 0.5}},
		{"tier hits add up; their ratios are of the requests",
			[]Figures{
				{Requests: 4, Hits: 2, Collapsed: 1, Misses: 1, MemoryHits: 1, DiskHits: 1},
				{Requests: 4, Hits: 2, Misses: 2, DiskHits: 2},
			},
			Figures{Requests: 8, Hits: 4, Collapsed: 1, Misses: 3, HitRatio: 5.0 / 8, MemoryHits: 1, DiskHits: 3,
				MemoryHitRatio: 0.125, DiskHitRatio: 0.375}},
		{"every counter adds up",
			[]Figures{figures, figures},
			Figures{Latency: Percentiles{}, Requests: 20, Hits: 8, Collapsed: 2, Revalidated: 2, StaleOnError: 2, Misses: 4, Passes: 2,
				HitRatio: 0.5, ByteHitRatio: 0.25, OriginOffload: 0.75, OriginFetches: 6, BytesServed: 8000, BytesFromCache: 2000, OriginBytes: 2000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sum Figures
			for _, p := range tt.parts {
				sum.Add(p)
			}
			sum.Derive()
			if sum != tt.want {
				t.Errorf("got  %+v\nwant %+v", sum, tt.want)
			}
		})
	}
}
