package memstore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// numShards is how many independently locked parts the pending map has.
const numShards = 64

// shard is one part of the pending map: the Sets of the keys that hash to
// it that ristretto has not settled yet, and the sweeper's to-do lists.
type shard struct {
	mu sync.Mutex
	n  atomic.Int64 // len(pending), for get's lock-free fast path
	// pending holds, per key, the newest unsettled Set. Older unsettled
	// Sets of the key hang off it through slot.prev.
	pending map[string]*slot
	// offered are the slots queued in ristretto since the sweeper last
	// looked, in queue order; retry are the slots to offer again.
	offered, retry []*slot
	// The sweeper's snapshots of offered and retry, and the largest
	// len(pending) since pending was made; only the sweeper touches them.
	// Last, so that the next shard's mu and n do not share a cache line
	// with fields that Set writes.
	offeredSnap, retrySnap []*slot
	peak                   int
}

// slotState is where a Set is on its way into ristretto.
type slotState uint8

const (
	// stateOffered: ristretto queued it; its policy will admit or reject it.
	stateOffered slotState = iota + 1
	// stateDropped: ristretto's queue was full; the sweeper offers it again.
	stateDropped
	// stateConflict: ristretto declined it because an earlier Set of the
	// same key was applied first; the sweeper offers it again, which then
	// replaces the earlier value.
	stateConflict
	// stateRejected: the policy declined it, or a newer Set superseded it.
	stateRejected
	// stateSettled: ristretto applied it, or it was given up.
	stateSettled
)

// slot is one Set: the value stored in ristretto and in the pending map.
type slot struct {
	e        *cache.Entry
	seq      uint64
	cost     int64
	deadline time.Time   // when the entry's ttl runs out
	dead     atomic.Bool // deleted: Get must not return it
	// next is the Set of the same key that replaced this one in pending
	// before ristretto settled this one; Get follows it when ristretto
	// holds this one.
	next atomic.Pointer[slot]

	// Guarded by the shard's mu.
	prev   *slot // the older unsettled Set of the key that this one replaced
	state  slotState
	offers int
}

// entry returns the entry of sl, a slot ristretto holds or, if newer Sets of
// the same key replaced sl in pending before ristretto applied them, the
// entry of the newest of those.
func (sl *slot) entry() (*cache.Entry, bool) {
	n := sl.next.Load()
	if n == nil {
		// The common case: ristretto checked the ttl already.
		if sl.dead.Load() {
			return nil, false
		}
		return sl.e, true
	}
	for ; n != nil; n = n.next.Load() {
		sl = n
	}
	if sl.dead.Load() || !time.Now().Before(sl.deadline) {
		return nil, false
	}
	return sl.e, true
}

// get returns the entry of key's pending Set, if its ttl has not run out.
func (sh *shard) get(key string) (*cache.Entry, bool) {
	if sh.n.Load() == 0 {
		return nil, false
	}
	sh.mu.Lock()
	sl := sh.pending[key]
	sh.mu.Unlock()
	if sl == nil || !time.Now().Before(sl.deadline) {
		return nil, false
	}
	return sl.e, true
}

// push makes sl the newest pending Set of its key. The caller holds mu.
func (sh *shard) push(sl *slot) {
	key := sl.e.Key
	if old, ok := sh.pending[key]; ok {
		old.next.Store(sl)
		sl.prev = old
	} else {
		sh.n.Add(1)
	}
	sh.pending[key] = sl
	sh.peak = max(sh.peak, len(sh.pending))
}

// remove takes sl out of pending if it is its key's newest Set. The caller
// holds mu.
func (sh *shard) remove(sl *slot) bool {
	if sh.pending[sl.e.Key] != sl {
		return false
	}
	delete(sh.pending, sl.e.Key)
	sh.n.Add(-1)
	return true
}

// unlink takes a settled sl out of its key's chain of unsettled Sets. The
// caller holds mu.
func (sh *shard) unlink(sl *slot) {
	if n := sl.next.Load(); n != nil && n.prev == sl {
		n.prev = sl.prev
	}
	sl.prev = nil
}

// kill marks every unsettled Set of key dead and forgets the newest. The
// caller holds mu. Sets of a key are queued in ristretto in the order they
// were pushed, so once the newest is settled all are: those still unsettled
// are all on the chain.
func (sh *shard) kill(key string) {
	sl, ok := sh.pending[key]
	if !ok {
		return
	}
	for c := sl; c != nil; c = c.prev {
		c.dead.Store(true)
	}
	delete(sh.pending, key)
	sh.n.Add(-1)
}

