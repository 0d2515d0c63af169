package dnsgeo

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo/dnssec"
	"github.com/outpost-cdn/outpost/dnsgeo/netmap"
)

// state is everything the server derives from the configuration file and
// the files it names: the zone, the PoPs, the answers, the fallback order,
// the locators and their databases, spread, TTLs, health settings and rate
// limits. It is immutable once built (health and counters aside, which
// its PoPs point to); a reload builds a whole new state and swaps it in,
// and a query loads the state once and answers from it alone.
type state struct {
	cfg     *config.DNS
	version string

	zone          *zone
	pops          []*pop // in file order
	popByName     map[string]*pop
	byFamily      [2][]*pop // PoPs with an address of each family, in file order
	fallbackOrder [2][]*pop // the same in the fallback order
	locators      []Locator
	byNames       []string         // decision labels: the locators' names, then "fallback"
	decisions     []*atomic.Uint64 // the counters of byNames
	networks      int              // rows of the network map; -1 when there is none
	closeLocators func() error     // releases the locators' databases; nil when there is nothing to release
	spread        float64
	udpSize       uint16
	health        HealthOptions
	rrl           *rrl  // nil when rate limiting is off
	maxAge, skew  int64 // dns.states, in nanoseconds
	shed          shedding
	acme          *acmeStore     // the server's challenge records (acme.go); they outlive reloads
	signer        *dnssec.Signer // nil when the zone is not signed (sign.go)
	answers       *answerCache   // the UDP answer cache (answercache.go); nil when off
	ranks         sync.Map       // rankKey → []rankedPoP: PoPs by distance from a point (decide.go)
	rankCount     atomic.Int64   // points ranked, kept or not
}

// buildState builds the state of cfg: it reads the network map and the
// databases the configuration names and checks them against the PoPs. old
// is the running state (nil in New): PoPs it has keep their health and
// counters, and its rate-limit table is kept when the settings are the
// same. locators, when not nil, are used instead of the configuration's.
func (s *Server) buildState(cfg *config.Config, old *state, locators []Locator) (_ *state, err error) {
	dc, err := cfg.DNSConfig()
	if err != nil {
		return nil, err
	}
	var oldPOPs map[string]*pop
	if old != nil {
		oldPOPs = old.popByName
	}
	st := &state{
		cfg:       dc,
		version:   cfg.Version,
		zone:      newZone(cfg),
		pops:      newPOPs(cfg.POPs, oldPOPs),
		popByName: make(map[string]*pop),
		spread:    dc.Spread,
		udpSize:   uint16(min(max(dc.UDPSize, dns.MinMsgSize), 4096)),
		health: HealthOptions{
			Interval: dc.Health.Interval, Timeout: dc.Health.Timeout,
			Rise: dc.Health.Rise, Fall: dc.Health.Fall,
		},
		networks: -1,
		maxAge:   int64(dc.States.MaxAge),
		skew:     int64(dc.States.Skew),
		shed:     newShedding(dc.LoadShedding),
		acme:     s.acme,
		answers:  newAnswerCache(s.answerCacheSize(dc), s.metrics),
	}
	var oldSigner *dnssec.Signer
	if old != nil {
		oldSigner = old.signer
	}
	if st.signer, err = s.loadSigner(cfg, st.zone, oldSigner); err != nil {
		return nil, err
	}
	if st.maxAge <= 0 { // a hand-made config
		st.maxAge = int64(2 * time.Second)
	}
	st.health.applyDefaults()
	for _, p := range st.pops {
		st.popByName[p.name] = p
		for f := range st.byFamily {
			if p.hasFamily(family(f)) {
				st.byFamily[f] = append(st.byFamily[f], p)
			}
		}
	}
	if len(st.byFamily[v4])+len(st.byFamily[v6]) == 0 {
		return nil, fmt.Errorf("dnsgeo: no PoP of %s has an address to answer with", cfg.Path)
	}
	for _, name := range dc.Fallback {
		p := st.popByName[name]
		for f := range st.fallbackOrder {
			if p != nil && p.hasFamily(family(f)) {
				st.fallbackOrder[f] = append(st.fallbackOrder[f], p)
			}
		}
	}
	for f := range st.fallbackOrder {
		if len(st.fallbackOrder[f]) == 0 { // a hand-made config without Fallback
			st.fallbackOrder[f] = st.byFamily[f]
		}
	}

	st.locators = locators
	if st.locators == nil {
		if err := st.loadLocators(dc); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil && st.closeLocators != nil {
				st.closeLocators()
			}
		}()
	}
	for _, l := range st.locators {
		st.byNames = append(st.byNames, l.Name())
	}
	st.byNames = append(st.byNames, byFallback)
	for _, name := range st.byNames {
		st.decisions = append(st.decisions, s.metrics.decision(name))
	}

	if rl := dc.RateLimit; rl.Enabled() {
		if old != nil && old.rrl != nil && old.rrl.cfg == rl {
			st.rrl = old.rrl // same settings: the accounts carry on
		} else {
			st.rrl = newRRL(rl)
		}
	}
	return st, nil
}

