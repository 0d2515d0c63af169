package memstore

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/cache"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTest makes a store that is closed when the test ends. Without the
// background sweeper, pending Sets stay pending until the test calls sync.
func newTest(t testing.TB, opts Options, tu tuning) *Store {
	t.Helper()
	tu.metrics = true
	s, err := newStore(opts, tu)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var (
	withSweeper    = tuning{sweeper: true}
	withoutSweeper = tuning{}
)

// entrySized returns an entry for key whose Size is exactly size.
func entrySized(key string, size int64) *cache.Entry {
	e := &cache.Entry{
		Key:    key,
		Status: http.StatusOK,
		Header: http.Header{"Content-Type": {"text/plain"}},
	}
	e.Body = make([]byte, size-e.Size())
	return e
}

// failOffers makes ristretto's queue look full for the first n offers of
// every Set.
func failOffers(n int) func(*Store, *slot, time.Duration) bool {
	return func(s *Store, sl *slot, ttl time.Duration) bool {
		if sl.offers <= n {
			return false
		}
		return ristrettoOffer(s, sl, ttl)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func mustGet(t *testing.T, s *Store, key string, want *cache.Entry) {
	t.Helper()
	got, ok := s.Get(key)
	if !ok {
		t.Fatalf("Get(%q): miss, want hit", key)
	}
	if got != want {
		t.Fatalf("Get(%q): got another entry than the one Set", key)
	}
}

func mustMiss(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, ok := s.Get(key); ok {
		t.Fatalf("Get(%q): hit, want miss", key)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantErrs int
	}{
		{"valid", Options{MaxBytes: 1 << 20}, 0},
		{"valid with mean", Options{MaxBytes: 1 << 20, MeanEntryBytes: 1 << 10}, 0},
		{"zero MaxBytes", Options{}, 1},
		{"negative MaxBytes", Options{MaxBytes: -1}, 1},
		{"negative MeanEntryBytes", Options{MaxBytes: 1, MeanEntryBytes: -1}, 1},
		{"every problem reported", Options{MaxBytes: -1, MeanEntryBytes: -1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if tt.wantErrs == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				s.Close()
				return
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("New: error %v, want ErrInvalidOptions", err)
			}
			if n := strings.Count(err.Error(), ErrInvalidOptions.Error()); n != tt.wantErrs {
				t.Errorf("New: %d problems reported, want %d: %v", n, tt.wantErrs, err)
			}
		})
	}
}

func TestNumCounters(t *testing.T) {
	tests := []struct {
		name           string
		maxBytes, mean int64
		want           int64
	}{
		{"default mean", 1 << 30, 0, 10 * (1 << 30) / defaultMeanEntryBytes},
		{"explicit mean", 4 << 30, 60 << 10, 10 * ((4 << 30) / (60 << 10))},
		{"tiny store gets the minimum", 1000, 0, minCounters},
		{"tiny mean is capped", 1 << 62, 1, maxCounters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := numCounters(tt.maxBytes, tt.mean); got != tt.want {
				t.Errorf("numCounters(%d, %d) = %d, want %d", tt.maxBytes, tt.mean, got, tt.want)
			}
		})
	}
}

// TestSetThenGet checks the bridge: a Get right after Set finds the entry,
// whether or not ristretto has applied the Set, or even queued it.
func TestSetThenGet(t *testing.T) {
	tests := []struct {
		name  string
		offer func(*Store, *slot, time.Duration) bool
	}{
		{"ristretto queues every Set", nil},
		{"ristretto's queue is full at first", failOffers(1)},
		{"ristretto's queue is full three times", failOffers(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 64 << 20}, tuning{sweeper: true, offer: tt.offer})
			const workers, each = 8, 500
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						key := fmt.Sprintf("https://example.test/%d/%d", w, i)
						e := entrySized(key, 1<<10)
						s.Set(e, time.Hour)
						if got, ok := s.Get(key); !ok || got != e {
							errs <- fmt.Errorf("Get(%q) right after Set: ok=%v, same entry=%v", key, ok, got == e)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			s.sync()
			st := s.Stats()
			const n = workers * each
			if st.Admissions != n || st.Items != n || st.Rejections != 0 || st.Drops != 0 {
				t.Errorf("Stats = %+v, want %d admitted and held, nothing rejected or dropped", st, n)
			}
			if st.Bytes != n<<10 {
				t.Errorf("Bytes = %d, want %d", st.Bytes, n<<10)
			}
			if left := s.pendingLen(); left != 0 {
				t.Errorf("after sync: %d Sets pending, want 0", left)
			}
		})
	}
}

