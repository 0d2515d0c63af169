package bench

import (
	"fmt"
	"io"
	"time"
)

// progress writes a progress line about once a second until done is
// closed, then clears it.
func (r *run) progress(w io.Writer, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64
	lastAt := r.sched.start
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-tick.C:
			var requests, errs, answered, hits int64
			for _, s := range r.shards {
				a, b, c, d := s.liveCounts()
				requests, errs, answered, hits = requests+a, errs+b, answered+c, hits+d
			}
			phase := ""
			if now.Before(r.sched.windowStart()) {
				phase = " (warm-up)"
			}
			rps := float64(requests-last) / now.Sub(lastAt).Seconds()
			last, lastAt = requests, now
			fmt.Fprintf(w, "\r\033[K%6.0fs%s  requests %d  %.0f/s  errors %d  hit ratio %.1f%%",
				now.Sub(r.sched.start).Seconds(), phase, requests, rps, errs, 100*ratio(hits, answered))
		}
	}
}
