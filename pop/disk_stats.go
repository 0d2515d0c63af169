package pop

import "github.com/outpost-cdn/outpost/popapi"

// diskStats adds the disk tier's figures to s, on a PoP with pops[].disk:
// the lookups by tier, the total's hits split between the tiers in
// proportion (popapi.Figures.MemoryHits) and each cache directory's fill level,
// health, writes and load progress. Without a disk tier s is left as it
// is, so its JSON is what it was before the tier existed.
func (p *PoP) diskStats(s *popapi.Stats) {
	dt := p.disk
	if dt == nil {
		return
	}
	t := dt.store.Tiers()
	s.Tiers = &popapi.TierStats{
		MemoryHits: t.MemoryHits, DiskHits: t.DiskHits, Misses: t.Misses,
		Promoted: t.Promoted, PromoteDrops: t.PromoteDrops,
		MemoryItems: t.Memory.Items, MemoryBytes: t.Memory.Bytes, MemoryMaxBytes: t.Memory.MaxBytes,
	}
	s.MemoryHits, s.DiskHits = splitHits(s.Hits, t.MemoryHits, t.DiskHits)
	s.Derive()
	s.Disks = make([]popapi.DiskStats, len(dt.disks))
	for i, d := range dt.disks {
		ds := d.DiskStats()
		s.Disks[i] = popapi.DiskStats{
			Path:            dt.paths[i],
			Healthy:         ds.Healthy,
			Items:           ds.Items,
			Bytes:           ds.Bytes,
			MaxBytes:        ds.MaxBytes,
			ConfiguredBytes: ds.ConfiguredBytes,
			Writes:          ds.Writes,
			BytesWritten:    ds.BytesWritten,
			Admissions:      ds.Admissions,
			Rejections:      ds.Rejections,
			WriteDrops:      ds.Drops,
			Evictions:       ds.Evictions,
			Corrupt:         ds.Corrupt,
			Errors:          ds.WriteErrors + ds.ReadErrors + ds.IOErrors,
			QueuedWrites:    ds.QueuedWrites,
			Load: popapi.LoadStats{
				Scanned: ds.Load.Scanned, Loaded: ds.Load.Loaded, Dropped: ds.Load.Dropped,
				Done: ds.Load.Done, Seconds: ds.Load.Duration.Seconds(),
			},
		}
	}
}

// splitHits divides hits (requests) between the memory and disk tiers in
// the proportion of the lookups each answered. Lookups are not requests
// (the fast path and a Vary index look up more than once; stale entries
// count as found), but the tier that found an entry is the one whose copy
// served it.
func splitHits(hits, memLookups, diskLookups uint64) (mem, disk uint64) {
	found := memLookups + diskLookups
	if found == 0 {
		return hits, 0
	}
	disk = min(uint64(float64(hits)*float64(diskLookups)/float64(found)+0.5), hits)
	return hits - disk, disk
}
