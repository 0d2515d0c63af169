// Package diskstore is one cache directory of a PoP's disk tier: a
// cache.Store that keeps each entry in a file of its own, bodies served
// from the file with sendfile (cache/blob.FromFile) and cached by the
// kernel's page cache, that survives restarts.
//
// The algorithm, in four sentences. An entry is written (by one writer
// goroutine, off the request path, through a bounded queue) only once its
// key has been asked for MinUses times, counted in a count-min sketch, to
// a temporary file that is renamed into place under the key's lock unless
// a Delete or a newer Set came after it, so a purge always wins and no
// torn file is ever visible under a key's name. Get finds the key in an
// in-memory index, opens and checks the file once (header, metadata
// checksum, the key in the file, the length, the body checksum) and then
// keeps the open entry in a bounded set, so a hot entry costs a map
// lookup and no system call. Bytes are evicted with S3-FIFO (see
// policy.go), files unlinked by a deleter goroutine. At start an index is
// rebuilt in the background from the files' headers while Get opens any
// key's file straight by its name, which is a hash of the key.
//
// Files live in Dir/objects/XX/YY/NAME, NAME being the hex of the first
// 128 bits of the key's SHA-256 and XX/YY its first four hex digits; a
// file is a fixed header (magic, format version, lengths, CRC32C of the
// metadata and of the body, CRC32C of the header), the gob-encoded
// metadata (every cache.Entry field but Body, Blob and Prepared, plus the
// storage expiry) and the body (see format.go). Writes go to Dir/tmp,
// which Open empties.
//
// Durability: a rename after a complete write means a crash of the
// process (kill -9 included) leaves either the old file or the new one,
// never a torn one. A power loss can leave a renamed file whose data
// never reached the disk; the checksums catch it when the file is first
// read, and it is dropped as corrupt. Options.Fsync makes every write
// durable before its rename, at the price of a flush per write.
//
// Failures: a full file system (ENOSPC, EDQUOT) drops the write, lowers
// the store's effective capacity to what the directory holds plus what is
// free, less a headroom, and evicts down to it; while it is lowered, the
// writer raises it again as space comes free (space.go). Any other I/O error of the device (EIO,
// EROFS, ...) takes the store out of service for good: Get misses, Set
// drops, Healthy reports false; the owner may Close it and Open it again.
// A damaged file is a miss, and is removed.
package diskstore

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/latency"
)

// Defaults of Options.
const (
	DefaultMinUses         = 2
	DefaultWriteQueue      = 256
	DefaultWriteQueueBytes = 64 << 20
	DefaultOpenFiles       = 4096
)

const (
	numShards = 64
	// rejectsPerShard bounds how many declined keys Rejected remembers
	// per shard (4096 in all).
	rejectsPerShard = 64
	// minSketchWidth and maxSketchWidth bound the admission sketch's
	// counters per row: 4 rows of 1 byte each, so at most 16 MiB.
	minSketchWidth = 1 << 12
	maxSketchWidth = 1 << 22
	// sketchBytesPerCounter is the capacity per sketch counter: a counter
	// for every 16 KiB of capacity.
	sketchBytesPerCounter = 16 << 10
)

// ErrInvalidOptions is wrapped by the errors Open returns for bad Options.
var ErrInvalidOptions = errors.New("diskstore: invalid options")

