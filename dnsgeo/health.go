package dnsgeo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// probeResult is what one health probe found.
type probeResult int

const (
	probePass     probeResult = iota // 200
	probeFail                        // no answer in time, or a status other than 200 and 503 "draining"
	probeDraining                    // 503 with a body starting "draining"
	numProbeResults
)

var probeResultNames = [numProbeResults]string{"pass", "fail", "draining"}

// HealthOptions say how PoPs are probed. Zero fields take the defaults
// given.
type HealthOptions struct {
	Interval time.Duration // between probes of one PoP; default 2s
	Timeout  time.Duration // for one probe; default 1s, at most Interval
	Rise     int           // passes in a row to come back; default 2
	Fall     int           // failures in a row to go out; default 2
}

func (o *HealthOptions) applyDefaults() {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	o.Timeout = min(o.Timeout, o.Interval)
	if o.Rise <= 0 {
		o.Rise = 2
	}
	if o.Fall <= 0 {
		o.Fall = 2
	}
}

// probeSet runs one prober per PoP of the running state while the server
// serves. A reload starts probers for added PoPs, stops those of removed
// ones, and restarts only those whose URL or health settings changed.
type probeSet struct {
	mu     sync.Mutex
	ctx    context.Context // nil while the server does not serve
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start starts probing the running state's PoPs until stop.
func (ps *probeSet) start(s *Server, ctx context.Context) {
	ps.mu.Lock()
	ps.ctx, ps.cancel = context.WithCancel(ctx)
	ps.mu.Unlock()
	ps.sync(s, nil, s.state.Load())
}

// stop stops every prober and waits for them.
func (ps *probeSet) stop(s *Server) {
	ps.mu.Lock()
	if ps.cancel != nil {
		ps.cancel()
	}
	ps.ctx, ps.cancel = nil, nil
	st := s.state.Load()
	for _, p := range st.pops {
		p.health.probeStop = nil
	}
	ps.mu.Unlock()
	ps.wg.Wait()
	if t, ok := s.client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// sync makes the probers match st, which replaced old (nil at start).
func (ps *probeSet) sync(s *Server, old, st *state) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ctx == nil {
		return // not serving: start will probe the running state's PoPs
	}
	if old != nil {
		for _, p := range old.pops {
			if n := st.popByName[p.name]; (n == nil || n.health != p.health) && p.health.probeStop != nil {
				p.health.probeStop()
				p.health.probeStop = nil
			}
		}
	}
	opts := st.health
	for _, p := range st.pops {
		h := p.health
		key := fmt.Sprintf("%s %v %v", p.healthURL, opts.Interval, opts.Timeout)
		if h.probeStop != nil && h.probeKey == key {
			continue
		}
		if h.probeStop != nil {
			h.probeStop()
			h.probeStop = nil
		}
		if p.healthURL == "" {
			continue
		}
		ctx, cancel := context.WithCancel(ps.ctx)
		h.probeStop, h.probeKey = cancel, key
		ps.wg.Go(func() { s.probeLoop(ctx, p, opts) })
	}
}

// probeLoop probes p at once and then every interval until ctx is done.
func (s *Server) probeLoop(ctx context.Context, p *pop, opts HealthOptions) {
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		res, detail, answered := s.probe(ctx, p, opts.Timeout)
		if ctx.Err() != nil {
			return
		}
		s.setUnreachable(p, !answered)
		s.observe(p, res, detail)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setUnreachable records whether p's last probe got no HTTP answer at all.
func (s *Server) setUnreachable(p *pop, v bool) {
	if p.health.unreachable.Swap(v) != v {
		s.bumpAnswers()
	}
}

// probe sends one GET to p's /healthz. answered reports whether the PoP
// gave an HTTP answer at all (a fresh healthy state outweighs probes that
// get none; see status).
func (s *Server) probe(ctx context.Context, p *pop, timeout time.Duration) (res probeResult, detail string, answered bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL, nil)
	if err != nil {
		return probeFail, err.Error(), false
	}
	req.Header.Set("User-Agent", "outpost-dns-health")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probeFail, fmt.Sprintf("no answer within %s", timeout), false
		}
		return probeFail, err.Error(), false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	switch {
	case resp.StatusCode == http.StatusOK:
		return probePass, "", true
	case resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(strings.TrimSpace(string(body)), "draining"):
		return probeDraining, "draining", true
	}
	return probeFail, "status " + resp.Status, true
}

// observe applies one probe result to p's probe state, with the rise and
// fall counts of the running state, and settles p's health (which logs
// changes).
func (s *Server) observe(p *pop, res probeResult, detail string) {
	h := p.health
	opts := s.state.Load().health
	h.checks[res].Add(1)
	if detail != "" {
		h.lastErr.Store(&detail)
	}
	old := h.get()
	next := old
	switch res {
	case probePass:
		// A pass counts for a PoP whose states stopped once it is newer
		// than they are (status): answers change when it first is.
		at, maxAge := p.report.at.Load(), s.state.Load().maxAge
		before := h.lastPass.Load() > at+maxAge
		h.lastPass.Store(s.now().UnixNano())
		if !before && h.lastPass.Load() > at+maxAge {
			s.bumpAnswers()
		}
		h.passes++
		h.fails = 0
		if old != Up && h.passes >= opts.Rise {
			next = Up
		}
	case probeDraining:
		h.passes, h.fails = 0, 0
		next = Draining
	case probeFail:
		h.fails++
		h.passes = 0
		if old != Down && h.fails >= opts.Fall {
			next = Down
		}
	}
	if next != old {
		h.state.Store(int32(next))
		s.bumpAnswers()
	}
	s.settle(p, detail)
}

// logFailOpen says so when a family loses its last healthy PoP, and when
// it gets one back. The caller holds healthMu.
func (s *Server) logFailOpen(st *state, m moment) {
	for f := range s.failOpen {
		none := st.noneHealthy(family(f), m)
		if none == s.failOpen[f] {
			continue
		}
		s.failOpen[f] = none
		if none {
			s.log.Warn("no healthy PoP: answering as if all were (fail open)", "type", family(f).String())
		} else {
			s.log.Info("a PoP is healthy again: fail open over", "type", family(f).String())
		}
	}
}

// noneHealthy reports whether PoPs with addresses of family f exist and
// none is healthy at m.
func (st *state) noneHealthy(f family, m moment) bool {
	have := false
	for _, p := range st.byFamily[f] {
		if st.up(p, m) {
			return false
		}
		have = true
	}
	return have
}
