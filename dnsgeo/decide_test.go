package dnsgeo

import (
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// newTestServer makes (but does not run) a lab Server whose PoP probes
// fail at once, for tests that call its methods directly.
func newTestServer(t testing.TB, extraDNS string) *Server {
	t.Helper()
	s, err := New(labConfig(t, extraDNS, nil, labNetworks), Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// discard is a logger for tests that do not look at the logs.
var discard = slog.New(slog.DiscardHandler)

func TestDistance(t *testing.T) {
	prague := Location{Lat: 50.08, Lon: 14.43}
	frankfurt := Location{Lat: 50.11, Lon: 8.68}
	ashburn := Location{Lat: 39.04, Lon: -77.49}
	tokyo := Location{Lat: 35.68, Lon: 139.69}
	tests := []struct {
		a, b Location
		km   float64
	}{
		{frankfurt, prague, 410},
		{frankfurt, ashburn, 6560},
		{prague, tokyo, 9070},
		{prague, prague, 0},
		{Location{0, 0}, Location{0, 180}, math.Pi * earthRadiusKm},
		{Location{90, 0}, Location{-90, 0}, math.Pi * earthRadiusKm},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); math.Abs(got-tt.km) > tt.km*0.01+1 {
			t.Errorf("Distance(%v, %v) = %.0f km, want %.0f", tt.a, tt.b, got, tt.km)
		}
	}
}

// TestDecide checks decisions and their reasons without the network.
func TestDecide(t *testing.T) {
	s := newTestServer(t, "  health: {interval: 1h}")
	src := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name    string
		q       Query
		pop     string
		by      string
		scope   int
		ecs     bool
		reasons []string // substrings, in order
	}{
		{"map location → nearest", Query{Source: src, Subnet: netip.MustParsePrefix("198.51.100.0/24"), Type: dns.TypeA}, "prg", "networks", 24, true,
			[]string{"networks: 198.51.100.0/24 matches network 198.51.100.0/24 at networks.csv:1: location 50.11, 8.68 (DE)", "nearest healthy PoP: prg, 410 km", "answer prg (127.0.0.11); ECS scope /24"}},
		{"map PoP row", Query{Source: src, Subnet: netip.MustParsePrefix("10.9.3.0/24"), Type: dns.TypeA}, "nrt", "networks", 16, true,
			[]string{"at networks.csv:4: PoP nrt", "answer nrt"}},
		{"source address when there is no ECS", Query{Source: netip.MustParseAddr("192.0.2.77"), Type: dns.TypeA}, "iad", "networks", 0, false,
			[]string{"192.0.2.77/32 matches network 192.0.2.0/24", "ECS not used: scope 0"}},
		{"private ECS not in the map falls back to the source", Query{Source: netip.MustParseAddr("203.0.113.1"), Subnet: netip.MustParsePrefix("192.168.1.0/24"), Type: dns.TypeA}, "nrt", "networks", 0, false,
			[]string{"private, loopback or link-local subnet no network matches: ignored", "203.0.113.1/32 matches"}},
		{"fallback", Query{Source: src, Type: dns.TypeA}, "prg", "fallback", 0, false,
			[]string{"source address 127.0.0.1: no locator knows it", "fallback order: prg is the first healthy PoP"}},
		{"AAAA: only nrt", Query{Source: src, Subnet: netip.MustParsePrefix("192.0.2.0/24"), Type: dns.TypeAAAA}, "nrt", "networks", 24, true,
			[]string{"nearest healthy PoP: nrt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.q)
			if d.POP != tt.pop || d.By != tt.by || d.Scope != tt.scope || d.ECS != tt.ecs {
				t.Errorf("got pop %s by %s scope %d ecs %v, want %s %s %d %v", d.POP, d.By, d.Scope, d.ECS, tt.pop, tt.by, tt.scope, tt.ecs)
			}
			all := strings.Join(d.Reasons, "\n")
			at := 0
			for _, r := range tt.reasons {
				i := strings.Index(all[at:], r)
				if i < 0 {
					t.Errorf("reasons lack %q (in order):\n%s", r, all)
					break
				}
				at += i + len(r)
			}
		})
	}
}

// TestDecideFailover checks which PoP answers when the first choice is
// down, for each way the first choice is made.
func TestDecideFailover(t *testing.T) {
	s := newTestServer(t, "  health: {interval: 1h}\n  fallback: [nrt, iad]")
	down := func(names ...string) {
		for _, p := range s.state.Load().pops {
			p.health.state.Store(int32(Up))
		}
		for _, n := range names {
			s.state.Load().popByName[n].health.state.Store(int32(Down))
		}
		s.bumpAnswers()
	}
	src := netip.MustParseAddr("127.0.0.1")
	frankfurt := Query{Source: src, Subnet: netip.MustParsePrefix("198.51.100.0/24"), Type: dns.TypeA}
	mappedNRT := Query{Source: src, Subnet: netip.MustParsePrefix("10.9.0.0/24"), Type: dns.TypeA}
	unknown := Query{Source: src, Type: dns.TypeA}
	tests := []struct {
		name               string
		down               []string
		q                  Query
		pop                string
		failover, failOpen bool
	}{
		{"nearest up", nil, frankfurt, "prg", false, false},
		{"nearest down: next nearest", []string{"prg"}, frankfurt, "iad", true, false},
		{"two down", []string{"prg", "iad"}, frankfurt, "nrt", true, false},
		{"all down: fail open, nearest", []string{"prg", "iad", "nrt"}, frankfurt, "prg", false, true},
		{"mapped PoP up", nil, mappedNRT, "nrt", false, false},
		{"mapped PoP down: the PoP nearest to it", []string{"nrt"}, mappedNRT, "prg", true, false},
		{"fallback order given", nil, unknown, "nrt", false, false},
		{"fallback: first down", []string{"nrt"}, unknown, "iad", true, false},
		{"fallback: the PoPs not listed follow", []string{"nrt", "iad"}, unknown, "prg", true, false},
		{"fallback: all down: fail open, first", []string{"nrt", "iad", "prg"}, unknown, "nrt", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down(tt.down...)
			d := s.Decide(tt.q)
			if d.POP != tt.pop || d.Failover != tt.failover || d.FailOpen != tt.failOpen {
				t.Errorf("got %s failover %v failOpen %v, want %s %v %v\n%s", d.POP, d.Failover, d.FailOpen, tt.pop, tt.failover, tt.failOpen, strings.Join(d.Reasons, "\n"))
			}
		})
	}
}