// Options configure a Store. Every field but Dir and MaxBytes is optional.
type Options struct {
	// Dir is the cache directory; it is created if missing. One Store
	// uses a directory at a time.
	Dir string
	// MaxBytes is the capacity: the most the store's files may add up to,
	// each counted as its length rounded up to 4 KiB. Required.
	MaxBytes int64
	// MinUses is how many times a key must have been used (Set calls,
	// that is fills, and Touch calls, that is memory hits; not Get misses,
	// which a server may make several of for one request) before Set
	// writes it once the store is full:
	// 1 writes every Set. If zero, DefaultMinUses (2: one-hit wonders
	// never push out what is on the disk). While the store has free room
	// (the indexed files and the queued writes leave room for the entry,
	// the write queue is less than half full and the loader is done),
	// every Set is written: admitting then evicts nothing, and what it
	// writes is bounded by the free room, so it cannot wear the SSD more
	// than filling it once does.
	MinUses int
	// WriteQueue and WriteQueueBytes bound the writes queued for the
	// writer, in entries and in body bytes; a Set beyond them is dropped.
	// If zero, DefaultWriteQueue and DefaultWriteQueueBytes.
	WriteQueue      int
	WriteQueueBytes int64
	// MaxWriteRate bounds the bytes written per second (real time). If
	// zero, writes are not paced.
	MaxWriteRate int64
	// OpenFiles bounds the entries kept open (checked, with their file
	// open for their body) for fast hits. Files of entries dropped from
	// the set are closed by the garbage collector once no reader holds
	// them. If zero, DefaultOpenFiles.
	OpenFiles int
	// Fsync makes each write reach the disk before it is renamed into
	// place (and the directory after). Without it, a crash of the process
	// loses no renamed file and a power loss is caught by the checksums.
	// Default false.
	Fsync bool
	// Logger receives the store's records: loading progress, and errors.
	// If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock of expiry. If nil, time.Now.
	Now func() time.Time
	// SpaceCheckInterval is how often, while a full file system holds
	// the effective capacity below MaxBytes, the writer looks at the free
	// space (statfs) to raise it again (see space.go). If zero,
	// DefaultSpaceCheckInterval (5 s).
	SpaceCheckInterval time.Duration
	// Prepare, if set, is called once with each entry the store makes from
	// a file, before the entry is shared, and its result kept as the
	// entry's Prepared (cache.Entry): the PoP renders its fast path's
	// response head there once per opened file instead of on every hit.
	Prepare func(e *cache.Entry) any
}

// Store is one cache directory (see the package documentation). It is
// safe for concurrent use. After Close, Get misses and Set, Touch and
// Delete do nothing.
type Store struct {
	dir, objects, tmp string
	lock              *os.File // the directory's lock (lockDir); nil once closed
	opts              Options
	minUses           uint32
	log               *slog.Logger
	now               func() time.Time
	seed              maphash.Seed
	sketch            *sketch
	onRemove          atomic.Pointer[func(*cache.Entry)]
	keep              atomic.Pointer[func(*cache.Entry) bool]
	fault             atomic.Pointer[func(op string) error] // tests: export_test.go

	shards [numShards]shard

	polMu sync.Mutex // after a shard's lock, never before
	pol   *policy

	queue       chan *write
	queuedBytes atomic.Int64
	unwritten   atomic.Int64 // writes queued or in the writer's hands
	opens       openSet
	pathMu      sync.Mutex // the writer's renames against the loader's removal of files of unknown key
	del         deleter
	space       space // the writer's

	closed  atomic.Bool
	failed  atomic.Bool
	loading atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	progress loadProgress
	c        counters
	readLat  latency.Histogram
	writeLat latency.Histogram
}

var (
	_ cache.Store             = (*Store)(nil)
	_ cache.RemovalNotifier   = (*Store)(nil)
	_ cache.RejectionReporter = (*Store)(nil)
	_ cache.Persistent        = (*Store)(nil)
)

// counters are the store's event counts.
type counters struct {
	admissions, rejections, drops, evictions, expirations atomic.Uint64
	freeAdmissions                                        atomic.Uint64 // admitted under MinUses, into free room
	writes, bytesWritten, writeErrors, readErrors         atomic.Uint64
	corrupt, nospace, ioErrors, discarded, notFound       atomic.Uint64
	capLowered, capRaised                                 atomic.Uint64 // effective capacity changes (space.go)
}

// shard is the index of the keys whose hash falls in it.
type shard struct {
	mu       sync.RWMutex
	items    map[string]*item    // on disk and indexed
	pending  map[string]*write   // queued or being written
	rejected map[string]struct{} // declined by admission, newest Set
	doomed   map[string]*item    // removed from the index, file not unlinked yet
	unlinks  uint64              // files of this shard unlinked, under mu
	_        [64 - 8]byte
}

// item is one indexed file.
type item struct {
	node                                 // the eviction policy's; under Store.polMu
	key      string                      //
	fileSize int64                       // exact length
	verified atomic.Bool                 // the body checksum passed in this process
	open     atomic.Pointer[cache.Entry] // in the open set, if not nil
	ref      atomic.Bool                 // hit since the open set's hand passed
	slot     int                         // in the open set's ring, or −1; under openSet.mu
	gone     bool                        // removed from the index; under openSet.mu
}

