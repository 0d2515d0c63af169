package dnsgeo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Explanation says which PoP a client gets and why: the document of the
// admin /explain endpoint and of `outpost dns explain`.
type Explanation struct {
	// Client is the client asked about: an address (located like a
	// query's source address) or a prefix (located like an ECS subnet).
	Client string `json:"client"`
	// Type is the record type answered, "A" or "AAAA".
	Type string `json:"type"`
	// POP is the PoP that answers; "" when no PoP has an address of Type.
	POP     string `json:"pop"`
	Address string `json:"address,omitempty"`
	// By names what placed the client: "networks", "asn", "geoip" or
	// "fallback".
	By string `json:"by"`
	// Match is what placed the client; nil for "fallback".
	Match *ExplainMatch `json:"match,omitempty"`
	// ASN is the client's autonomous system by the ASN database, when
	// the server has one in use; 0 otherwise.
	ASN    uint32 `json:"asn,omitempty"`
	ASNOrg string `json:"asn_org,omitempty"`
	// ECSScope is the ECS scope an answer to this subnet carries; nil
	// when the client is an address (no ECS).
	ECSScope *int `json:"ecs_scope,omitempty"`
	Failover bool `json:"failover"`
	FailOpen bool `json:"fail_open"`
	// HealthProbed is false when the PoPs' health is unknown (the CLI does
	// not probe): every PoP then counts as healthy.
	HealthProbed bool `json:"health_probed"`
	// States reports that PoP states from the control plane count in
	// health and load (some arrived and at least one is fresh).
	States bool `json:"states"`
	// LoadShedding says how the load of the PoP the client would get
	// changed the answer; nil when that PoP sheds nothing.
	LoadShedding *ExplainLoad `json:"load_shedding,omitempty"`
	// POPs lists every PoP with an address of Type, nearest first when
	// the client was placed, else in the fallback order.
	POPs []ExplainPOP `json:"pops"`
	// Reasons are the decision's steps, in order.
	Reasons []string `json:"reasons"`
}

// ExplainMatch is what a locator said about the client.
type ExplainMatch struct {
	// Network is the widest prefix around the client over which the
	// answer holds (it bounds the ECS scope).
	Network string `json:"network"`
	// Source is the row ("networks.csv:12", "networks.csv:12 AS64500") or
	// database file that placed the client.
	Source string `json:"source"`
	// DatabaseNetwork is the database's own network for the client, when
	// a database placed it; Network may be narrower or capped.
	DatabaseNetwork string `json:"database_network,omitempty"`
	// POP is the PoP a network map row names; Lat, Lon and Country the
	// location otherwise.
	POP     string   `json:"pop,omitempty"`
	Lat     *float64 `json:"lat,omitempty"`
	Lon     *float64 `json:"lon,omitempty"`
	Country string   `json:"country,omitempty"`
}

// ExplainLoad is load shedding as it applied to the client.
type ExplainLoad struct {
	// POP is the PoP the client would get, which sheds load: its Load
	// (1 is at capacity) is or was lately above Threshold, and it sends
	// Share of its users to the next-nearest healthy PoP.
	POP       string  `json:"pop"`
	Load      float64 `json:"load"`
	Threshold float64 `json:"threshold"`
	Share     float64 `json:"share"`
	// Moved reports that the client is among the users shed (then POP of
	// the explanation answers instead); false when it keeps its PoP.
	Moved bool `json:"moved"`
}

// ExplainPOP is one PoP as the decision saw it.
type ExplainPOP struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// DistanceKm is the great-circle distance from where the client was
	// placed (the location, or the PoP a row names); nil for "fallback".
	DistanceKm *float64 `json:"distance_km,omitempty"`
	// Health is "up", "down" or "draining"; "unknown" when not probed.
	// HealthBy says what decided it when PoP states count: "state",
	// "states stopped", … (see Stats); "" when the probes alone did.
	Health   string `json:"health"`
	HealthBy string `json:"health_by,omitempty"`
	// Load is the PoP's load by its latest fresh state and ShedShare the
	// share of its users it sheds; nil without a fresh state.
	Load      *float64 `json:"load,omitempty"`
	ShedShare *float64 `json:"shed_share,omitempty"`
	Weight    float64  `json:"weight"`
	Chosen    bool     `json:"chosen,omitempty"`
}

// maxExplainInput bounds the client text /explain accepts.
const maxExplainInput = 64

