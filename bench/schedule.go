package bench

import (
	"math"
	"sync/atomic"
	"time"
)

// schedule decides which request each virtual client sends when, and when
// the run ends.
//
// Closed loop: clients take the next request index from a shared counter
// as soon as they have their previous answer. Open loop: request k is due
// at a fixed time (k/Rate, or a trace's timestamp) and belongs to client
// k mod c, as in wrk2: a client that is still waiting sends its next
// request late, and that request's latency counts from when it was due.
type schedule struct {
	open    bool
	rate    float64 // open loop at a fixed rate; 0 with paced
	paced   Paced   // open loop at the workload's pace
	clients uint64

	start time.Time // the run, warm-up included, starts
	end   time.Time // no request is sent at or after it; zero: none

	// window is when the measured window starts, in Unix nanoseconds: a
	// request sent (closed loop) or due (open loop) from then on is
	// measured. It moves when the origin's counters are zeroed after the
	// warm-up, so that both count from the same moment.
	window atomic.Int64

	// The measured requests claimed so far against maxMeasured (0: no
	// cap), and the next request index of a closed loop.
	measured    atomic.Int64
	maxMeasured int64
	next        atomic.Uint64
}

// finite is a workload with a known number of requests.
type finite interface{ Len() int }

// farFuture is a window start that is never reached.
const farFuture = math.MaxInt64

func newSchedule(cfg *Config, start time.Time) *schedule {
	s := &schedule{
		rate:        cfg.Rate,
		clients:     uint64(cfg.Connections),
		start:       start,
		maxMeasured: cfg.Requests,
	}
	s.window.Store(start.Add(cfg.Warmup).UnixNano())
	if p, ok := cfg.Workload.(Paced); ok && p.Timed() && cfg.Rate == 0 {
		s.paced = p
	}
	s.open = s.rate > 0 || s.paced != nil
	duration := cfg.Duration
	if _, isFinite := cfg.Workload.(finite); duration == 0 && cfg.Requests == 0 && !isFinite {
		duration = DefaultDuration
	}
	if duration > 0 {
		s.end = start.Add(cfg.Warmup + duration)
	}
	return s
}

// windowStart returns when the measured window starts (or will).
func (s *schedule) windowStart() time.Time { return time.Unix(0, s.window.Load()) }

// hold keeps the window from starting until open is called with the
// moment it does.
func (s *schedule) hold() { s.window.Store(farFuture) }

// openWindow starts the window at t.
func (s *schedule) openWindow(t time.Time) { s.window.Store(t.UnixNano()) }

// offset is when open-loop request k is due, after the start.
func (s *schedule) offset(k uint64) time.Duration {
	if s.paced != nil {
		return s.paced.At(k)
	}
	return time.Duration(float64(k) / s.rate * float64(time.Second))
}

// slot is one request to send.
type slot struct {
	k        uint64
	due      time.Time
	measured bool
}

// claim decides whether a request sent or due at t is measured; ok is
// false when the cap on measured requests is reached.
func (s *schedule) claim(t time.Time) (measured, ok bool) {
	if t.UnixNano() < s.window.Load() {
		return false, true
	}
	if s.maxMeasured > 0 && s.measured.Add(1) > s.maxMeasured {
		return true, false
	}
	return true, true
}

// openSlot returns the j-th request of client i in open loop; ok is false
// once the run has no more for it.
func (s *schedule) openSlot(i, j uint64) (slot, bool) {
	k := j*s.clients + i
	if j > 0 && k/s.clients != j { // overflow
		return slot{}, false
	}
	due := s.start.Add(s.offset(k))
	if !s.end.IsZero() && !due.Before(s.end) {
		return slot{}, false
	}
	return slot{k: k, due: due}, true
}

// closedSlot returns the next request in closed loop, sent now; ok is
// false once the run is over.
func (s *schedule) closedSlot(now time.Time) (slot, bool) {
	if !s.end.IsZero() && !now.Before(s.end) {
		return slot{}, false
	}
	measured, ok := s.claim(now)
	if !ok {
		return slot{}, false
	}
	return slot{k: s.next.Add(1) - 1, due: now, measured: measured}, true
}
