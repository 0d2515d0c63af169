package diskstore

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/latency"
)

const (
	// loadBatch is how many files the loader reads between yields.
	loadBatch = 64
	// loadLogEvery is how often the loader logs its progress.
	loadLogEvery = 5 * time.Second
)

// LoadProgress is how far the loader has come indexing the files of an
// earlier run.
type LoadProgress struct {
	Scanned  uint64        // files looked at
	Loaded   uint64        // files indexed (by the loader, or by a Get before it)
	Dropped  uint64        // files removed: corrupt, expired, stray, or declined by keep
	Done     bool          // the loader has finished (or the store was closed)
	Duration time.Duration // how long it has run, or ran
}

type loadProgress struct {
	scanned, loaded, dropped atomic.Uint64
	start                    time.Time
	took                     atomic.Int64 // nanoseconds, once done
	done                     atomic.Bool
}

// Load reports the loader's progress.
func (s *Store) Load() LoadProgress {
	p := LoadProgress{
		Scanned: s.progress.scanned.Load(),
		Loaded:  s.progress.loaded.Load(),
		Dropped: s.progress.dropped.Load(),
		Done:    s.progress.done.Load(),
	}
	if p.Done {
		p.Duration = time.Duration(s.progress.took.Load())
	} else {
		p.Duration = time.Since(s.progress.start)
	}
	return p
}

// runLoader walks objects/, reading each file's header and metadata (not
// its body, which Get checks when it first opens the file), drops what is
// damaged, expired or stray, asks the keep callback about the rest and
// indexes it. It yields every loadBatch files so serving goes on.
func (s *Store) runLoader() {
	defer s.wg.Done()
	s.log.Info("diskstore: loading the index")
	stopped := s.walk()
	s.progress.took.Store(int64(time.Since(s.progress.start)))
	s.loading.Store(false) // before Done: once Done, admission knows the index is whole (hasRoom)
	s.progress.done.Store(true)
	p := s.Load()
	msg := "diskstore: index loaded"
	if stopped {
		msg = "diskstore: loading stopped by Close"
	}
	st := s.Stats()
	s.log.Info(msg, "scanned", p.Scanned, "loaded", p.Loaded, "dropped", p.Dropped,
		"items", st.Items, "bytes", st.Bytes, "duration", p.Duration.Round(time.Millisecond))
}

// walk loads every file; it reports whether Close stopped it.
func (s *Store) walk() (stopped bool) {
	tops, err := os.ReadDir(s.objects)
	if err != nil {
		s.readFailed("readdir", err)
		return false
	}
	n, lastLog := 0, time.Now()
	for _, top := range tops {
		if !top.IsDir() {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(s.objects, top.Name()))
		if err != nil {
			s.readFailed("readdir", err)
			continue
		}
		for _, sub := range subs {
			if !sub.IsDir() {
				continue
			}
			dir := filepath.Join(s.objects, top.Name(), sub.Name())
			files, err := os.ReadDir(dir)
			if err != nil {
				s.readFailed("readdir", err)
				continue
			}
			for _, f := range files {
				if n++; n%loadBatch == 0 {
					select {
					case <-s.stop:
						return true
					default:
					}
					runtime.Gosched()
					if time.Since(lastLog) >= loadLogEvery {
						lastLog = time.Now()
						p := s.Load()
						s.log.Info("diskstore: loading the index", "scanned", p.Scanned, "loaded", p.Loaded,
							"dropped", p.Dropped, "duration", p.Duration.Round(time.Millisecond))
					}
				}
				if s.failed.Load() {
					return false
				}
				if f.IsDir() {
					continue
				}
				s.progress.scanned.Add(1)
				s.loadFile(dir, f.Name(), top.Name()+sub.Name())
			}
		}
	}
	return false
}

