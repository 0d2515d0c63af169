package tiered

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/diskstore"
	"github.com/outpost-cdn/outpost/cache/memstore"
)

// BenchmarkGet measures the store's part of a hit (no I/O: a disk hit's
// file is open already, its body is sent by the caller): 200 entries of
// 100 KiB asked in turn, from a memory tier large enough for all of them
// ("memory") and from a disk behind a memory tier of 1 MiB ("disk", with
// promotions paced as the PoP paces them, so nearly every hit is a disk
// hit), as in bench/anchors.sh's disk test:
//
//	go test -run '^$' -bench Get -benchmem -count 6 ./cache/tiered
func BenchmarkGet(b *testing.B) {
	for _, tier := range []string{"memory", "disk"} {
		b.Run(tier, func(b *testing.B) {
			memBytes := int64(1 << 20)
			if tier == "memory" {
				memBytes = 256 << 20
			}
			mem, err := memstore.New(memstore.Options{MaxBytes: memBytes})
			if err != nil {
				b.Fatal(err)
			}
			d, err := diskstore.Open(diskstore.Options{Dir: b.TempDir(), MaxBytes: 1 << 30, MinUses: 1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Options{Memory: mem, Disks: []Disk{d},
				TTL:     func(*cache.Entry) time.Duration { return time.Hour },
				Promote: func(e *cache.Entry) *cache.Entry { c := *e; c.OnDisk = false; return &c }})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			keys := make([]string, 200)
			for i := range keys {
				keys[i] = fmt.Sprintf("http|bench.example|/obj/%d", i)
				e := entry(keys[i], 100<<10)
				e.ResponseTime, e.RequestTime = time.Now(), time.Now()
				s.Set(e, time.Hour)
			}
			waitFor(b, "the entries on the disk", func() bool {
				return d.DiskStats().Items >= int64(len(keys)) && d.DiskStats().QueuedWrites == 0
			})
			for range 2 {
				for _, k := range keys {
					if _, ok := s.Get(k); !ok {
						b.Fatalf("%s: a miss", k)
					}
				}
			}
			before := s.Tiers()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := s.Get(keys[i%len(keys)]); !ok {
					b.Fatal("a miss")
				}
				i++
			}
			after := s.Tiers()
			b.ReportMetric(float64(after.DiskHits-before.DiskHits)/float64(b.N), "disk-share")
		})
	}
}
