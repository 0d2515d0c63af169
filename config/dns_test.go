package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// dnsBase is a file with three PoPs and a zone; rows append a dns section
// starting on line 9.
const dnsBase = `zone: cdn.example
services:
  - {name: demo, hostnames: [demo.cdn.example, other.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: prg, location: {lat: 50.08, lon: 14.43}, listen: "127.0.0.11:8080", admin: "127.0.0.11:9080"}
  - {name: iad, location: {lat: 39.04, lon: -77.49}, listen: "127.0.0.12:8080", admin: "127.0.0.12:9080", weight: 5}
  - {name: nrt, location: {lat: 35.68, lon: 139.69}, listen: ":8080", admin: ":9080", address: 192.0.2.13, address6: "2001:db8::13"}
# the dns section follows
`

func TestDNSDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte(dnsBase+"dns:\n  listen: [\"127.0.0.1:5353\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DNS{
		Listen:      []string{"127.0.0.1:5353"},
		TTL:         30 * time.Second,
		NegativeTTL: 60 * time.Second,
		SOA: SOA{MName: "ns1.cdn.example", RName: "hostmaster.cdn.example", Serial: 1,
			Refresh: time.Hour, Retry: 15 * time.Minute, Expire: 168 * time.Hour, TTL: time.Hour},
		NS:       []NameServer{{Name: "ns1.cdn.example", Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		Fallback: []string{"prg", "iad", "nrt"},
		Health:   DNSHealth{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2},
		UDPSize:  1232,
		// Off, with BIND's slip and prefix lengths ready for when it is on.
		RateLimit: RateLimit{Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 65536},
	}
	if !reflect.DeepEqual(c.DNS, want) {
		t.Errorf("DNS:\n got %+v\nwant %+v", c.DNS, want)
	}
	if !c.DNS.Enabled() {
		t.Error("Enabled() = false")
	}
	pops := []struct {
		addr, addr6 string
		weight      int
	}{{"127.0.0.11", "invalid IP", 1}, {"127.0.0.12", "invalid IP", 5}, {"192.0.2.13", "2001:db8::13", 1}}
	for i, p := range pops {
		got := c.POPs[i]
		if got.Address.String() != p.addr || got.Address6.String() != p.addr6 || got.Weight != p.weight {
			t.Errorf("pops[%d]: address %s address6 %s weight %d, want %s %s %d", i, got.Address, got.Address6, got.Weight, p.addr, p.addr6, p.weight)
		}
	}
	if _, err := c.DNSConfig(); err != nil {
		t.Errorf("DNSConfig: %v", err)
	}

	// No dns section: disabled, and DNSConfig says so.
	c, err = Parse("t.yaml", []byte(dnsBase))
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.Enabled() {
		t.Error("Enabled() = true without a dns section")
	}
	if _, err := c.DNSConfig(); err == nil || !strings.Contains(err.Error(), "no dns section") {
		t.Errorf("DNSConfig: %v", err)
	}
}

func TestDNSEverySetting(t *testing.T) {
	const in = dnsBase + `dns:
  listen: ["127.0.0.1:53", "[::1]:53"]
  admin: 127.0.0.1:9053
  ttl: 20s
  negative_ttl: 0s
  udp_size: 4096
  soa: {mname: NS1.cdn.example., rname: ops@cdn.example, serial: 4294967295, refresh: 2h, retry: 1m, expire: 24h, ttl: 5m}
  ns:
    - ns1.cdn.example
    - {name: ns2.cdn.example, addresses: [192.0.2.53, "2001:db8::53"]}
    - ns.other.example
  networks: nets/networks.csv
  geoip: /var/lib/geo/GeoLite2-City.mmdb
  asn: GeoLite2-ASN.mmdb
  fallback: [nrt]
  health: {interval: 500ms, timeout: 100ms, rise: 1, fall: 5}
  spread: 250.5
  rate_limit: {responses_per_second: 50, burst: 100, slip: 1, ipv4_prefix: 22, ipv6_prefix: 48, table_size: 5000}
`
	c, err := Parse("dir/t.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	nets, _ := filepath.Abs("dir/nets/networks.csv")
	asn, _ := filepath.Abs("dir/GeoLite2-ASN.mmdb")
	want := DNS{
		Listen: []string{"127.0.0.1:53", "[::1]:53"}, Admin: "127.0.0.1:9053",
		TTL: 20 * time.Second, NegativeTTL: 0, UDPSize: 4096,
		SOA: SOA{MName: "ns1.cdn.example", RName: "ops.cdn.example", Serial: 4294967295,
			Refresh: 2 * time.Hour, Retry: time.Minute, Expire: 24 * time.Hour, TTL: 5 * time.Minute},
		NS: []NameServer{
			{Name: "ns1.cdn.example", Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}},
			{Name: "ns2.cdn.example", Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
			{Name: "ns.other.example"},
		},
		Networks: nets,
		GeoIP:    "/var/lib/geo/GeoLite2-City.mmdb",
		ASN:      asn,
		Fallback: []string{"nrt", "prg", "iad"},
		Health:   DNSHealth{Interval: 500 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 1, Fall: 5},
		Spread:   250.5,
		RateLimit: RateLimit{ResponsesPerSecond: 50, Burst: 100, Slip: 1, IPv4Prefix: 22, IPv6Prefix: 48,
			TableSize: 8192}, // rounded up to a power of two
	}
	if !reflect.DeepEqual(c.DNS, want) {
		t.Errorf("DNS:\n got %+v\nwant %+v", c.DNS, want)
	}
}

// TestDNSErrors has a row per rule; the dns section starts on line 9.
func TestDNSErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"listen missing", "dns: {ttl: 30s}\n", []string{`t.yaml:9: dns.listen: missing required key`}},
		{"listen empty", "dns: {listen: []}\n", []string{`t.yaml:9: dns.listen: at least one address is required`}},
		{"listen not an address", "dns: {listen: [nowhere]}\n", []string{`t.yaml:9: dns.listen[0]: invalid address "nowhere"`}},
		{"listen twice", "dns:\n  listen: [\"127.0.0.1:53\", \"127.0.0.1:53\"]\n", []string{`t.yaml:10: dns.listen[1]: address "127.0.0.1:53" is listed twice (first at line 10)`}},
		{"unknown key with a suggestion", "dns:\n  listen: [\":53\"]\n  tll: 30s\n", []string{`t.yaml:11: dns.tll: unknown key "tll" (did you mean "ttl"?)`}},
		{"ttl not whole seconds", "dns: {listen: [\":53\"], ttl: 1500ms}\n", []string{`t.yaml:9: dns.ttl: 1.5s is not a whole number of seconds`}},
		{"ttl zero", "dns: {listen: [\":53\"], ttl: 0s}\n", []string{`t.yaml:9: dns.ttl: 0s is out of range (want 1s..24h)`}},
		{"negative_ttl too long", "dns: {listen: [\":53\"], negative_ttl: 4h}\n", []string{`t.yaml:9: dns.negative_ttl: 4h is out of range (want 0s..3h)`}},
		{"udp_size too small", "dns: {listen: [\":53\"], udp_size: 100}\n", []string{`t.yaml:9: dns.udp_size: 100 is out of range (want 512..4096)`}},
		{"spread negative", "dns: {listen: [\":53\"], spread: -1}\n", []string{`t.yaml:9: dns.spread: -1 is out of range`}},
		{"unknown PoP in fallback", "dns:\n  listen: [\":53\"]\n  fallback: [prg, fra]\n", []string{`t.yaml:11: dns.fallback[1]: no PoP is named "fra" (have prg, iad, nrt)`}},
		{"PoP twice in fallback", "dns:\n  listen: [\":53\"]\n  fallback: [prg, prg]\n", []string{`t.yaml:11: dns.fallback[1]: PoP "prg" is listed twice (first at line 11)`}},
		{"health timeout over interval", "dns:\n  listen: [\":53\"]\n  health: {interval: 1s, timeout: 2s}\n", []string{`t.yaml:11: dns.health.timeout: timeout 2s is longer than the interval 1s`}},
		{"health interval zero", "dns:\n  listen: [\":53\"]\n  health: {interval: 0s}\n", []string{`t.yaml:11: dns.health.interval: interval must be positive`}},
		{"health rise out of range", "dns:\n  listen: [\":53\"]\n  health: {rise: 0}\n", []string{`t.yaml:11: dns.health.rise: 0 is out of range (want 1..100)`}},
		{"serial out of range", "dns:\n  listen: [\":53\"]\n  soa: {serial: 4294967296}\n", []string{`t.yaml:11: dns.soa.serial: 4294967296 is out of range`}},
		{"bad rname", "dns:\n  listen: [\":53\"]\n  soa: {rname: \"a.b@cdn.example\"}\n", []string{`t.yaml:11: dns.soa.rname: rname "a.b@cdn.example": the part before @ must be a single label`}},
		{"bad ns name", "dns:\n  listen: [\":53\"]\n  ns: [\"bad_name.cdn.example\"]\n", []string{`t.yaml:11: dns.ns[0]: name "bad_name.cdn.example": invalid character '_'`}},
		{"ns address not an IP", "dns:\n  listen: [\":53\"]\n  ns: [{name: ns1.cdn.example, addresses: [localhost]}]\n", []string{`t.yaml:11: dns.ns[0].addresses[0]: invalid IP address "localhost"`}},
		{"ns outside the zone with addresses", "dns:\n  listen: [\":53\"]\n  ns: [{name: ns.other.example, addresses: [192.0.2.1]}]\n", []string{`t.yaml:11: dns.ns[0].addresses: name server "ns.other.example" is outside zone "cdn.example"`}},
		{"ns name that is a service hostname", "dns:\n  listen: [\":53\"]\n  ns: [demo.cdn.example]\n", []string{`t.yaml:11: dns.ns[0]: name server "demo.cdn.example" is also a service hostname`}},
		{"admin clashes with a PoP", "dns:\n  listen: [\":53\"]\n  admin: \"127.0.0.11:9080\"\n", []string{
			`t.yaml:11: dns.admin: address "127.0.0.11:9080" clashes with pops[0].admin of PoP "prg"`,
			`t.yaml:11: dns.admin: address "127.0.0.11:9080" clashes with pops[2].admin of PoP "nrt" (":9080")`,
		}},
		{"listen clashes with a wildcard PoP", "dns:\n  listen: [\"127.0.0.1:8080\"]\n", []string{`t.yaml:10: dns.listen[0]: address "127.0.0.1:8080" clashes with pops[2].listen of PoP "nrt"`}},
		{"admin clashes with listen", "dns:\n  listen: [\":53\"]\n  admin: \"127.0.0.1:53\"\n", []string{`t.yaml:11: dns.admin: admin address "127.0.0.1:53" clashes with dns.listen[0]`}},
		{"rate_limit unknown key", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses-per-second: 5}\n", []string{`t.yaml:11: dns.rate_limit.responses-per-second: unknown key "responses-per-second" (did you mean "responses_per_second"?)`}},
		{"rate_limit rate negative", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses_per_second: -1}\n", []string{`t.yaml:11: dns.rate_limit.responses_per_second: -1 is out of range (want 0..1000000)`}},
		{"rate_limit slip too large", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses_per_second: 5, slip: 11}\n", []string{`t.yaml:11: dns.rate_limit.slip: 11 is out of range (want 0..10)`}},
		{"rate_limit ipv4_prefix too long", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses_per_second: 5, ipv4_prefix: 33}\n", []string{`t.yaml:11: dns.rate_limit.ipv4_prefix: 33 is out of range (want 8..32)`}},
		{"rate_limit ipv6_prefix too short", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses_per_second: 5, ipv6_prefix: 8}\n", []string{`t.yaml:11: dns.rate_limit.ipv6_prefix: 8 is out of range (want 16..128)`}},
		{"rate_limit table_size too small", "dns:\n  listen: [\":53\"]\n  rate_limit: {responses_per_second: 5, table_size: 10}\n", []string{`t.yaml:11: dns.rate_limit.table_size: 10 is out of range (want 1024..16777216)`}},
		{"rate_limit burst without a rate", "dns:\n  listen: [\":53\"]\n  rate_limit: {burst: 10}\n", []string{`t.yaml:11: dns.rate_limit.burst: burst needs responses_per_second`}},
		{"rate_limit not a mapping", "dns:\n  listen: [\":53\"]\n  rate_limit: 5\n", []string{`t.yaml:11: dns.rate_limit:`}},
		{"networks empty", "dns: {listen: [\":53\"], networks: \"\"}\n", []string{`t.yaml:9: dns.networks: networks must not be empty`}},
		{"geoip empty", "dns: {listen: [\":53\"], geoip: \"\"}\n", []string{`t.yaml:9: dns.geoip: geoip must not be empty (remove the key for no geo database)`}},
		{"asn not a string", "dns: {listen: [\":53\"], asn: [x]}\n", []string{`t.yaml:9: dns.asn:`}},
		{"geoip misspelled", "dns: {listen: [\":53\"], geoipp: x.mmdb}\n", []string{`t.yaml:9: dns.geoipp: unknown key "geoipp" (did you mean "geoip"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(dnsBase+tt.in))
			checkProblems(t, err, tt.want)
		})
	}

	// Rules that need a different file around the dns section.
	others := []struct {
		name string
		in   string
		want []string
	}{
		{"no zone", strings.Replace(dnsBase, "zone: cdn.example\n", "# no zone\n", 1) + "dns: {listen: [\":53\"]}\n",
			[]string{`t.yaml:9: dns: the dns section needs the top-level zone key`}},
		{"no service in the zone", strings.Replace(dnsBase, "demo.cdn.example, ", "", 1) + "dns: {listen: [\":53\"]}\n",
			[]string{`t.yaml:9: dns: no service hostname is inside zone "cdn.example"`}},
		{"a PoP without an address", strings.Replace(dnsBase, `address: 192.0.2.13, address6: "2001:db8::13"`, "cache_size: 1GiB", 1) + "dns: {listen: [\":53\"]}\n",
			[]string{`t.yaml:9: dns: PoP "nrt" (pops[2]) has no address to answer with`}},
		{"address of the wrong family", strings.Replace(dnsBase, "address: 192.0.2.13", `address: "2001:db8::1"`, 1),
			[]string{`t.yaml:7: pops[2].address: 2001:db8::1 is an IPv6 address; put it in address6`}},
		{"address6 of the wrong family", strings.Replace(dnsBase, `address6: "2001:db8::13"`, "address6: 192.0.2.1", 1),
			[]string{`t.yaml:7: pops[2].address6: 192.0.2.1 is an IPv4 address; put it in address`}},
		{"weight out of range", strings.Replace(dnsBase, "weight: 5", "weight: 0", 1),
			[]string{`t.yaml:6: pops[1].weight: 0 is out of range (want 1..1000)`}},
		{"the dns section before the PoPs is checked the same", "dns:\n  listen: [\":53\"]\n  fallback: [fra]\n" + dnsBase,
			[]string{`t.yaml:3: dns.fallback[0]: no PoP is named "fra"`}},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.in))
			checkProblems(t, err, tt.want)
		})
	}
}

// checkProblems checks that err lists exactly the problems want, each a
// substring of one line.
func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.Contains(l, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem contains %q:\n%v", w, err)
		}
	}
}