// TestReplace checks that a second Set of a key queued before ristretto
// applied the first wins, right away and once settled: ristretto itself
// would keep the first value.
func TestReplace(t *testing.T) {
	for _, tu := range []tuning{withSweeper, withoutSweeper} {
		t.Run(fmt.Sprintf("sweeper=%v", tu.sweeper), func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 64 << 20}, tu)
			for i := range 200 {
				key := fmt.Sprintf("k%d", i)
				v1, v2 := entrySized(key, 500), entrySized(key, 600)
				s.Set(v1, time.Hour)
				s.Set(v2, time.Hour)
				mustGet(t, s, key, v2)
			}
			s.sync()
			for i := range 200 {
				key := fmt.Sprintf("k%d", i)
				got, ok := s.Get(key)
				if !ok || got.Size() != 600 {
					t.Fatalf("Get(%q) after sync: ok=%v, want the second entry", key, ok)
				}
				if sl, ok := s.rc.Get(key); !ok || sl.e != got {
					t.Fatalf("ristretto holds another entry than the second for %q", key)
				}
			}
			if st := s.Stats(); st.Items != 200 || st.Bytes != 200*600 || st.Rejections != 0 {
				t.Errorf("Stats = %+v, want 200 items of 600 bytes, no rejections", st)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	tests := []struct {
		name string
		tu   tuning
	}{
		{"held by ristretto", withSweeper},
		// ristretto never takes the Set and nothing sweeps: the pending
		// map alone must honour the ttl.
		{"pending only", tuning{offer: failOffers(1 << 30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 1 << 20}, tt.tu)
			e := entrySized("k", 1000)
			start := time.Now()
			s.Set(e, ttl)
			// Served until its ttl: a miss counts only if the ttl has
			// not run out since start, which is before the Set (a loaded
			// machine can stall this goroutine past any ttl).
			if got, ok := s.Get("k"); !ok && time.Since(start) < ttl {
				t.Fatalf("Get right after Set: miss %v into a ttl of %v", time.Since(start), ttl)
			} else if ok && got != e {
				t.Fatal("Get right after Set: another entry than the one Set")
			}
			waitFor(t, 5*time.Second, "entry still served after its ttl", func() bool {
				_, ok := s.Get("k")
				return !ok
			})
			if elapsed := time.Since(start); elapsed < ttl {
				t.Errorf("entry gone after %v, before its ttl %v", elapsed, ttl)
			}
		})
	}
}

// TestExpiredLeaveStats checks that ristretto's TTL cleanup, which runs
// every few seconds, takes expired entries out of Items and Bytes and counts
// them as evictions.
func TestExpiredLeaveStats(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for ristretto's TTL cleanup (up to ~10s)")
	}
	t.Parallel()
	s := newTest(t, Options{MaxBytes: 1 << 20}, withSweeper)
	const ttl = time.Second
	start := time.Now()
	for i := range 5 {
		s.Set(entrySized(fmt.Sprintf("k%d", i), 1000), ttl)
	}
	s.sync()
	// Counted until the cleanup takes them, which it may do from the
	// moment they expire (its first tick past a 5 s boundary after
	// that): checked only while none can have expired.
	if st := s.Stats(); (st.Items != 5 || st.Bytes != 5000) && time.Since(start) < ttl {
		t.Fatalf("Stats = %+v, want 5 items, 5000 bytes", st)
	}
	waitFor(t, 20*time.Second, "expired entries still counted", func() bool {
		st := s.Stats()
		return st.Items == 0 && st.Bytes == 0 && st.Evictions == 5
	})
}

func TestNonPositiveTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		t.Run(ttl.String(), func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 1 << 20}, withSweeper)
			s.Set(entrySized("k", 1000), ttl)
			mustMiss(t, s, "k")
			s.sync()
			mustMiss(t, s, "k")
			if st := s.Stats(); st != (cache.StoreStats{MaxBytes: 1 << 20}) {
				t.Errorf("Stats = %+v, want nothing counted", st)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name string
		tu   tuning
		// set runs before Delete("k"); it returns the entry expected
		// after the Delete, if any.
		set func(s *Store) *cache.Entry
	}{
		{"stored", withSweeper, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			s.sync()
			return nil
		}},
		{"pending, before the sweep", withoutSweeper, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			return nil
		}},
		{"pending and replaced, before the sweep", withoutSweeper, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			s.Set(entrySized("k", 1100), time.Hour)
			return nil
		}},
		{"stored, then replaced before the sweep", withoutSweeper, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			s.sync()
			s.Set(entrySized("k", 1100), time.Hour)
			return nil
		}},
		{"pending, not yet taken by ristretto", tuning{offer: failOffers(1)}, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			return nil
		}},
		{"other keys untouched", withSweeper, func(s *Store) *cache.Entry {
			s.Set(entrySized("k", 1000), time.Hour)
			s.Set(entrySized("other", 1000), time.Hour)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 1 << 20}, tt.tu)
			tt.set(s)
			_, hadOther := s.Get("other")
			s.Delete("k")
			mustMiss(t, s, "k")
			s.sync()
			mustMiss(t, s, "k")
			st := s.Stats()
			wantItems := int64(0)
			if hadOther {
				wantItems = 1
				if _, ok := s.Get("other"); !ok {
					t.Error("Delete(k) removed other")
				}
			}
			if st.Items != wantItems || st.Drops != 0 || st.Evictions != 0 {
				t.Errorf("Stats = %+v, want %d items, no drops or evictions", st, wantItems)
			}
			// A Set after the Delete is stored as usual.
			e := entrySized("k", 1200)
			s.Set(e, time.Hour)
			mustGet(t, s, "k", e)
			s.sync()
			mustGet(t, s, "k", e)
		})
	}
}

// TestDeleteNeverResurrects runs Set and Delete back to back, so that the
// Delete lands at every stage of the Set's way into ristretto.
func TestDeleteNeverResurrects(t *testing.T) {
	s := newTest(t, Options{MaxBytes: 1 << 20}, withSweeper)
	for i := range 2000 {
		key := fmt.Sprintf("k%d", i%7)
		s.Set(entrySized(key, 1000), time.Hour)
		if i%3 == 0 {
			s.Set(entrySized(key, 1000), time.Hour)
		}
		s.Delete(key)
		mustMiss(t, s, key)
	}
	s.sync()
	for i := range 7 {
		mustMiss(t, s, fmt.Sprintf("k%d", i))
	}
	if st := s.Stats(); st.Items != 0 || st.Bytes != 0 {
		t.Errorf("Stats = %+v, want empty", st)
	}
}

func TestCapacity(t *testing.T) {
	const (
		maxBytes = 64 << 10
		cost     = 1 << 10
		n        = 1000
	)
	s := newTest(t, Options{MaxBytes: maxBytes, MeanEntryBytes: cost}, withSweeper)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		s.Set(entrySized(key, cost), time.Hour)
		// Make every tenth key popular, so that admission has something
		// to defend.
		if i%10 == 0 {
			for range 20 {
				s.Get(key)
			}
		}
	}
	s.sync()
	st := s.Stats()
	t.Logf("Stats = %+v", st)
	if st.Bytes > maxBytes || st.Bytes <= 0 {
		t.Errorf("Bytes = %d, want in (0, %d]", st.Bytes, maxBytes)
	}
	if st.Evictions+st.Rejections == 0 {
		t.Error("no evictions or rejections after filling 15x the capacity")
	}
	if got := st.Admissions + st.Rejections + st.Drops; got != n {
		t.Errorf("admissions+rejections+drops = %d, want one per Set, %d", got, n)
	}
	if st.Items != int64(st.Admissions)-int64(st.Evictions) {
		t.Errorf("Items = %d, want admissions-evictions = %d", st.Items, st.Admissions-st.Evictions)
	}
	if st.Bytes != st.Items*cost {
		t.Errorf("Bytes = %d, want Items*cost = %d", st.Bytes, st.Items*cost)
	}
	var hits int64
	for i := range n {
		if _, ok := s.Get(fmt.Sprintf("k%d", i)); ok {
			hits++
		}
	}
	if hits != st.Items {
		t.Errorf("%d keys found, want Items = %d", hits, st.Items)
	}
}

