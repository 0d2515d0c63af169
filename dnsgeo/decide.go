package dnsgeo

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"slices"

	"github.com/miekg/dns"
)

// Query is what a decision is made from.
type Query struct {
	// Source is the query's source address: the user's resolver, or the
	// user.
	Source netip.Addr
	// Subnet is the address and source prefix length of the query's EDNS
	// Client Subnet option; the zero Prefix when it has none.
	Subnet netip.Prefix
	// Type is dns.TypeA or dns.TypeAAAA.
	Type uint16
}

// Decision says which PoP answers a query, and why.
type Decision struct {
	// POP is the chosen PoP's name; "" when no PoP has an address of the
	// query's type (the answer is then empty).
	POP string
	// Addr is the chosen PoP's address of the query's type.
	Addr netip.Addr
	// Client is the prefix that was located (the ECS subnet or the source
	// address); the zero Prefix when neither was usable.
	Client netip.Prefix
	// ECS reports whether the answer depends on the ECS subnet, in which
	// case Scope is the SCOPE PREFIX-LENGTH to send (RFC 7871 §7.2.1):
	// the widest subnet around the client for which the answer holds.
	// Scope is 0 when ECS was not used.
	ECS   bool
	Scope int
	// By names what placed the client: a Locator's name, or "fallback"
	// when none did.
	By string
	// Match is what the locator said (zero for "fallback").
	Match Match
	// Failover reports that the first choice (the nearest PoP, the PoP
	// the network map names, or the first in the fallback order) was not
	// healthy and another PoP answers.
	Failover bool
	// FailOpen reports that no PoP was healthy, so health was ignored.
	FailOpen bool
	// Shedding is the PoP the client would get that sheds load (its
	// state's Load is above dns.load_shedding.threshold, or was until
	// lately): "" when that PoP sheds nothing. Load is its load and
	// ShedShare the share of its users it sends elsewhere. Shed reports
	// that this client is among them, so another PoP answers.
	Shedding  string
	Load      float64
	ShedShare float64
	Shed      bool
	shedFrom  *pop // the PoP named by Shedding when Shed
	// Reasons lists each step, for explanations. Only Decide fills it;
	// answering queries does not.
	Reasons []string
}

// byFallback is Decision.By when no locator placed the client.
const byFallback = "fallback"

// Decide returns the decision for q with its reasons, as a query would
// get it now. It is the basis of explanations.
func (s *Server) Decide(q Query) Decision {
	var tr trace
	st := s.state.Load()
	d := st.decide(q, s.moment(st), &tr)
	d.Reasons = tr.reasons
	return d
}

// decide is the running state's decide, now.
func (s *Server) decide(q Query, tr *trace) Decision {
	st := s.state.Load()
	return st.decide(q, s.moment(st), tr)
}

// trace collects the reasons of a decision. A nil *trace collects
// nothing; callers check for nil before formatting, so that answering
// queries allocates nothing for it.
type trace struct{ reasons []string }

func (t *trace) add(format string, args ...any) {
	t.reasons = append(t.reasons, fmt.Sprintf(format, args...))
}

// decide chooses the PoP that answers q at m, noting each step in tr
// when it is not nil.
func (st *state) decide(q Query, m moment, tr *trace) Decision {
	f := v4
	if q.Type == dns.TypeAAAA {
		f = v6
	}
	var d Decision
	cands := st.byFamily[f]
	if len(cands) == 0 {
		if tr != nil {
			tr.add("no PoP has an address for %s answers", f)
		}
		return d
	}

	// Who is the client? The ECS subnet when it is usable, else the
	// source address.
	located := false
	missBits := 0 // widest network the locators' misses held for
	mapped := false
	if q.Subnet.IsValid() {
		sub := q.Subnet.Masked()
		if sub.Addr().Is4In6() && sub.Bits() >= 96 {
			// An IPv4-mapped subnet in a FAMILY 2 option is located as
			// IPv4; its scope is given back in IPv6 bits (RFC 7871 §6).
			mapped = true
			sub = netip.PrefixFrom(sub.Addr().Unmap(), sub.Bits()-96)
		}
		switch {
		case sub.Bits() == 0:
			if tr != nil {
				tr.add("ECS %s: source prefix 0, the client asked that its address not be used", sub)
			}
		default:
			var ok bool
			d.Match, d.By, missBits, ok = st.locate(sub, tr)
			switch {
			case ok:
				located, d.ECS, d.Client = true, true, sub
				d.Scope = d.Match.Network.Bits() // may exceed the source prefix: RFC 7871 §7.2.1
			case ignoredForGeo(sub.Addr()):
				if tr != nil {
					tr.add("ECS %s is a private, loopback or link-local subnet no network matches: ignored", sub)
				}
			default:
				// A public subnet nothing knows: the fallback answer
				// holds for the widest network the misses covered.
				d.ECS, d.Client, d.Scope = true, sub, missBits
			}
		}
	}
	if !located && !d.ECS && q.Source.IsValid() {
		src := q.Source.Unmap().WithZone("")
		client := netip.PrefixFrom(src, src.BitLen())
		var ok bool
		if d.Match, d.By, _, ok = st.locate(client, tr); ok {
			located, d.Client = true, client
		} else if tr != nil {
			tr.add("source address %s: no locator knows it", src)
		}
	}

	var choice *pop
	switch {
	case located && d.Match.POP != "":
		choice = st.nearPOP(f, d.Match.POP, &d, m, tr)
	case located:
		choice = st.nearLocation(f, d.Match.Location, &d, m, tr)
	default:
		d.By, d.Match = byFallback, Match{}
		choice = st.fallback(f, &d, m, tr)
	}
	if !d.FailOpen && m.now != 0 {
		choice = st.shedLoad(f, choice, q, &d, m, tr)
	}
	d.POP, d.Addr = choice.name, choice.addr[f]
	if mapped && d.ECS {
		d.Scope += 96
	}
	if tr != nil {
		scope := "ECS not used: scope 0"
		if d.ECS {
			scope = fmt.Sprintf("ECS scope /%d", d.Scope)
		}
		tr.add("answer %s (%s); %s", d.POP, d.Addr, scope)
	}
	return d
}

