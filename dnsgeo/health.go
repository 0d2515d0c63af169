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

// runProbes probes every PoP until ctx is done.
func (s *Server) runProbes(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range s.pops {
		if p.healthURL == "" {
			continue
		}
		wg.Go(func() { s.probeLoop(ctx, p) })
	}
	wg.Wait()
	if t, ok := s.client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// probeLoop probes p at once and then every interval until ctx is done.
func (s *Server) probeLoop(ctx context.Context, p *pop) {
	t := time.NewTicker(s.health.Interval)
	defer t.Stop()
	for {
		res, detail := s.probe(ctx, p)
		if ctx.Err() != nil {
			return
		}
		s.observe(p, res, detail)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one GET to p's /healthz.
func (s *Server) probe(ctx context.Context, p *pop) (probeResult, string) {
	ctx, cancel := context.WithTimeout(ctx, s.health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL, nil)
	if err != nil {
		return probeFail, err.Error()
	}
	req.Header.Set("User-Agent", "outpost-dns-health")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probeFail, fmt.Sprintf("no answer within %s", s.health.Timeout)
		}
		return probeFail, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	switch {
	case resp.StatusCode == http.StatusOK:
		return probePass, ""
	case resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(strings.TrimSpace(string(body)), "draining"):
		return probeDraining, "draining"
	}
	return probeFail, "status " + resp.Status
}

// observe applies one probe result to p's state and logs changes.
func (s *Server) observe(p *pop, res probeResult, detail string) {
	h := &p.health
	h.checks[res].Add(1)
	if detail != "" {
		h.lastErr.Store(&detail)
	}
	old := h.get()
	next := old
	switch res {
	case probePass:
		h.passes++
		h.fails = 0
		if old != Up && h.passes >= s.health.Rise {
			next = Up
		}
	case probeDraining:
		h.passes, h.fails = 0, 0
		next = Draining
	case probeFail:
		h.fails++
		h.passes = 0
		if old != Down && h.fails >= s.health.Fall {
			next = Down
		}
	}
	if next == old {
		return
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	h.state.Store(int32(next))
	h.changed.Store(s.now().UnixNano())
	switch next {
	case Up:
		s.log.Info("pop up", "pop", p.name, "was", old.String(), "passes", s.health.Rise)
	case Draining:
		s.log.Info("pop draining: answers go to other PoPs", "pop", p.name)
	case Down:
		s.log.Warn("pop down: answers go to other PoPs", "pop", p.name, "fails", s.health.Fall, "err", detail)
	}
	// Fail open: say so when a family loses its last healthy PoP, and
	// when it gets one back.
	for f := range s.failOpen {
		none := s.noneHealthy(family(f))
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
// none is healthy.
func (s *Server) noneHealthy(f family) bool {
	have := false
	for _, p := range s.byFamily[f] {
		if p.health.healthy() {
			return false
		}
		have = true
	}
	return have
}
