package memstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// TestNotifyRemoval checks that every entry that leaves the store on its
// own is reported, so a caller's key index matches what the store holds.
func TestNotifyRemoval(t *testing.T) {
	const (
		maxBytes = 64 << 10
		cost     = 1 << 10
		n        = 1000
	)
	var mu sync.Mutex
	removed := map[string]int{}
	s := newTest(t, Options{MaxBytes: maxBytes, MeanEntryBytes: cost}, withSweeper)
	s.NotifyRemoval(func(e *cache.Entry) {
		mu.Lock()
		removed[e.Key]++
		mu.Unlock()
	})
	for i := range n {
		s.Set(entrySized(fmt.Sprintf("k%d", i), cost), time.Hour)
	}
	s.Set(entrySized("huge", 2*maxBytes), time.Hour) // larger than the store
	s.sync()
	mu.Lock()
	defer mu.Unlock()
	if removed["huge"] != 1 {
		t.Errorf("oversize entry reported %d times, want 1", removed["huge"])
	}
	// Every key is either held or was reported removed.
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		_, held := s.Get(key)
		if held == (removed[key] > 0) {
			t.Errorf("%s: held %v, reported removed %d times", key, held, removed[key])
		}
	}
}
