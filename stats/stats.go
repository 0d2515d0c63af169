// Package stats is the CDN-wide hit-ratio report: it polls the /stats of
// every PoP of a CDN file at once and adds the figures up, per PoP, per
// service and in total, with the ratios recomputed from the sums (a mean of
// ratios would weigh a quiet PoP like a busy one).
package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
	"github.com/outpost-cdn/outpost/purge"
)

// Figures are the counters every PoP reports in /stats, with the ratios
// derived from them (see the README's "figures"). Sums leave the latency
// percentiles zero: percentiles do not add up.
type Figures = popapi.Figures

// PoP is one PoP's part of the report.
type PoP struct {
	Name  string
	Admin string // base URL of its admin listener
	// Err is why its /stats could not be read; the other fields are then
	// zero.
	Err error
	// Raw is its /stats document as served.
	Raw json.RawMessage
	Figures
	Draining      bool
	ConfigVersion string
	Services      map[string]Figures
	// Disks are its cache directories' figures (none without a disk tier).
	Disks []popapi.DiskStats
}

// Health is "up", "draining" or "down" (unreachable).
func (p *PoP) Health() string {
	switch {
	case p.Err != nil:
		return "down"
	case p.Draining:
		return "draining"
	}
	return "up"
}

// Report is the whole CDN's figures at one moment.
type Report struct {
	At       time.Time
	PoPs     []PoP // in the file's order
	Services map[string]Figures
	Total    Figures
}

// Down returns the PoPs whose /stats could not be read.
func (r *Report) Down() []string {
	var down []string
	for _, p := range r.PoPs {
		if p.Err != nil {
			down = append(down, p.Name)
		}
	}
	return down
}

// Collect reads every PoP's /stats concurrently. A nil client means one
// with a 3 s timeout.
func Collect(ctx context.Context, cfg *config.Config, client *http.Client) *Report {
	if client == nil {
		client = &http.Client{Timeout: 3 * time.Second}
	}
	r := &Report{At: time.Now(), PoPs: make([]PoP, len(cfg.POPs))}
	var wg sync.WaitGroup
	for i := range cfg.POPs {
		p := &r.PoPs[i]
		p.Name, p.Admin = cfg.POPs[i].Name, purge.AdminURL(&cfg.POPs[i])
		wg.Go(func() { p.Err = fetch(ctx, client, p) })
	}
	wg.Wait()
	r.Sum()
	return r
}

// FromStats is the part of a report of the PoP name (admin says where its
// figures came from) that served doc, whose bytes as served are raw: its
// figures, draining, config version, each service's figures and its disks.
func FromStats(name, admin string, raw json.RawMessage, doc popapi.Stats) PoP {
	p := PoP{Name: name, Admin: admin, Raw: raw, Figures: doc.Figures, Draining: doc.Draining, ConfigVersion: doc.ConfigVersion, Disks: doc.Disks}
	p.Services = make(map[string]Figures, len(doc.Services))
	for n, s := range doc.Services {
		p.Services[n] = s.Figures
	}
	return p
}

// Sum sets Total and Services to the sums of the PoPs that answered (Err
// nil), with the ratios derived from the sums. When a PoP of the report
// has a disk tier, a PoP without one counts its hits as memory hits.
func (r *Report) Sum() {
	r.Total, r.Services = Figures{}, map[string]Figures{}
	tiered := r.tiered()
	for _, p := range r.PoPs {
		if p.Err != nil {
			continue
		}
		f := p.Figures
		if tiered && f.MemoryHits+f.DiskHits == 0 {
			f.MemoryHits = f.Hits // a PoP without a disk tier hits in memory
		}
		r.Total.Add(f)
		for name, f := range p.Services {
			s := r.Services[name]
			s.Add(f)
			r.Services[name] = s
		}
	}
	r.Total.Derive()
	for name, s := range r.Services {
		s.Derive()
		r.Services[name] = s
	}
}

// fetch reads one PoP's /stats into p.
func fetch(ctx context.Context, client *http.Client, p *PoP) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Admin+"/stats", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading /stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/stats answered %s", resp.Status)
	}
	var doc popapi.Stats
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("/stats is not the PoP's JSON: %w", err)
	}
	*p = FromStats(p.Name, p.Admin, raw, doc)
	return nil
}

// JSON renders the report as {"pops": {NAME: that PoP's /stats, or
// {"error": …}}, "total": {the figures summed, ratios recomputed},
// "services": {NAME: the same per service}}.
func (r *Report) JSON() ([]byte, error) {
	pops := make(map[string]json.RawMessage, len(r.PoPs))
	for _, p := range r.PoPs {
		if p.Err != nil {
			msg, _ := json.Marshal(map[string]string{"error": p.Err.Error()})
			pops[p.Name] = msg
			continue
		}
		pops[p.Name] = p.Raw
	}
	return json.MarshalIndent(map[string]any{"pops": pops, "total": r.Total, "services": r.Services}, "", "  ")
}

// tiered reports whether a PoP of the report has a disk tier: the table
// then has memory and disk hit ratio columns.
func (r *Report) tiered() bool {
	for _, p := range r.PoPs {
		if p.MemoryHits+p.DiskHits > 0 || len(p.Disks) > 0 {
			return true
		}
	}
	return false
}

// serviceNames returns the services seen, sorted.
func (r *Report) serviceNames() []string {
	names := make([]string, 0, len(r.Services))
	for n := range r.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Compact(names)
}
