// Package memstore is the in-memory cache.Store of an Outpost PoP, built on
// ristretto: an entry costs its size in bytes (cache.Entry.Size), the store
// holds at most Options.MaxBytes of entries, and ristretto's TinyLFU
// admission decides whether a new entry is worth the entries it would evict.
//
// Ristretto applies a Set asynchronously: it queues the item and returns, a
// policy goroutine later admits or rejects it, and when the queue is full the
// Set is dropped. A request right after a completed fill could therefore
// miss. Store bridges that gap: Set records the entry in a small pending map
// before handing it to ristretto, Get looks in ristretto and then in the
// pending map, and one background sweeper waits (ristretto's Wait, never on a
// request goroutine) until the queued Sets are settled, then forgets the
// admitted ones and offers the dropped ones again, a few times. So only an
// admission rejection, counted and reported by Rejected, turns the next
// request into a miss. Memory beyond MaxBytes is what is in flight:
// ristretto's queue (up to 32 Ki Sets) and the Sets awaiting a retry.
//
// Counters: Items and Admissions come from ristretto's Metrics, which see
// every admission and every removal, Delete included; Bytes is the policy's
// own cost total; Rejections, Drops and Evictions are counted by Store from
// ristretto's OnReject and OnEvict callbacks and from its own retries.
package memstore

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/outpost-cdn/outpost/cache"
)

const (
	// defaultMeanEntryBytes is Options.MeanEntryBytes when it is zero.
	defaultMeanEntryBytes = 16 << 10
	// minCounters and maxCounters bound ristretto's NumCounters: a tiny
	// store still gets a usable frequency sketch, and a tiny
	// MeanEntryBytes cannot make a huge one (each counter costs ~3 bytes).
	minCounters = 1 << 10
	maxCounters = 1 << 28
	// bufferItems is ristretto's BufferItems: Get frequency updates are
	// handed to the policy in batches of this size.
	bufferItems = 64
	// maxOffers is how many times an entry is handed to ristretto before a
	// Set whose every attempt found ristretto's queue full counts as a drop.
	maxOffers = 4
	// rejectLogSize is how many rejected keys Rejected remembers.
	rejectLogSize = 4096
)

// ErrInvalidOptions is wrapped by the errors New returns for bad Options.
var ErrInvalidOptions = errors.New("memstore: invalid options")

// Options configure a Store.
type Options struct {
	// MaxBytes is the store's capacity: the most the costs
	// (cache.Entry.Size) of the entries it holds may add up to. It is
	// required and must be positive. An entry that costs more is never
	// stored and counts as a rejection.
	MaxBytes int64
	// MeanEntryBytes is the expected mean entry cost. Ristretto keeps
	// access-frequency counters for about ten times the number of entries
	// that fit, 10 × MaxBytes / MeanEntryBytes (at least 1024). If zero,
	// 16 KiB is used.
	MeanEntryBytes int64
	// Logger receives debug records about entries that were not stored.
	// If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Store is a cache.Store that keeps entries in memory in a ristretto cache,
// bridging ristretto's asynchronous Sets with a pending map (see the package
// documentation). It is safe for concurrent use, except that Close must not
// run concurrently with other methods; after Close, Get misses and Set and
// Delete do nothing.
type Store struct {
	// Read by every Get and Set, written once: kept apart from the
	// counters below that other cores write all the time.
	rc       *ristretto.Cache[string, *slot]
	maxBytes int64
	log      *slog.Logger
	onRemove atomic.Pointer[func(e *cache.Entry)] // see NotifyRemoval
	offer    func(s *Store, sl *slot, ttl time.Duration) bool
	seed     maphash.Seed
	closed   atomic.Bool // Close has begun: the methods do nothing
	_        [64]byte

	gen atomic.Uint64 // incremented whenever the sweeper settles Sets
	_   [56]byte
	seq atomic.Uint64 // numbers Sets and rejections
	_   [56]byte

	rejections atomic.Uint64
	drops      atomic.Uint64
	evictions  atomic.Uint64
	_          [40]byte

	shards  [numShards]shard
	rejects rejectLog

	sweepMu   sync.Mutex  // one sweep at a time
	wantSweep atomic.Bool // a wake-up is already queued
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}

	closeOnce sync.Once
	closing   atomic.Bool  // ristretto is being closed: callbacks are ignored
	statsMu   sync.RWMutex // Stats against Close
	final     cache.StoreStats
}

var (
	_ cache.Store             = (*Store)(nil)
	_ cache.RejectionReporter = (*Store)(nil)
	_ cache.RemovalNotifier   = (*Store)(nil)
)

// tuning holds settings that only tests and benchmarks change.
type tuning struct {
	// metrics turns on ristretto's Metrics; Items and Admissions need it.
	metrics bool
	// sweeper starts the background sweeper; without it tests settle
	// pending Sets by calling sync.
	sweeper bool
	// offer hands a slot to ristretto; nil means ristrettoOffer.
	offer func(s *Store, sl *slot, ttl time.Duration) bool
}