// reset forgets everything, for Close.
func (sh *shard) reset() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.pending = make(map[string]*slot)
	sh.offered, sh.retry = nil, nil
	sh.n.Store(0)
}

// kick wakes the sweeper unless a wake-up is already queued. It takes no
// lock, so callers may hold one.
func (s *Store) kick() {
	if s.wantSweep.Load() || !s.wantSweep.CompareAndSwap(false, true) {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the sweeper goroutine.
func (s *Store) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		s.wantSweep.Store(false)
		if s.sweep() {
			s.kick()
		}
	}
}

// sweep settles the pending Sets: it waits until ristretto has applied
// every Set queued so far, forgets those that were admitted (onReject
// forgot the rejected ones), and offers the dropped ones again. It reports
// whether it left Sets of its own to settle: offered again, or to retry.
func (s *Store) sweep() (more bool) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()

	work := false
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.offered, sh.offeredSnap = sh.offeredSnap, sh.offered
		sh.retry, sh.retrySnap = sh.retrySnap, sh.retry
		work = work || len(sh.offeredSnap) > 0 || len(sh.retrySnap) > 0
		sh.mu.Unlock()
	}
	if !work {
		return false
	}
	// Every slot in the snapshots was queued before this: when Wait
	// returns, ristretto has admitted it or called onReject for it. Wait
	// also empties ristretto's queue, which gives the retries room.
	s.rc.Wait()

	now := time.Now()
	for i := range s.shards {
		sh := &s.shards[i]
		if len(sh.offeredSnap) == 0 && len(sh.retrySnap) == 0 {
			continue
		}
		sh.mu.Lock()
		settled := false
		for _, sl := range sh.offeredSnap {
			if sl.state != stateOffered {
				continue // rejected, or in conflict and on the retry list
			}
			sl.state = stateSettled
			if sh.remove(sl) {
				settled = true
				s.rejects.forget(sl.e.Key, sl.seq)
			}
			sh.unlink(sl)
		}
		if settled {
			// Under mu, so that a Get that missed sl in pending sees it
			// (see Get).
			s.gen.Add(1)
		}
		for _, sl := range sh.retrySnap {
			s.retry(sh, sl, now)
		}
		more = more || len(sh.offered) > 0 || len(sh.retry) > 0
		if len(sh.pending) == 0 && sh.peak > 1024 {
			// Maps do not shrink; let a burst's worth of buckets go.
			sh.pending = make(map[string]*slot)
			sh.peak = 0
		}
		sh.mu.Unlock()
		clear(sh.offeredSnap)
		sh.offeredSnap = sh.offeredSnap[:0]
		clear(sh.retrySnap)
		sh.retrySnap = sh.retrySnap[:0]
	}
	return more
}

// retry offers a dropped or conflicting Set to ristretto again, unless it
// has been superseded, deleted or has expired, or has had its offers. The
// caller holds sh.mu.
func (s *Store) retry(sh *shard, sl *slot, now time.Time) {
	key := sl.e.Key
	switch {
	case sh.pending[key] != sl:
		// Superseded or deleted; it never reached ristretto's map.
	case !now.Before(sl.deadline):
		sh.remove(sl)
		s.removed(sl.e)
	case sl.offers >= maxOffers:
		sh.remove(sl)
		s.drops.Add(1)
		s.removed(sl.e)
		s.rejects.forget(key, sl.seq)
		s.log.Debug("memstore: entry dropped, ristretto's queue stayed full",
			"key", key, "offers", sl.offers)
	default:
		sl.offers++
		if s.offer(s, sl, sl.deadline.Sub(now)) {
			sl.state = stateOffered
			sh.offered = append(sh.offered, sl)
		} else {
			sl.state = stateDropped
			sh.retry = append(sh.retry, sl)
		}
		return
	}
	sl.state = stateSettled
	sh.unlink(sl)
}

// sync settles every pending Set and waits until ristretto has applied
// everything queued so far. It is for tests, which have no Wait of their
// own.
func (s *Store) sync() {
	for s.sweep() {
	}
	s.rc.Wait()
}

// pendingLen counts the Sets not yet settled, for tests.
func (s *Store) pendingLen() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.pending) + len(sh.offered) + len(sh.retry)
		sh.mu.Unlock()
	}
	return n
}

// pendingSlot returns key's newest pending Set, for tests.
func (s *Store) pendingSlot(key string) *slot {
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.pending[key]
}