// TestRejectedByAdmission fills the store with popular entries, then offers
// a new one, which TinyLFU must reject: its frequency (zero) cannot beat the
// sampled victims'.
func TestRejectedByAdmission(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race ristretto records no Get frequencies, so TinyLFU cannot reject; TestOnReject covers the bookkeeping")
	}
	const (
		cost = 1000
		hot  = 10
	)
	s := newTest(t, Options{MaxBytes: hot * cost}, withSweeper)
	hotKey := func(i int) string { return fmt.Sprintf("hot%d", i) }

	var cold string
	waitFor(t, 10*time.Second, "no new entry rejected", func() bool {
		// Make sure every popular entry is held and popular: ristretto
		// counts Get frequencies in batches, asynchronously.
		for i := range hot {
			if _, ok := s.Get(hotKey(i)); !ok {
				s.Set(entrySized(hotKey(i), cost), time.Hour)
			}
		}
		s.sync()
		for range 300 {
			for i := range hot {
				s.Get(hotKey(i))
			}
		}
		if cold != "" {
			s.Delete(cold) // admitted last round: make room again
			s.sync()
		}
		cold = fmt.Sprintf("cold-%d", time.Now().UnixNano())
		s.Set(entrySized(cold, cost), time.Hour)
		s.sync()
		return s.Rejected(cold)
	})

	mustMiss(t, s, cold)
	if st := s.Stats(); st.Rejections == 0 {
		t.Errorf("Stats = %+v, want a rejection counted", st)
	}
	if s.Rejected(hotKey(0)) {
		t.Error("Rejected(hot0) = true for an admitted key")
	}

	// Once there is room, the key is admitted and no longer reported.
	s.Delete(hotKey(0))
	s.sync()
	e := entrySized(cold, cost)
	s.Set(e, time.Hour)
	s.sync()
	mustGet(t, s, cold, e)
	if s.Rejected(cold) {
		t.Error("Rejected stays true after the key was admitted")
	}
}

// TestTooLarge checks an entry larger than the whole store: ristretto would
// reject it silently; Store rejects it at once and counts it.
func TestTooLarge(t *testing.T) {
	const maxBytes = 4096
	tests := []struct {
		name       string
		size       int64
		wantStored bool
	}{
		{"exactly the capacity", maxBytes, true},
		{"one byte more", maxBytes + 1, false},
		{"far larger", 100 * maxBytes, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: maxBytes}, withSweeper)
			e := entrySized("k", tt.size)
			s.Set(e, time.Hour)
			if tt.wantStored {
				mustGet(t, s, "k", e)
			} else {
				mustMiss(t, s, "k")
			}
			if got := s.Rejected("k"); got == tt.wantStored {
				t.Errorf("Rejected = %v right after Set", got)
			}
			s.sync()
			st := s.Stats()
			want := cache.StoreStats{MaxBytes: maxBytes, Rejections: 1}
			if tt.wantStored {
				want = cache.StoreStats{Items: 1, Bytes: maxBytes, MaxBytes: maxBytes, Admissions: 1}
			}
			if st != want {
				t.Errorf("Stats = %+v, want %+v", st, want)
			}
		})
	}
}

// TestDrops makes ristretto's queue look full: the entry stays served from
// the pending map while the sweeper offers it again, and counts as a drop
// only when every offer failed.
func TestDrops(t *testing.T) {
	tests := []struct {
		name       string
		fail       int
		wantStored bool
	}{
		{"taken on the last offer", maxOffers - 1, true},
		{"never taken", maxOffers, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{MaxBytes: 1 << 20}, tuning{offer: failOffers(tt.fail)})
			e := entrySized("k", 1000)
			s.Set(e, time.Hour)
			mustGet(t, s, "k", e)
			s.sync()
			want := cache.StoreStats{MaxBytes: 1 << 20, Drops: 1}
			if tt.wantStored {
				mustGet(t, s, "k", e)
				want = cache.StoreStats{Items: 1, Bytes: 1000, MaxBytes: 1 << 20, Admissions: 1}
			} else {
				mustMiss(t, s, "k")
			}
			if st := s.Stats(); st != want {
				t.Errorf("Stats = %+v, want %+v", st, want)
			}
			if s.Rejected("k") {
				t.Error("Rejected = true for a dropped, not rejected, Set")
			}
		})
	}
}

