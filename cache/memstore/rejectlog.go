package memstore

import (
	"sync"
	"sync/atomic"
)

// rejectLog remembers the keys whose latest settled Set was rejected, so
// that Store.Rejected can answer. It holds at most len(ring) keys: marking a
// new key when it is full forgets the key marked longest ago.
type rejectLog struct {
	mu    sync.Mutex
	n     atomic.Int64 // len(marks), for has's lock-free fast path
	marks map[string]rejectMark
	ring  []string // keys in the order they were marked
	next  int      // where the next key goes in ring
	full  bool     // ring has wrapped: every element is in use
}

// rejectMark is the Set that was rejected (its sequence number) and where
// its key sits in the ring.
type rejectMark struct {
	seq uint64
	pos int
}

func (r *rejectLog) init(size int) {
	r.marks = make(map[string]rejectMark, size)
	r.ring = make([]string, size)
}

// mark records that the Set of key numbered seq was rejected.
func (r *rejectLog) mark(key string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.marks[key]; ok {
		m.seq = max(m.seq, seq)
		r.marks[key] = m
		return
	}
	pos := r.next
	if r.full {
		// The ring slot may name a key that was forgotten, or forgotten
		// and marked again elsewhere in the ring: only its own mark goes.
		if old := r.ring[pos]; r.marks[old].pos == pos {
			delete(r.marks, old)
		}
	}
	r.ring[pos] = key
	r.marks[key] = rejectMark{seq: seq, pos: pos}
	r.next = (pos + 1) % len(r.ring)
	r.full = r.full || r.next == 0
	r.n.Store(int64(len(r.marks)))
}

// forget clears key's mark unless it was made by a Set numbered after seq.
func (r *rejectLog) forget(key string, seq uint64) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.marks[key]; ok && m.seq < seq {
		delete(r.marks, key)
		r.n.Store(int64(len(r.marks)))
	}
}

// has reports whether key is marked.
func (r *rejectLog) has(key string) bool {
	if r.n.Load() == 0 {
		return false
	}
	r.mu.Lock()
	_, ok := r.marks[key]
	r.mu.Unlock()
	return ok
}
