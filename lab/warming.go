package lab

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/pop"
)

// The warming curve: each PoP's figures (what its /stats says) sampled
// during the load run, so the report can draw the hit ratio per PoP over
// time. Memory is bounded: at maxSamples the sampler keeps every other
// sample and samples half as often.

const (
	sampleEvery = 250 * time.Millisecond
	maxSamples  = 240
)

// sampler records cumulative requests and hits of each PoP.
type sampler struct {
	pops  []*pop.PoP
	every time.Duration
	max   int
	start time.Time

	mu   sync.Mutex
	t    []float64  // seconds since start
	reqs [][]uint64 // [sample][pop]
	hits [][]uint64
}

func newSampler(pops []*pop.PoP) *sampler {
	return &sampler{pops: pops, every: sampleEvery, max: maxSamples}
}

// run samples until ctx is done, then once more.
func (s *sampler) run(ctx context.Context) {
	s.start = time.Now()
	s.sample()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return // the run has ended: a last sample would cover its idle tail
		case <-tick.C:
			if s.sample() {
				tick.Reset(s.every)
			}
		}
	}
}

// sample records one sample and reports whether the interval changed.
func (s *sampler) sample() bool {
	reqs := make([]uint64, len(s.pops))
	hits := make([]uint64, len(s.pops))
	for i, p := range s.pops {
		f := p.Stats().Figures
		reqs[i], hits[i] = f.Requests, f.Hits+f.Collapsed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = append(s.t, time.Since(s.start).Seconds())
	s.reqs = append(s.reqs, reqs)
	s.hits = append(s.hits, hits)
	if len(s.t) < s.max {
		return false
	}
	// Keep every other sample (the first and the last included), and
	// sample half as often from now on.
	t, r, h := s.t[:0], s.reqs[:0], s.hits[:0]
	last := len(s.t) - 1
	for i := 0; i <= last; i++ {
		if i%2 == 0 || i == last {
			t, r, h = append(t, s.t[i]), append(r, s.reqs[i]), append(h, s.hits[i])
		}
	}
	s.t, s.reqs, s.hits = t, r, h
	s.every *= 2
	return true
}

// Warming is the hit ratio of each PoP over time: per interval between
// two samples of its figures, the hits (and collapsed requests) over the
// requests it answered then.
type Warming struct {
	// WarmupSeconds is where the measured window began.
	WarmupSeconds float64 `json:"warmup_seconds"`
	// Seconds are the ends of the intervals, since the load began.
	Seconds []float64 `json:"seconds"`
	PoPs    []Curve   `json:"pops"`
}

// Curve is one PoP's hit ratio per interval: null where it answered
// nothing. FirstSecond and LastSecond are its hit ratio over the first
// and the last second sampled (or the nearest whole interval to it).
type Curve struct {
	PoP         string     `json:"pop"`
	HitRatio    []*float64 `json:"hit_ratio"`
	FirstSecond float64    `json:"first_second_hit_ratio"`
	LastSecond  float64    `json:"last_second_hit_ratio"`
}

// warming turns the samples into curves.
func (s *sampler) warming(warmup time.Duration) Warming {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := Warming{WarmupSeconds: warmup.Seconds()}
	for i := 1; i < len(s.t); i++ {
		w.Seconds = append(w.Seconds, math.Round(s.t[i]*1000)/1000)
	}
	for j, p := range s.pops {
		c := Curve{PoP: p.Name()}
		for i := 1; i < len(s.t); i++ {
			dr := s.reqs[i][j] - s.reqs[i-1][j]
			if dr == 0 {
				c.HitRatio = append(c.HitRatio, nil)
				continue
			}
			r := float64(s.hits[i][j]-s.hits[i-1][j]) / float64(dr)
			r = math.Round(r*10000) / 10000
			c.HitRatio = append(c.HitRatio, &r)
		}
		if n := len(s.t); n > 1 {
			first, last := 1, n-2
			for first < n-1 && s.t[first]-s.t[0] < 1 {
				first++
			}
			for last > 0 && s.t[n-1]-s.t[last] < 1 {
				last--
			}
			ratio := func(a, b int) float64 {
				dr := s.reqs[b][j] - s.reqs[a][j]
				if dr == 0 {
					return 0
				}
				return math.Round(float64(s.hits[b][j]-s.hits[a][j])/float64(dr)*10000) / 10000
			}
			c.FirstSecond, c.LastSecond = ratio(0, first), ratio(last, n-1)
		}
		w.PoPs = append(w.PoPs, c)
	}
	return w
}
