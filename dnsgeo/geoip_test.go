package dnsgeo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo/geodb"
)

// cityCSV is the City database of the geoip tests (built by geodb.Build
// in each test): public networks on five continents, a nested network,
// and networks of every length the ECS scope rules care about. A row in
// 198.51.100.0/24 contradicts the network map, which must win.
const cityCSV = `cidr,lat,lon,country
81.0.0.0/16,50.11,8.68,DE
82.0.7.0/28,48.86,2.35,FR
82.0.0.0/16,50.11,8.68,DE
24.0.0.0/16,40.71,-74.01,US
1.0.0.0/16,35.69,139.69,JP
177.0.0.0/16,-23.55,-46.63,BR
120.0.0.0/16,-33.87,151.21,AU
41.0.0.0/16,-1.29,36.82,KE
198.51.100.0/24,35.69,139.69,JP
2a00:1450::/32,50.11,8.68,DE
2a00:1451::/64,48.86,2.35,FR
2600:1000::/48,40.71,-74.01,US
`

// asnCSV is the ASN database of the geoip tests: AS64500 holds a network
// the City database places in Germany and another it does not know;
// AS64501 half of a network it places in New York.
const asnCSV = `cidr,asn,org
82.0.9.0/24,AS64500,Example Mobile
5.5.0.0/16,64500,Example Mobile
24.0.0.0/17,64501,Example Cable
`

// geoNetworks is the lab's network map with ASN rows: AS64500 goes to
// nrt, AS64501 to a location in Tokyo, and a CIDR row inside AS64501's
// network, which wins over the ASN row.
const geoNetworks = labNetworks + `AS64500, nrt
AS64501, 35.68, 139.69, JP
24.0.5.0/24, prg
`

// buildDB writes a database of kind k built from csvText to dir/name and
// returns its path.
func buildDB(t testing.TB, dir, name, csvText string, k geodb.Kind) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := geodb.Build(f, name+".csv", strings.NewReader(csvText), k); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// geoConfig is the lab configuration with the geoip tests' databases and
// network map, and extra dns settings.
func geoConfig(t testing.TB, extraDNS string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	city := buildDB(t, dir, "city.mmdb", cityCSV, geodb.City)
	asn := buildDB(t, dir, "asn.mmdb", asnCSV, geodb.ASN)
	return labConfig(t, "  geoip: "+city+"\n  asn: "+asn+"\n"+extraDNS, nil, geoNetworks)
}