func newItem(key string, hash uint64, fileSize, expires int64) *item {
	it := &item{key: key, fileSize: fileSize, slot: -1}
	it.node.size = blocks(fileSize)
	it.node.hash = hash
	it.node.expires = expires
	it.node.owner = it
	return it
}

// write is one queued write.
type write struct {
	e       *cache.Entry
	hash    uint64
	expires int64
	cost    int64 // its share of WriteQueueBytes
}

// Open opens (or creates) the cache directory opts.Dir and returns at
// once: a background loader indexes the files an earlier run left (see
// Load), while Get already serves them by name. To have the Persistent
// keep callback asked about every one of them, use OpenWith.
func Open(opts Options) (*Store, error) { return OpenWith(opts, nil) }

// OpenWith is Open with the Persistent keep callback set before the loader
// starts (see NotifyLoad).
func OpenWith(opts Options, keep func(e *cache.Entry) bool) (*Store, error) {
	var errs []error
	if opts.Dir == "" {
		errs = append(errs, fmt.Errorf("%w: Dir is required", ErrInvalidOptions))
	}
	if opts.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("%w: MaxBytes must be positive, got %d", ErrInvalidOptions, opts.MaxBytes))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"MinUses", int64(opts.MinUses)}, {"WriteQueue", int64(opts.WriteQueue)}, {"WriteQueueBytes", opts.WriteQueueBytes},
		{"MaxWriteRate", opts.MaxWriteRate}, {"OpenFiles", int64(opts.OpenFiles)},
		{"SpaceCheckInterval", int64(opts.SpaceCheckInterval)}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s must not be negative, got %d", ErrInvalidOptions, f.name, f.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.MinUses == 0 {
		opts.MinUses = DefaultMinUses
	}
	if opts.WriteQueue == 0 {
		opts.WriteQueue = DefaultWriteQueue
	}
	if opts.WriteQueueBytes == 0 {
		opts.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if opts.OpenFiles == 0 {
		opts.OpenFiles = DefaultOpenFiles
	}
	if opts.SpaceCheckInterval == 0 {
		opts.SpaceCheckInterval = DefaultSpaceCheckInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		dir:     opts.Dir,
		objects: filepath.Join(opts.Dir, "objects"),
		tmp:     filepath.Join(opts.Dir, "tmp"),
		opts:    opts,
		minUses: uint32(min(opts.MinUses, counterMax)),
		log:     opts.Logger.With("dir", opts.Dir),
		now:     opts.Now,
		seed:    maphash.MakeSeed(),
		sketch:  newSketch(int(min(max(opts.MaxBytes/sketchBytesPerCounter, minSketchWidth), maxSketchWidth))),
		pol:     newPolicy(opts.MaxBytes),
		queue:   make(chan *write, opts.WriteQueue),
		stop:    make(chan struct{}),
	}
	if keep != nil {
		s.keep.Store(&keep)
	}
	for i := range s.shards {
		s.shards[i].items = make(map[string]*item)
		s.shards[i].pending = make(map[string]*write)
		s.shards[i].rejected = make(map[string]struct{})
		s.shards[i].doomed = make(map[string]*item)
	}
	s.opens.init(opts.OpenFiles)
	s.del.init()
	if err := os.MkdirAll(s.objects, 0o755); err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	// Whatever is in tmp is a write an earlier run never finished.
	if err := os.RemoveAll(s.tmp); err != nil {
		s.unlock()
		return nil, fmt.Errorf("diskstore: empty tmp: %w", err)
	}
	if err := os.Mkdir(s.tmp, 0o755); err != nil {
		s.unlock()
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	s.loading.Store(true)
	s.progress.start = time.Now()
	s.wg.Add(3)
	go s.runWriter()
	go s.runDeleter()
	go s.runLoader()
	return s, nil
}

func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) }

func (s *Store) shardOf(hash uint64) *shard { return &s.shards[hash>>58] }

// serving reports whether Get and Set do anything.
func (s *Store) serving() bool { return !s.closed.Load() && !s.failed.Load() }

