// Package tiered puts a PoP's memory tier in front of its disk tier (one
// or more cache directories) behind the one cache.Store seam, so the PoP
// serves from both without knowing there are two.
//
// The algorithm:
//   - Get asks memory first. A memory hit tells the key's disk (Touch), so
//     that an object hot in memory is written to disk once it has been
//     asked for often enough (the disk's admission), and survives a
//     restart. A memory miss asks the key's disk; a disk hit is returned
//     at once (its body is a window of the file, sent with sendfile); on
//     its second disk hit it is queued for promotion: a bounded background
//     worker copies it into memory (Options.Promote), so a hot object is
//     soon served from RAM. Promotions are paced (PromoteRate, by default
//     a tenth of the memory tier a second): when the hot set is larger
//     than memory, copying every disk hit in would only churn memory and
//     burn CPU, and the page cache serves those hits well anyway.
//   - Set offers the entry to memory and to the key's disk, whose
//     admission policy decides whether it is written.
//   - Delete removes the key from memory and from every disk (a purge must
//     reach a copy left on a disk that was out of service).
//   - Each key belongs to one disk, chosen by weighted rendezvous hashing
//     over the disks in service (weights are their capacities): adding or
//     losing a disk moves only that disk's share of keys.
//   - A removal is reported (cache.RemovalNotifier) only when the key has
//     left every tier: memory evicting what a disk still holds, or a disk
//     evicting what memory still holds, is not a removal from the cache.
//
// Hits are counted per tier (Stats, TierStats) so the PoP can say which tier
// answered; entries a disk returns have cache.Entry.OnDisk set.
package tiered