// locate asks each locator in turn. missBits is the longest Network of
// the locators that missed: the answer of a later locator (or the
// fallback) only holds where the earlier ones miss too.
func (st *state) locate(client netip.Prefix, tr *trace) (m Match, by string, missBits int, ok bool) {
	for _, l := range st.locators {
		m, ok = l.Locate(client)
		if ok {
			if m.Network.Bits() < missBits {
				m.Network, _ = client.Addr().Prefix(missBits)
			}
			if tr != nil {
				what := fmt.Sprintf("location %.2f, %.2f", m.Location.Lat, m.Location.Lon)
				if m.POP != "" {
					what = "PoP " + m.POP
				}
				if m.Country != "" {
					what += " (" + m.Country + ")"
				}
				tr.add("%s: %s matches network %s at %s: %s", l.Name(), client, m.Network, m.Source, what)
			}
			return m, l.Name(), missBits, true
		}
		missBits = max(missBits, m.Network.Bits())
		if tr != nil {
			tr.add("%s: no match for %s", l.Name(), client)
		}
	}
	return Match{}, "", missBits, false
}

// nearPOP returns the PoP named by a locator when it is healthy and has an
// address of family f, else the healthy PoP nearest to it.
func (st *state) nearPOP(f family, name string, d *Decision, m moment, tr *trace) *pop {
	named := st.popByName[name]
	if named == nil {
		// buildState checks the network map's PoP names; a locator that names an
		// unknown PoP is treated as knowing nothing.
		if tr != nil {
			tr.add("unknown PoP %q: using the fallback order", name)
		}
		d.By, d.Match = byFallback, Match{}
		return st.fallback(f, d, m, tr)
	}
	if named.hasFamily(f) && st.up(named, m) {
		return named
	}
	if tr != nil {
		if !named.hasFamily(f) {
			tr.add("PoP %s has no address for %s answers: nearest other PoP", name, f)
		} else {
			tr.add("PoP %s is %s: nearest healthy PoP", name, st.describe(named, m))
		}
	}
	d.Failover = named.hasFamily(f)
	// The map named a PoP: no spreading among its neighbours.
	return st.nearest(f, named.loc, 0, netip.Prefix{}, d, m, tr)
}

// nearLocation returns the healthy PoP nearest to ref, or one within
// spread km of it by weight.
func (st *state) nearLocation(f family, ref Location, d *Decision, m moment, tr *trace) *pop {
	return st.nearest(f, ref, st.spread, d.Client, d, m, tr)
}

