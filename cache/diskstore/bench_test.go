package diskstore

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkGetHot is a Get of an entry in the open set: the cost of a
// disk hit once the file has been opened and checked.
func BenchmarkGetHot(b *testing.B) {
	s := openTest(b, Options{MinUses: 1})
	s.Set(entryFor("http://a.example/hot", 64<<10), time.Hour)
	settle(b, s)
	if _, ok := s.Get("http://a.example/hot"); !ok {
		b.Fatal("miss")
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Get("http://a.example/hot")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Get("http://a.example/hot")
			}
		})
	})
}

// BenchmarkGetCold is a Get of an entry on disk but not open: open,
// header and metadata read and decoded (the body checksum was checked
// once before), a blob made.
func BenchmarkGetCold(b *testing.B) {
	s := openTest(b, Options{MinUses: 1, OpenFiles: 1})
	for i := range 2 {
		s.Set(entryFor(fmt.Sprint("k", i), 64<<10), time.Hour)
	}
	settle(b, s)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, ok := s.Get(fmt.Sprint("k", i%2)); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTouch is the tiered store's call on every memory hit: on a key
// on disk (a policy hit) and on a key still counting uses.
func BenchmarkTouch(b *testing.B) {
	s := openTest(b, Options{MinUses: 1})
	stored := entryFor("http://a.example/stored", 1000)
	s.Set(stored, time.Hour)
	settle(b, s)
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Touch(stored, time.Hour)
			}
		})
	})
	counting := openTest(b, Options{MinUses: 255})
	e := entryFor("http://a.example/counting", 1000)
	b.Run("counting", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			counting.Touch(e, time.Hour)
		}
	})
}

// BenchmarkWrite measures the writer's throughput: Sets of new keys,
// until every file is renamed into place.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("body=%dKiB", size>>10), func(b *testing.B) {
			s := openTest(b, Options{MinUses: 1, MaxBytes: 1 << 30, WriteQueue: 1024, WriteQueueBytes: 256 << 20})
			body := bodyFor("body", size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				e := entryFor("", 0)
				e.Key, e.Body = fmt.Sprint("http://a.example/", i), body
				for {
					drops := s.Stats().Drops
					s.Set(e, time.Hour)
					if s.Stats().Drops == drops {
						break
					}
					time.Sleep(50 * time.Microsecond) // the queue is full: let the writer catch up
				}
			}
			settle(b, s)
		})
	}
}
