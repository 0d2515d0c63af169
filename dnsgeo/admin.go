package dnsgeo

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin endpoints: /healthz ("ok", or 503
// "draining" while the server shuts down), /stats (the server's figures
// as JSON), /explain?ip= (which PoP a client gets and why, as JSON) and
// /metrics (Prometheus text). These are read-only and need no
// credentials; bind the admin listener to an address only operators reach.
// POST /acme/present and /acme/cleanup put and remove ACME DNS-01
// challenge records, behind the bearer token of dns.acme (acme.go).
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.HandleFunc("GET /explain", s.serveExplain)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /acme/present", s.serveACME(true)) // behind dns.acme's token (acme.go)
	mux.HandleFunc("POST /acme/cleanup", s.serveACME(false))
	return mux
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// Stats is the document /stats serves.
type Stats struct {
	Zone          string  `json:"zone"`
	ConfigVersion string  `json:"config_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Draining      bool    `json:"draining"`
	// NetworkMapEntries is the number of rows of the network map; -1
	// when there is none.
	NetworkMapEntries int `json:"network_map_entries"`
	// Queries counts answered queries by response code (NOERROR, …).
	Queries map[string]uint64 `json:"queries"`
	// Decisions counts geo answers by what placed the client.
	Decisions   map[string]uint64 `json:"decisions"`
	FailOpen    uint64            `json:"fail_open_answers"`
	Truncated   uint64            `json:"truncated"`
	Rejected    uint64            `json:"rejected"`
	Invalid     uint64            `json:"invalid"`
	POPs        []POPStats        `json:"pops"`
	HealthProbe HealthOptions     `json:"health_probe"`
	// RateLimit is response rate limiting: its settings and what it did.
	RateLimit RateLimitStats `json:"rate_limit"`
	// Reloads counts configuration reloads that took effect, and those
	// rejected (the old configuration kept serving).
	Reloads         uint64 `json:"reloads"`
	ReloadsRejected uint64 `json:"reloads_rejected"`
	// States counts PoP states received from the control plane, by
	// result (accepted, stale, future, reordered, unknown_pop).
	States map[string]uint64 `json:"states"`
	// LoadShedding is the load-shedding settings (see docs/dns.md).
	LoadShedding LoadSheddingStats `json:"load_shedding"`
}

// LoadSheddingStats is the load-shedding settings as /stats shows them.
type LoadSheddingStats struct {
	Threshold       float64 `json:"threshold"`
	Release         float64 `json:"release"`
	ChangePerSecond float64 `json:"change_per_second"`
	MaxShare        float64 `json:"max_share"`
	// StateMaxAge is how old a state may be and still count.
	StateMaxAge string `json:"state_max_age"`
}

// RateLimitStats is response rate limiting as /stats shows it.
type RateLimitStats struct {
	Enabled            bool `json:"enabled"`
	ResponsesPerSecond int  `json:"responses_per_second,omitempty"`
	Burst              int  `json:"burst,omitempty"`
	Slip               int  `json:"slip,omitempty"`
	// Dropped counts UDP replies not sent; Slipped those sent empty and
	// truncated instead.
	Dropped uint64 `json:"dropped"`
	Slipped uint64 `json:"slipped"`
}

// POPStats is one PoP as the DNS server sees it.
type POPStats struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	Address6 string `json:"address6,omitempty"`
	// State is the PoP's health as answers use it: its probes combined
	// with its states from the control plane; StateBy says what decided
	// it ("probes", "state", "probes over state", "states stopped",
	// "probes after states stopped"), and Probe is what the probes alone
	// say.
	State   HealthState `json:"state"`
	StateBy string      `json:"state_by"`
	Probe   HealthState `json:"probe"`
	// Since is when the state last changed; zero when it never did.
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Control is the PoP's latest state from the control plane; nil
	// until one arrives.
	Control *POPControl `json:"control,omitempty"`
	// ShedAnswers counts answers that went to another PoP because this
	// one shed load.
	ShedAnswers uint64 `json:"shed_answers"`
	// Answers counts geo answers that carried the PoP's address;
	// Failovers those it gave because the first choice was unhealthy.
	Answers   uint64            `json:"answers"`
	Failovers uint64            `json:"failover_answers"`
	Checks    map[string]uint64 `json:"checks"`
}

// healthJSON is HealthOptions as /stats shows them.
type healthJSON struct {
	Interval string `json:"interval"`
	Timeout  string `json:"timeout"`
	Rise     int    `json:"rise"`
	Fall     int    `json:"fall"`
}

// MarshalJSON writes durations as Go duration strings.
func (o HealthOptions) MarshalJSON() ([]byte, error) {
	return json.Marshal(healthJSON{o.Interval.String(), o.Timeout.String(), o.Rise, o.Fall})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (o *HealthOptions) UnmarshalJSON(b []byte) error {
	var h healthJSON
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	var err error
	if o.Interval, err = time.ParseDuration(h.Interval); err != nil {
		return fmt.Errorf("dnsgeo: interval: %w", err)
	}
	if o.Timeout, err = time.ParseDuration(h.Timeout); err != nil {
		return fmt.Errorf("dnsgeo: timeout: %w", err)
	}
	o.Rise, o.Fall = h.Rise, h.Fall
	return nil
}

// Stats returns a snapshot of the server's figures.
func (s *Server) Stats() Stats {
	m, cur := s.metrics, s.state.Load()
	st := Stats{
		Zone:              strings.TrimSuffix(cur.zone.name, "."),
		ConfigVersion:     cur.version,
		UptimeSeconds:     s.now().Sub(s.started).Round(time.Millisecond).Seconds(),
		Draining:          s.draining.Load(),
		NetworkMapEntries: cur.networks,
		Queries:           make(map[string]uint64),
		Decisions:         make(map[string]uint64),
		FailOpen:          m.failOpen.Load(),
		Truncated:         m.truncated.Load(),
		Rejected:          m.rejected.Load(),
		Invalid:           m.invalid.Load(),
		HealthProbe:       cur.health,
		RateLimit: RateLimitStats{
			Enabled: cur.rrl != nil,
			Dropped: m.rrlDropped.Load(),
			Slipped: m.rrlSlipped.Load(),
		},
		Reloads:         m.reloads[0].Load(),
		ReloadsRejected: m.reloads[1].Load(),
		States:          make(map[string]uint64, numStateResults),
		LoadShedding: LoadSheddingStats{
			Threshold: cur.shed.threshold, Release: cur.shed.release,
			ChangePerSecond: cur.shed.perNano * float64(time.Second), MaxShare: cur.shed.maxShare,
			StateMaxAge: time.Duration(cur.maxAge).String(),
		},
	}
	for r := range numStateResults {
		st.States[stateResultNames[r]] = m.states[r].Load()
	}
	mo := s.moment(cur)
	if rl := cur.cfg.RateLimit; rl.Enabled() {
		st.RateLimit.ResponsesPerSecond, st.RateLimit.Burst, st.RateLimit.Slip = rl.ResponsesPerSecond, rl.Burst, rl.Slip
	}
	sum := func(qs *[numTypes * numRcodes * 2]atomic.Uint64) (total uint64) {
		for t := range typeNames {
			for r := range rcodeNames {
				for e := range ecsNames {
					if v := qs[queryIndex(t, r, e)].Load(); v > 0 {
						st.Queries[rcodeNames[r]] += v
						total += v
					}
				}
			}
		}
		return total
	}
	sum(&m.noPOP)
	for i, name := range cur.byNames {
		st.Decisions[name] = cur.decisions[i].Load()
	}
	for _, p := range cur.pops {
		state, by := cur.status(p, mo)
		ps := POPStats{
			Name:        p.name,
			State:       state,
			StateBy:     by.String(),
			Probe:       p.health.get(),
			Answers:     sum(&p.counts.queries),
			Failovers:   p.counts.failovers.Load(),
			ShedAnswers: p.counts.shed.Load(),
			Checks:      make(map[string]uint64, numProbeResults),
			Control:     cur.control(p, mo),
		}
		if p.addr[v4].IsValid() {
			ps.Address = p.addr[v4].String()
		}
		if p.addr[v6].IsValid() {
			ps.Address6 = p.addr[v6].String()
		}
		if ns := p.health.changed.Load(); ns != 0 {
			ps.Since = time.Unix(0, ns).UTC()
		}
		if e := p.health.lastErr.Load(); e != nil {
			ps.LastError = *e
		}
		for r := range numProbeResults {
			ps.Checks[probeResultNames[r]] = p.health.checks[r].Load()
		}
		st.POPs = append(st.POPs, ps)
	}
	return st
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Stats()); err != nil {
		s.log.Debug("writing stats", "err", err)
	}
}

// POPControl is a PoP's latest state from the control plane as the DNS
// server holds it.
type POPControl struct {
	// AgeSeconds is how old the state is; Fresh reports that it is at
	// most dns.states.max_age old, so that it counts.
	AgeSeconds float64 `json:"age_seconds"`
	Fresh      bool    `json:"fresh"`
	Healthy    bool    `json:"healthy"`
	Draining   bool    `json:"draining,omitempty"`
	// Load is the PoP's load (1 is at capacity); ShedShare the share of
	// its users sent to the next-nearest PoP (0 unless the state is
	// fresh).
	Load           float64 `json:"load"`
	ShedShare      float64 `json:"shed_share"`
	ConfigRevision uint64  `json:"config_revision"`
}

// control returns p's latest state at m for /stats; nil when none arrived.
func (st *state) control(p *pop, m moment) *POPControl {
	r := p.report
	at := r.at.Load()
	if at == 0 || m.now == 0 {
		return nil
	}
	w := r.word.Load()
	share, _ := st.shedShare(p, m)
	return &POPControl{
		AgeSeconds:     math.Round(float64(m.now-at)/1e6) / 1e3,
		Fresh:          m.now-at <= st.maxAge,
		Healthy:        w&reportHealthy != 0,
		Draining:       w&reportDraining != 0,
		Load:           math.Round(reportLoad(w)*1e4) / 1e4,
		ShedShare:      share,
		ConfigRevision: r.revision.Load(),
	}
}