// Get returns the entry stored under key: one whose write is still queued
// (the entry as Set), or the one on disk, its body a blob.FromFile window
// of the file (Blob set, Body nil; an empty body has neither). An entry
// past its storage expiry is a miss, and is removed. A miss does not
// count a use of key for admission: the fill that follows it does (Set),
// so a request counts once however many times its server looks it up.
func (s *Store) Get(key string) (*cache.Entry, bool) {
	if !s.serving() {
		return nil, false
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	// Read before the index: a loader that finishes after the lookup
	// below may have indexed key meanwhile, which a Get that saw it done
	// only then would miss without looking at the file.
	loading := s.loading.Load()
	sh.mu.RLock()
	w := sh.pending[key]
	it := sh.items[key]
	sh.mu.RUnlock()
	now := s.now().UnixNano()
	if w != nil && now < w.expires {
		return w.e, true
	}
	if it != nil {
		if expired(&it.node, now) {
			s.expire(sh, it)
		} else if e := it.open.Load(); e != nil {
			it.hit()
			if !it.ref.Load() {
				it.ref.Store(true)
			}
			return e, true
		} else if e, ok := s.openItem(sh, it); ok {
			it.hit()
			return e, true
		}
	} else if loading {
		if e, ok := s.openUnindexed(sh, key, h, now); ok {
			return e, true
		}
	}
	return nil, false
}

// Set offers e for ttl and counts a use of e.Key. It writes e (in the
// background) when e.Key has been used MinUses times (this Set included),
// the store has free room for it (see Options.MinUses), or it is already
// on disk or queued (a refresh replaces it), and declines it otherwise; a full write queue, or a store
// out of service, drops it. Declined and dropped entries are reported to
// the NotifyRemoval callback, from inside Set. Set never blocks on I/O.
func (s *Store) Set(e *cache.Entry, ttl time.Duration) {
	if e == nil || ttl <= 0 || s.closed.Load() {
		return
	}
	s.set(e, ttl, s.hash(e.Key), false)
}

// Touch counts a use of e.Key: the tiered store above calls it on every
// hit in its memory tier. Once the key has been asked for MinUses times
// and is neither on disk nor queued, e is queued for writing as Set would
// (with ttl); a key on disk gets a hit in the eviction policy, so entries
// hot in memory stay on disk too. It takes a read lock and allocates
// nothing unless it queues a write.
func (s *Store) Touch(e *cache.Entry, ttl time.Duration) {
	if e == nil || ttl <= 0 || !s.serving() {
		return
	}
	h := s.hash(e.Key)
	sh := s.shardOf(h)
	sh.mu.RLock()
	it := sh.items[e.Key]
	_, queued := sh.pending[e.Key]
	sh.mu.RUnlock()
	switch {
	case it != nil:
		it.hit()
	case queued:
	case s.sketch.add(h) >= s.minUses:
		s.set(e, ttl, h, true)
	}
}

// set is Set with the key's hash; admitted says the caller counted enough
// uses already.
func (s *Store) set(e *cache.Entry, ttl time.Duration, h uint64, admitted bool) {
	if s.failed.Load() {
		s.c.drops.Add(1)
		s.removed(e)
		return
	}
	cost := e.BodySize() + int64(len(e.Key)) + 512
	if fileEstimate(e) > s.opts.MaxBytes {
		s.decline(e, h)
		return
	}
	sh := s.shardOf(h)
	sh.mu.Lock()
	_, onDisk := sh.items[e.Key]
	_, queued := sh.pending[e.Key]
	free := false
	if !admitted && !onDisk && !queued && s.minUses > 1 && s.sketch.add(h) < s.minUses {
		if free = s.hasRoom(fileEstimate(e)); !free {
			sh.mu.Unlock()
			s.decline(e, h)
			return
		}
	}
	delete(sh.rejected, e.Key)
	w := &write{e: e, hash: h, expires: s.now().Add(ttl).UnixNano(), cost: cost}
	if s.queuedBytes.Add(cost) > s.opts.WriteQueueBytes && s.queuedBytes.Load() != cost {
		s.queuedBytes.Add(-cost)
		sh.mu.Unlock()
		s.c.drops.Add(1)
		s.removed(e)
		return
	}
	s.unwritten.Add(1)
	select {
	case s.queue <- w:
	default:
		s.unwritten.Add(-1)
		s.queuedBytes.Add(-cost)
		sh.mu.Unlock()
		s.c.drops.Add(1)
		s.removed(e)
		return
	}
	sh.pending[e.Key] = w // an older queued write of the key is discarded
	sh.mu.Unlock()
	s.c.admissions.Add(1)
	if free {
		s.c.freeAdmissions.Add(1)
	}
}

// hasRoom reports whether a file of size bytes (in blocks) fits in the
// store beside the indexed files and the queued writes without evicting
// anything, with the write queue less than half full: then MinUses is
// waived (see Options.MinUses). Not while the loader runs, when the index
// does not know every file yet.
func (s *Store) hasRoom(size int64) bool {
	if s.loading.Load() {
		return false
	}
	queued := s.queuedBytes.Load()
	if 2*queued > s.opts.WriteQueueBytes || 2*s.unwritten.Load() > int64(s.opts.WriteQueue) {
		return false
	}
	s.polMu.Lock()
	free := s.pol.capacity - s.pol.bytes()
	s.polMu.Unlock()
	return size+queued <= free
}

// decline records that the admission policy declined e.
func (s *Store) decline(e *cache.Entry, h uint64) {
	sh := s.shardOf(h)
	sh.mu.Lock()
	if len(sh.rejected) >= rejectsPerShard {
		for k := range sh.rejected {
			delete(sh.rejected, k)
			break
		}
	}
	sh.rejected[e.Key] = struct{}{}
	sh.mu.Unlock()
	s.c.rejections.Add(1)
	s.removed(e)
}

// Rejected reports whether the most recent Set of key was declined by the
// admission policy (not enough uses yet, or larger than the store). Only
// the last few thousand declined keys are remembered; a later admitted
// Set, or a Delete, clears it.
func (s *Store) Rejected(key string) bool {
	sh := s.shardOf(s.hash(key))
	sh.mu.RLock()
	_, ok := sh.rejected[key]
	sh.mu.RUnlock()
	return ok
}

// Delete removes key's file and any queued or in-flight write of key: a
// write that has not been renamed into place yet is discarded. It unlinks
// the file by its name even before the loader has indexed it. It is not
// reported to the NotifyRemoval callback.
func (s *Store) Delete(key string) {
	if s.closed.Load() {
		return
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	delete(sh.pending, key)
	delete(sh.rejected, key)
	if it := sh.items[key]; it != nil {
		delete(sh.items, key)
		s.opens.drop(it)
		s.polMu.Lock()
		s.pol.remove(&it.node)
		s.polMu.Unlock()
	}
	err := os.Remove(s.path(fileName(key)))
	sh.unlinks++
	sh.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.ioError("unlink", err)
	}
}

// NotifyRemoval makes the store call f with each entry that leaves it on
// its own: evicted, expired, found corrupt, declined by admission or
// dropped (a full queue, a full disk, a store out of service); never for
// Delete, nor for an entry replaced by a newer Set of its key, nor for
// files of an earlier run dropped while loading (the keep callback saw
// those). For a declined or dropped Set, f gets the entry given to Set
// (possibly inside Set); for an entry leaving the disk it gets the
// store's own copy: the entry Get returned if it is still open, otherwise
// the metadata read back from the file (Body and Blob nil), or only the
// Key when the file is unreadable. So an index beside the store must
// match disk removals by key, not by pointer. f runs on the store's
// goroutines: it must not block nor call the store.
func (s *Store) NotifyRemoval(f func(e *cache.Entry)) {
	if f == nil {
		s.onRemove.Store(nil)
		return
	}
	s.onRemove.Store(&f)
}

func (s *Store) removed(e *cache.Entry) {
	if f := s.onRemove.Load(); f != nil {
		(*f)(e)
	}
}

// NotifyLoad sets the callback asked about every entry from an earlier
// run, once per entry per process, before Get first returns it or the
// loader indexes it; false deletes the file. It gets the entry's metadata
// (Body and Blob nil). Files that are corrupt or expired are dropped
// without asking. Use OpenWith to set it before the loader starts; a call
// after Open affects only the entries not asked about yet.
func (s *Store) NotifyLoad(keep func(e *cache.Entry) bool) {
	if keep == nil {
		s.keep.Store(nil)
		return
	}
	s.keep.Store(&keep)
}

// keeps asks the keep callback about e.
func (s *Store) keeps(e *cache.Entry) bool {
	if f := s.keep.Load(); f != nil {
		return (*f)(e)
	}
	return true
}

// Healthy reports whether the store is in service: open, and no I/O error
// other than a full disk has happened.
func (s *Store) Healthy() bool { return s.serving() }

// Stats returns the store's counters. Items and Bytes are the indexed
// files (Bytes in 4 KiB blocks); MaxBytes is the effective capacity, below
// Options.MaxBytes after the file system ran full, until its free space
// comes back (space.go). Admissions count Sets
// (and Touches) queued for writing, Rejections those declined for too few
// uses, Drops those lost to a full queue, a full disk or a store out of
// service; Evictions count files removed for room or because they
// expired.
func (s *Store) Stats() cache.StoreStats {
	s.polMu.Lock()
	items, bytes, capacity := s.pol.count(), s.pol.bytes(), s.pol.capacity
	s.polMu.Unlock()
	return cache.StoreStats{
		Items:      items,
		Bytes:      bytes,
		MaxBytes:   capacity,
		Admissions: s.c.admissions.Load(),
		Rejections: s.c.rejections.Load(),
		Drops:      s.c.drops.Load(),
		Evictions:  s.c.evictions.Load(),
	}
}

// Close stops the loader, the writer (a write in progress is abandoned,
// queued ones discarded) and the deleter (after the unlinks it has
// queued), and waits for them. Files stay for the next Open. Close is
// idempotent.
func (s *Store) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			clear(sh.pending)
			sh.mu.Unlock()
		}
		s.opens.clear()
		s.unlock()
	})
}

