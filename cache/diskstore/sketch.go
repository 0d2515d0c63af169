package diskstore

import (
	"math/bits"
	"sync/atomic"
)

// sketch counts uses per key approximately, in bounded memory: a
// count-min sketch of four rows of 8-bit counters (packed eight to a
// word, updated with atomics, no lock), whose every counter is halved
// each time 10 × width uses have been counted, so that old popularity
// fades (as TinyLFU does). It costs 4 × width bytes; an estimate is never
// below the true count since the last halving, and exceeds it only
// through collisions.
type sketch struct {
	rows  [4][]atomic.Uint64
	mask  uint64 // width − 1; width is a power of two, a multiple of 8
	adds  atomic.Uint64
	reset uint64 // halve after this many adds
}

const counterMax = 255

// newSketch makes a sketch of width counters per row (rounded up to a
// power of two, at least 64).
func newSketch(width int) *sketch {
	w := uint64(64)
	for w < uint64(width) {
		w <<= 1
	}
	s := &sketch{mask: w - 1, reset: 10 * w}
	for i := range s.rows {
		s.rows[i] = make([]atomic.Uint64, w/8)
	}
	return s
}

// index returns the word and the bit shift of row i's counter for hash.
func (s *sketch) index(hash uint64, i int) (word uint64, shift uint) {
	// Each row takes another rotation of a remixed hash.
	h := bits.RotateLeft64(hash*0x9E3779B97F4A7C15, 16*i) ^ hash>>(8*i)
	c := h & s.mask
	return c >> 3, uint(c&7) * 8
}

// add counts one use of hash and returns the estimate after it.
func (s *sketch) add(hash uint64) uint32 {
	est := uint32(counterMax)
	for i := range s.rows {
		w, shift := s.index(hash, i)
		word := &s.rows[i][w]
		for {
			old := word.Load()
			c := uint32(old >> shift & 0xff)
			if c == counterMax {
				est = min(est, c)
				break
			}
			if word.CompareAndSwap(old, old+1<<shift) {
				est = min(est, c+1)
				break
			}
		}
	}
	if s.adds.Add(1)%s.reset == 0 {
		s.halve()
	}
	return est
}

// halve halves every counter. Uses counted while it runs may be lost or
// halved twice: the counts are estimates.
func (s *sketch) halve() {
	for i := range s.rows {
		for j := range s.rows[i] {
			word := &s.rows[i][j]
			for {
				old := word.Load()
				if word.CompareAndSwap(old, old>>1&0x7f7f7f7f7f7f7f7f) {
					break
				}
			}
		}
	}
}
