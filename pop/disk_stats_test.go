package pop

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/popapi"
)

// TestDiskStats checks that /stats reports the disk tier: hits by tier
// (the total's memory and disk hit ratios adding up to hits / requests)
// and the cache directory's figures, and that a PoP without a disk tier
// sends none of those fields.
func TestDiskStats(t *testing.T) {
	o := diskOrigin(t)
	dir := t.TempDir()
	first := startDiskPoP(t, o.URL, dir)
	first.get(t, "/a/1") // a miss, written to disk (min_uses 1)
	first.waitOnDisk(t, 1)
	first.stop(t)
	first.Close()

	tp := startDiskPoP(t, o.URL, dir)
	tp.get(t, "/a/1") // from disk
	tp.get(t, "/a/1") // from disk again, then promoted
	waitFor(t, "the promotion", func() bool { return tp.disk.store.Tiers().Promoted == 1 })
	tp.get(t, "/a/1") // from memory
	tp.get(t, "/a/2") // a miss
	waitFor(t, "four requests counted", func() bool { return tp.Stats().Requests == 4 })

	var s popapi.Stats
	resp := mustGet(t, tp.client, tp.admin+"/stats")
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Exact: the first two hits were served from the disk copy, the third
	// from the promoted one.
	if s.Hits != 3 || s.DiskHits != 2 || s.MemoryHits != 1 {
		t.Errorf("hits %d, memory %d, disk %d; want 3, 1, 2", s.Hits, s.MemoryHits, s.DiskHits)
	}
	if s.Tiers != nil && (s.Tiers.DiskServed != 2 || s.Tiers.DiskServedBytes != 2*uint64(len(diskBody("/a/1")))) {
		t.Errorf("disk served %d requests, %d bytes; want 2, %d", s.Tiers.DiskServed, s.Tiers.DiskServedBytes, 2*len(diskBody("/a/1")))
	}
	if sum, want := s.MemoryHitRatio+s.DiskHitRatio, 3.0/4; sum < want-1e-9 || sum > want+1e-9 {
		t.Errorf("memory %v + disk %v hit ratio = %v, want hits / requests = %v", s.MemoryHitRatio, s.DiskHitRatio, sum, want)
	}
	if s.Tiers == nil || s.Tiers.DiskHits < 1 || s.Tiers.MemoryHits < 1 || s.Tiers.Promoted != 1 || s.Tiers.MemoryMaxBytes == 0 {
		t.Errorf("tiers %+v", s.Tiers)
	}
	if len(s.Disks) != 1 {
		t.Fatalf("disks %+v, want one", s.Disks)
	}
	d := s.Disks[0]
	if d.Path != dir || !d.Healthy || d.Items < 1 || d.Bytes == 0 || d.ConfiguredBytes != 64<<20 || d.MaxBytes != 64<<20 || !d.Load.Done || d.Load.Loaded != 1 {
		t.Errorf("disk %+v", d)
	}
	if svc := s.Services["demo"]; svc.MemoryHits != 0 || svc.DiskHits != 0 || svc.DiskHitRatio != 0 {
		t.Errorf("service figures carry the PoP's tiers: %+v", svc.Figures)
	}

	memOnly := startPoP(t, o.URL)
	memOnly.get(t, "/a/1")
	resp = mustGet(t, memOnly.client, memOnly.admin+"/stats")
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, field := range []string{`"tiers"`, `"disks"`, `"memory_hits"`, `"disk_hits"`, `"memory_hit_ratio"`, `"disk_hit_ratio"`} {
		if strings.Contains(string(raw), field) {
			t.Errorf("a PoP without a disk tier sends %s in /stats", field)
		}
	}
}
