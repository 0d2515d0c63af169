package tiered

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/diskstore"
	"github.com/outpost-cdn/outpost/cache/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func entry(key string, size int) *cache.Entry {
	return &cache.Entry{
		Key: key, Status: 200,
		Header:       http.Header{"Content-Type": {"text/plain"}},
		Body:         bytes.Repeat([]byte(key[:1]), size),
		ResponseTime: t0, RequestTime: t0, Lifetime: time.Hour,
	}
}

// tiers is a real memstore in front of real diskstores in temp dirs.
type tiers struct {
	*Store
	mem   *memstore.Store
	disks []*diskstore.Store

	mu      sync.Mutex
	removed []string
}

func newTiers(t *testing.T, nDisks int, promote bool) *tiers {
	t.Helper()
	mem, err := memstore.New(memstore.Options{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tiers{mem: mem}
	var disks []Disk
	for range nDisks {
		d, err := diskstore.Open(diskstore.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, MinUses: 1, Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		tr.disks = append(tr.disks, d)
		disks = append(disks, d)
	}
	opts := Options{Memory: mem, Disks: disks, TTL: func(*cache.Entry) time.Duration { return time.Hour }}
	if promote {
		opts.Promote = func(e *cache.Entry) *cache.Entry {
			c := *e
			body, err := io.ReadAll(e.BodyReader())
			if err != nil {
				return nil
			}
			c.Body, c.Blob, c.OnDisk = body, nil, false
			return &c
		}
	}
	if tr.Store, err = New(opts); err != nil {
		t.Fatal(err)
	}
	tr.NotifyRemoval(func(e *cache.Entry) {
		tr.mu.Lock()
		tr.removed = append(tr.removed, e.Key)
		tr.mu.Unlock()
	})
	t.Cleanup(tr.Close)
	return tr
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// TestDiskHitPromoted checks the way of an entry through the tiers: Set
// reaches memory and disk; with memory emptied, Get finds it on disk
// (OnDisk, the same body), and on its second disk hit the promoter copies
// it back to memory.
func TestDiskHitPromoted(t *testing.T) {
	tr := newTiers(t, 1, true)
	e := entry("a-key", 40<<10)
	tr.Set(e, time.Hour)
	waitFor(t, "the entry on disk", func() bool { return tr.disks[0].Contains("a-key") && tr.disks[0].Stats().Items == 1 })
	waitFor(t, "the entry in memory", func() bool { _, ok := tr.mem.Get("a-key"); return ok })
	tr.mem.Delete("a-key")

	got, ok := tr.Get("a-key")
	if !ok || !got.OnDisk {
		t.Fatalf("Get after memory lost it: ok=%v OnDisk=%v, want a disk hit", ok, ok && got.OnDisk)
	}
	body, err := io.ReadAll(got.BodyReader())
	if err != nil || !bytes.Equal(body, e.Body) {
		t.Fatalf("disk body: %d bytes, %v", len(body), err)
	}
	if st := tr.Tiers(); st.Promoted != 0 {
		t.Fatalf("promoted on the first disk hit")
	}
	if again, ok := tr.Get("a-key"); !ok || !again.OnDisk { // the second disk hit promotes it
		t.Fatalf("second Get: ok=%v, want a disk hit", ok)
	}
	waitFor(t, "the promotion", func() bool { return tr.Tiers().Promoted == 1 })
	waitFor(t, "the promoted copy in memory", func() bool {
		m, ok := tr.mem.Get("a-key")
		return ok && !m.OnDisk && bytes.Equal(m.Body, e.Body)
	})
	if st := tr.Tiers(); st.DiskHits != 2 {
		t.Errorf("disk hits %d, want 2", st.DiskHits)
	}
}

// TestRemovalOnlyWhenGone checks that the owner hears of a removal only
// when no tier holds the key: a Delete is never reported, memory dropping
// what the disk holds is not a removal, and the disk evicting what memory
// no longer holds is.
func TestRemovalOnlyWhenGone(t *testing.T) {
	tr := newTiers(t, 1, false)
	tr.Set(entry("k1", 1000), time.Hour)
	waitFor(t, "k1 on disk", func() bool { return tr.disks[0].Stats().Items == 1 })
	waitFor(t, "k1 in memory", func() bool { _, ok := tr.mem.Get("k1"); return ok })

	tr.memRemoved(entry("k1", 1000))  // memory evicts it; the disk still holds it
	tr.Delete("k1")                   // a purge: never reported
	tr.diskRemoved(entry("k1", 1000)) // gone from both now
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if fmt.Sprint(tr.removed) != "[k1]" {
		t.Errorf("removals reported %q, want [k1] once (the disk's, when no tier held it)", tr.removed)
	}
}

// TestKeysSpreadOverDisks checks weighted rendezvous hashing: keys spread
// over the disks, and a disk out of service hands its keys to the others
// while the rest keep theirs.
func TestKeysSpreadOverDisks(t *testing.T) {
	tr := newTiers(t, 3, false)
	before := map[string]Disk{}
	count := map[Disk]int{}
	for i := range 3000 {
		k := fmt.Sprintf("key-%d", i)
		d := tr.diskFor(k)
		before[k] = d
		count[d]++
	}
	for i, d := range tr.disks {
		if n := count[d]; n < 800 || n > 1200 {
			t.Errorf("disk %d got %d of 3000 keys, want about 1000", i, n)
		}
	}
	tr.disks[1].Close() // out of service
	for k, d := range before {
		after := tr.diskFor(k)
		switch {
		case after == Disk(tr.disks[1]):
			t.Fatalf("%s still goes to the closed disk", k)
		case d != Disk(tr.disks[1]) && after != d:
			t.Fatalf("%s moved from a disk still in service", k)
		}
	}
}

// TestPromotionPaced checks that promotions stay within PromoteRate: with
// a rate of one body a second, a burst of disk hits on many keys promotes
// about one, and the rest are counted as paced.
func TestPromotionPaced(t *testing.T) {
	mem, err := memstore.New(memstore.Options{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := diskstore.Open(diskstore.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, MinUses: 1, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Options{
		Memory: mem, Disks: []Disk{d}, PromoteRate: 10 << 10,
		TTL:     func(*cache.Entry) time.Duration { return time.Hour },
		Promote: func(e *cache.Entry) *cache.Entry { c := *e; c.OnDisk = false; return &c },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const keys = 20
	for i := range keys {
		st.Set(entry(fmt.Sprintf("k%02d", i), 10<<10), time.Hour)
	}
	waitFor(t, "all on disk", func() bool { return d.Stats().Items == keys })
	for i := range keys {
		mem.Delete(fmt.Sprintf("k%02d", i))
	}
	for i := range keys { // first disk hits: nothing to promote yet
		st.Get(fmt.Sprintf("k%02d", i))
	}
	start := time.Now()
	for i := range keys { // second disk hits
		st.Get(fmt.Sprintf("k%02d", i))
	}
	elapsed := time.Since(start)
	// The bucket holds a second's worth, one body, and is full (nothing
	// took from it yet): the first second hit is promoted, and one more
	// for each whole second the round took (a loaded machine can stretch
	// it); every other one is paced.
	allowed := 1 + int(elapsed/time.Second)
	ts := st.Tiers()
	if ts.PromotePaced > keys-1 || ts.PromotePaced < uint64(max(keys-allowed, 0)) {
		t.Errorf("%d promotions paced of %d second disk hits in %v at one body a second, want %d to %d",
			ts.PromotePaced, keys, elapsed, max(keys-allowed, 0), keys-1)
	}
}

// TestPromotionLargerThanRate checks that a body larger than a second's
// worth of PromoteRate is still promoted, from a full bucket, and that the
// debt it leaves holds the next promotion back.
func TestPromotionLargerThanRate(t *testing.T) {
	mem, err := memstore.New(memstore.Options{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := diskstore.Open(diskstore.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, MinUses: 1, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Options{
		Memory: mem, Disks: []Disk{d}, PromoteRate: 10 << 10,
		TTL:     func(*cache.Entry) time.Duration { return time.Hour },
		Promote: func(e *cache.Entry) *cache.Entry { c := *e; c.OnDisk = false; return &c },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys := []string{"big0", "big1"}
	for _, k := range keys {
		st.Set(entry(k, 100<<10), time.Hour) // ten seconds' worth each
	}
	waitFor(t, "both on disk", func() bool { return d.Stats().Items == 2 })
	for _, k := range keys {
		mem.Delete(k)
	}
	for _, k := range keys { // first disk hits
		st.Get(k)
	}
	start := time.Now()
	for _, k := range keys { // second disk hits
		st.Get(k)
	}
	elapsed := time.Since(start)
	waitFor(t, "one promotion", func() bool { return st.Tiers().Promoted >= 1 })
	// big0 leaves the bucket 90 KiB in debt: big1 could be promoted only
	// if the round took the 10 s the debt and a body take to repay.
	if ts := st.Tiers(); ts.PromotePaced != 1 && elapsed < 10*time.Second {
		t.Errorf("second disk hits paced: %d in %v, want 1 (the second body waits for the first's debt)", ts.PromotePaced, elapsed)
	}
}