// nearest returns the healthy PoP with an address of family f nearest to
// ref (all PoPs count as healthy when none is). With spread > 0 it picks
// among the healthy PoPs no more than spread km farther than the nearest,
// by weighted rendezvous hashing of client's subnet, so a subnet keeps its
// PoP while the set does not change.
func (st *state) nearest(f family, ref Location, spread float64, client netip.Prefix, d *Decision, m moment, tr *trace) *pop {
	ranked := st.ranked(f, ref)
	best, bestDist := ranked[0].p, ranked[0].dist
	var bestUp *pop
	bestUpDist := math.Inf(1)
	for _, r := range ranked {
		if st.up(r.p, m) {
			bestUp, bestUpDist = r.p, r.dist
			break
		}
	}
	healthyOnly := true
	switch {
	case bestUp == nil:
		healthyOnly, bestUp, bestUpDist = false, best, bestDist
		d.FailOpen = true
		if tr != nil {
			tr.add("no PoP is healthy: health ignored (fail open)")
		}
	case bestUp != best:
		d.Failover = true
		if tr != nil {
			tr.add("nearest PoP %s (%.0f km) is %s", best.name, bestDist, st.describe(best, m))
		}
	}
	if tr != nil {
		tr.add("nearest healthy PoP: %s, %.0f km", bestUp.name, bestUpDist)
	}
	if spread <= 0 {
		return bestUp
	}
	key, keyBits := spreadKey(client)
	limit := bestUpDist + spread
	pick, top, n := bestUp, math.Inf(-1), 0
	for _, r := range ranked {
		if r.dist > limit {
			break
		}
		if healthyOnly && !st.up(r.p, m) {
			continue
		}
		n++
		if sc := rendezvous(key, r.p); sc > top {
			pick, top = r.p, sc
		}
	}
	if n > 1 {
		if d.ECS {
			d.Scope = max(d.Scope, keyBits)
		}
		if tr != nil {
			tr.add("%d PoPs within %.0f km of the nearest share by weight: %s for subnet /%d", n, spread, pick.name, keyBits)
		}
	}
	return pick
}

// rankedPoP is a PoP and its distance from a point.
type rankedPoP struct {
	p    *pop
	dist float64
}

// rankKey is a location and a family, for the ranks cache.
type rankKey struct {
	loc Location
	f   family
}

// maxRanks bounds the points whose rankings a state keeps: the network
// map's locations, and the cities of a geo database that queries come
// from. Past it, rankings are computed per query.
const maxRanks = 1 << 16

// ranked returns the PoPs with an address of family f by distance from
// loc, nearest first (file order among equals), with their distances.
// The ranking depends on the state alone, so it is kept per point: the
// haversine formula is not worked out for every PoP on every query.
func (st *state) ranked(f family, loc Location) []rankedPoP {
	k := rankKey{loc, f}
	if v, ok := st.ranks.Load(k); ok {
		return v.([]rankedPoP)
	}
	cands := st.byFamily[f]
	ref := newPoint(loc)
	r := make([]rankedPoP, len(cands))
	for i, p := range cands {
		r[i] = rankedPoP{p, distanceKm(ref, p.pt)}
	}
	slices.SortStableFunc(r, func(a, b rankedPoP) int {
		switch {
		case a.dist < b.dist:
			return -1
		case a.dist > b.dist:
			return 1
		}
		return 0
	})
	if st.rankCount.Add(1) <= maxRanks {
		st.ranks.Store(k, r)
	}
	return r
}

// fallback returns the first healthy PoP in the fallback order (the first
// one when none is healthy).
func (st *state) fallback(f family, d *Decision, m moment, tr *trace) *pop {
	order := st.fallbackOrder[f]
	for i, p := range order {
		if st.up(p, m) {
			if i > 0 {
				d.Failover = true
			}
			if tr != nil {
				tr.add("fallback order: %s is the first healthy PoP", p.name)
			}
			return p
		}
	}
	d.FailOpen = true
	if tr != nil {
		tr.add("no PoP is healthy: health ignored (fail open); first in the fallback order")
	}
	return order[0]
}

// spreadKey hashes the client's subnet (at most a /24 or /56, the widest
// networks ISPs give one customer site) for rendezvous hashing; bits is
// the prefix length hashed.
func spreadKey(client netip.Prefix) (key uint64, bits int) {
	if !client.IsValid() {
		return 0, 0
	}
	a := client.Addr()
	bits = min(client.Bits(), 24)
	if a.Is6() {
		bits = min(client.Bits(), 56)
	}
	p, _ := a.Prefix(bits)
	b := p.Addr().As16()
	return mix(binary.BigEndian.Uint64(b[:8]) ^ mix(binary.BigEndian.Uint64(b[8:])+uint64(bits))), bits
}

// rendezvous is p's weighted rendezvous score for key: -weight / ln(u)
// with u uniform in (0, 1) from the hash of key and the PoP's name.
func rendezvous(key uint64, p *pop) float64 {
	x := mix(key ^ p.seed)
	u := (float64(x>>11) + 0.5) / (1 << 53)
	return -p.weight / math.Log(u)
}

// mix is SplitMix64's finalizer: a fast, well-spread 64-bit hash step.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// nameSeed hashes a PoP name for rendezvous.
func nameSeed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// ignoredForGeo reports whether a subnet's address says nothing about
// where a user is: private, loopback, link-local, shared (CGNAT),
// unspecified or multicast.
func ignoredForGeo(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsMulticast() || cgnat.Contains(a)
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")