// newGeoServer makes (but does not run) a lab Server with the geoip
// tests' databases, whose probes would fail at once.
func newGeoServer(t testing.TB) *Server {
	t.Helper()
	s, err := New(geoConfig(t, "  health: {interval: 1h}"), Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestGeoIPDecide checks the order network map, ASN rows, City database,
// fallback, and that the nearest PoP answers clients across continents.
func TestGeoIPDecide(t *testing.T) {
	s := newGeoServer(t)
	src := netip.MustParseAddr("127.0.0.1")
	ecs := func(p string) Query {
		return Query{Source: src, Subnet: netip.MustParsePrefix(p), Type: dns.TypeA}
	}
	tests := []struct {
		name   string
		q      Query
		pop    string
		by     string
		reason string
	}{
		{"Europe: Frankfurt → Prague", ecs("81.0.1.0/24"), "prg", "geoip", "geoip: 81.0.1.0/24 matches network 81.0.0.0/16 at city.mmdb: location 50.11, 8.68 (DE)"},
		{"Europe: a nested network in Paris → Prague", ecs("82.0.7.0/24"), "prg", "geoip", "location 48.86, 2.35 (FR)"},
		{"North America: New York → Ashburn", Query{Source: netip.MustParseAddr("24.0.200.9"), Type: dns.TypeA}, "iad", "geoip", "(US)"},
		{"South America: São Paulo → Ashburn", ecs("177.0.3.0/24"), "iad", "geoip", "(BR)"},
		{"Asia: Tokyo → Tokyo", ecs("1.0.0.0/24"), "nrt", "geoip", "(JP)"},
		{"Oceania: Sydney → Tokyo", ecs("120.0.0.0/24"), "nrt", "geoip", "(AU)"},
		{"Africa: Nairobi → Prague", ecs("41.0.0.0/24"), "prg", "geoip", "(KE)"},
		{"IPv6: Frankfurt → Prague", Query{Source: src, Subnet: netip.MustParsePrefix("2a00:1450:1::/56"), Type: dns.TypeA}, "prg", "geoip", ""},
		{"the network map wins over the database", ecs("198.51.100.0/24"), "prg", "networks", "networks.csv:1"},
		{"an ASN row wins over the database", ecs("82.0.9.0/24"), "nrt", "asn", "asn: 82.0.9.0/24 matches network 82.0.9.0/24 at networks.csv:6 AS64500: PoP nrt"},
		{"an ASN row the City database does not know", ecs("5.5.5.0/24"), "nrt", "asn", "AS64500"},
		{"an ASN row at a location", ecs("24.0.9.0/24"), "nrt", "asn", "networks.csv:7 AS64501: location 35.68, 139.69 (JP)"},
		{"a CIDR row wins over an ASN row", ecs("24.0.5.0/24"), "prg", "networks", "networks.csv:8: PoP prg"},
		{"unknown to all: the fallback order", ecs("9.9.9.0/24"), "prg", "fallback", "geoip: no match for 9.9.9.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.q)
			if d.POP != tt.pop || d.By != tt.by {
				t.Errorf("got %s by %s, want %s by %s\n%s", d.POP, d.By, tt.pop, tt.by, strings.Join(d.Reasons, "\n"))
			}
			if all := strings.Join(d.Reasons, "\n"); !strings.Contains(all, tt.reason) {
				t.Errorf("reasons lack %q:\n%s", tt.reason, all)
			}
		})
	}
}

// TestGeoIPScope checks the ECS scope of answers placed by a database,
// over UDP: the database network's prefix length, capped at /24 (IPv4) and
// /56 (IPv6), and longer than the source prefix where the database
// network holding the source's address is (RFC 7871 §7.2.1).
func TestGeoIPScope(t *testing.T) {
	ts := startServer(t, geoConfig(t, "  health: {interval: 1h}"))
	tests := []struct {
		name   string
		subnet string
		addr   string
		scope  uint8
	}{
		{"RFC 7871 §7.2.1: a /16 database network gives scope 16", "81.0.1.0/24", "127.0.0.11", 16},
		{"RFC 7871 §7.2.1: a /28 database network is capped at /24", "82.0.7.0/24", "127.0.0.11", 24},
		{"RFC 7871 §7.2.1: a /32 source in a /28 network: capped at /24", "82.0.7.1/32", "127.0.0.11", 24},
		{"RFC 7871 §7.2.1: a /12 source whose address is in a /16 database network: scope /16, longer than the source", "81.0.0.0/12", "127.0.0.11", 16},
		{"RFC 7871 §7.2.1: a miss holds for the widest network no map row or database network overlaps", "9.9.9.0/24", "127.0.0.11", 7},
		{"RFC 7871 §7.2.1: an ASN row's scope is the ASN database network", "5.5.5.0/24", "127.0.0.13", 16},
		{"RFC 7871 §7.2.1: the City network, narrowed where the ASN database differs", "24.0.200.0/24", "127.0.0.12", 17},
		{"RFC 7871 §7.2.1: IPv6 /32 database network", "2a00:1450:1::/56", "127.0.0.11", 32},
		{"RFC 7871 §7.2.1: IPv6 /64 database network is capped at /56", "2a00:1451::/64", "127.0.0.11", 56},
		{"RFC 7871 §7.2.1: an IPv6 /40 source in a /48 database network: scope /48", "2600:1000::/40", "127.0.0.12", 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, tt.subnet, 0))
			if got := answerAddr(r); got != tt.addr {
				t.Errorf("answer %q, want %s", got, tt.addr)
			}
			e := replyECS(r)
			if e == nil {
				t.Fatal("no ECS option in the reply")
			}
			if e.SourceScope != tt.scope {
				t.Errorf("scope /%d, want /%d", e.SourceScope, tt.scope)
			}
		})
	}
}

