package pop

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/memstore"
	"github.com/outpost-cdn/outpost/config"
)

// sizedOrigin answers every request with a cacheable body of ?size= bytes.
func sizedOrigin(t *testing.T) *testOrigin {
	return newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("size"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(bytes.Repeat([]byte("x"), n))
	})
}

// givenStore returns an option passing a memstore of maxBytes as
// Options.Store, and the store.
func givenStore(t *testing.T, maxBytes int64) (func(*Options), cache.Store) {
	t.Helper()
	st, err := memstore.New(memstore.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) { o.Store = st }, st
}

// storeKey is the key a GET of target on demo.example is stored under.
func (tp *testPoP) storeKey(target string) string {
	svc := tp.routes.Load().byHost["demo.example"]
	path, query, _ := strings.Cut(target, "?")
	return cache.Key("http", "demo.example", path, query, svc.query)
}

// TestIndexFollowsStore checks that the purge index lists what the store
// holds whoever changed the store: the PoP's own store or one given in
// Options.Store, a fill, an invalidation or the store's admission policy.
func TestIndexFollowsStore(t *testing.T) {
	tests := []struct {
		name        string
		storeBytes  int64 // a memstore of this size as Options.Store; 0: the PoP's own
		size        int   // the object's body bytes
		post        bool  // a POST to the URL after the GET
		wantHeld    bool  // the store holds the object at the end
		wantIndexed int   // keys the index lists at the end
	}{
		{"a stored object is indexed", 0, 100, false, true, 1},
		{"RFC9111 4.4 an object a POST invalidates leaves the index", 0, 100, true, false, 0},
		{"an object the given store holds is indexed", 64 << 10, 100, false, true, 1},
		{"RFC9111 4.4 an object a POST invalidates leaves the index (given store)", 64 << 10, 100, true, false, 0},
		{"an object the given store declines (larger than it) is not indexed", 4 << 10, 8 << 10, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*Options)
			if tt.storeBytes > 0 {
				opt, _ := givenStore(t, tt.storeBytes)
				opts = append(opts, opt)
			}
			tp := startPoP(t, sizedOrigin(t).URL, opts...)
			target := fmt.Sprintf("/obj?size=%d", tt.size)
			tp.get(t, target)
			waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			if tt.post {
				if resp, _ := tp.do(t, http.MethodPost, target, "demo.example", nil); resp.StatusCode != 200 {
					t.Fatalf("POST: %d", resp.StatusCode)
				}
			}
			key := tp.storeKey(target)
			var held bool
			var indexed int
			settle(t, func() bool {
				_, held = tp.store.Get(key)
				indexed = tp.index.len()
				return held == tt.wantHeld && indexed == tt.wantIndexed
			}, func() string {
				return fmt.Sprintf("store holds %s: %v, want %v; index lists %d keys, want %d", key, held, tt.wantHeld, indexed, tt.wantIndexed)
			})
		})
	}
}

// TestIndexForgetsEvictions checks that what a store given in
// Options.Store evicts (or declines) to stay within its size leaves the
// purge index: at rest, a key is indexed exactly when the store holds it.
func TestIndexForgetsEvictions(t *testing.T) {
	const (
		storeBytes = 64 << 10
		objects    = 40
		size       = 4 << 10
	)
	opt, st := givenStore(t, storeBytes)
	tp := startPoP(t, sizedOrigin(t).URL, opt)
	var keys []string
	for i := range objects {
		target := fmt.Sprintf("/ev/%d?size=%d", i, size)
		tp.get(t, target)
		waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
		keys = append(keys, tp.storeKey(target))
	}
	var held, indexed, mismatched int
	settled := func() bool {
		held, indexed, mismatched = 0, tp.index.len(), 0
		for _, k := range keys {
			_, h := st.Get(k)
			if h {
				held++
			}
			if h != (len(tp.index.withKey(k)) > 0) {
				mismatched++
			}
		}
		return mismatched == 0 && indexed == held
	}
	settle(t, settled, func() string {
		return fmt.Sprintf("the index lists %d keys, the store holds %d of %d; %d keys disagree", indexed, held, objects, mismatched)
	})
	if held >= objects {
		t.Errorf("the store holds all %d objects of %d bytes in %d bytes: nothing was evicted", held, size, storeBytes)
	}
}

// mapStore is a cache.Store in a map that reports removals; evict removes
// a key as a store does on its own.
type mapStore struct {
	mu       sync.Mutex
	m        map[string]*cache.Entry
	onRemove func(*cache.Entry)
}

func (s *mapStore) Get(key string) (*cache.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	return e, ok
}

func (s *mapStore) Set(e *cache.Entry, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[e.Key] = e
}

func (s *mapStore) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

func (s *mapStore) evict(key string) {
	s.mu.Lock()
	e, ok := s.m[key]
	delete(s.m, key)
	s.mu.Unlock()
	if ok && s.onRemove != nil {
		s.onRemove(e)
	}
}