// loadLocators makes the locators the configuration names (see
// loadLocators in locators.go) and checks the network map's PoP names.
func (st *state) loadLocators(dc *config.DNS) error {
	locs, info, closeFn, err := loadLocators(dc)
	if err != nil {
		return err
	}
	if info.networkMap != nil {
		if err := st.checkMap(info.networkMap); err != nil {
			closeFn()
			return err
		}
	}
	st.locators, st.networks = locs, info.networks
	st.closeLocators = sync.OnceValue(closeFn) // once, whoever gets there first
	return nil
}

// checkMap reports every row of m that names a PoP the configuration does
// not have.
func (st *state) checkMap(m *netmap.Map) error {
	var errs []error
	names := make([]string, len(st.pops))
	for i, p := range st.pops {
		names[i] = p.name
	}
	for e := range m.Entries {
		if e.POP != "" && st.popByName[e.POP] == nil {
			errs = append(errs, &netmap.ParseError{File: m.Name(), Line: e.Line,
				Msg: fmt.Sprintf("unknown PoP %q (have %s)", e.POP, strings.Join(names, ", "))})
			if len(errs) == 50 {
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("dnsgeo: network map: %w", errors.Join(errs...))
	}
	return nil
}

// byIndex returns the metrics index of a decision's By.
func (st *state) byIndex(by string) int {
	for i, n := range st.byNames {
		if n == by {
			return i
		}
	}
	return len(st.byNames) - 1
}

// retireGrace is how long a replaced state's databases stay open after a
// reload: far longer than any query takes (microseconds), so no query
// still answering from the old state reads a closed database.
const retireGrace = 10 * time.Second

// Reload builds the state of cfg, reading its network map and databases,
// and swaps it in for the running one, without dropping a query. On any
// error the running state keeps serving and the error says why. PoPs that
// stay keep their health and probes; added PoPs start probes and removed
// ones stop theirs. Listen and admin addresses cannot change on reload:
// such a file is rejected (restart the server to apply it). The replaced
// state's databases are closed once no query can still be using them.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.reload(cfg)
	if err != nil {
		s.metrics.reloads[1].Add(1)
		return err
	}
	s.metrics.reloads[0].Add(1)
	return nil
}

func (s *Server) reload(cfg *config.Config) error {
	old := s.state.Load()
	dc, err := cfg.DNSConfig()
	if err != nil {
		return err
	}
	if !slices.Equal(dc.Listen, old.cfg.Listen) {
		return fmt.Errorf("dnsgeo: dns.listen changed (%s → %s): listen addresses cannot change on reload; restart the server to apply the file",
			strings.Join(old.cfg.Listen, " "), strings.Join(dc.Listen, " "))
	}
	if dc.Admin != old.cfg.Admin {
		return fmt.Errorf("dnsgeo: dns.admin changed (%q → %q): the admin address cannot change on reload; restart the server to apply the file",
			old.cfg.Admin, dc.Admin)
	}
	var locators []Locator
	if s.fixedLocators {
		locators = old.locators
	}
	st, err := s.buildState(cfg, old, locators)
	if err != nil {
		return err
	}
	s.state.Store(st)
	s.probes.sync(s, old, st)
	s.retire(old)

	added, removed := 0, 0
	for _, p := range st.pops {
		if old.popByName[p.name] == nil {
			added++
		}
	}
	for _, p := range old.pops {
		if st.popByName[p.name] == nil {
			removed++
		}
	}
	s.log.Info("dns reloaded", "config_version", st.version, "was_version", old.version,
		"pops", len(st.pops), "pops_added", added, "pops_removed", removed,
		"service_names", st.zone.services, "was_service_names", old.zone.services,
		"networks", st.networks, "was_networks", old.networks,
		"locators", strings.Join(st.byNames[:len(st.byNames)-1], ","),
		"rate_limit", st.rrl != nil)
	return nil
}

// retire closes the databases of a replaced state once queries that may
// still use it are done: after retireGrace, or when the server stops.
func (s *Server) retire(old *state) {
	if old.closeLocators == nil || s.fixedLocators {
		return
	}
	s.retiredMu.Lock()
	defer s.retiredMu.Unlock()
	if s.stopped {
		s.closeState(old)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(retireGrace, func() {
		s.retiredMu.Lock()
		_, pending := s.retired[t]
		delete(s.retired, t)
		s.retiredMu.Unlock()
		if pending {
			s.closeState(old)
		}
	})
	s.retired[t] = old
}

// closeRetired closes every replaced state's databases at once, and the
// running state's; the server no longer answers.
func (s *Server) closeRetired() {
	s.retiredMu.Lock()
	s.stopped = true
	olds := make([]*state, 0, len(s.retired))
	for t, old := range s.retired {
		t.Stop()
		olds = append(olds, old)
	}
	clear(s.retired)
	s.retiredMu.Unlock()
	for _, old := range olds {
		s.closeState(old)
	}
	if !s.fixedLocators {
		s.closeState(s.state.Load())
	}
}

func (s *Server) closeState(st *state) {
	if st.closeLocators == nil {
		return
	}
	if err := st.closeLocators(); err != nil {
		s.log.Warn("closing a replaced configuration's databases", "err", err)
	}
}

// Close releases the databases of a Server that will not serve (Serve
// releases them when it returns).
func (s *Server) Close() error {
	s.closeRetired()
	return nil
}
