package dnsgeo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/outpost-cdn/outpost/config"
)

// family indexes the two address families answers come in.
type family int

const (
	v4 family = iota // A records
	v6               // AAAA records
)

// String returns the record type of the family.
func (f family) String() string {
	if f == v6 {
		return "AAAA"
	}
	return "A"
}

// pop is a configured PoP as one state of the server runs it. Everything
// but what health, report and counts point to is fixed once the state is
// built; those carry over to the next state when a reload keeps the PoP
// (by name), so that its health, latest state and figures survive the
// reload.
type pop struct {
	name      string
	index     int // in file order
	loc       Location
	pt        point
	addr      [2]netip.Addr // by family; the zero Addr when it has none
	ip        [2]net.IP     // the same, as miekg/dns records want them
	weight    float64
	seed      uint64 // hash of the name, for rendezvous hashing
	healthURL string

	health *health
	report *report // its latest state from the control plane (states.go)
	counts *popCounts
}

// popCounts are the per-PoP counters of the query path.
type popCounts struct {
	queries   [numTypes * numRcodes * 2]atomic.Uint64 // [type][rcode][ecs]
	failovers atomic.Uint64
	shed      atomic.Uint64 // answers that went to another PoP because this one shed load
}

// hasFamily reports whether the PoP has an address of family f.
func (p *pop) hasFamily(f family) bool { return p.ip[f] != nil }

// newPOPs makes the running form of the configured PoPs. A PoP that old
// (the previous state's PoPs by name; nil for none) has keeps its health
// and counters.
func newPOPs(cfg []config.POP, old map[string]*pop) []*pop {
	out := make([]*pop, len(cfg))
	for i, c := range cfg {
		p := &pop{
			name:   c.Name,
			index:  i,
			loc:    Location{Lat: c.Location.Lat, Lon: c.Location.Lon},
			weight: float64(max(c.Weight, 1)),
		}
		p.pt = newPoint(p.loc)
		p.seed = nameSeed(c.Name)
		if c.Address.Is4() {
			p.addr[v4], p.ip[v4] = c.Address, net.IP(c.Address.AsSlice())
		}
		if c.Address6.Is6() {
			p.addr[v6], p.ip[v6] = c.Address6, net.IP(c.Address6.AsSlice())
		}
		p.healthURL = healthURL(c.Admin, p.addr)
		if o := old[c.Name]; o != nil {
			p.health, p.report, p.counts = o.health, o.report, o.counts
		} else {
			p.health, p.report, p.counts = new(health), new(report), new(popCounts)
		}
		out[i] = p
	}
	return out
}

// healthURL is where the PoP's /healthz is probed: its admin address, with
// a wildcard host replaced by the PoP's answer address (or the loopback
// address when it has none), since the prober runs where it can reach it.
func healthURL(admin string, addrs [2]netip.Addr) string {
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		switch {
		case addrs[v4].IsValid():
			host = addrs[v4].String()
		case addrs[v6].IsValid():
			host = addrs[v6].String()
		default:
			host = "127.0.0.1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}

// HealthState is what the probes say about a PoP.
type HealthState int32

// The health states. Every PoP starts Up: a PoP counts as healthy until
// probes prove otherwise, so a restarted DNS server answers at once.
const (
	// Up PoPs are in rotation.
	Up HealthState = iota
	// Down PoPs failed Fall probes in a row; Rise passes bring them back.
	Down
	// Draining PoPs answered 503 "draining" (they are shutting down):
	// out at once, back after Rise passes.
	Draining
)

// String returns "up", "down" or "draining".
func (s HealthState) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	case Draining:
		return "draining"
	}
	return "HealthState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText writes the state's name, for /stats.
func (s HealthState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name, so /stats can be decoded.
func (s *HealthState) UnmarshalText(b []byte) error {
	for _, st := range []HealthState{Up, Down, Draining} {
		if string(b) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("dnsgeo: unknown health state %q", b)
}

// health is a PoP's probe state. state is read by every query; the rest is
// written by the PoP's prober only, and read by /stats under atomics.
// The probe fields belong to the server's prober set, under its lock.
// shown and changed are the PoP's health as answers use it (probes and
// states combined, see status), as last logged: the server's healthMu
// guards their changes.
type health struct {
	state   atomic.Int32 // a HealthState, by the probes alone
	shown   atomic.Int32 // a HealthState, as last settled (states.go)
	changed atomic.Int64 // Unix nanoseconds of the last change of shown; 0 = never
	lastErr atomic.Pointer[string]
	// unreachable is true when the last failed probe got no HTTP answer
	// (a timeout, a refused or unroutable connection); lastPass is when
	// a probe last passed (Unix ns; 0 = never).
	unreachable atomic.Bool
	lastPass    atomic.Int64

	passes, fails int // in a row; the prober's own

	checks [numProbeResults]atomic.Uint64 // probes by result

	probeStop context.CancelFunc // stops the running prober; nil when none runs
	probeKey  string             // what it probes with: URL and options
}

func (h *health) get() HealthState { return HealthState(h.state.Load()) }