// TestGeoIPErrors checks that a missing, corrupt or wrong database, or
// ASN rows without an ASN database, stop New with the file named.
func TestGeoIPErrors(t *testing.T) {
	dir := t.TempDir()
	city := buildDB(t, dir, "city.mmdb", cityCSV, geodb.City)
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	if err := os.WriteFile(corrupt, []byte("\xab\xcd\xefMaxMind.com not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		dns      string
		networks string
		want     string
	}{
		{"missing", "  geoip: " + filepath.Join(dir, "nope.mmdb"), labNetworks, "dnsgeo: dns.geoip: geodb: " + filepath.Join(dir, "nope.mmdb") + ": not a readable MaxMind DB file"},
		{"corrupt", "  geoip: " + corrupt, labNetworks, corrupt + ": not a readable MaxMind DB file"},
		{"a City database as asn", "  asn: " + city, geoNetworks, city + `: database type "Outpost-City" is not an ASN database`},
		{"ASN rows without dns.asn", "", geoNetworks, "networks.csv:6: 2 ASN rows need an ASN database: set dns.asn"},
		{"an ASN row names an unknown PoP", "  asn: " + buildDB(t, dir, "asn.mmdb", asnCSV, geodb.ASN), labNetworks + "AS1, lhr\n", `networks.csv:6: unknown PoP "lhr"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(labConfig(t, tt.dns, nil, tt.networks), Options{Logger: discard})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestGeoIPReload checks that a reload reads the databases the new file
// names (here a rebuilt City database at a new path) and answers from
// them at once, and that a bad database keeps the running one serving.
func TestGeoIPReload(t *testing.T) {
	dir := t.TempDir()
	asn := buildDB(t, dir, "asn.mmdb", asnCSV, geodb.ASN)
	cfgWith := func(cityText string) *config.Config {
		city := buildDB(t, t.TempDir(), "city.mmdb", cityText, geodb.City)
		return labConfig(t, "  health: {interval: 1h}\n  geoip: "+city+"\n  asn: "+asn, nil, geoNetworks)
	}
	ts := startServer(t, cfgWith(cityCSV))
	ask := func() string {
		return answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "81.0.1.0/24", 0)))
	}
	if got := ask(); got != "127.0.0.11" {
		t.Fatalf("before the reload: %s, want prg's 127.0.0.11", got)
	}
	if err := ts.Reload(cfgWith(strings.Replace(cityCSV, "81.0.0.0/16,50.11,8.68,DE", "81.0.0.0/16,35.69,139.69,JP", 1))); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != "127.0.0.13" {
		t.Fatalf("after the reload: %s, want nrt's 127.0.0.13", got)
	}
	bad := labConfig(t, "  geoip: "+filepath.Join(dir, "nope.mmdb"), nil, labNetworks)
	if err := ts.Reload(bad); err == nil || !strings.Contains(err.Error(), "nope.mmdb") {
		t.Fatalf("Reload with a missing database: %v", err)
	}
	if got := ask(); got != "127.0.0.13" {
		t.Fatalf("after a failed reload: %s, want nrt's 127.0.0.13 still", got)
	}
}

// BenchmarkGeoIPLocate measures placing a client by the City database,
// the cost a query pays when the network map misses: one lookup, no
// allocation.
func BenchmarkGeoIPLocate(b *testing.B) {
	s := newGeoServer(b)
	var l Locator
	for _, x := range s.state.Load().locators {
		if x.Name() == "geoip" {
			l = x
		}
	}
	client := netip.MustParsePrefix("81.0.1.0/24")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := l.Locate(client); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGeoIPQuery measures the handler answering an ECS query that
// the network map misses and the City database places.
func BenchmarkGeoIPQuery(b *testing.B) {
	s := newGeoServer(b)
	pkt := mustPack(b, query("demo.cdn.example.", dns.TypeA, "81.0.1.0/24", 0))
	b.ReportAllocs()
	for b.Loop() {
		if _, w := serveRaw(s, pkt, false); w == nil || w.err != nil {
			b.Fatal("no reply")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