// ParseClient parses the client of an explanation: an IP address, which
// is located like a query's source address, or a prefix such as
// 198.51.100.0/24, located like an ECS subnet. The error says what is
// wrong in words for a user.
func ParseClient(s string) (Query, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Query{}, errors.New("no client: give an IP address or a prefix such as 198.51.100.0/24")
	case len(s) > maxExplainInput:
		return Query{}, fmt.Errorf("client %.20q… is too long for an IP address or prefix", s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			return Query{}, fmt.Errorf("invalid prefix %q (want a CIDR prefix such as 198.51.100.0/24)", s)
		case p.Addr().Zone() != "":
			return Query{}, fmt.Errorf("prefix %q: IPv6 zones are not supported", s)
		case p.Masked() != p:
			return Query{}, fmt.Errorf("prefix %q has bits set past its length (an ECS subnet may not); did you mean %s?", s, p.Masked())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return Query{Subnet: p}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Query{}, fmt.Errorf("invalid IP address %q (want an address such as 198.51.100.7, or a prefix such as 198.51.100.0/24)", s)
	}
	return Query{Source: a.Unmap().WithZone("")}, nil
}

// Explain decides for q (see ParseClient; Type 0 means A) as a query
// would be decided now, and says why. probed says whether the PoPs'
// health comes from probes (a running server) or is unknown (every PoP
// is then up, as it starts).
func (s *Server) Explain(q Query, probed bool) Explanation {
	if q.Type == 0 {
		q.Type = dns.TypeA
	}
	st := s.state.Load()
	var tr trace
	m := s.moment(st)
	d := st.decide(q, m, &tr)
	f := v4
	if q.Type == dns.TypeAAAA {
		f = v6
	}
	e := Explanation{
		Type:         f.String(),
		POP:          d.POP,
		By:           d.By,
		Failover:     d.Failover,
		FailOpen:     d.FailOpen,
		HealthProbed: probed,
		States:       m.live,
		Reasons:      tr.reasons,
	}
	if d.Shedding != "" {
		e.LoadShedding = &ExplainLoad{POP: d.Shedding, Load: round4(d.Load), Threshold: st.shed.threshold,
			Share: round4(d.ShedShare), Moved: d.Shed}
	}
	if q.Subnet.IsValid() {
		e.Client = q.Subnet.String()
		e.ECSScope = &d.Scope
	} else if q.Source.IsValid() {
		e.Client = q.Source.String()
	}
	if d.Addr.IsValid() {
		e.Address = d.Addr.String()
	}

	// The client's address as the locators saw it, for the databases.
	var at netip.Addr
	if d.Client.IsValid() {
		at = d.Client.Masked().Addr()
	} else if q.Subnet.IsValid() {
		at = q.Subnet.Addr()
	} else {
		at = q.Source
	}
	var ref *Location // where distances are measured from
	if d.By != byFallback && d.By != "" {
		m := d.Match
		em := &ExplainMatch{Network: m.Network.String(), Source: m.Source, POP: m.POP, Country: m.Country}
		if m.POP == "" {
			em.Lat, em.Lon = &m.Location.Lat, &m.Location.Lon
			ref = &m.Location
		} else if p := st.popByName[m.POP]; p != nil {
			ref = &p.loc
		}
		e.Match = em
	}
	for _, l := range st.locators {
		switch l := l.(type) {
		case *geoipLocator:
			if d.By == l.Name() && at.IsValid() {
				if _, network, ok, err := l.db.City(at); ok && err == nil {
					e.Match.DatabaseNetwork = network.String()
				}
			}
		case *asnLocator:
			if !at.IsValid() {
				continue
			}
			if asn, network, ok, err := l.db.ASN(at); ok && err == nil {
				e.ASN, e.ASNOrg = asn, l.db.Org(at)
				if d.By == l.Name() {
					e.Match.DatabaseNetwork = network.String()
				}
			}
		}
	}

	pops := st.byFamily[f]
	if ref == nil {
		pops = st.fallbackOrder[f]
	}
	for _, p := range pops {
		health, by := st.status(p, m)
		ep := ExplainPOP{Name: p.name, Address: p.addr[f].String(), Health: health.String(), Weight: p.weight, Chosen: p.name == d.POP}
		if by != byProbes {
			ep.HealthBy = by.String()
		}
		if !probed && by == byProbes {
			ep.Health = "unknown"
		}
		if c := st.control(p, m); c != nil && c.Fresh {
			load, share := c.Load, round4(c.ShedShare)
			ep.Load, ep.ShedShare = &load, &share
		}
		if ref != nil {
			km := math.Round(Distance(*ref, p.loc))
			ep.DistanceKm = &km
		}
		e.POPs = append(e.POPs, ep)
	}
	if ref != nil {
		sortByDistance(e.POPs)
	}
	return e
}

