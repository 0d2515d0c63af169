package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// originStats reads the synthetic origin's /_origin/stats: POST returns
// the counters and zeroes them, GET returns them.
type originStats struct {
	url    string
	client *http.Client
	zeroed atomic.Bool // the counters were zeroed when the window started
}

func newOriginStats(url string) *originStats {
	return &originStats{url: url, client: &http.Client{Timeout: 5 * time.Second}}
}

func (o *originStats) close() { o.client.CloseIdleConnections() }

// read fetches the counters; zero says whether to zero them too.
func (o *originStats) read(ctx context.Context, zero bool) (synthetic.Stats, error) {
	var st synthetic.Stats
	method := http.MethodGet
	if zero {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, o.url, nil)
	if err != nil {
		return st, fmt.Errorf("bench: origin stats: %w", err)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("bench: origin stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bench: origin stats: %s %s: %s", method, o.url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("bench: origin stats: %s %s: %w", method, o.url, err)
	}
	return st, nil
}

// reset zeroes the counters now.
func (o *originStats) reset(ctx context.Context) error {
	if _, err := o.read(ctx, true); err != nil {
		return err
	}
	o.zeroed.Store(true)
	return nil
}

// resetAt zeroes the counters when the warm-up ends, and then opens the
// measured window, so that bench and the origin count from the same
// moment (give or take the requests in flight). Failing, it logs and opens
// the window as planned: the run goes on without an origin offload.
func (o *originStats) resetAt(ctx context.Context, s *schedule, at time.Time, log *slog.Logger) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		s.openWindow(at)
		return
	}
	if err := o.reset(ctx); err != nil {
		if ctx.Err() == nil {
			log.Warn("bench: resetting the origin's stats after the warm-up; no origin offload", "err", err)
		}
		s.openWindow(at)
		return
	}
	s.openWindow(time.Now())
}

func (o *originStats) wasReset() bool { return o.zeroed.Load() }