import (
	"errors"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// Disk is what a disk tier offers (cache/diskstore's Store is one).
type Disk interface {
	cache.Store
	cache.RemovalNotifier
	cache.Persistent
	// Touch counts a use of e, served from memory: the disk writes it once
	// its admission policy is satisfied. It must be cheap.
	Touch(e *cache.Entry, ttl time.Duration)
	// Contains reports whether the disk holds key (its index; no I/O).
	Contains(key string) bool
	// Healthy is false once the disk is out of service.
	Healthy() bool
}

// Options configure a Store.
type Options struct {
	// Memory is the memory tier. It must implement cache.RemovalNotifier.
	Memory cache.Store
	// Disks are the disk tiers, Weights their relative shares of keys (their
	// capacities); a missing or non-positive weight counts as 1.
	Disks   []Disk
	Weights []int64
	// TTL is how long, from now, e should be kept: for Touch and for
	// promotion, which have no ttl of their own. Required with Disks.
	TTL func(e *cache.Entry) time.Duration
	// Promote makes the memory copy of an entry a disk returned (its body
	// read into memory); nil or a nil result promotes nothing.
	Promote func(e *cache.Entry) *cache.Entry
	// PromoteQueue bounds the disk hits waiting for promotion; beyond it a
	// hit is not promoted (it will be on its next hit). If zero,
	// DefaultPromoteQueue.
	PromoteQueue int
	// PromoteRate bounds the body bytes promoted per second, on average:
	// a token bucket holding a second's worth, where a body larger than
	// that waits for a full bucket and leaves it in debt. If zero, a tenth
	// of the memory tier's capacity; negative promotes without a bound.
	PromoteRate int64
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
}

// DefaultPromoteQueue is the default bound of the promotion queue.
const DefaultPromoteQueue = 256

// Store is a memory tier in front of disk tiers. It is safe for concurrent
// use.
type Store struct {
	mem     cache.Store
	disks   []Disk
	weights []float64
	seeds   []maphash.Seed
	ttl     func(*cache.Entry) time.Duration
	promote func(*cache.Entry) *cache.Entry
	log     *slog.Logger

	queue    chan *cache.Entry
	queued   sync.Map // key → struct{}: queued for promotion
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool
	onRemove atomic.Pointer[func(*cache.Entry)]

	memHits, diskHits, misses atomic.Uint64
	promoted, promoteDrops    atomic.Uint64

	// pace is the promotions' token bucket (bytes); once holds the keys
	// seen on disk once since it was last cleared (bounded).
	paceMu     sync.Mutex
	rate       float64
	tokens     float64
	refilled   time.Time
	once       map[string]struct{}
	promoteCut atomic.Uint64 // promotions skipped by the pace
}

// maxOnce bounds the keys remembered as seen on disk once.
const maxOnce = 1 << 16

var (
	_ cache.Store             = (*Store)(nil)
	_ cache.RemovalNotifier   = (*Store)(nil)
	_ cache.Persistent        = (*Store)(nil)
	_ cache.RejectionReporter = (*Store)(nil)
)

// New builds the tiered store and starts its promotion worker.
func New(opts Options) (*Store, error) {
	memN, ok := opts.Memory.(cache.RemovalNotifier)
	if !ok || opts.Memory == nil {
		return nil, errors.New("tiered: the memory tier must report its removals (cache.RemovalNotifier)")
	}
	if len(opts.Disks) > 0 && opts.TTL == nil {
		return nil, errors.New("tiered: Options.TTL is required with disks")
	}
	s := &Store{
		mem:     opts.Memory,
		disks:   opts.Disks,
		ttl:     opts.TTL,
		promote: opts.Promote,
		log:     opts.Logger,
		stop:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	for i := range opts.Disks {
		w := float64(1)
		if i < len(opts.Weights) && opts.Weights[i] > 0 {
			w = float64(opts.Weights[i])
		}
		s.weights = append(s.weights, w)
		s.seeds = append(s.seeds, maphash.MakeSeed())
	}
	n := opts.PromoteQueue
	if n <= 0 {
		n = DefaultPromoteQueue
	}
	s.queue = make(chan *cache.Entry, n)
	switch {
	case opts.PromoteRate > 0:
		s.rate = float64(opts.PromoteRate)
	case opts.PromoteRate == 0:
		s.rate = float64(max(opts.Memory.Stats().MaxBytes/10, 1))
	}
	s.tokens, s.refilled, s.once = s.rate, time.Now(), make(map[string]struct{})
	memN.NotifyRemoval(s.memRemoved)
	for _, d := range s.disks {
		d.NotifyRemoval(s.diskRemoved)
	}
	if s.promote != nil && len(s.disks) > 0 {
		s.wg.Add(1)
		go s.promoter()
	}
	return s, nil
}

// diskFor returns the disk key belongs to among the disks in service, or
// nil when there is none.
func (s *Store) diskFor(key string) Disk {
	switch len(s.disks) {
	case 0:
		return nil
	case 1:
		if s.disks[0].Healthy() {
			return s.disks[0]
		}
		return nil
	}
	// Weighted rendezvous hashing: the disk with the highest
	// -w / ln(u), u the key's hash for that disk in (0, 1).
	var best Disk
	bestScore := math.Inf(-1)
	for i, d := range s.disks {
		if !d.Healthy() {
			continue
		}
		h := maphash.String(s.seeds[i], key)
		u := (float64(h>>11) + 0.5) / (1 << 53)
		if score := -s.weights[i] / math.Log(u); score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}

// Get returns the entry stored under key, from memory or else from its
// disk.
func (s *Store) Get(key string) (*cache.Entry, bool) {
	if e, ok := s.mem.Get(key); ok {
		s.memHits.Add(1)
		if d := s.diskFor(key); d != nil {
			d.Touch(e, s.ttl(e))
		}
		return e, true
	}
	d := s.diskFor(key)
	if d == nil {
		s.misses.Add(1)
		return nil, false
	}
	e, ok := d.Get(key)
	if !ok {
		s.misses.Add(1)
		return nil, false
	}
	s.diskHits.Add(1)
	s.queuePromotion(e)
	return e, true
}

// admitPromotion decides whether a disk hit on e is promoted now: its
// second disk hit, within the pace. The pace is asked first: while it has
// no room for e (the usual case when the hot set outgrows memory), a disk
// hit costs a lock and no map operation, and does not count as a first hit.
func (s *Store) admitPromotion(e *cache.Entry) bool {
	s.paceMu.Lock()
	defer s.paceMu.Unlock()
	size := float64(e.BodySize())
	if s.rate > 0 {
		now := time.Now()
		s.tokens = min(s.rate, s.tokens+s.rate*now.Sub(s.refilled).Seconds())
		s.refilled = now
		if s.tokens < min(size, s.rate) {
			s.promoteCut.Add(1)
			return false
		}
	}
	if _, seen := s.once[e.Key]; !seen {
		if len(s.once) >= maxOnce {
			clear(s.once)
		}
		s.once[e.Key] = struct{}{}
		return false
	}
	if s.rate > 0 {
		s.tokens -= size
	}
	delete(s.once, e.Key)
	return true
}

// queuePromotion offers e to the promotion worker without blocking.
func (s *Store) queuePromotion(e *cache.Entry) {
	if s.promote == nil || s.closed.Load() || !s.admitPromotion(e) {
		return
	}
	if _, dup := s.queued.LoadOrStore(e.Key, struct{}{}); dup {
		return
	}
	select {
	case s.queue <- e:
	default:
		s.queued.Delete(e.Key)
		s.promoteDrops.Add(1)
	}
}

// promoter copies queued disk hits into memory.
func (s *Store) promoter() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case e := <-s.queue:
			s.queued.Delete(e.Key)
			ttl := s.ttl(e)
			if ttl <= 0 {
				continue
			}
			if c := s.promote(e); c != nil {
				s.mem.Set(c, ttl)
				s.promoted.Add(1)
			}
		}
	}
}

