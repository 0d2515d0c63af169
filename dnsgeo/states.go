package dnsgeo

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/popapi"
)

// This file is what the server hears from the PoPs over the control
// plane: ObserveState keeps each PoP's latest popapi.State, and status
// combines it with the PoP's probes into the health answers use.
//
// The rule, for each PoP:
//   - No state of it ever arrived, or states stopped arriving from every
//     PoP (the server does not hear the control plane): its probes decide,
//     exactly as without a control plane.
//   - Its latest state is fresh (at most dns.states.max_age old):
//     unhealthy or draining → out, whatever the probes say (the PoP says
//     so itself). Healthy → in, unless the PoP's own /healthz answered
//     otherwise: a 503 "draining" or another status (the probes reached it
//     and it said no). Probes that get no answer at all (timeouts, refused
//     or unroutable connections) do not count against a fresh healthy
//     state: the server cannot reach the admin address, the PoP can reach
//     the bus, and says it is fine.
//   - Its latest state is stale while other PoPs' states are fresh: out
//     (it stopped talking: killed, hung, or cut off), unless a probe has
//     passed since its state went stale (it serves, only its link to the
//     bus is down). Its next fresh state brings it back at once.
//
// If no PoP is in by these rules, every PoP counts as in (fail open), as
// without a control plane.

// report is the latest state the server accepted from a PoP, kept in
// atomics so that queries read it without a lock and ObserveState
// allocates nothing. Like health, it follows the PoP across reloads.
type report struct {
	mu   sync.Mutex // serializes ObserveState for the PoP
	sent int64      // State.Time of the latest accepted state, Unix ns; under mu

	// at is when the latest accepted state was made, by the server's
	// clock: the state's time, or the time it arrived when that is
	// earlier (the PoP's clock runs ahead). Unix ns; 0 = none yet.
	at atomic.Int64
	// word packs the latest state's Healthy and Draining flags and its
	// load (see packReport).
	word atomic.Uint64
	// share is the share of the PoP's users sent elsewhere for load
	// (float64 bits); shareAt is when it last moved (Unix ns, under mu).
	share   atomic.Uint64
	shareAt int64

	revision atomic.Uint64 // the state's ConfigRevision, for /stats
}

// The bits of report.word: the load as a float32 in the high half.
const (
	reportHealthy  = 1 << 0
	reportDraining = 1 << 1
)

func packReport(healthy, draining bool, load float64) uint64 {
	w := uint64(math.Float32bits(float32(load))) << 32
	if healthy {
		w |= reportHealthy
	}
	if draining {
		w |= reportDraining
	}
	return w
}

func reportLoad(w uint64) float64 { return float64(math.Float32frombits(uint32(w >> 32))) }

// stateResult is what became of one state given to ObserveState; the
// label values of outpost_dns_states_total.
type stateResult int

const (
	stateAccepted   stateResult = iota
	stateStale                  // older than dns.states.max_age when it arrived (or without a time)
	stateFuture                 // from further in the future than dns.states.skew
	stateReordered              // not newer than the PoP's latest accepted state
	stateUnknownPOP             // of a PoP the configuration does not have
	numStateResults
)

var stateResultNames = [numStateResults]string{"accepted", "stale", "future", "reordered", "unknown_pop"}

// moment is when a decision is made, as far as states go: queries take
// one per decision.
type moment struct {
	now  int64 // Unix ns by the server's clock; 0 when no state was ever accepted (states play no part)
	live bool  // some PoP's latest state is fresh: the server hears the control plane
}

// moment returns the moment of a decision made now under st. Until a
// state arrives it reads no clock.
func (s *Server) moment(st *state) moment {
	last := s.lastState.Load()
	if last == 0 {
		return moment{}
	}
	now := s.now().UnixNano()
	return moment{now: now, live: now-last <= st.maxAge}
}

// ObserveState takes a state a PoP published on the control plane
// (popapi.StateSubject + "." + PoP). The server keeps the latest state
// of each configured PoP and routes on it together with its probes (see
// the rule above); states of PoPs the configuration does not have, states
// older than dns.states.max_age or further in the future than
// dns.states.skew, and states not newer than the PoP's latest are
// counted and ignored. Load shedding moves at each state (see
// LoadShedding in package config). It is safe for concurrent use, takes
// no lock shared with queries, and allocates nothing unless the PoP's
// health changes (then it logs).
func (s *Server) ObserveState(ps popapi.State) {
	st := s.state.Load()
	p := st.popByName[ps.PoP]
	if p == nil {
		s.metrics.states[stateUnknownPOP].Add(1)
		return
	}
	now := s.now().UnixNano()
	if ps.Time.IsZero() {
		s.metrics.states[stateStale].Add(1)
		return
	}
	sent := ps.Time.UnixNano()
	switch {
	case now-sent > st.maxAge:
		s.metrics.states[stateStale].Add(1)
		return
	case sent-now > st.skew:
		s.metrics.states[stateFuture].Add(1)
		return
	}
	at := min(sent, now)

	r := p.report
	r.mu.Lock()
	if sent <= r.sent {
		r.mu.Unlock()
		s.metrics.states[stateReordered].Add(1)
		return
	}
	r.sent = sent
	healthy := ps.Healthy && !ps.Draining
	load := ps.Load
	if math.IsNaN(load) || load < 0 {
		load = 0
	}
	share := math.Float64frombits(r.share.Load())
	prev, prevWord, prevShare := r.at.Load(), r.word.Load(), share
	if prev == 0 || at-prev > st.maxAge {
		share, r.shareAt = 0, now // the first state, or the first after a gap: start afresh
	}
	share = st.shed.next(share, load, now-r.shareAt)
	r.shareAt = now
	r.share.Store(math.Float64bits(share))
	r.word.Store(packReport(healthy, ps.Draining, load))
	r.revision.Store(ps.ConfigRevision)
	r.at.Store(at)
	r.mu.Unlock()

	for {
		last := s.lastState.Load()
		if at <= last || s.lastState.CompareAndSwap(last, at) {
			break
		}
	}
	// Cached answers hold while the PoP's state says the same: the load
	// alone routes nothing (the shed share does), and a state that was
	// fresh keeps them until it would have gone stale (answerExpiry).
	const flags = reportHealthy | reportDraining
	if prev == 0 || now-prev > st.maxAge || (prevWord^r.word.Load())&flags != 0 || share != prevShare {
		s.bumpAnswers()
	}
	s.metrics.states[stateAccepted].Add(1)
	s.settle(p, "")
}

