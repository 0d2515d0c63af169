package bench

import (
	"fmt"
	"strconv"
	"time"
)

// ZipfOptions configure a Zipf workload.
type ZipfOptions struct {
	// Objects is the number of distinct objects, N ≥ 1. Object ranks run
	// from 1 (the most popular) to N.
	Objects uint64
	// S is the exponent: P(rank k) ∝ 1/k^S. Zero means 1.0.
	S float64
	// PathTemplate is the request path, with {id} for the object number and
	// optionally {size}. Empty means DefaultPathTemplate, or
	// DefaultSizedPathTemplate when Size is set.
	PathTemplate string
	// Size, if > 0, is the size every object is asked for ({size}); zero
	// means the synthetic origin's own size per id (synthetic.SizeOf).
	Size int64
	// Seed makes the draws reproducible.
	Seed uint64
	// ShiftEvery, if > 0, redraws which object holds which rank every
	// ShiftEvery requests, so popularity moves on as it does over a day.
	ShiftEvery uint64
	// ShiftPeriod, if > 0, redraws the mapping every ShiftPeriod of run
	// time instead (this one depends on timing, so it is not reproducible
	// request by request).
	ShiftPeriod time.Duration
}

// Zipf is a workload over N objects of the synthetic origin whose
// popularity follows Zipf's law: request k asks for the object at rank r,
// r drawn with P(r) ∝ 1/r^s from a sequence fixed by the seed and k. Until
// the first shift, rank r is object r (/obj/1 is the most popular); each
// shift epoch maps ranks to objects through a new pseudo-random
// permutation.
type Zipf struct {
	opts    ZipfOptions
	sampler *zipfSampler
	tmpl    template
	size    int64 // -1: SizeOf
}

var _ Workload = (*Zipf)(nil)

// NewZipf checks o and returns the workload.
func NewZipf(o ZipfOptions) (*Zipf, error) {
	if o.S == 0 {
		o.S = 1
	}
	if o.ShiftEvery > 0 && o.ShiftPeriod > 0 {
		return nil, fmt.Errorf("zipf: shift every %d requests or every %v, not both", o.ShiftEvery, o.ShiftPeriod)
	}
	if o.ShiftPeriod < 0 || o.Size < 0 {
		return nil, fmt.Errorf("zipf: negative shift period or size")
	}
	s, err := newZipfSampler(o.Objects, o.S)
	if err != nil {
		return nil, err
	}
	t, err := pathTemplate(o.PathTemplate, o.Size)
	if err != nil {
		return nil, fmt.Errorf("zipf: %w", err)
	}
	size := o.Size
	if size == 0 {
		size = -1
	}
	return &Zipf{opts: o, sampler: s, tmpl: t, size: size}, nil
}

// Next implements Workload.
func (z *Zipf) Next(dst []byte, k uint64, elapsed time.Duration) ([]byte, bool) {
	var idBuf [20]byte
	id := strconv.AppendUint(idBuf[:0], z.object(k, elapsed), 10)
	return z.tmpl.expand(dst, id, z.size), true
}

// object returns the object number request k asks for.
func (z *Zipf) object(k uint64, elapsed time.Duration) uint64 {
	r := newRNG(z.opts.Seed, streamZipf, k)
	rank := z.sampler.sample(&r)
	epoch := z.epoch(k, elapsed)
	if epoch == 0 {
		return rank
	}
	p := newPermutation(z.opts.Objects, splitmix(z.opts.Seed^streamShift<<56)+epoch)
	return p.apply(rank-1) + 1
}

// epoch is the number of shifts before request k.
func (z *Zipf) epoch(k uint64, elapsed time.Duration) uint64 {
	switch {
	case z.opts.ShiftEvery > 0:
		return k / z.opts.ShiftEvery
	case z.opts.ShiftPeriod > 0 && elapsed > 0:
		return uint64(elapsed / z.opts.ShiftPeriod)
	}
	return 0
}

// Name implements Workload.
func (z *Zipf) Name() string {
	name := fmt.Sprintf("zipf n=%d s=%g", z.opts.Objects, z.opts.S)
	switch {
	case z.opts.ShiftEvery > 0:
		name += fmt.Sprintf(", shift every %d requests", z.opts.ShiftEvery)
	case z.opts.ShiftPeriod > 0:
		name += fmt.Sprintf(", shift every %v", z.opts.ShiftPeriod)
	}
	if z.opts.Size > 0 {
		name += fmt.Sprintf(", %d B objects", z.opts.Size)
	}
	return name
}

// OneHitOptions configure WithOneHitWonders.
type OneHitOptions struct {
	// Fraction of requests, from 0 to 1, that go to an object never asked
	// for before or after in the run.
	Fraction float64
	// PathTemplate is as in ZipfOptions. The ids are "u", the seed in
	// hex, "-" and the request index, so they never meet a Zipf id; a new
	// seed gives new ones (a warm PoP has the old ones stored).
	PathTemplate string
	// Size is as in ZipfOptions.
	Size int64
	// Seed decides which requests are one-hit wonders.
	Seed uint64
}

// oneHit mixes one-hit wonders into another workload.
type oneHit struct {
	inner Workload
	opts  OneHitOptions
	tmpl  template
	size  int64
}

// WithOneHitWonders returns inner with a fraction of its requests replaced
// by requests for objects that are never requested again, as the long tail
// of real CDN traffic has: they fill a cache without ever being hits.
func WithOneHitWonders(inner Workload, o OneHitOptions) (Workload, error) {
	if !(o.Fraction >= 0 && o.Fraction <= 1) {
		return nil, fmt.Errorf("one-hit wonders: fraction %v is not between 0 and 1", o.Fraction)
	}
	if o.Size < 0 {
		return nil, fmt.Errorf("one-hit wonders: negative size")
	}
	t, err := pathTemplate(o.PathTemplate, o.Size)
	if err != nil {
		return nil, fmt.Errorf("one-hit wonders: %w", err)
	}
	size := o.Size
	if size == 0 {
		size = -1
	}
	return &oneHit{inner: inner, opts: o, tmpl: t, size: size}, nil
}

// Next implements Workload.
func (w *oneHit) Next(dst []byte, k uint64, elapsed time.Duration) ([]byte, bool) {
	r := newRNG(w.opts.Seed, streamOneHit, k)
	if r.float() >= w.opts.Fraction {
		return w.inner.Next(dst, k, elapsed)
	}
	var idBuf [48]byte
	id := append(idBuf[:0], 'u')
	id = strconv.AppendUint(id, w.opts.Seed, 16)
	id = append(id, '-')
	id = strconv.AppendUint(id, k, 10)
	return w.tmpl.expand(dst, id, w.size), true
}

// Name implements Workload.
func (w *oneHit) Name() string {
	return fmt.Sprintf("%s + %g%% one-hit wonders", w.inner.Name(), 100*w.opts.Fraction)
}
