package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxProbeBody bounds what is read of a health check or load answer.
const maxProbeBody = 64 << 10

// get sends GET path to s through the probe client and returns the status
// and up to maxProbeBody bytes of the body.
func (p *Pool) get(ctx context.Context, s *server, path string, timeout time.Duration) (int, []byte, error) {
	u, err := resolve(s.url, path)
	if err != nil {
		return 0, nil, err
	}
	return p.getURL(ctx, u, timeout)
}

// getURL sends GET u through the probe client and returns the status and
// up to maxProbeBody bytes of the body.
func (p *Pool) getURL(ctx context.Context, u *url.URL, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", "outpost-origin-probe")
	if p.hostHeader != "" {
		req.Host = p.hostHeader
	}
	resp, err := p.probe.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// checkLoop runs s's active health checks until ctx is done.
func (p *Pool) checkLoop(ctx context.Context, s *server, hc HealthCheck) {
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		p.check(ctx, s, hc)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one health check of s and applies rise and fall (and
// Draining).
func (p *Pool) check(ctx context.Context, s *server, hc HealthCheck) {
	target := hc.Path
	var status int
	var body []byte
	var err error
	if s.healthURL != nil {
		target = s.healthURL.String()
		status, body, err = p.getURL(ctx, s.healthURL, hc.Timeout)
	} else {
		status, body, err = p.get(ctx, s, hc.Path, hc.Timeout)
	}
	if ctx.Err() != nil {
		return // the pool is closing
	}
	draining := err == nil && hc.Draining != "" && status == http.StatusServiceUnavailable && strings.HasPrefix(string(body), hc.Draining)
	if err == nil && (status < 200 || status >= 400) {
		err = fmt.Errorf("health check %s answered %d", target, status)
	} else if err != nil {
		err = fmt.Errorf("health check %s: %w", target, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.checkRun = min(s.checkRun, 0) - 1
		s.lastErr = err.Error()
		s.lastFail = p.now()
		if !s.down && (draining || -s.checkRun >= hc.Fall) {
			s.down = true
			s.setUpLocked()
			p.log.Warn("origin server unhealthy", "server", s.name, "fall", hc.Fall, "draining", draining, "err", err)
		}
		return
	}
	s.checkRun = max(s.checkRun, 0) + 1
	if s.down && s.checkRun >= hc.Rise {
		s.down = false
		s.setUpLocked()
		p.log.Info("origin server healthy again", "server", s.name, "rise", hc.Rise)
	}
}

// loadLoop polls s's load figure until ctx is done.
func (p *Pool) loadLoop(ctx context.Context, s *server, lp LoadProbe) {
	t := time.NewTicker(lp.Interval)
	defer t.Stop()
	for {
		p.pollLoad(ctx, s, lp)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollLoad reads s's load once. A failed poll makes the load unknown.
func (p *Pool) pollLoad(ctx context.Context, s *server, lp LoadProbe) {
	status, body, err := p.get(ctx, s, lp.Path, lp.Timeout)
	if ctx.Err() != nil {
		return
	}
	load := math.NaN()
	switch {
	case err != nil:
	case status < 200 || status > 299:
		err = fmt.Errorf("answered %d", status)
	default:
		load, err = parseLoad(body)
	}
	if err != nil {
		s.loadErrors.Add(1)
		p.log.Debug("origin load poll failed", "server", s.name, "path", lp.Path, "err", err)
	}
	if old := s.loadBits.Swap(math.Float64bits(load)); old != math.Float64bits(load) {
		p.loadGen.Add(1)
	}
}

// parseLoad reads a load figure: one finite, non-negative number.
func parseLoad(body []byte) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(string(body)), 64)
	switch {
	case err != nil:
		return math.NaN(), fmt.Errorf("load %.40q is not a number", body)
	case math.IsInf(v, 0) || math.IsNaN(v) || v < 0:
		return math.NaN(), errors.New("load must be a finite number >= 0")
	}
	return v, nil
}

// InRotation returns how many of the pool's servers picks may choose now:
// neither failing active health checks nor ejected in a cool-down (one
// whose cool-down is over counts: its trial is the next pick of it). A
// caller with somewhere else to go (an edge whose shields are all down
// goes to the origin) checks it before Do, which would otherwise try the
// server that failed least recently.
func (p *Pool) InRotation() int {
	if p.cooling.Load() > 0 {
		p.revive() // a cool-down that is over makes its server the next trial
	}
	n := 0
	for _, s := range p.servers {
		if s.up.Load() {
			n++
		}
	}
	return n
}
