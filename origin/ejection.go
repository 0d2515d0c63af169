package origin

import (
	"math"
	"time"
)

// This file is passive ejection. A server's eject state moves from
// inRotation to coolingDown after Ejection.Failures failures in a row;
// from coolingDown to probing when the cool-down is over (revive, which
// pick runs); from probing to onTrial when a pick claims the one trial
// request. Any success of a request sent after the ejection brings the
// server back to inRotation, and any failure of one restarts the
// cool-down; the ejection epoch tells those requests from the ones sent
// before, whose answers do not count. A trial that ends without a verdict
// goes back to probing (endTrial).

// endTrial puts a server whose trial request ended without a verdict (it
// was never sent, or the caller gave up) back to waiting for one.
func (p *Pool) endTrial(s *server, trial bool) {
	if !trial {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eject == onTrial {
		s.eject = probing
		s.setUpLocked()
	}
}

// revive starts the trial phase of every server whose cool-down is over.
func (p *Pool) revive() {
	now := p.now()
	if now.UnixNano() < p.reviveAt.Load() {
		return
	}
	p.reviveMu.Lock()
	defer p.reviveMu.Unlock()
	p.reviveAt.Store(math.MaxInt64)
	next := int64(math.MaxInt64)
	for _, s := range p.servers {
		s.mu.Lock()
		if s.eject == coolingDown {
			if !now.Before(s.until) {
				s.eject = probing
				s.setUpLocked()
				p.cooling.Add(-1)
			} else {
				next = min(next, s.until.UnixNano())
			}
		}
		s.mu.Unlock()
	}
	p.noteCooldown(next)
}

// noteCooldown lowers reviveAt to at.
func (p *Pool) noteCooldown(at int64) {
	for {
		cur := p.reviveAt.Load()
		if at >= cur || p.reviveAt.CompareAndSwap(cur, at) {
			return
		}
	}
}

// coolDownLocked starts s's cool-down; s.mu is held.
func (p *Pool) coolDownLocked(s *server, now time.Time) {
	if s.eject != coolingDown {
		p.cooling.Add(1)
	}
	s.eject = coolingDown
	s.until = now.Add(p.ejection.Cooldown)
	s.setUpLocked()
	p.noteCooldown(s.until.UnixNano())
}

// failed records a failure of attempt a and ejects the server after
// Ejection.Failures in a row; a failure of a request sent to an ejected
// server restarts its cool-down.
func (p *Pool) failed(a *attempt, err error) {
	s := a.s
	s.failures.Add(1)
	n := s.consecutive.Add(1)
	now := p.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
	s.lastFail = now
	switch {
	case s.eject != inRotation:
		if a.epoch == s.epoch.Load() {
			p.coolDownLocked(s, now)
		}
	case n >= int64(p.ejection.Failures):
		s.epoch.Add(1)
		p.coolDownLocked(s, now)
		p.log.Warn("origin server ejected", "server", s.name, "failures", n, "cooldown", p.ejection.Cooldown, "err", err)
	}
}

// succeeded records a success of attempt a: it resets the failure run and
// brings an ejected server back when a was sent after the ejection.
func (p *Pool) succeeded(a *attempt) {
	s := a.s
	if s.consecutive.Load() != 0 {
		s.consecutive.Store(0)
	}
	if s.up.Load() && !s.probing.Load() {
		return // the common case: nothing to change
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eject == inRotation || a.epoch != s.epoch.Load() {
		return
	}
	if s.eject == coolingDown {
		p.cooling.Add(-1)
	}
	s.eject = inRotation
	s.setUpLocked()
	p.log.Info("origin server back in rotation", "server", s.name)
}