// unlock lets the directory go (see lockDir).
func (s *Store) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// path is the path of the file named name.
func (s *Store) path(name string) string {
	return filepath.Join(s.objects, name[:2], name[2:4], name)
}

// expire removes it, found expired, from the index and queues its file
// for unlinking.
func (s *Store) expire(sh *shard, it *item) {
	e := it.open.Load()
	if s.unindex(sh, it, true) {
		s.c.expirations.Add(1)
		s.c.evictions.Add(1)
		s.del.push(doomed{it: it, e: e, notify: true})
	}
}

// unindex removes it from the index and the policy if it is still there,
// and reports whether it was; doom says its file is to be unlinked by the
// deleter.
func (s *Store) unindex(sh *shard, it *item, doom bool) bool {
	sh.mu.Lock()
	ok := sh.items[it.key] == it
	if ok {
		delete(sh.items, it.key)
		if doom {
			sh.doomed[it.key] = it
		}
		s.opens.drop(it)
		s.polMu.Lock()
		s.pol.remove(&it.node)
		s.polMu.Unlock()
	}
	sh.mu.Unlock()
	return ok
}

// evictVictims removes the policy's victims from the index and queues
// their files for unlinking.
func (s *Store) evictVictims(victims []*node) {
	now := s.now().UnixNano()
	for _, v := range victims {
		it := v.owner
		sh := s.shardOf(it.hash)
		e := it.open.Load()
		sh.mu.Lock()
		ok := sh.items[it.key] == it
		if ok {
			delete(sh.items, it.key)
			sh.doomed[it.key] = it
			s.opens.drop(it)
		}
		sh.mu.Unlock()
		if !ok {
			continue
		}
		s.c.evictions.Add(1)
		if expired(v, now) {
			s.c.expirations.Add(1)
		}
		s.del.push(doomed{it: it, e: e, notify: true})
	}
}

// ioError handles an I/O error of the device: a full file system lowers
// the capacity (see noSpace, called by the writer); anything else takes
// the store out of service.
func (s *Store) ioError(op string, err error) {
	if isNoSpace(err) {
		return
	}
	if !isFatal(err) {
		s.log.Warn("diskstore: I/O error", "op", op, "err", err)
		return
	}
	s.c.ioErrors.Add(1)
	if s.failed.CompareAndSwap(false, true) {
		s.log.Error("diskstore: I/O error: the store is out of service", "op", op, "err", err)
	}
}
