package fill

import (
	"context"
	"sync"
	"sync/atomic"
)

// Budget bounds the bytes that flights (and anything else the owner lends
// it to: relays, buffered request bodies) hold in memory. Holders take
// bytes before they allocate them and give them back when they drop them;
// a flight that cannot take stops storing and relays at its readers' pace
// instead, and a relay waits for bytes to come back. A Budget is safe for
// concurrent use.
type Budget struct {
	limit  int64
	used   atomic.Int64
	peak   atomic.Int64  // the most used at once
	denied atomic.Uint64 // takes refused: flights turned into relays, relays that waited

	waiters atomic.Int32
	mu      sync.Mutex
	freed   chan struct{} // closed and replaced when bytes come back while someone waits
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, freed: make(chan struct{})}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used is the number of bytes taken and not yet given back.
func (b *Budget) Used() int64 { return b.used.Load() }

// Peak is the most bytes taken at once since the budget was made: what an
// operator sizes limits.inflight_bytes by.
func (b *Budget) Peak() int64 { return b.peak.Load() }

// Denied is the number of takes the budget refused (TryTake false, or a
// Take that had to wait).
func (b *Budget) Denied() uint64 { return b.denied.Load() }

// TryTake takes n bytes if the budget has them.
func (b *Budget) TryTake(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			b.denied.Add(1)
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			for p := b.peak.Load(); u+n > p && !b.peak.CompareAndSwap(p, u+n); p = b.peak.Load() {
			}
			return true
		}
	}
}

// Take waits until n bytes can be taken, or ctx is done.
func (b *Budget) Take(ctx context.Context, n int64) error {
	if b.TryTake(n) {
		return nil
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	for {
		b.mu.Lock()
		freed := b.freed
		b.mu.Unlock()
		// Checked after freed is read: bytes given back from now on close
		// it.
		if b.TryTake(n) {
			return nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Give returns n bytes taken before.
func (b *Budget) Give(n int64) {
	if n <= 0 {
		return
	}
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}
}

// Slots bounds a count of things, such as the flights that go on with no
// reader left (PoP-wide, or per service). It is safe for concurrent use.
type Slots struct {
	limit   int64
	used    atomic.Int64
	refused atomic.Uint64
}

// NewSlots returns limit slots; with limit 0 or less, none is ever free.
func NewSlots(limit int64) *Slots { return &Slots{limit: limit} }

// Acquire takes a slot if one is free.
func (s *Slots) Acquire() bool {
	if s.used.Add(1) > s.limit {
		s.used.Add(-1)
		s.refused.Add(1)
		return false
	}
	return true
}

// Release gives back a slot taken by Acquire.
func (s *Slots) Release() { s.used.Add(-1) }

// Used is the number of slots taken now.
func (s *Slots) Used() int64 { return s.used.Load() }

// Refused is the number of times Acquire found no slot free.
func (s *Slots) Refused() uint64 { return s.refused.Load() }