// TestSpread checks that PoPs within dns.spread of the nearest share the
// answers by weight, that each subnet keeps its PoP, and that the ECS
// scope then covers the subnet hashed.
func TestSpread(t *testing.T) {
	const y = `zone: cdn.example
services:
  - {name: demo, hostnames: [demo.cdn.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: fra, location: {lat: 50.11, lon: 8.68}, listen: "192.0.2.1:80", admin: "127.0.0.1:1", weight: 1}
  - {name: ams, location: {lat: 52.37, lon: 4.90}, listen: "192.0.2.2:80", admin: "127.0.0.1:2", weight: 3}
  - {name: nrt, location: {lat: 35.68, lon: 139.69}, listen: "192.0.2.3:80", admin: "127.0.0.1:3", weight: 1000}
dns:
  listen: ["127.0.0.1:0"]
  spread: 500
  networks: networks.csv
  health: {interval: 1h}
`
	cfg := parseWithNetworks(t, y, "11.0.0.0/8, 50.11, 8.68\n")
	s, err := New(cfg, Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 4000
	for i := range n {
		sub := netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0}), 24)
		q := Query{Source: netip.MustParseAddr("127.0.0.1"), Subnet: sub, Type: dns.TypeA}
		d := s.decide(q, nil)
		counts[d.POP]++
		if d.Scope != 24 {
			t.Fatalf("scope %d, want 24 (the subnet hashed)", d.Scope)
		}
		if again := s.decide(q, nil); again.POP != d.POP {
			t.Fatalf("subnet %s got %s, then %s", sub, d.POP, again.POP)
		}
	}
	if counts["nrt"] != 0 {
		t.Errorf("nrt, 9000 km away, got %d answers", counts["nrt"])
	}
	if share := float64(counts["ams"]) / n; math.Abs(share-0.75) > 0.04 {
		t.Errorf("ams (weight 3 of 4) got %.1f%% of the answers, want about 75%% (%v)", share*100, counts)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name     string
		networks string
		want     string
	}{
		{"a row names an unknown PoP", "192.0.2.0/24, prg\n198.51.100.0/24, fra\n", "networks.csv:2: unknown PoP \"fra\" (have prg, iad, nrt)"},
		{"a malformed row", "192.0.2.0/24\n", "networks.csv:1: 1 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(labConfig(t, "", nil, tt.networks), Options{Logger: discard})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	cfg := labConfig(t, "", nil, labNetworks)
	cfg.DNS.Listen = nil // as for a file without a dns section
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "no dns section") {
		t.Errorf("New without a dns section: %v", err)
	}
}
