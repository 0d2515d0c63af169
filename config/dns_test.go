package config

import (
	"fmt"
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
		NS:          []NameServer{{Name: "ns1.cdn.example", Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		Fallback:    []string{"prg", "iad", "nrt"},
		Health:      DNSHealth{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2},
		UDPSize:     1232,
		AnswerCache: 16384,
		// Off, with BIND's slip and prefix lengths ready for when it is on.
		RateLimit:    RateLimit{Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 65536},
		States:       DNSStates{MaxAge: 2 * time.Second, Skew: 500 * time.Millisecond},
		LoadShedding: LoadShedding{Threshold: 0.8, Release: 0.7, ChangePerSecond: 0.0033, MaxShare: 0.5},
		ACME:         ACME{MaxRecords: 20, TTL: time.Minute, MaxValueSize: 512},
		DNSSEC:       DNSSEC{SignatureValidity: 168 * time.Hour, CacheSize: 100000},
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
  answer_cache: 1000
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
  states: {max_age: 3s, skew: 1s}
  load_shedding: {threshold: 0.9, release: 0.6, change_per_second: 0.05, max_share: 0.3}
`
	c, err := Parse("dir/t.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	nets, _ := filepath.Abs("dir/nets/networks.csv")
	asn, _ := filepath.Abs("dir/GeoLite2-ASN.mmdb")
	want := DNS{
		Listen: []string{"127.0.0.1:53", "[::1]:53"}, Admin: "127.0.0.1:9053",
		TTL: 20 * time.Second, NegativeTTL: 0, UDPSize: 4096, AnswerCache: 1000,
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
		States:       DNSStates{MaxAge: 3 * time.Second, Skew: time.Second},
		LoadShedding: LoadShedding{Threshold: 0.9, Release: 0.6, ChangePerSecond: 0.05, MaxShare: 0.3},
		ACME:         ACME{MaxRecords: 20, TTL: time.Minute, MaxValueSize: 512},
		DNSSEC:       DNSSEC{SignatureValidity: 168 * time.Hour, CacheSize: 100000},
	}
	if !reflect.DeepEqual(c.DNS, want) {
		t.Errorf("DNS:\n got %+v\nwant %+v", c.DNS, want)
	}
}

// TestDNSStatesDefaults checks the defaults that depend on other keys:
// max_age follows control.state_interval, release the threshold, and
// change_per_second the TTL.
func TestDNSStatesDefaults(t *testing.T) {
	const control = "control: {servers: [\"nats://127.0.0.1:4222\"], state_interval: 5s}\n"
	tests := []struct {
		name      string
		in        string
		maxAge    time.Duration
		threshold float64
		release   float64
		change    float64
	}{
		{"no control section: twice the default state interval", "", 2 * time.Second, 0.8, 0.7, 0.0033},
		{"max_age is twice control.state_interval", control, 10 * time.Second, 0.8, 0.7, 0.0033},
		{"release is 0.1 below a threshold given", "  load_shedding: {threshold: 0.95}\n", 2 * time.Second, 0.95, 0.85, 0.0033},
		{"release is never below 0", "  load_shedding: {threshold: 0.05}\n", 2 * time.Second, 0.05, 0, 0.0033},
		{"max_age given wins", "  states: {max_age: 7s}\n" + control, 7 * time.Second, 0.8, 0.7, 0.0033},
		{"change_per_second is 0.1 per ttl", "  ttl: 60s\n", 2 * time.Second, 0.8, 0.7, 0.0017},
		{"change_per_second is at most 0.015", "  ttl: 5s\n", 2 * time.Second, 0.8, 0.7, 0.015},
		{"change_per_second given wins", "  ttl: 5s\n  load_shedding: {change_per_second: 0.5}\n", 2 * time.Second, 0.8, 0.7, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dnsKeys, top, _ := strings.Cut(tt.in, "control:")
			if top != "" {
				top = "control:" + top
			}
			c, err := Parse("t.yaml", []byte(dnsBase+top+"dns:\n  listen: [\"127.0.0.1:5353\"]\n"+dnsKeys))
			if err != nil {
				t.Fatal(err)
			}
			got := c.DNS
			ls := got.LoadShedding
			if got.States.MaxAge != tt.maxAge || ls.Threshold != tt.threshold || ls.Release != tt.release || ls.ChangePerSecond != tt.change {
				t.Errorf("max_age %s threshold %g release %g change_per_second %g, want %s %g %g %g", got.States.MaxAge,
					ls.Threshold, ls.Release, ls.ChangePerSecond, tt.maxAge, tt.threshold, tt.release, tt.change)
			}
		})
	}
}

// TestPOPCapacity checks pops[].capacity and the load it gives.
func TestPOPCapacity(t *testing.T) {
	const pops = `zone: cdn.example
services:
  - {name: demo, hostnames: [demo.cdn.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: both, location: {lat: 0, lon: 0}, listen: "127.0.0.11:8080", admin: "127.0.0.11:9080", capacity: {requests_per_sec: 20000, bytes_per_sec: 1GB}}
  - {name: requests, location: {lat: 0, lon: 0}, listen: "127.0.0.12:8080", admin: "127.0.0.12:9080", capacity: {requests_per_sec: 500.5}}
  - {name: bytes, location: {lat: 0, lon: 0}, listen: "127.0.0.13:8080", admin: "127.0.0.13:9080", capacity: {bytes_per_sec: 125000000}}
  - {name: none, location: {lat: 0, lon: 0}, listen: "127.0.0.14:8080", admin: "127.0.0.14:9080"}
`
	c, err := Parse("t.yaml", []byte(pops))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pop      int
		capacity Capacity
		rps, bps float64
		load     float64
	}{
		{"both: the request share is the larger", 0, Capacity{RequestsPerSec: 20000, BytesPerSec: 1e9}, 18000, 5e8, 0.9},
		{"both: the byte share is the larger", 0, Capacity{RequestsPerSec: 20000, BytesPerSec: 1e9}, 1000, 1.2e9, 1.2},
		{"requests only: bytes do not count", 1, Capacity{RequestsPerSec: 500.5}, 500.5, 1e12, 1},
		{"bytes only (a plain integer)", 2, Capacity{BytesPerSec: 125000000}, 1e6, 62500000, 0.5},
		{"no capacity: load 0", 3, Capacity{}, 1e6, 1e12, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.POPs[tt.pop].Capacity
			if got != tt.capacity {
				t.Errorf("capacity %+v, want %+v", got, tt.capacity)
			}
			if got.Configured() != (tt.capacity != Capacity{}) {
				t.Errorf("Configured() = %v", got.Configured())
			}
			if l := got.Load(tt.rps, tt.bps); l != tt.load {
				t.Errorf("Load(%g, %g) = %g, want %g", tt.rps, tt.bps, l, tt.load)
			}
		})
	}
}

// TestDNSRecords checks dns.records: names relative to the zone, "@" and
// absolute; each type's value parsed; the default TTL (dns.soa.ttl); and
// dns.acme with its defaults and the token from the environment.
func TestDNSRecords(t *testing.T) {
	const in = dnsBase + `dns:
  listen: ["127.0.0.1:5353"]
  soa: {ttl: 10m}
  records:
    - {name: www, type: CNAME, value: demo}
    - {name: "@", type: MX, value: "10 mx.example.net."}
    - {name: "@", type: TXT, value: "v=spf1 -all"}
    - {name: cdn.example, type: CAA, value: '0 issue "letsencrypt.org"'}
    - {name: api.cdn.example., type: a, value: 192.0.2.10, ttl: 5m}
    - {name: api, type: AAAA, value: "2001:db8::10"}
    - {name: sub, type: NS, value: ns1.sub}
    - {name: ns1.sub, type: A, value: 192.0.2.53}
    - {name: _dmarc, type: TXT, value: "v=DMARC1; p=reject"}
  acme: {token: 0123456789abcdef0123456789abcdef, max_records: 5}
`
	c, err := Parse("t.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Name: "www.cdn.example", Type: "CNAME", TTL: 10 * time.Minute, Value: "demo", Target: "demo.cdn.example"},
		{Name: "cdn.example", Type: "MX", TTL: 10 * time.Minute, Value: "10 mx.example.net.", Target: "mx.example.net", Preference: 10},
		{Name: "cdn.example", Type: "TXT", TTL: 10 * time.Minute, Value: "v=spf1 -all", Text: "v=spf1 -all"},
		{Name: "cdn.example", Type: "CAA", TTL: 10 * time.Minute, Value: `0 issue "letsencrypt.org"`, Tag: "issue", Text: "letsencrypt.org"},
		{Name: "api.cdn.example", Type: "A", TTL: 5 * time.Minute, Value: "192.0.2.10", Addr: netip.MustParseAddr("192.0.2.10")},
		{Name: "api.cdn.example", Type: "AAAA", TTL: 10 * time.Minute, Value: "2001:db8::10", Addr: netip.MustParseAddr("2001:db8::10")},
		{Name: "sub.cdn.example", Type: "NS", TTL: 10 * time.Minute, Value: "ns1.sub", Target: "ns1.sub.cdn.example"},
		{Name: "ns1.sub.cdn.example", Type: "A", TTL: 10 * time.Minute, Value: "192.0.2.53", Addr: netip.MustParseAddr("192.0.2.53")},
		{Name: "_dmarc.cdn.example", Type: "TXT", TTL: 10 * time.Minute, Value: "v=DMARC1; p=reject", Text: "v=DMARC1; p=reject"},
	}
	if len(c.DNS.Records) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(c.DNS.Records), len(want), c.DNS.Records)
	}
	for i, r := range c.DNS.Records {
		r.line, r.index = 0, 0
		if !reflect.DeepEqual(r, want[i]) {
			t.Errorf("records[%d]:\n got %+v\nwant %+v", i, r, want[i])
		}
	}
	a := c.DNS.ACME
	if !a.Enabled() || a.MaxRecords != 5 || a.TTL != time.Minute || a.MaxValueSize != 512 || a.FromEnv {
		t.Errorf("acme %+v", a)
	}
	if s := fmt.Sprintf("%v %#v", a, a); strings.Contains(s, "0123456789abcdef") {
		t.Errorf("the token shows: %s", s)
	}
	t.Setenv(ACMEEnv, "fedcba9876543210fedcba9876543210")
	c, err = Parse("t.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.DNS.ACME; a.Token != "fedcba9876543210fedcba9876543210" || !a.FromEnv {
		t.Errorf("acme with $%s: %v", ACMEEnv, a)
	}
}
