package pop

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/latency"
)

// The disk tier's figures for /metrics, registered only by a PoP with
// pops[].disk (docs/storage.md lists them).
var (
	descTierHits = prometheus.NewDesc("outpost_cache_tier_lookups_total",
		"Cache lookups by the tier that answered: memory, disk, or none (miss).", []string{"tier"}, nil)
	descPromotions = prometheus.NewDesc("outpost_cache_promotions_total",
		"Disk hits copied into the memory tier.", nil, nil)
	descPromotionDrops = prometheus.NewDesc("outpost_cache_promotion_drops_total",
		"Disk hits not promoted because the promotion queue was full.", nil, nil)
	descPromotionPaced = prometheus.NewDesc("outpost_cache_promotion_paced_total",
		"Disk hits not considered for promotion because promotions were at their pace (a tenth of the memory tier a second).", nil, nil)
	descPurgedOnLoad = prometheus.NewDesc("outpost_disk_purged_on_load_total",
		"Entries from an earlier run the purge journal dropped as they loaded.", nil, nil)
	descDiskServed = prometheus.NewDesc("outpost_disk_served_total",
		"Hits answered from a disk copy (Cache-Status detail=disk).", nil, nil)
	descDiskServedBytes = prometheus.NewDesc("outpost_disk_served_bytes_total",
		"Body bytes of the hits answered from a disk copy.", nil, nil)
	descJournalErrors = prometheus.NewDesc("outpost_purge_journal_errors_total",
		"Purges the journal could not write to every cache directory.", nil, nil)

	diskLabels       = []string{"path"}
	descDiskItems    = prometheus.NewDesc("outpost_disk_items", "Entries in the cache directory.", diskLabels, nil)
	descDiskBytes    = prometheus.NewDesc("outpost_disk_bytes", "Bytes of the directory's cache files (4 KiB blocks).", diskLabels, nil)
	descDiskMax      = prometheus.NewDesc("outpost_disk_max_bytes", "The directory's effective capacity (lower than configured after the file system ran full, until its free space came back).", diskLabels, nil)
	descDiskConf     = prometheus.NewDesc("outpost_disk_configured_bytes", "The directory's configured capacity (pops[].disk size); outpost_disk_max_bytes returns to it once the file system has room again.", diskLabels, nil)
	descDiskCapacity = prometheus.NewDesc("outpost_disk_capacity_changes_total", "Changes of the effective capacity: lowered (a write found the file system full), raised (its free space came back).", []string{"path", "direction"}, nil)
	descDiskHealthy  = prometheus.NewDesc("outpost_disk_healthy", "1 while the directory is in service, 0 after an I/O error took it out.", diskLabels, nil)
	descDiskWrites   = prometheus.NewDesc("outpost_disk_writes_total", "Cache files written and published.", diskLabels, nil)
	descDiskWritten  = prometheus.NewDesc("outpost_disk_written_bytes_total", "Bytes written to cache files.", diskLabels, nil)
	descDiskErrors   = prometheus.NewDesc("outpost_disk_errors_total", "Disk errors by kind: write, read, io (out of service), no_space, corrupt (damaged files removed).", []string{"path", "kind"}, nil)
	descDiskAdmit    = prometheus.NewDesc("outpost_disk_admissions_total", "Entries the directory's admission policy (min_uses) let through.", diskLabels, nil)
	descDiskReject   = prometheus.NewDesc("outpost_disk_rejections_total", "Entries kept off the disk by min_uses.", diskLabels, nil)
	descDiskFree     = prometheus.NewDesc("outpost_disk_free_admissions_total", "Admissions written before min_uses because the directory had free room (also in outpost_disk_admissions_total).", diskLabels, nil)
	descDiskDrops    = prometheus.NewDesc("outpost_disk_write_drops_total", "Writes dropped because the write queue was full.", diskLabels, nil)
	descDiskEvict    = prometheus.NewDesc("outpost_disk_evictions_total", "Files removed to make room or because they expired.", diskLabels, nil)
	descDiskQueued   = prometheus.NewDesc("outpost_disk_queued_writes", "Writes waiting for the directory's writer.", diskLabels, nil)
	descDiskLoad     = prometheus.NewDesc("outpost_disk_load_files", "Files the loader has scanned, loaded and dropped since start.", []string{"path", "state"}, nil)
	descDiskLoadDone = prometheus.NewDesc("outpost_disk_load_done", "1 once the loader has indexed the whole directory.", diskLabels, nil)
	descDiskRead     = prometheus.NewDesc("outpost_disk_read_seconds", "Time to open and check a cache file not open yet.", diskLabels, nil)
	descDiskWrite    = prometheus.NewDesc("outpost_disk_write_seconds", "Time to write a cache file.", diskLabels, nil)
	descDiskOpen     = prometheus.NewDesc("outpost_disk_open_files", "Cache files the process holds open: the directories' open sets (at most 4096 entries each) and entries dropped from them that the garbage collector has not closed yet.", nil, nil)
)