// New makes a store holding up to opts.MaxBytes of entries and starts its
// sweeper; Close stops it.
func New(opts Options) (*Store, error) {
	return newStore(opts, tuning{metrics: true, sweeper: true})
}

func newStore(opts Options, tu tuning) (*Store, error) {
	var errs []error
	if opts.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("%w: MaxBytes must be positive, got %d", ErrInvalidOptions, opts.MaxBytes))
	}
	if opts.MeanEntryBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MeanEntryBytes must not be negative, got %d", ErrInvalidOptions, opts.MeanEntryBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		maxBytes: opts.MaxBytes,
		log:      logger,
		offer:    tu.offer,
		seed:     maphash.MakeSeed(),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.offer == nil {
		s.offer = ristrettoOffer
	}
	for i := range s.shards {
		s.shards[i].pending = make(map[string]*slot)
	}
	s.rejects.init(rejectLogSize)
	rc, err := ristretto.NewCache(&ristretto.Config[string, *slot]{
		NumCounters:        numCounters(opts.MaxBytes, opts.MeanEntryBytes),
		MaxCost:            opts.MaxBytes,
		BufferItems:        bufferItems,
		Metrics:            tu.metrics,
		IgnoreInternalCost: true,
		OnEvict:            s.onEvict,
		OnReject:           s.onReject,
	})
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s.rc = rc
	if tu.sweeper {
		go s.run()
	} else {
		close(s.done)
	}
	return s, nil
}

// numCounters is ristretto's NumCounters for a capacity and a mean entry
// cost: ten counters per entry that fits, within [minCounters, maxCounters].
func numCounters(maxBytes, meanEntryBytes int64) int64 {
	if meanEntryBytes <= 0 {
		meanEntryBytes = defaultMeanEntryBytes
	}
	items := maxBytes / meanEntryBytes
	if items > maxCounters/10 {
		return maxCounters
	}
	return max(10*items, minCounters)
}

// ristrettoOffer hands sl to ristretto and reports whether ristretto took it
// (false: its queue was full).
func ristrettoOffer(s *Store, sl *slot, ttl time.Duration) bool {
	return s.rc.SetWithTTL(sl.e.Key, sl, sl.cost, ttl)
}

// Get returns the entry stored under key: the one ristretto holds or, if it
// holds none, the newest Set of key that ristretto has not settled yet.
// Entries whose ttl has run out are not returned.
func (s *Store) Get(key string) (*cache.Entry, bool) {
	if s.closed.Load() {
		return nil, false
	}
	gen := s.gen.Load()
	if sl, ok := s.rc.Get(key); ok {
		if e, ok := sl.entry(); ok {
			return e, true
		}
	}
	if e, ok := s.shardFor(key).get(key); ok {
		return e, true
	}
	// The sweeper may have settled key's Set, and so dropped it from
	// pending, between the two looks above: then ristretto has it now.
	if s.gen.Load() != gen {
		if sl, ok := s.rc.Get(key); ok {
			return sl.entry()
		}
	}
	return nil, false
}

// Set offers e, stored under e.Key, for ttl. A ttl of zero or less stores
// nothing; an entry that costs more than MaxBytes is rejected at once. The
// entry is visible to Get as soon as Set returns, unless the admission
// policy rejects it. Set never waits for ristretto.
func (s *Store) Set(e *cache.Entry, ttl time.Duration) {
	if e == nil || ttl <= 0 || s.closed.Load() {
		return
	}
	cost := e.Size()
	if cost > s.maxBytes {
		s.rejections.Add(1)
		s.rejects.mark(e.Key, s.seq.Add(1))
		s.log.Debug("memstore: entry larger than the store not stored",
			"key", e.Key, "bytes", cost, "max_bytes", s.maxBytes)
		s.removed(e)
		return
	}
	sl := &slot{e: e, cost: cost, deadline: time.Now().Add(ttl), offers: 1}
	sh := s.shardFor(e.Key)
	// The slot is offered under the shard's lock (ristretto's Set never
	// blocks), so that the sweeper and the callbacks only see offered
	// slots, and Sets of one key reach ristretto in the order they reach
	// pending.
	sh.mu.Lock()
	sl.seq = s.seq.Add(1)
	sh.push(sl)
	if s.offer(s, sl, ttl) {
		sl.state = stateOffered
		sh.offered = append(sh.offered, sl)
	} else {
		sl.state = stateDropped
		sh.retry = append(sh.retry, sl)
	}
	sh.mu.Unlock()
	s.kick()
}

// Delete removes the entry stored under key, and any Set of key that is
// still pending, so that none of them can reappear. A Set of key that runs
// concurrently with Delete may be lost.
func (s *Store) Delete(key string) {
	if s.closed.Load() {
		return
	}
	sh := s.shardFor(key)
	sh.mu.Lock()
	sh.kill(key)
	s.rejects.forget(key, ^uint64(0))
	sh.mu.Unlock()
	// Not under the lock: ristretto's Del waits for room in its queue, and
	// the callbacks that drain that queue take the lock.
	s.rc.Del(key)
}