// TestOnReject calls the OnReject callback the way ristretto's policy
// goroutine does, for each kind of Set it can decline.
func TestOnReject(t *testing.T) {
	tests := []struct {
		name string
		// setup Sets entries and returns the slot to reject and the
		// entry Get must return afterwards (nil: a miss).
		setup          func(s *Store, queueFull *atomic.Bool) (*slot, *cache.Entry)
		wantRejections uint64
		wantRejected   bool
	}{
		{"newest Set of a new key", func(s *Store, _ *atomic.Bool) (*slot, *cache.Entry) {
			s.Set(entrySized("k", 1000), time.Hour)
			return s.pendingSlot("k"), nil
		}, 1, true},
		{"older Set, replaced by a newer one", func(s *Store, _ *atomic.Bool) (*slot, *cache.Entry) {
			s.Set(entrySized("k", 1000), time.Hour)
			old := s.pendingSlot("k")
			e := entrySized("k", 1100)
			s.Set(e, time.Hour)
			return old, e
		}, 1, false},
		{"Set deleted after it was queued", func(s *Store, _ *atomic.Bool) (*slot, *cache.Entry) {
			s.Set(entrySized("k", 1000), time.Hour)
			sl := s.pendingSlot("k")
			s.Delete("k")
			return sl, nil
		}, 0, false},
		{"key already admitted by an earlier queued Set", func(s *Store, queueFull *atomic.Bool) (*slot, *cache.Entry) {
			// Both Sets queued while ristretto held no "k": it admits
			// the first, then declines the second.
			queueFull.Store(false)
			s.Set(entrySized("k", 1000), time.Hour)
			queueFull.Store(true)
			e := entrySized("k", 1100)
			s.Set(e, time.Hour)
			s.rc.Wait()
			return s.pendingSlot("k"), e
		}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Offers fail, so ristretto itself never sees these Sets
			// unless a row says otherwise.
			var queueFull atomic.Bool
			queueFull.Store(true)
			offer := func(s *Store, sl *slot, ttl time.Duration) bool {
				return !queueFull.Load() && ristrettoOffer(s, sl, ttl)
			}
			s := newTest(t, Options{MaxBytes: 1 << 20}, tuning{offer: offer})
			sl, want := tt.setup(s, &queueFull)
			s.onReject(&ristretto.Item[*slot]{Value: sl, Cost: sl.cost})
			if want == nil {
				mustMiss(t, s, "k")
			} else {
				mustGet(t, s, "k", want)
			}
			if got := s.Rejected("k"); got != tt.wantRejected {
				t.Errorf("Rejected = %v, want %v", got, tt.wantRejected)
			}
			if st := s.Stats(); st.Rejections != tt.wantRejections {
				t.Errorf("Rejections = %d, want %d", st.Rejections, tt.wantRejections)
			}
			queueFull.Store(false)
			s.sync()
			if want == nil {
				mustMiss(t, s, "k")
			} else {
				mustGet(t, s, "k", want)
			}
			if left := s.pendingLen(); left != 0 {
				t.Errorf("after sync: %d Sets pending, want 0", left)
			}
		})
	}
}

func TestRejectLog(t *testing.T) {
	var r rejectLog
	r.init(3)
	r.mark("a", 1)
	r.mark("b", 2)
	r.forget("a", 1) // an older-or-equal Set does not clear a's mark
	if !r.has("a") {
		t.Fatal("forget with an older seq cleared the mark")
	}
	r.forget("a", 3)
	if r.has("a") {
		t.Fatal("forget with a newer seq kept the mark")
	}
	r.mark("c", 4)
	r.mark("a", 5) // wraps: a takes the ring slot a had, b is next out
	r.mark("d", 6) // evicts b
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := r.has(key); got != want {
			t.Errorf("has(%q) = %v, want %v", key, got, want)
		}
	}
	if len(r.marks) > len(r.ring) {
		t.Errorf("%d marks kept, more than the ring's %d", len(r.marks), len(r.ring))
	}
}

func TestClose(t *testing.T) {
	s, err := New(Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Set(entrySized("a", 1000), time.Hour)
	s.Set(entrySized("b", 1000), time.Hour)
	s.Close()
	s.Close() // idempotent
	mustMiss(t, s, "a")
	s.Set(entrySized("c", 1000), time.Hour)
	s.Delete("a")
	want := cache.StoreStats{MaxBytes: 1 << 20, Admissions: 2}
	if st := s.Stats(); st != want {
		t.Errorf("Stats after Close = %+v, want %+v", st, want)
	}
}

// TestConcurrent mixes every method on a small store for the race detector,
// then checks the counters add up.
func TestConcurrent(t *testing.T) {
	const (
		cost     = 1000
		maxBytes = 20 * cost
	)
	s := newTest(t, Options{MaxBytes: maxBytes, MeanEntryBytes: cost}, withSweeper)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				key := fmt.Sprintf("k%d", (i*7+w)%60)
				switch i % 10 {
				case 0:
					s.Delete(key)
				case 1, 2, 3:
					s.Set(entrySized(key, cost), time.Hour)
				case 4:
					s.Rejected(key)
				case 5:
					s.Stats()
				default:
					s.Get(key)
				}
			}
		})
	}
	wg.Wait()
	s.sync()
	st := s.Stats()
	t.Logf("Stats = %+v", st)
	if st.Bytes > maxBytes || st.Bytes != st.Items*cost {
		t.Errorf("Bytes = %d with %d items, want Items*%d <= %d", st.Bytes, st.Items, cost, maxBytes)
	}
	var hits int64
	for i := range 60 {
		if _, ok := s.Get(fmt.Sprintf("k%d", i)); ok {
			hits++
		}
	}
	if hits != st.Items {
		t.Errorf("%d keys found, want Items = %d", hits, st.Items)
	}
}
