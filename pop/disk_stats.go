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
		DiskServed: dt.servedHits.Load(), DiskServedBytes: dt.servedBytes.Load(),
		MemoryItems: t.Memory.Items, MemoryBytes: t.Memory.Bytes, MemoryMaxBytes: t.Memory.MaxBytes,
	}
	// Hits answered from a disk copy are counted where they are served;
	// every other hit came from memory.
	s.DiskHits = min(dt.servedHits.Load(), s.Hits)
	s.MemoryHits = s.Hits - s.DiskHits
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
