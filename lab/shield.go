package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/bench"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin/synthetic"
	"github.com/outpost-cdn/outpost/pop"
)

// The shield comparison (docs/shield.md): the same workload twice, from
// every region, on objects no PoP holds yet: first with every PoP
// filling from the origin, then with one PoP as the service's shield
// (the PoPs reload a copy of the file that names it). The origin's own
// count of requests tells the difference.

// ShieldComparison is what the origin saw in the two phases.
type ShieldComparison struct {
	// Shield is the PoP that shielded the origin in the second phase.
	Shield string `json:"shield"`
	// Requests is each phase's request count, and Objects the distinct
	// objects each phase asked for (the best an origin behind a shield
	// can see: each object once).
	Requests int64 `json:"requests"`
	Objects  int   `json:"objects"`
	// Without and With are the origin's request counts in each phase.
	Without int64 `json:"origin_requests_without_shield"`
	With    int64 `json:"origin_requests_with_shield"`
	// Errors are the failed requests of both phases.
	Errors int64 `json:"errors"`
}

// shieldPoP is opts' choice, or the PoP with the least total distance to
// the others (the built-in lab's prg).
func shieldPoP(cfg *config.Config, name string) (string, error) {
	if name != "" {
		if _, err := cfg.POP(name); err != nil {
			return "", fmt.Errorf("lab: -shield-pop: %w", err)
		}
		return name, nil
	}
	best, bestSum := "", math.Inf(1)
	for _, p := range cfg.POPs {
		sum := 0.0
		for _, q := range cfg.POPs {
			sum += km(p.Location, q.Location)
		}
		if sum < bestSum {
			best, bestSum = p.Name, sum
		}
	}
	return best, nil
}

// km is the great-circle distance.
func km(a, b config.Location) float64 {
	rad := math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * 6371 * math.Asin(math.Sqrt(h))
}

// compareShield runs the two phases and leaves every PoP on cfg again.
func compareShield(ctx context.Context, cfg *config.Config, dc *config.DNS, originAddr string, pops []*pop.PoP, opts Options) (*ShieldComparison, error) {
	name, err := shieldPoP(cfg, opts.ShieldPoP)
	if err != nil {
		return nil, err
	}
	// Copies of the file whose first service has no shield and has name
	// as its shield (a -config file's service may have one already).
	direct, shielded := *cfg, *cfg
	direct.Services, shielded.Services = slices.Clone(cfg.Services), slices.Clone(cfg.Services)
	direct.Services[0].Shield = config.Shield{}
	pc, _ := cfg.POP(name)
	// The edges reach the shield at its listen address and probe its
	// admin /healthz (docs/shield.md), as config makes a shield section.
	shielded.Services[0].Shield = config.Shield{POPs: []string{name}, Addrs: []string{reach(*pc, pc.Listen)}, Admins: []string{reach(*pc, pc.Admin)}}

	cmp := &ShieldComparison{Shield: name}
	phase := func(prefix string) (origin int64, objects int, err error) {
		before, err := originRequests(ctx, originAddr)
		if err != nil {
			return 0, 0, err
		}
		rec := &distinct{seen: map[string]struct{}{}}
		o := opts
		o.Warmup = 0
		res, err := runLoadWith(ctx, cfg, dc, cfg.Services[0], "", o, func(bc *bench.Config) error {
			wl, err := bench.NewZipf(bench.ZipfOptions{Objects: uint64(opts.Objects), S: opts.ZipfS, Seed: opts.Seed, PathTemplate: "/obj/" + prefix + "-{id}"})
			if err != nil {
				return err
			}
			rec.Workload = wl
			bc.Workload = rec
			bc.Requests = opts.ShieldRequests
			bc.Duration = time.Minute // a cap: the phase ends at Requests
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
		after, err := originRequests(ctx, originAddr)
		if err != nil {
			return 0, 0, err
		}
		cmp.Requests = res.Requests
		cmp.Errors += res.Errors
		return after - before, rec.count(), nil
	}
	reload := func(c *config.Config) error {
		for _, p := range pops {
			if err := p.Reload(c); err != nil {
				return fmt.Errorf("lab: shield phase: %w", err)
			}
		}
		return nil
	}
	defer reload(cfg)
	if err := reload(&direct); err != nil {
		return nil, err
	}
	if cmp.Without, cmp.Objects, err = phase("noshield"); err != nil {
		return nil, err
	}
	if err := reload(&shielded); err != nil {
		return nil, err
	}
	var objects int
	if cmp.With, objects, err = phase("shield"); err != nil {
		return nil, err
	}
	cmp.Objects = max(cmp.Objects, objects)
	return cmp, nil
}

// distinct is a workload that counts the distinct paths it hands out.
type distinct struct {
	bench.Workload
	mu   sync.Mutex
	seen map[string]struct{}
}

func (d *distinct) Next(dst []byte, k uint64, elapsed time.Duration) ([]byte, bool) {
	n := len(dst)
	out, ok := d.Workload.Next(dst, k, elapsed)
	if ok {
		d.mu.Lock()
		d.seen[string(out[n:])] = struct{}{}
		d.mu.Unlock()
	}
	return out, ok
}

func (d *distinct) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// originRequests reads the synthetic origin's request count.
func originRequests(ctx context.Context, originAddr string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+originAddr+"/_origin/stats", nil)
	if err != nil {
		return 0, fmt.Errorf("lab: origin stats: %w", err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("lab: origin stats: %w", err)
	}
	defer resp.Body.Close()
	var st synthetic.Stats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("lab: origin stats: %w", err)
	}
	return st.Requests.Total, nil
}