// sortByDistance orders PoPs nearest first, keeping file order on ties.
func sortByDistance(ps []ExplainPOP) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && *ps[j].DistanceKm < *ps[j-1].DistanceKm; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// WriteText writes e for a terminal. The first line is "answer: POP".
func (e Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	pop := e.POP
	if pop == "" {
		pop = "(none: no PoP has an address for " + e.Type + " answers)"
	}
	fmt.Fprintf(&b, "answer: %s\n", pop)
	if e.Address != "" {
		fmt.Fprintf(&b, "address: %s (%s)\n", e.Address, e.Type)
	}
	how := "as a query's source address (no ECS)"
	if e.ECSScope != nil {
		how = "as an ECS subnet"
	}
	fmt.Fprintf(&b, "client: %s, %s\n", e.Client, how)
	if e.ASN != 0 {
		fmt.Fprintf(&b, "asn: AS%d %s\n", e.ASN, e.ASNOrg)
	}
	switch m := e.Match; {
	case m == nil:
		fmt.Fprintf(&b, "placed by: nothing (no locator knows the client): the fallback order\n")
	default:
		what := "PoP " + m.POP
		if m.POP == "" {
			what = fmt.Sprintf("location %.4g, %.4g", *m.Lat, *m.Lon)
		}
		if m.Country != "" {
			what += " (" + m.Country + ")"
		}
		fmt.Fprintf(&b, "placed by: %s: %s, network %s: %s\n", e.By, m.Source, m.Network, what)
		if m.DatabaseNetwork != "" && m.DatabaseNetwork != m.Network {
			fmt.Fprintf(&b, "database network: %s\n", m.DatabaseNetwork)
		}
	}
	if e.ECSScope != nil {
		fmt.Fprintf(&b, "ecs scope: /%d\n", *e.ECSScope)
	}
	switch {
	case e.States:
		fmt.Fprintf(&b, "health: probes and PoP states from the control plane\n")
	case e.HealthProbed:
		fmt.Fprintf(&b, "health: as probed now\n")
	default:
		fmt.Fprintf(&b, "health: unknown (not probed): every PoP assumed healthy; the running server's /explain uses its probes\n")
	}
	if e.Failover {
		fmt.Fprintf(&b, "failover: the first choice is not healthy\n")
	}
	if e.FailOpen {
		fmt.Fprintf(&b, "fail open: no PoP is healthy, health ignored\n")
	}
	if l := e.LoadShedding; l != nil {
		fmt.Fprintf(&b, "load: %s is at %.0f%% of capacity (threshold %.0f%%) and sheds %.0f%% of its users; ", l.POP, l.Load*100, l.Threshold*100, l.Share*100)
		if l.Moved {
			fmt.Fprintf(&b, "this client is among them: %s answers\n", e.POP)
		} else {
			fmt.Fprintf(&b, "this client is not among them\n")
		}
	}
	order := "nearest first"
	if e.Match == nil {
		order = "in the fallback order"
	}
	fmt.Fprintf(&b, "pops (%s):\n", order)
	nameW, addrW := 0, 0
	for _, p := range e.POPs {
		nameW, addrW = max(nameW, len(p.Name)), max(addrW, len(p.Address))
	}
	for _, p := range e.POPs {
		dist := "-"
		if p.DistanceKm != nil {
			dist = fmt.Sprintf("%.0f km", *p.DistanceKm)
		}
		mark := ""
		if p.Chosen {
			mark = "  <- answer"
		}
		var more []string
		if p.HealthBy != "" {
			more = append(more, "by "+p.HealthBy)
		}
		if p.Load != nil {
			more = append(more, fmt.Sprintf("load %.2f", *p.Load))
			if *p.ShedShare > 0 {
				more = append(more, fmt.Sprintf("sheds %.0f%%", *p.ShedShare*100))
			}
		}
		extra := ""
		if len(more) > 0 {
			extra = "  (" + strings.Join(more, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-*s  %-*s  %9s  %-8s  weight %g%s%s\n", nameW, p.Name, addrW, p.Address, dist, p.Health, p.Weight, extra, mark)
	}
	fmt.Fprintf(&b, "reasons:\n")
	for _, r := range e.Reasons {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// serveExplain is GET /explain?ip=ADDRESS|PREFIX[&type=A|AAAA]: the
// explanation as JSON, with the health the probes see.
func (s *Server) serveExplain(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	q, err := ParseClient(r.URL.Query().Get("ip"))
	if err == nil {
		q.Type, err = ParseType(r.URL.Query().Get("type"))
	}
	if err != nil {
		http.Error(w, "explain: "+err.Error()+"\nusage: /explain?ip=198.51.100.7 or /explain?ip=198.51.100.0/24&type=AAAA", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Explain(q, true)); err != nil {
		s.log.Debug("writing an explanation", "err", err)
	}
}

// ParseType parses the record type of an explanation: "A" (also "") or
// "AAAA", in any letter case.
func ParseType(s string) (uint16, error) {
	switch strings.ToUpper(s) {
	case "", "A":
		return dns.TypeA, nil
	case "AAAA":
		return dns.TypeAAAA, nil
	}
	return 0, fmt.Errorf("invalid type %.20q (want A or AAAA)", s)
}

// round4 rounds to 4 decimals, for documents people read.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
