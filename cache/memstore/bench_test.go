package memstore

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/outpost-cdn/outpost/cache"
)

// zipfTrace is a fixed sequence of key indexes drawn from a Zipf
// distribution (alpha may be below 1, unlike math/rand's), over URL-like
// keys, as in the hit-ratio study.
type zipfTrace struct {
	keys []string
	seq  []uint32
}

func newZipfTrace(nkeys, length int, alpha float64) *zipfTrace {
	cdf := make([]float64, nkeys)
	var sum float64
	for i := range cdf {
		sum += 1 / math.Pow(float64(i+1), alpha)
		cdf[i] = sum
	}
	r := rand.New(rand.NewPCG(1, 2))
	// Ranks map to keys at random, so popular keys are not neighbours.
	perm := r.Perm(nkeys)
	tr := &zipfTrace{keys: make([]string, nkeys), seq: make([]uint32, length)}
	for i := range tr.keys {
		tr.keys[i] = fmt.Sprintf("https://bench.example.test/assets/%08d.js", i)
	}
	for i := range tr.seq {
		rank := sort.SearchFloat64s(cdf, r.Float64()*sum)
		tr.seq[i] = uint32(perm[min(rank, nkeys-1)])
	}
	return tr
}

// cursor returns successive keys of the trace from a start that differs
// per caller, so parallel goroutines do not walk in lockstep.
func (tr *zipfTrace) cursor(start *atomic.Uint64) func() string {
	i := int(start.Add(7919)) % len(tr.seq)
	return func() string {
		i++
		if i == len(tr.seq) {
			i = 0
		}
		return tr.keys[tr.seq[i]]
	}
}

var benchHeader = http.Header{
	"Content-Type":  {"application/javascript"},
	"Cache-Control": {"public, max-age=3600"},
	"Etag":          {`"5d8c72a5edda8d6a"`},
}

func benchEntry(key string, body []byte) *cache.Entry {
	now := time.Now()
	return &cache.Entry{
		Key: key, Status: http.StatusOK, Header: benchHeader, Body: body,
		RequestTime: now, ResponseTime: now, Lifetime: time.Hour,
	}
}

func newBench(b *testing.B, maxBytes int64, metrics bool) *Store {
	b.Helper()
	s, err := newStore(Options{MaxBytes: maxBytes, MeanEntryBytes: 1 << 10},
		tuning{metrics: metrics, sweeper: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// getter is what BenchmarkGet measures: Store.Get, or a bare ristretto
// cache configured the same way, as the baseline.
type getter func(key string) bool

// BenchmarkGet is the hit path: 32 Ki resident 1 KiB entries in 64 MiB,
// read with Zipf(0.9) popularity.
func BenchmarkGet(b *testing.B) {
	const (
		nkeys    = 32 << 10
		maxBytes = 64 << 20
	)
	tr := newZipfTrace(nkeys, 1<<20, 0.9)
	body := make([]byte, 1<<10)

	stores := []struct {
		name string
		make func(b *testing.B) getter
	}{
		{"store/metrics=on", func(b *testing.B) getter { return fillStore(b, tr, body, true) }},
		{"store/metrics=off", func(b *testing.B) getter { return fillStore(b, tr, body, false) }},
		{"ristretto/metrics=off", func(b *testing.B) getter { return fillRistretto(b, tr, body) }},
	}
	for _, st := range stores {
		b.Run(st.name+"/size=1KiB", func(b *testing.B) {
			get := st.make(b)
			var start atomic.Uint64
			b.Run("serial", func(b *testing.B) {
				next := tr.cursor(&start)
				b.ReportAllocs()
				for b.Loop() {
					if !get(next()) {
						b.Fatal("miss on a resident key")
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				var misses atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					next := tr.cursor(&start)
					for pb.Next() {
						if !get(next()) {
							misses.Add(1)
						}
					}
				})
				if misses.Load() != 0 {
					b.Fatalf("%d misses on resident keys", misses.Load())
				}
			})
		})
	}
}

func fillStore(b *testing.B, tr *zipfTrace, body []byte, metrics bool) getter {
	s := newBench(b, 64<<20, metrics)
	for _, k := range tr.keys {
		s.Set(benchEntry(k, body), time.Hour)
	}
	s.sync()
	for _, k := range tr.keys {
		if _, ok := s.Get(k); !ok {
			b.Fatalf("%s not resident after filling", k)
		}
	}
	return func(key string) bool {
		_, ok := s.Get(key)
		return ok
	}
}

func fillRistretto(b *testing.B, tr *zipfTrace, body []byte) getter {
	rc, err := ristretto.NewCache(&ristretto.Config[string, *cache.Entry]{
		NumCounters:        numCounters(64<<20, 1<<10),
		MaxCost:            64 << 20,
		BufferItems:        bufferItems,
		IgnoreInternalCost: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	for _, k := range tr.keys {
		e := benchEntry(k, body)
		for !rc.SetWithTTL(k, e, e.Size(), time.Hour) {
			rc.Wait()
		}
	}
	rc.Wait()
	return func(key string) bool {
		_, ok := rc.Get(key)
		return ok
	}
}

// BenchmarkCacheAside is Get, then Set on a miss, over 1 Mi keys with
// Zipf(0.9) popularity, 1 KiB entries and 64 MiB of capacity (about 5 % of
// the keys fit), so the store evicts and rejects all the time. It reports
// the hit ratio and, per miss, the share of Sets rejected and dropped.
func BenchmarkCacheAside(b *testing.B) {
	const (
		nkeys    = 1 << 20
		maxBytes = 64 << 20
	)
	tr := newZipfTrace(nkeys, 1<<22, 0.9)
	body := make([]byte, 1<<10)
	b.Run("ristretto/metrics=off/size=1KiB", func(b *testing.B) {
		// The baseline: bare ristretto, no bridge, lost Sets stay lost.
		rc, err := ristretto.NewCache(&ristretto.Config[string, *cache.Entry]{
			NumCounters:        numCounters(maxBytes, 1<<10),
			MaxCost:            maxBytes,
			BufferItems:        bufferItems,
			IgnoreInternalCost: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(rc.Close)
		var start, hits, misses atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			next := tr.cursor(&start)
			var h, m uint64
			for pb.Next() {
				key := next()
				if _, ok := rc.Get(key); ok {
					h++
					continue
				}
				m++
				e := benchEntry(key, body)
				rc.SetWithTTL(key, e, e.Size(), time.Hour)
			}
			hits.Add(h)
			misses.Add(m)
		})
		b.ReportMetric(100*float64(hits.Load())/float64(hits.Load()+misses.Load()), "hit%")
	})
	for _, metrics := range []bool{true, false} {
		b.Run(fmt.Sprintf("store/metrics=%v/size=1KiB", metrics), func(b *testing.B) {
			s := newBench(b, maxBytes, metrics)
			var start atomic.Uint64
			var hits, misses atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				next := tr.cursor(&start)
				var h, m uint64
				for pb.Next() {
					key := next()
					if _, ok := s.Get(key); ok {
						h++
						continue
					}
					m++
					s.Set(benchEntry(key, body), time.Hour)
				}
				hits.Add(h)
				misses.Add(m)
			})
			b.StopTimer()
			s.sync()
			st := s.Stats()
			total := float64(hits.Load() + misses.Load())
			b.ReportMetric(100*float64(hits.Load())/total, "hit%")
			if m := float64(misses.Load()); m > 0 {
				b.ReportMetric(100*float64(st.Rejections)/m, "rejected%")
				b.ReportMetric(100*float64(st.Drops)/m, "dropped%")
			}
		})
	}
}