// cause says what decided a PoP's health.
type cause uint8

const (
	byProbes              cause = iota // no state counts: the probes decide
	byState                            // a fresh state (probes agree, or cannot reach the PoP)
	byProbeOverState                   // a fresh healthy state, but the PoP's /healthz said otherwise
	byStaleState                       // its states stopped while others' arrive
	byProbeAfterStaleness              // its states stopped, but a probe passed since
)

var causeNames = [...]string{"probes", "state", "probes over state", "states stopped", "probes after states stopped"}

// String names the cause, for /stats and explanations.
func (c cause) String() string { return causeNames[c] }

// status is p's health as answers use it at m: its probes' state
// combined with its latest state (the rule at the top of this file).
func (st *state) status(p *pop, m moment) (HealthState, cause) {
	h := p.health
	probe := h.get()
	if m.now == 0 {
		return probe, byProbes
	}
	r := p.report
	at := r.at.Load()
	if at == 0 {
		return probe, byProbes
	}
	if m.now-at <= st.maxAge {
		w := r.word.Load()
		switch {
		case w&reportDraining != 0:
			return Draining, byState
		case w&reportHealthy == 0:
			return Down, byState
		case probe == Up:
			return Up, byState
		case probe == Draining:
			return Draining, byProbeOverState
		case h.unreachable.Load():
			return Up, byState // the probes get no answer: the state decides
		}
		return Down, byProbeOverState // its /healthz answered, with an error
	}
	if !m.live {
		return probe, byProbes // no state is fresh: the server does not hear the bus
	}
	if probe == Up && h.lastPass.Load() > at+st.maxAge {
		return Up, byProbeAfterStaleness
	}
	return Down, byStaleState
}

// describe is p's status at m in words, for reasons: "down", or "down
// (states stopped)" when states decided it.
func (st *state) describe(p *pop, m moment) string {
	h, why := st.status(p, m)
	if why == byProbes {
		return h.String()
	}
	return h.String() + " (" + why.String() + ")"
}

// up reports whether p takes users at m.
func (st *state) up(p *pop, m moment) bool {
	s, _ := st.status(p, m)
	return s == Up
}

// settle brings p's health as shown (logs, /stats, metrics) up to date
// with its status now, logging a change and the start or end of fail
// open. detail is the probe's error, if a probe caused the call.
func (s *Server) settle(p *pop, detail string) {
	st := s.state.Load()
	m := s.moment(st)
	h := p.health
	if next, _ := st.status(p, m); next == HealthState(h.shown.Load()) {
		return
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	old := HealthState(h.shown.Load())
	next, why := st.status(p, m)
	if next == old {
		return
	}
	h.shown.Store(int32(next))
	h.changed.Store(s.now().UnixNano())
	switch next {
	case Up:
		if why == byProbes {
			s.log.Info("pop up", "pop", p.name, "was", old.String(), "passes", st.health.Rise)
		} else {
			s.log.Info("pop up", "pop", p.name, "was", old.String(), "by", why.String())
		}
	case Draining:
		s.log.Info("pop draining: answers go to other PoPs", "pop", p.name, "by", why.String())
	case Down:
		if why == byProbes {
			s.log.Warn("pop down: answers go to other PoPs", "pop", p.name, "fails", st.health.Fall, "err", detail)
		} else {
			s.log.Warn("pop down: answers go to other PoPs", "pop", p.name, "by", why.String())
		}
	}
	s.logFailOpen(st, m)
}

// settleAll settles every PoP of the running state: states go stale as
// time passes, with no event to say so.
func (s *Server) settleAll() {
	for _, p := range s.state.Load().pops {
		s.settle(p, "")
	}
}

// watchInterval is how often the server looks for PoPs whose states went
// stale, for its logs and metrics (answers see it at once).
const watchInterval = 250 * time.Millisecond

// watchStates settles every PoP each watchInterval, once states arrive,
// until ctx is done.
func (s *Server) watchStates(ctx context.Context) {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.lastState.Load() != 0 {
				s.settleAll()
			}
		}
	}
}