// Set offers e to memory and to its disk.
func (s *Store) Set(e *cache.Entry, ttl time.Duration) {
	s.mem.Set(e, ttl)
	if d := s.diskFor(e.Key); d != nil {
		d.Set(e, ttl)
	}
}

// Delete removes key from memory and from every disk.
func (s *Store) Delete(key string) {
	s.mem.Delete(key)
	for _, d := range s.disks {
		d.Delete(key)
	}
}

// NotifyRemoval implements cache.RemovalNotifier: f hears of an entry only
// once no tier holds its key.
func (s *Store) NotifyRemoval(f func(e *cache.Entry)) {
	if f == nil {
		s.onRemove.Store(nil)
		return
	}
	s.onRemove.Store(&f)
}

func (s *Store) memRemoved(e *cache.Entry) {
	for _, d := range s.disks {
		if d.Contains(e.Key) {
			return
		}
	}
	s.report(e)
}

func (s *Store) diskRemoved(e *cache.Entry) {
	if _, ok := s.mem.Get(e.Key); ok {
		return
	}
	s.report(e)
}

func (s *Store) report(e *cache.Entry) {
	if f := s.onRemove.Load(); f != nil {
		(*f)(e)
	}
}

// NotifyLoad implements cache.Persistent for every disk.
func (s *Store) NotifyLoad(keep func(e *cache.Entry) bool) {
	for _, d := range s.disks {
		d.NotifyLoad(keep)
	}
}

// Rejected reports the memory tier's admission decision.
func (s *Store) Rejected(key string) bool {
	if r, ok := s.mem.(cache.RejectionReporter); ok {
		return r.Rejected(key)
	}
	return false
}

// Stats adds up the tiers' counters. An entry in memory and on disk counts
// in both.
func (s *Store) Stats() cache.StoreStats {
	st := s.mem.Stats()
	for _, d := range s.disks {
		ds := d.Stats()
		st.Items += ds.Items
		st.Bytes += ds.Bytes
		st.MaxBytes += ds.MaxBytes
		st.Admissions += ds.Admissions
		st.Rejections += ds.Rejections
		st.Drops += ds.Drops
		st.Evictions += ds.Evictions
	}
	return st
}

// TierStats are the figures of the tiers.
type TierStats struct {
	MemoryHits, DiskHits, Misses uint64 // Gets answered by each tier, and by none
	Promoted, PromoteDrops       uint64 // disk hits copied to memory; promotions dropped (queue full)
	PromotePaced                 uint64 // disk hits not considered for promotion, to keep within PromoteRate
	Memory                       cache.StoreStats
	Disks                        []cache.StoreStats
}

// Tiers returns the figures of each tier.
func (s *Store) Tiers() TierStats {
	t := TierStats{
		MemoryHits: s.memHits.Load(), DiskHits: s.diskHits.Load(), Misses: s.misses.Load(),
		Promoted: s.promoted.Load(), PromoteDrops: s.promoteDrops.Load(), PromotePaced: s.promoteCut.Load(),
		Memory: s.mem.Stats(),
	}
	for _, d := range s.disks {
		t.Disks = append(t.Disks, d.Stats())
	}
	return t
}

// Close stops the promotion worker and closes every tier.
func (s *Store) Close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	close(s.stop)
	s.wg.Wait()
	s.mem.Close()
	for _, d := range s.disks {
		d.Close()
	}
}