// diskCollector reports the disk tier's figures.
type diskCollector struct{ p *PoP }

func (c diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTierHits, descDiskServed, descDiskServedBytes, descPromotions, descPromotionDrops, descPromotionPaced, descPurgedOnLoad, descJournalErrors,
		descDiskItems, descDiskBytes, descDiskMax, descDiskConf, descDiskCapacity, descDiskHealthy, descDiskWrites, descDiskWritten, descDiskErrors,
		descDiskAdmit, descDiskReject, descDiskFree, descDiskDrops, descDiskEvict, descDiskQueued, descDiskLoad, descDiskLoadDone,
		descDiskRead, descDiskWrite, descDiskOpen} {
		ch <- d
	}
}

func (c diskCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	t := p.disk.store.Tiers()
	counter(descTierHits, t.MemoryHits, "memory")
	counter(descTierHits, t.DiskHits, "disk")
	counter(descTierHits, t.Misses, "none")
	counter(descDiskServed, p.disk.servedHits.Load())
	counter(descDiskServedBytes, p.disk.servedBytes.Load())
	counter(descPromotions, t.Promoted)
	counter(descPromotionDrops, t.PromoteDrops)
	counter(descPromotionPaced, t.PromotePaced)
	counter(descPurgedOnLoad, p.diskPurgedOnLoad.Load())
	counter(descJournalErrors, p.purgeStats.journalErrors.Load())
	if len(p.disk.disks) > 0 {
		gauge(descDiskOpen, float64(p.disk.disks[0].DiskStats().OpenFiles)) // process-wide
	}
	for i, d := range p.disk.disks {
		path := p.disk.paths[i]
		s := d.DiskStats()
		gauge(descDiskItems, float64(s.Items), path)
		gauge(descDiskBytes, float64(s.Bytes), path)
		gauge(descDiskMax, float64(s.MaxBytes), path)
		gauge(descDiskConf, float64(s.ConfiguredBytes), path)
		counter(descDiskCapacity, s.CapacityLowered, path, "lowered")
		counter(descDiskCapacity, s.CapacityRaised, path, "raised")
		gauge(descDiskHealthy, boolValue(s.Healthy), path)
		counter(descDiskWrites, s.Writes, path)
		counter(descDiskWritten, s.BytesWritten, path)
		for kind, n := range map[string]uint64{"write": s.WriteErrors, "read": s.ReadErrors, "io": s.IOErrors, "no_space": s.NoSpace, "corrupt": s.Corrupt} {
			counter(descDiskErrors, n, path, kind)
		}
		counter(descDiskAdmit, s.Admissions, path)
		counter(descDiskReject, s.Rejections, path)
		counter(descDiskFree, s.FreeAdmissions, path)
		counter(descDiskDrops, s.Drops, path)
		counter(descDiskEvict, s.Evictions, path)
		gauge(descDiskQueued, float64(s.QueuedWrites), path)
		counter(descDiskLoad, s.Load.Scanned, path, "scanned")
		counter(descDiskLoad, s.Load.Loaded, path, "loaded")
		counter(descDiskLoad, s.Load.Dropped, path, "dropped")
		gauge(descDiskLoadDone, boolValue(s.Load.Done), path)
		for desc, h := range map[*prometheus.Desc]*latency.Histogram{descDiskRead: s.ReadLatency, descDiskWrite: s.WriteLatency} {
			if h == nil {
				continue
			}
			buckets, count, sum := h.Snapshot()
			ch <- prometheus.MustNewConstHistogram(desc, count, sum, buckets, path)
		}
	}
}