// loadFile indexes the file name in dir, whose name must start with
// prefix.
func (s *Store) loadFile(dir, name, prefix string) {
	path := filepath.Join(dir, name)
	s.injected("load") // tests hold the loader here
	if !validName(name) || name[:4] != prefix {
		if fi, err := os.Lstat(path); err == nil && s.removeIfSame(path, fi) {
			s.log.Warn("diskstore: stray file removed", "file", path)
			s.progress.dropped.Add(1)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.readFailed("open", err)
		}
		return
	}
	hd, m, fi, err := s.readFile(f, name, "", false)
	if err != nil && errors.Is(err, errCorrupt) {
		fi, _ = f.Stat()
	}
	f.Close()
	if err != nil {
		if !errors.Is(err, errCorrupt) {
			s.readFailed("read", err)
			return
		}
		if fi != nil && s.removeIfSame(path, fi) {
			s.c.corrupt.Add(1)
			s.progress.dropped.Add(1)
			s.log.Warn("diskstore: corrupt file removed", "file", path, "err", err)
		}
		return
	}
	now := s.now().UnixNano()
	if m.Expires != 0 && now >= m.Expires {
		if s.removeIfSame(path, fi) {
			s.progress.dropped.Add(1)
		}
		return
	}
	h := s.hash(m.Key)
	// The unlink count of the shard is not known from before the read: ask
	// adopt to check that the name still holds this very file.
	s.adopt(s.shardOf(h), m.Key, h, path, hd, &m, fi, math.MaxUint64, now)
}

// DiskStats are the disk store's own figures beside cache.StoreStats.
type DiskStats struct {
	cache.StoreStats
	// ConfiguredBytes is Options.MaxBytes; StoreStats.MaxBytes is the
	// effective capacity, lower after the file system ran full.
	ConfiguredBytes int64
	Healthy         bool
	Load            LoadProgress

	Writes       uint64 // files written and renamed into place
	BytesWritten uint64
	WriteErrors  uint64 // writes that failed (the full-disk ones included)
	ReadErrors   uint64 // opens and reads that failed, damaged files not included
	IOErrors     uint64 // errors that take the store out of service
	NoSpace      uint64 // writes the file system had no room for
	Corrupt      uint64 // damaged files found and removed
	Discarded    uint64 // writes overtaken by a Delete or a newer Set of their key
	Expirations  uint64 // files removed because they expired (also in Evictions)
	Vanished     uint64 // indexed files found missing (removed by hand)
	// CapacityLowered and CapacityRaised count the changes of the
	// effective capacity (StoreStats.MaxBytes): lowered after a write
	// found the file system full, raised as its free space came back.
	CapacityLowered, CapacityRaised uint64
	// FreeAdmissions are the Admissions (StoreStats) let through under
	// MinUses because the store had free room for them.
	FreeAdmissions uint64

	QueuedWrites int64 // writes waiting for the writer or being written
	QueuedBytes  int64 // their bytes, as WriteQueueBytes counts them
	OpenEntries  int64 // entries in the open set
	OpenFiles    int64 // file blobs open in the process (every store), see blob.OpenFiles

	// ReadLatency times the opening and checking of a file not open yet;
	// WriteLatency the writing of a file. Do not copy them.
	ReadLatency, WriteLatency *latency.Histogram
}

// DiskStats returns the store's figures.
func (s *Store) DiskStats() DiskStats {
	return DiskStats{
		StoreStats:      s.Stats(),
		ConfiguredBytes: s.opts.MaxBytes,
		Healthy:         s.Healthy(),
		Load:            s.Load(),
		Writes:          s.c.writes.Load(),
		BytesWritten:    s.c.bytesWritten.Load(),
		WriteErrors:     s.c.writeErrors.Load(),
		ReadErrors:      s.c.readErrors.Load(),
		IOErrors:        s.c.ioErrors.Load(),
		NoSpace:         s.c.nospace.Load(),
		Corrupt:         s.c.corrupt.Load(),
		Discarded:       s.c.discarded.Load(),
		Expirations:     s.c.expirations.Load(),
		Vanished:        s.c.notFound.Load(),
		CapacityLowered: s.c.capLowered.Load(),
		CapacityRaised:  s.c.capRaised.Load(),
		FreeAdmissions:  s.c.freeAdmissions.Load(),
		QueuedWrites:    s.unwritten.Load(),
		QueuedBytes:     s.queuedBytes.Load(),
		OpenEntries:     s.opens.n.Load(),
		OpenFiles:       blob.OpenFiles(),
		ReadLatency:     &s.readLat,
		WriteLatency:    &s.writeLat,
	}
}
