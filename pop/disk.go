package pop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/diskstore"
	"github.com/outpost-cdn/outpost/cache/memstore"
	"github.com/outpost-cdn/outpost/cache/tiered"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop/fill"
	"github.com/outpost-cdn/outpost/pop/journal"
)

// This file wires the PoP's disk tier (pops[].disk): the memory store in
// front, a diskstore per cache directory behind it (cache/tiered), the
// purge journal beside them, and the check of every entry from an earlier
// run against that journal before it is served or indexed.

// diskTier is what the PoP keeps of its disk tier.
type diskTier struct {
	store     *tiered.Store
	disks     []*diskstore.Store
	paths     []string
	loadStart time.Time
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// servedHits and servedBytes count the hits answered from a disk
	// copy (Cache-Status detail=disk) and their body bytes.
	servedHits, servedBytes atomic.Uint64
}

// countDiskHit counts a hit answered from e with n body bytes, when the
// disk tier's copy answered it.
func (p *PoP) countDiskHit(e *cache.Entry, n int64) {
	if p.disk != nil && e.OnDisk {
		p.disk.servedHits.Add(1)
		p.disk.servedBytes.Add(uint64(max(n, 0)))
	}
}

// openStore builds the PoP's store for pc: memory only without disks;
// with disks, memory in front of them, and the purge journal. x is the
// purge index about to wrap the store: entries the disks find from an
// earlier run are checked against the journal and indexed as they load.
func (p *PoP) openStore(pc *config.POP, x *purgeIndex) (cache.Store, error) {
	mem, err := memstore.New(memstore.Options{MaxBytes: pc.CacheSize, Logger: p.log})
	if err != nil {
		return nil, err
	}
	if len(pc.Disk) == 0 {
		return mem, nil
	}
	paths := make([]string, len(pc.Disk))
	for i, d := range pc.Disk {
		paths[i] = d.Path
	}
	// The journal before the disks: their loaders ask it from the start.
	// Its files live in the cache directories, which may not exist yet.
	for _, dir := range paths {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			mem.Close()
			return nil, fmt.Errorf("disk %s: %w", dir, err)
		}
	}
	j, err := journal.Open(paths)
	if err != nil {
		mem.Close()
		return nil, err
	}
	p.journal = j
	keep := func(e *cache.Entry) bool {
		if p.journal.Purged(e.Key, entryTags(e), e.ResponseTime) {
			p.diskPurgedOnLoad.Add(1)
			return false
		}
		x.addLoaded(e)
		return true
	}
	dt := &diskTier{paths: paths, loadStart: p.now(), stop: make(chan struct{}), done: make(chan struct{})}
	var disks []tiered.Disk
	var weights []int64
	closeAll := func() {
		for _, d := range dt.disks {
			d.Close()
		}
		mem.Close()
		j.Close()
		p.journal = nil
	}
	for _, d := range pc.Disk {
		ds, err := diskstore.OpenWith(diskstore.Options{
			Dir:          d.Path,
			MaxBytes:     d.Size,
			MinUses:      d.MinUses,
			MaxWriteRate: d.WriteRate,
			Fsync:        d.Fsync,
			Logger:       p.log.With("disk", d.Path),
			Now:          p.now,
			// The fast path's head, once per opened file (fastseam.go).
			Prepare: func(e *cache.Entry) any { return prepareFastHead(e) },
		}, keep)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("disk %s: %w", d.Path, err)
		}
		dt.disks = append(dt.disks, ds)
		disks = append(disks, ds)
		weights = append(weights, d.Size)
	}
	st, err := tiered.New(tiered.Options{
		Memory:  mem,
		Disks:   disks,
		Weights: weights,
		TTL:     func(e *cache.Entry) time.Duration { return e.StorageTTL(p.now(), p.keepFor(e)) },
		Promote: p.promote,
		Logger:  p.log,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	dt.store = st
	p.disk = dt
	go p.pruneJournalWhenLoaded(dt)
	return st, nil
}

// pruneJournalWhenLoaded waits until every disk has loaded its files
// through the journal, then prunes the purges made before the load
// began: they have done their job (see package journal).
func (p *PoP) pruneJournalWhenLoaded(dt *diskTier) {
	defer close(dt.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		done := true
		for _, d := range dt.disks {
			if !d.Healthy() {
				return // a disk out of service keeps every record for its next run
			}
			done = done && d.Load().Done
		}
		if done {
			if err := p.journal.Prune(dt.loadStart); err != nil {
				p.log.Warn("purge journal not pruned", "err", err)
			}
			return
		}
		select {
		case <-dt.stop:
			return
		case <-t.C:
		}
	}
}

// closeDisk stops the disk tier's watcher and closes the journal; the
// store itself is closed with the PoP's store.
func (p *PoP) closeDisk() {
	if p.disk == nil {
		return
	}
	p.disk.closeOnce.Do(func() {
		close(p.disk.stop)
		<-p.disk.done
		if err := p.journal.Close(); err != nil {
			p.log.Warn("closing the purge journal", "err", err)
		}
	})
}

// tierDetail is the Cache-Status detail of a fresh hit on e: "disk" when
// the disk tier answered, else none (memory).
func tierDetail(e *cache.Entry) string {
	if e.OnDisk {
		return "disk"
	}
	return ""
}

// maxPromote is the largest body promoted from disk to memory: bigger
// ones are served from their files (the page cache holds them) rather
// than copied into RAM.
const maxPromote = 8 << 20

// promote makes the memory copy of an entry a disk returned: the body
// read into memory (a blob, or the heap for small ones), the fast path's
// head prepared. It returns nil for bodies above maxPromote or on a read
// error (the disk has counted it).
func (p *PoP) promote(e *cache.Entry) *cache.Entry {
	c := *e
	c.OnDisk = false
	c.Prepared = nil
	if e.Blob != nil {
		size := e.BodySize()
		if size > maxPromote {
			return nil
		}
		chunks, err := readChunks(e.BodyReader(), size)
		if err != nil {
			return nil
		}
		b := p.storeChunks(e.Key, chunks)
		c.Body, c.Blob = b.heap, b.blob
	}
	c.Prepared = prepareFastHead(&c)
	return &c
}

// readChunks reads size bytes of r in chunks of fill.ChunkSize.
func readChunks(r io.Reader, size int64) ([][]byte, error) {
	var chunks [][]byte
	for size > 0 {
		n := min(size, fill.ChunkSize)
		c := make([]byte, n)
		if _, err := io.ReadFull(r, c); err != nil {
			return nil, errors.Join(errors.New("promote: reading the disk copy"), err)
		}
		chunks = append(chunks, c)
		size -= n
	}
	return chunks, nil
}