// NotifyRemoval makes the store call f with each entry that leaves it on
// its own: evicted for room, expired, declined by the admission policy
// (larger than the store included), or dropped because ristretto's queue
// stayed full; not for Delete, nor for an entry replaced by a newer Set of
// its key. Ristretto keeps only hashes of keys, so this is how a caller
// keeps an index of the keys the store holds. f runs on the store's
// goroutines, or inside Set for an entry larger than the store, possibly
// under the store's locks: it must not block nor call the store. A later
// call replaces f; nil stops the notices.
func (s *Store) NotifyRemoval(f func(e *cache.Entry)) {
	if f == nil {
		s.onRemove.Store(nil)
		return
	}
	s.onRemove.Store(&f)
}

// removed reports e's removal to the NotifyRemoval callback, if any.
func (s *Store) removed(e *cache.Entry) {
	if f := s.onRemove.Load(); f != nil {
		(*f)(e)
	}
}

// Rejected reports whether the most recent settled Set of key was declined
// by the admission policy (or was larger than the store). An admission of a
// later Set of key, or a Delete, clears it. Only the last few thousand
// rejected keys are remembered.
func (s *Store) Rejected(key string) bool {
	return s.rejects.has(key)
}

// Stats returns the store's counters. Items and Bytes count what ristretto
// has admitted, not Sets still pending; they include entries whose ttl has
// run out but which ristretto's periodic cleanup has not removed yet (it
// ticks every 2.5 s and takes an entry out 0 to 7.5 s after its expiry),
// and that cleanup counts them as evictions. Admissions, Rejections and
// Drops each count settled Sets; Set of a key ristretto already holds
// replaces the entry without an admission.
func (s *Store) Stats() cache.StoreStats {
	s.statsMu.RLock()
	defer s.statsMu.RUnlock()
	if s.closing.Load() {
		return s.final
	}
	return s.stats()
}

// stats reads the counters of the open store. Keys evicted are read before
// keys added so that Items is never negative.
func (s *Store) stats() cache.StoreStats {
	evicted := s.rc.Metrics.KeysEvicted()
	added := s.rc.Metrics.KeysAdded()
	return cache.StoreStats{
		Items:      int64(added - evicted),
		Bytes:      s.rc.MaxCost() - s.rc.RemainingCost(),
		MaxBytes:   s.maxBytes,
		Admissions: added,
		Rejections: s.rejections.Load(),
		Drops:      s.drops.Load(),
		Evictions:  s.evictions.Load(),
	}
}

// Close stops the sweeper, lets ristretto apply the Sets it has queued, and
// closes it, releasing the entries. Stats keeps returning the counters as
// they were, with Items and Bytes zero. Close is idempotent.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		<-s.done
		s.rc.Wait()

		s.statsMu.Lock()
		s.final = s.stats()
		s.final.Items, s.final.Bytes = 0, 0
		// Closing makes ristretto call OnEvict for every entry it held.
		s.closing.Store(true)
		s.rc.Close()
		s.statsMu.Unlock()

		for i := range s.shards {
			s.shards[i].reset()
		}
	})
}

// onEvict is ristretto's OnEvict: it is called, on ristretto's goroutine,
// for entries evicted to make room and for expired entries removed by the
// TTL cleanup (not for Del). The cleanup can call it with Cost -1 for a key
// that was already gone; that is no eviction.
func (s *Store) onEvict(it *ristretto.Item[*slot]) {
	if s.closing.Load() || it.Cost < 0 {
		return
	}
	s.evictions.Add(1)
	if it.Value != nil {
		s.removed(it.Value.e)
	}
}

// onReject is ristretto's OnReject, called on ristretto's goroutine when its
// policy declines a queued Set. Besides a TinyLFU rejection, ristretto also
// calls it for a new-key Set that finds the key already admitted by an
// earlier queued Set (it then keeps the earlier value with the later cost).
// The key is in ristretto's map then, and never after a real rejection, so
// that case is told apart, and the Set is offered again, which replaces the
// earlier value.
func (s *Store) onReject(it *ristretto.Item[*slot]) {
	sl := it.Value
	if sl == nil || s.closing.Load() {
		return
	}
	if sl.dead.Load() {
		// Deleted after it was queued, so it is gone either way; the
		// Delete, not the policy, decided that (and may also be why the
		// policy still had the key: ristretto's Del takes the key out of
		// its map at once and out of its policy later).
		return
	}
	key := sl.e.Key
	_, held := s.rc.GetTTL(key)

	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	newest := sh.pending[key] == sl
	switch {
	case held && newest:
		sl.state = stateConflict
		sh.retry = append(sh.retry, sl)
		s.kick()
	case held:
		// A newer Set of the key decides what it holds.
		sl.state = stateRejected
		sh.unlink(sl)
	default:
		s.rejections.Add(1)
		s.removed(sl.e)
		sl.state = stateRejected
		if newest {
			sh.remove(sl)
			s.rejects.mark(key, sl.seq)
		}
		sh.unlink(sl)
	}
}

// shardFor returns the shard of the pending map that holds key.
func (s *Store) shardFor(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%numShards]
}