func (s *mapStore) NotifyRemoval(f func(*cache.Entry)) { s.onRemove = f }
func (s *mapStore) Stats() cache.StoreStats            { return cache.StoreStats{} }
func (s *mapStore) Close()                             {}

// storeOnly hides every method of a store but cache.Store's.
type storeOnly struct{ cache.Store }

// Each entry tagged makes was received a second after the one before, as
// fills of one key follow one another.
func tagged(key, surrogateKey string) *cache.Entry {
	h := http.Header{}
	if surrogateKey != "" {
		h.Set("Surrogate-Key", surrogateKey)
	}
	at := time.Date(2026, 12, 6, 0, 0, int(taggedCount.Add(1)), 0, time.UTC)
	return &cache.Entry{Key: key, Status: 200, Header: h, ResponseTime: at}
}

var taggedCount atomic.Int64

// TestPurgeIndex checks the index the wrapper keeps against what it lets
// through to the store, one scenario per row.
func TestPurgeIndex(t *testing.T) {
	const url = "http://demo.example/a"
	variant := url + "\x00v1"
	tests := []struct {
		name    string
		do      func(x *purgeIndex, s *mapStore)
		wantLen int
		// what the index lists for the URL key (with its variants) and for
		// the tag "red", as keys
		wantKey []string
		wantRed []string
	}{
		{"Set indexes the key and its tags", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, "red blue"), time.Hour)
		}, 1, []string{url}, []string{url}},
		{"Set with no ttl stores and indexes nothing", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, "red"), 0)
		}, 0, nil, nil},
		{"Delete forgets the key and its tags", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, "red"), time.Hour)
			x.Delete(url)
		}, 0, nil, nil},
		{"a key the store evicts leaves the index", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, "red"), time.Hour)
			s.evict(url)
		}, 0, nil, nil},
		{"a late notice of a replaced entry keeps the newer one", func(x *purgeIndex, s *mapStore) {
			old := tagged(url, "red")
			x.Set(old, time.Hour)
			x.Set(tagged(url, "blue"), time.Hour)
			x.removed(old)
		}, 1, []string{url}, nil},
		{"a notice of a copy of the indexed entry forgets it (the disk tier decodes its own)", func(x *purgeIndex, s *mapStore) {
			e := tagged(url, "red")
			x.Set(e, time.Hour)
			copied := *e
			s.evict(url)
			x.removed(&copied)
		}, 0, nil, nil},
		{"a new Set retags the key", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, "blue"), time.Hour)
			x.Set(tagged(url, "red"), time.Hour)
		}, 1, []string{url}, []string{url}},
		{"RFC9111 4.1 variants are listed with their URL", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, ""), time.Hour)
			x.Set(tagged(variant, "red"), time.Hour)
		}, 2, []string{url, variant}, []string{variant}},
		{"an evicted variant leaves its URL's list", func(x *purgeIndex, s *mapStore) {
			x.Set(tagged(url, ""), time.Hour)
			x.Set(tagged(variant, "red"), time.Hour)
			s.evict(variant)
		}, 1, []string{url}, nil},
	}
	keysOf := func(keys []string) []string {
		slices.Sort(keys)
		return keys
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &mapStore{m: map[string]*cache.Entry{}}
			x := newPurgeIndex()
			if err := x.wrap(s); err != nil {
				t.Fatal(err)
			}
			tt.do(x, s)
			if got := x.len(); got != tt.wantLen {
				t.Errorf("len %d, want %d", got, tt.wantLen)
			}
			if got := keysOf(x.withKey(url)); !slices.Equal(got, tt.wantKey) {
				t.Errorf("withKey %q, want %q", got, tt.wantKey)
			}
			if got := keysOf(x.withTag("red")); !slices.Equal(got, tt.wantRed) {
				t.Errorf("withTag %q, want %q", got, tt.wantRed)
			}
			// The index lists exactly what the store holds.
			for _, key := range x.withPrefix("") {
				if _, ok := s.Get(key); !ok {
					t.Errorf("index lists %q, which the store does not hold", key)
				}
			}
			if n := len(s.m); n != tt.wantLen {
				t.Errorf("store holds %d entries, index %d", n, tt.wantLen)
			}
		})
	}
}

// TestPurgeIndexNeedsRemovalNotices checks that a store that cannot say
// what it evicts is refused, and the PoP with it.
func TestPurgeIndexNeedsRemovalNotices(t *testing.T) {
	s := storeOnly{&mapStore{m: map[string]*cache.Entry{}}}
	if err := newPurgeIndex().wrap(s); err == nil || !strings.Contains(err.Error(), "cache.RemovalNotifier") {
		t.Errorf("newPurgeIndex of a store without removal notices: %v", err)
	}
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(testConfig, "http://127.0.0.1:1", "0s")))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := New(cfg, "", Options{Store: s, Logger: testLogger(t)}); err == nil {
		p.Close()
		t.Error("New accepted a store without removal notices")
	}
}
