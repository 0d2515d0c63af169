package dnsgeo

import (
	"math"
	"net/netip"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// This file is load-aware routing. Each PoP's state carries its load (1.0
// is at its configured capacity). While a PoP's load stays above the
// threshold, the share of its users it sheds grows by change_per_second
// each second (up to max_share); while the load stays below release it
// shrinks at the same pace; in between it holds, so a load that hovers
// around the threshold moves nothing back and forth. A user is shed when
// the hash of its subnet (the ECS subnet or the resolver's address, cut
// to a /24 or /56) with the PoP's name falls below the share: a growing
// share only adds subnets, a falling one gives back the last ones added,
// and a subnet keeps its answer while the share stays put. A shed user
// gets the next-nearest healthy PoP that is not shedding itself (the next
// in the fallback order for users no locator placed); when there is none,
// it keeps its PoP. Only fresh states count: a PoP whose states stopped
// sheds nothing.

// shedding is the load-shedding settings of a state.
type shedding struct {
	threshold, release float64
	perNano            float64 // share change per nanosecond
	maxShare           float64 // 0: off
}

func newShedding(c config.LoadShedding) shedding {
	return shedding{
		threshold: c.Threshold,
		release:   c.Release,
		perNano:   c.ChangePerSecond / float64(time.Second),
		maxShare:  c.MaxShare,
	}
}

// next is the shed share after elapsed nanoseconds at load, from share.
func (sh shedding) next(share, load float64, elapsed int64) float64 {
	if sh.maxShare <= 0 {
		return 0
	}
	step := sh.perNano * float64(max(elapsed, 0))
	switch {
	case load > sh.threshold:
		share += step
	case load < sh.release:
		share -= step
	}
	return min(max(share, 0), sh.maxShare)
}

// shedShare returns the share of p's users shed at m, and p's load; 0
// when p has no fresh state or shedding is off.
func (st *state) shedShare(p *pop, m moment) (share, load float64) {
	if m.now == 0 || st.shed.maxShare <= 0 {
		return 0, 0
	}
	r := p.report
	if at := r.at.Load(); at == 0 || m.now-at > st.maxAge {
		return 0, 0
	}
	share = min(math.Float64frombits(r.share.Load()), st.shed.maxShare)
	return share, reportLoad(r.word.Load())
}

// shedSalt keeps the shedding hash apart from the spread hash of the same
// subnet and PoP.
const shedSalt = 0x5bd1e9955bd1e995

// shedLoad applies load shedding to choice, the PoP a client would get:
// when choice sheds and the client's subnet is in its share, the
// next-nearest healthy PoP with room answers instead.
func (st *state) shedLoad(f family, choice *pop, q Query, d *Decision, m moment, tr *trace) *pop {
	share, load := st.shedShare(choice, m)
	if share <= 0 {
		return choice
	}
	client := d.Client
	if !client.IsValid() && q.Source.IsValid() {
		src := q.Source.Unmap().WithZone("")
		client = netip.PrefixFrom(src, src.BitLen())
	}
	key, bits := spreadKey(client)
	if d.ECS {
		d.Scope = max(d.Scope, bits) // the answer now depends on the subnet's hash
	}
	u := unitHash(mix(key ^ choice.seed ^ shedSalt))
	d.Shedding, d.Load, d.ShedShare = choice.name, load, share
	if u >= share {
		if tr != nil {
			tr.add("%s sheds %.0f%% of its users (load %.2f, threshold %.2f); subnet %s is not among them (hash %.3f ≥ %.3f)",
				choice.name, share*100, load, st.shed.threshold, hashedSubnet(client, bits), u, share)
		}
		return choice
	}
	alt, dist := st.nextPOP(f, choice, d, m)
	if alt == nil {
		if tr != nil {
			tr.add("%s sheds %.0f%% of its users (load %.2f, threshold %.2f) and subnet %s is among them (hash %.3f < %.3f), but no other healthy PoP has room: %s keeps it",
				choice.name, share*100, load, st.shed.threshold, hashedSubnet(client, bits), u, share, choice.name)
		}
		return choice
	}
	d.Shed, d.shedFrom = true, choice
	if tr != nil {
		where := "next in the fallback order"
		if !math.IsNaN(dist) {
			where = "next nearest"
		}
		tr.add("%s sheds %.0f%% of its users (load %.2f, threshold %.2f); subnet %s is among them (hash %.3f < %.3f): %s, the %s healthy PoP with room, answers",
			choice.name, share*100, load, st.shed.threshold, hashedSubnet(client, bits), u, share, alt.name, where)
	}
	return alt
}

// nextPOP returns the PoP a client shed by from gets: the nearest healthy
// PoP with an address of family f other than from that sheds nothing
// itself, measured from where the client was placed, or the first such
// PoP in the fallback order when nothing placed it (dist is then NaN).
// It returns nil when there is none.
func (st *state) nextPOP(f family, from *pop, d *Decision, m moment) (_ *pop, dist float64) {
	room := func(p *pop) bool {
		if p == from || !st.up(p, m) {
			return false
		}
		share, _ := st.shedShare(p, m)
		return share == 0
	}
	var ref point
	switch {
	case d.By == byFallback || d.By == "":
		for _, p := range st.fallbackOrder[f] {
			if room(p) {
				return p, math.NaN()
			}
		}
		return nil, math.NaN()
	case d.Match.POP != "":
		named := st.popByName[d.Match.POP]
		if named == nil {
			return nil, math.NaN()
		}
		ref = named.pt
	default:
		ref = newPoint(d.Match.Location)
	}
	var best *pop
	bestDist := math.Inf(1)
	for _, p := range st.byFamily[f] {
		if !room(p) {
			continue
		}
		if dd := distanceKm(ref, p.pt); dd < bestDist {
			best, bestDist = p, dd
		}
	}
	return best, bestDist
}

// unitHash maps a hash to [0, 1).
func unitHash(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// hashedSubnet is the subnet whose hash decides shedding, for reasons.
func hashedSubnet(client netip.Prefix, bits int) string {
	if !client.IsValid() {
		return "(none)"
	}
	p, _ := client.Addr().Prefix(bits)
	return p.String()
}
