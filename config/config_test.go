package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid file: every optional setting is left out.
const minimal = `services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers:
        - url: http://127.0.0.1:8000
pops:
  - name: prg
    location: {lat: 50.08, lon: 14.43}
    listen: 127.0.0.1:8081
    admin: 127.0.0.1:9081
`

// full sets every setting, none to its default.
const full = `zone: CDN.Example.
services:
  - name: demo
    hostnames: [Demo.Example., "[2001:DB8::1]", 192.0.2.1, localhost]
    origin:
      policy: ip_hash
      hash_key: cache_key
      servers:
        - {url: "http://o1.example:8000/base", weight: 3, max_conns: 100}
        - {url: "https://o2.example", weight: 1000, max_conns: 0}
      timeouts: {connect: 1s, first_byte: 5s, idle: 10s, fill: 1m}
      detached_fills: 0
      health: {path: "/healthz?deep=1", interval: 1s, timeout: 500ms, rise: 1, fall: 10}
      ejection: {failures: 2, cooldown: 1m}
      tls: {ca_file: testdata/ca.pem, server_name: O2.Example}
      host_header: WWW.Example:8443
    cache:
      default_ttl: 1m
      min_ttl: 10s
      max_ttl: 1h
      max_object: 1.5MiB
      keep: 0s
      hit_for_miss: 0s
      query: {sort: true, drop: [utm_source, utm_medium]}
  - name: other_2
    hostnames: [other.example]
    origin:
      policy: adaptive
      servers: [{url: "http://[::1]:9000"}, {url: "https://[::1]:9001", weight: 2}]
      load: {path: /load, interval: 500ms, timeout: 100ms}
      tls: {insecure_skip_verify: true}
pops:
  - name: prg
    location: {lat: -90, lon: 180}
    listen: ":8081"
    admin: "[::1]:9081"
    cache_size: 1048576
    drain: 0s
    timeouts: {read_header: 1s, idle: 2s, send: 3s, request_body: 4s}
    limits: {max_conns: 1, inflight_bytes: 1MiB, detached_fills: 0, max_ranges: 1, request_buffer: 0}
  - name: fra
    location: {lat: 50.1, lon: 8.7}
    listen: 127.0.0.2:8081
    admin: 127.0.0.2:9081
    cache_size: 1g
    limits: {max_conns: 1000000, inflight_bytes: 1TiB, detached_fills: 100000, max_ranges: 10000, request_buffer: 1GiB}
purge:
  token: s3cr3t
`

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func version(data string) string {
	sum := sha256.Sum256([]byte(data))
	return hex.EncodeToString(sum[:])[:12]
}

func TestParseGood(t *testing.T) {
	t.Setenv(TokenEnv, "") // the tokens below are the files' own
	defaultOriginTimeouts := OriginTimeouts{Connect: 2 * time.Second, FirstByte: 15 * time.Second, Idle: 30 * time.Second, Fill: 5 * time.Minute}
	defaultOrigin := func(servers ...OriginServer) Origin {
		return Origin{
			Policy:        "round_robin",
			Servers:       servers,
			Timeouts:      defaultOriginTimeouts,
			Ejection:      Ejection{Failures: 5, Cooldown: 10 * time.Second},
			DetachedFills: 16,
		}
	}
	defaultTimeouts := ServerTimeouts{ReadHeader: 10 * time.Second, Idle: 120 * time.Second, Send: 60 * time.Second, RequestBody: 60 * time.Second}
	defaultLimits := Limits{MaxConns: 10_000, InflightBytes: 256 << 20, DetachedFills: 64, MaxRanges: 200, RequestBuffer: 1 << 20}
	withOrigin := func(o Origin, change func(*Origin)) Origin {
		change(&o)
		return o
	}
	caFile, err := filepath.Abs("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	defaultCache := CachePolicy{MaxObject: 64 << 20, Keep: time.Hour, HitForMiss: 2 * time.Minute}
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{
			name: "minimal file gets every default",
			in:   minimal,
			want: Config{
				Services: []Service{{
					Name:      "demo",
					Hostnames: []string{"demo.example"},
					Origin:    defaultOrigin(OriginServer{URL: mustURL(t, "http://127.0.0.1:8000"), Weight: 1}),
					Cache:     defaultCache,
				}},
				POPs: []POP{{
					Name:      "prg",
					Location:  Location{Lat: 50.08, Lon: 14.43},
					Listen:    "127.0.0.1:8081",
					Admin:     "127.0.0.1:9081",
					CacheSize: 256 << 20,
					Drain:     5 * time.Second,
					Timeouts:  defaultTimeouts,
					Limits:    defaultLimits,
					Address:   netip.MustParseAddr("127.0.0.1"),
					Weight:    1,
				}},
			},
		},
		{
			name: "every setting given",
			in:   full,
			want: Config{
				Zone: "cdn.example",
				Services: []Service{
					{
						Name:      "demo",
						Hostnames: []string{"demo.example", "2001:db8::1", "192.0.2.1", "localhost"},
						Origin: Origin{
							Policy:  "ip_hash",
							HashKey: "cache_key",
							Servers: []OriginServer{
								{URL: mustURL(t, "http://o1.example:8000/base"), Weight: 3, MaxConns: 100},
								{URL: mustURL(t, "https://o2.example"), Weight: 1000},
							},
							Timeouts:   OriginTimeouts{Connect: time.Second, FirstByte: 5 * time.Second, Idle: 10 * time.Second, Fill: time.Minute},
							Health:     &HealthCheck{Path: "/healthz?deep=1", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 10},
							Ejection:   Ejection{Failures: 2, Cooldown: time.Minute},
							TLS:        OriginTLS{CAFile: caFile, ServerName: "o2.example"},
							HostHeader: "www.example:8443",
						},
						Cache: CachePolicy{
							DefaultTTL: time.Minute,
							MinTTL:     10 * time.Second,
							MaxTTL:     time.Hour,
							MaxObject:  1536 << 10,
							Keep:       0,
							Query:      QueryPolicy{Sort: true, Drop: []string{"utm_source", "utm_medium"}},
						},
					},
					{
						Name:      "other_2",
						Hostnames: []string{"other.example"},
						Origin: Origin{
							Policy: "adaptive",
							Servers: []OriginServer{
								{URL: mustURL(t, "http://[::1]:9000"), Weight: 1},
								{URL: mustURL(t, "https://[::1]:9001"), Weight: 2},
							},
							Timeouts:      defaultOriginTimeouts,
							Load:          &LoadProbe{Path: "/load", Interval: 500 * time.Millisecond, Timeout: 100 * time.Millisecond},
							Ejection:      Ejection{Failures: 5, Cooldown: 10 * time.Second},
							TLS:           OriginTLS{InsecureSkipVerify: true},
							DetachedFills: 16,
						},
						Cache: defaultCache,
					},
				},
				POPs: []POP{
					{
						Name:      "prg",
						Location:  Location{Lat: -90, Lon: 180},
						Listen:    ":8081",
						Admin:     "[::1]:9081",
						CacheSize: 1 << 20,
						Drain:     0,
						Timeouts:  ServerTimeouts{ReadHeader: time.Second, Idle: 2 * time.Second, Send: 3 * time.Second, RequestBody: 4 * time.Second},
						Limits:    Limits{MaxConns: 1, InflightBytes: 1 << 20, DetachedFills: 0, MaxRanges: 1, RequestBuffer: 0},
						Weight:    1,
					},
					{
						Name:      "fra",
						Location:  Location{Lat: 50.1, Lon: 8.7},
						Listen:    "127.0.0.2:8081",
						Admin:     "127.0.0.2:9081",
						CacheSize: 1 << 30,
						Drain:     5 * time.Second,
						Timeouts:  defaultTimeouts,
						Limits:    Limits{MaxConns: 1_000_000, InflightBytes: 1 << 40, DetachedFills: 100_000, MaxRanges: 10_000, RequestBuffer: 1 << 30},
						Address:   netip.MustParseAddr("127.0.0.2"),
						Weight:    1,
					},
				},
				Purge: Purge{Token: "s3cr3t"},
			},
		},
		{
			name: "anchors, aliases and merge keys",
			in: `services:
  - name: a
    hostnames: [a.example]
    origin: &origin {servers: [{url: "http://127.0.0.1:8000"}]}
    cache: &cache {max_ttl: 1h, keep: 5m}
  - name: b
    hostnames: [b.example]
    origin: *origin
    cache:
      <<: *cache
      keep: 10m
pops:
  - &pop {name: prg, location: {lat: 1, lon: 2}, listen: ":8081", admin: ":9081"}
  - <<: *pop
    name: fra
    listen: 127.0.0.1:8082
    admin: 127.0.0.1:9082
`,
			want: Config{
				Services: []Service{
					{
						Name:      "a",
						Hostnames: []string{"a.example"},
						Origin:    defaultOrigin(OriginServer{URL: mustURL(t, "http://127.0.0.1:8000"), Weight: 1}),
						Cache:     CachePolicy{MaxTTL: time.Hour, MaxObject: 64 << 20, Keep: 5 * time.Minute, HitForMiss: 2 * time.Minute},
					},
					{
						Name:      "b",
						Hostnames: []string{"b.example"},
						Origin:    defaultOrigin(OriginServer{URL: mustURL(t, "http://127.0.0.1:8000"), Weight: 1}),
						Cache:     CachePolicy{MaxTTL: time.Hour, MaxObject: 64 << 20, Keep: 10 * time.Minute, HitForMiss: 2 * time.Minute},
					},
				},
				POPs: []POP{
					{
						Name: "prg", Location: Location{Lat: 1, Lon: 2}, Listen: ":8081", Admin: ":9081",
						CacheSize: 256 << 20, Drain: 5 * time.Second,
						Timeouts: defaultTimeouts, Limits: defaultLimits,
						Weight: 1,
					},
					{
						Name: "fra", Location: Location{Lat: 1, Lon: 2}, Listen: "127.0.0.1:8082", Admin: "127.0.0.1:9082",
						CacheSize: 256 << 20, Drain: 5 * time.Second,
						Timeouts: defaultTimeouts, Limits: defaultLimits,
						Address: netip.MustParseAddr("127.0.0.1"), Weight: 1,
					},
				},
			},
		},
		{
			name: "empty sections and commented-out settings get the defaults",
			in: `services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers: [{url: "http://127.0.0.1:8000"}]
      timeouts:
        # connect: 1s
    cache: {}
pops:
  - {name: prg, location: {lat: 0, lon: 0}, listen: ":8081", admin: ":9081", timeouts: {}}
`,
			want: Config{
				Services: []Service{{
					Name:      "demo",
					Hostnames: []string{"demo.example"},
					Origin:    defaultOrigin(OriginServer{URL: mustURL(t, "http://127.0.0.1:8000"), Weight: 1}),
					Cache:     defaultCache,
				}},
				POPs: []POP{{
					Name: "prg", Listen: ":8081", Admin: ":9081",
					CacheSize: 256 << 20, Drain: 5 * time.Second,
					Timeouts: defaultTimeouts, Limits: defaultLimits,
					Weight: 1,
				}},
			},
		},
		{
			name: "policy-dependent defaults: ip_hash key, adaptive load, health, short intervals",
			in: `services:
  - name: a
    hostnames: [a.example]
    origin: {policy: ip_hash, servers: [{url: "http://o"}]}
  - name: b
    hostnames: [b.example]
    origin:
      policy: adaptive
      servers: [{url: "http://o"}]
      health: {path: /h}
  - name: c
    hostnames: [c.example]
    origin:
      policy: adaptive
      servers: [{url: "http://o"}]
      load: {interval: 300ms}
      health: {path: /h, interval: 1s}
pops:
  - {name: prg, location: {lat: 0, lon: 0}, listen: ":8081", admin: ":9081"}
`,
			want: Config{
				Services: []Service{
					{
						Name: "a", Hostnames: []string{"a.example"}, Cache: defaultCache,
						Origin: withOrigin(defaultOrigin(OriginServer{URL: mustURL(t, "http://o"), Weight: 1}), func(o *Origin) {
							o.Policy, o.HashKey = "ip_hash", "client_ip"
						}),
					},
					{
						Name: "b", Hostnames: []string{"b.example"}, Cache: defaultCache,
						Origin: withOrigin(defaultOrigin(OriginServer{URL: mustURL(t, "http://o"), Weight: 1}), func(o *Origin) {
							o.Policy = "adaptive"
							o.Load = &LoadProbe{Path: "/_origin/load", Interval: 2 * time.Second, Timeout: time.Second}
							o.Health = &HealthCheck{Path: "/h", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
						}),
					},
					{
						Name: "c", Hostnames: []string{"c.example"}, Cache: defaultCache,
						Origin: withOrigin(defaultOrigin(OriginServer{URL: mustURL(t, "http://o"), Weight: 1}), func(o *Origin) {
							o.Policy = "adaptive"
							o.Load = &LoadProbe{Path: "/_origin/load", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond}
							o.Health = &HealthCheck{Path: "/h", Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
						}),
					},
				},
				POPs: []POP{{
					Name: "prg", Listen: ":8081", Admin: ":9081",
					CacheSize: 256 << 20, Drain: 5 * time.Second,
					Timeouts: defaultTimeouts, Limits: defaultLimits,
					Weight: 1,
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("t.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Path = "t.yaml"
			tt.want.Version = version(tt.in)
			got.hosts = nil // compared through ServiceByHost in its own test
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// TestParseErrors has a row per validation rule. Each row lists every
// problem the file must produce, as substrings "FILE:LINE: KEY: message";
// the error must have exactly that many lines.
func TestParseErrors(t *testing.T) {
	t.Setenv(TokenEnv, "") // keep every row's input its own
	// svc and pop are one valid service and PoP, each on one line, to build
	// files around the line under test.
	const (
		svc  = `  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}` + "\n"
		pop  = `  - {name: prg, location: {lat: 1, lon: 2}, listen: ":8081", admin: ":9081"}` + "\n"
		svcs = "services:\n" + svc
		pops = "pops:\n" + pop
		// popBlock is pops in block style, lines 3-7 after svcs, so that a
		// row can append a PoP setting on line 8.
		popBlock = "pops:\n  - name: prg\n    location: {lat: 1, lon: 2}\n    listen: \":8081\"\n    admin: \":9081\"\n"
	)
	// org makes a file whose one service, on line 2, has the origin
	// settings given, in flow style.
	org := func(settings string) string {
		return "services:\n  - {name: demo, hostnames: [a.example], origin: {" + settings + "}}\n" + pops
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		// The file as a whole.
		{"empty file", "", []string{`t.yaml: file is empty`}},
		{"blank file", " \n\n", []string{`t.yaml: file is empty`}},
		{"only comments", "# nothing yet\n", []string{`t.yaml: file has no content`}},
		{"null document", "---\n~\n", []string{`t.yaml:2: document is empty`}},
		{"YAML syntax error", svcs + "pops:\n  - name: [\n", []string{`t.yaml:4: invalid YAML: did not find expected node content`}},
		{"bad indentation", "services:\n  - name: a\n hostnames: []\n", []string{`t.yaml:2: invalid YAML: did not find expected key`}},
		{"tab indentation", "services:\n\t- name: a\n", []string{`t.yaml:2: invalid YAML: found character that cannot start any token`}},
		{"unknown anchor", svcs + "pops: *nope\n", []string{`t.yaml: invalid YAML: unknown anchor 'nope' referenced`}},
		{"two documents", svcs + pops + "---\n" + svcs, []string{`t.yaml:5: a second YAML document (after ---); the file must hold exactly one`}},
		{"top level is a list", "- services\n", []string{`t.yaml:1: want a mapping (keys zone, services, pops, purge, dns), got a list`}},
		{"top level is a string", "hello\n", []string{`t.yaml:1: want a mapping (keys zone, services, pops, purge, dns), got "hello"`}},

		// Keys.
		{"unknown top-level key with suggestion", "service:\n" + svc + pops, []string{
			`t.yaml:1: service: unknown key "service" (did you mean "services"?)`,
			`t.yaml:1: services: missing required key`,
		}},
		{"unknown nested key with suggestion", svcs + popBlock + "    cache_sise: 1GiB\n", []string{
			`t.yaml:8: pops[0].cache_sise: unknown key "cache_sise" (did you mean "cache_size"?)`,
		}},
		{"unknown key with dash for underscore", svcs + popBlock + "    cache-size: 1GiB\n", []string{
			`t.yaml:8: pops[0].cache-size: unknown key "cache-size" (did you mean "cache_size"?)`,
		}},
		{"unknown key lists the known keys", svcs + pops + "purge: {token: x, colour: blue}\n", []string{
			`t.yaml:5: purge.colour: unknown key "colour" (want keys token, token_file)`,
		}},
		{"duplicate key", svcs + pops + "services: []\n", []string{
			`t.yaml:5: services: duplicate key "services" (first at line 1)`,
		}},
		{"duplicate nested key", svcs + "pops:\n  - name: a\n    name: b\n    location: {lat: 1, lon: 2}\n    listen: :1\n    admin: :2\n", []string{
			`t.yaml:5: pops[0].name: duplicate key "name" (first at line 4)`,
		}},
		{"key that is not a string", svcs + pops + "[a]: 1\n", []string{
			`t.yaml:5: keys must be strings, got a list`,
		}},
		{"merge of a non-mapping", svcs + "pops:\n  - <<: [1]\n    name: a\n", []string{
			`t.yaml:4: pops[0].<<: merge (<<) wants a mapping or a list of mappings, got "1" in the list`,
			`t.yaml:4: pops[0].location: missing required key`,
			`t.yaml:4: pops[0].listen: missing required key`,
			`t.yaml:4: pops[0].admin: missing required key`,
		}},

		// Node kinds and empty values.
		{"services is a mapping", "services: {name: demo}\n" + pops, []string{`t.yaml:1: services: want a list, got a mapping`}},
		{"hostnames is a string", "services:\n  - {name: demo, hostnames: demo.example, origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames: want a list, got "demo.example"`,
		}},
		{"origin is a list", "services:\n  - {name: demo, hostnames: [a.example], origin: [http://o]}\n" + pops, []string{
			`t.yaml:2: services[0].origin: want a mapping (keys policy, hash_key, servers, timeouts, detached_fills, load, health, ejection, tls, host_header), got a list`,
		}},
		{"string where a mapping belongs", svcs + "pops:\n  - prg\n", []string{
			`t.yaml:4: pops[0]: want a mapping (keys name, location, listen, admin, cache_size, drain, address, address6, weight, tls, access_log, timeouts, limits), got "prg"`,
		}},
		{"value left empty", svcs + "pops:\n  - name:\n    location: {lat: 1, lon: 2}\n    listen: :1\n    admin: :2\n", []string{
			`t.yaml:4: pops[0].name: no value given (want a string)`,
		}},
		{"alias cycle", "services: &s [*s]\n" + pops, []string{
			`t.yaml:1: services[0]: want a mapping (keys name, hostnames, origin, cache, https), got a list`,
		}},
		{"merge cycle", svcs + "pops:\n  - &p\n    <<: *p\n    name: prg\n    location: {lat: 1, lon: 2}\n    listen: :1\n    admin: :2\n", nil},

		// Required sections.
		{"no services", pops, []string{`t.yaml:1: services: missing required key`}},
		{"no pops", svcs, []string{`t.yaml:1: pops: missing required key`}},
		{"empty services", "services: []\n" + pops, []string{`t.yaml:1: services: at least one service is required`}},
		{"empty pops", svcs + "pops:\n", []string{`t.yaml:3: pops: at least one PoP is required`}},

		// Names.
		{"service without a name", "services:\n  - {hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].name: missing required key`,
		}},
		{"invalid service name", "services:\n  - {name: Demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].name: invalid name "Demo": use lowercase letters, digits, '-' and '_', starting with a letter or digit (^[a-z0-9][a-z0-9_-]*$)`,
		}},
		{"service name starting with dash", "services:\n  - {name: -x, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].name: invalid name "-x"`,
		}},
		{"duplicate service names", "services:\n" + svc + "  - {name: demo, hostnames: [b.example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:3: services[1].name: service name "demo" is already used by services[0] (line 2)`,
		}},
		{"invalid PoP name", svcs + "pops:\n  - {name: p.1, location: {lat: 1, lon: 2}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].name: invalid name "p.1"`,
		}},
		{"duplicate PoP names", svcs + pops + "  - {name: prg, location: {lat: 1, lon: 2}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:5: pops[1].name: PoP name "prg" is already used by pops[0] (line 4)`,
		}},

		// Hostnames.
		{"no hostnames key", "services:\n  - {name: demo, origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames: missing required key`,
		}},
		{"empty hostnames", "services:\n  - {name: demo, hostnames: [], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames: at least one hostname is required`,
		}},
		{"hostname with a port", "services:\n  - name: demo\n    hostnames:\n      - demo.example:8080\n    origin: {servers: [{url: \"http://o\"}]}\n" + pops, []string{
			`t.yaml:4: services[0].hostnames[0]: hostname "demo.example:8080" must not include a port`,
		}},
		{"hostname with invalid character", "services:\n  - {name: demo, hostnames: [a.example, de_mo.example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[1]: hostname "de_mo.example": invalid character '_'`,
		}},
		{"wildcard hostname", "services:\n  - {name: demo, hostnames: [\"*.example\"], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[0]: hostname "*.example": wildcards are not supported`,
		}},
		{"hostname with empty label", "services:\n  - {name: demo, hostnames: [a..example], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[0]: hostname "a..example": empty label`,
		}},
		{"invalid IPv4 literal", "services:\n  - {name: demo, hostnames: [256.1.1.1], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[0]: hostname "256.1.1.1": not a valid IP address`,
		}},
		{"invalid IPv6 literal", "services:\n  - {name: demo, hostnames: [\"[::g]\"], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[0]: hostname "[::g]" is not a valid IPv6 address`,
		}},
		{"hostname listed twice in a service", "services:\n  - {name: demo, hostnames: [a.example, A.example.], origin: {servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].hostnames[1]: hostname "a.example" is listed twice (first at line 2)`,
		}},
		{"hostname used by two services", "services:\n" + svc +
			"  - name: other\n    hostnames:\n      - b.example\n      - Demo.Example\n    origin: {servers: [{url: \"http://o\"}]}\n" + pops, []string{
			`t.yaml:6: services[1].hostnames[1]: hostname "demo.example" of service "other" is already used by service "demo" (line 2)`,
		}},

		// Origins.
		{"no origin", "services:\n  - {name: demo, hostnames: [a.example]}\n" + pops, []string{
			`t.yaml:2: services[0].origin: missing required key`,
		}},
		{"no servers", "services:\n  - {name: demo, hostnames: [a.example], origin: {}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers: missing required key`,
		}},
		{"empty servers", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: []}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers: at least one server is required`,
		}},
		{"unsupported policy", "services:\n  - {name: demo, hostnames: [a.example], origin: {policy: least_conn, servers: [{url: \"http://o\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.policy: policy "least_conn" not supported (want one of round_robin, weighted_round_robin, least_connections, weighted_least_connections, adaptive, ip_hash, request_based)`,
		}},
		{"server without url", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{weight: 2}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: missing required key`,
		}},
		{"unsupported scheme", "services:\n  - name: demo\n    hostnames: [a.example]\n    origin:\n      servers:\n        - url: http://o1\n        - url: ftp://o2\n" + pops, []string{
			`t.yaml:7: services[0].origin.servers[1].url: scheme "ftp" not supported (want http or https)`,
		}},
		{"url without scheme", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"127.0.0.1:8000\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: invalid URL "127.0.0.1:8000"`,
		}},
		{"url without host", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http:///x\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http:///x" has no host`,
		}},
		{"url with query", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o/?a=1\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http://o/?a=1" must not have a query`,
		}},
		{"url with fragment", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o/#x\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http://o/#x" must not have a fragment`,
		}},
		{"url with user info", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://u:p@o/\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http://u:p@o/" must not contain user info`,
		}},
		{"url with port out of range", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o:70000\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http://o:70000": port 70000 out of range (want 1..65535)`,
		}},
		{"url with invalid host", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o_1/\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].url: URL "http://o_1/": hostname "o_1": invalid character '_'`,
		}},
		{"server listed twice", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}, {url: \"http://O\"}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[1].url: server http://o is listed twice (first at line 2)`,
		}},
		{"weight zero", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\", weight: 0}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].weight: 0 is out of range (want 1..1000)`,
		}},
		{"weight too large", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\", weight: 1001}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].weight: 1001 is out of range (want 1..1000)`,
		}},
		{"weight not a number", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\", weight: 1.5}]}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.servers[0].weight: want a whole number, got "1.5"`,
		}},

		// Balancing policies, health checks, ejection, TLS and Host.
		{"weight with round_robin, the default", org(`servers: [{url: "http://o"}, {url: "http://p", weight: 3}]`), []string{
			`t.yaml:2: services[0].origin.servers[1].weight: weight 3 has no effect: policy round_robin ignores weights (use weighted_round_robin, or remove the weight)`,
		}},
		{"weight with least_connections", org(`policy: least_connections, servers: [{url: "http://o", weight: 2}]`), []string{
			`t.yaml:2: services[0].origin.servers[0].weight: weight 2 has no effect: policy least_connections ignores weights (use weighted_least_connections, or remove the weight)`,
		}},
		{"weight 1 with round_robin is fine", org(`policy: round_robin, servers: [{url: "http://o", weight: 1}]`), nil},
		{"every weighted policy takes weights", "services:\n" +
			"  - {name: a, hostnames: [a.example], origin: {policy: weighted_round_robin, servers: [{url: \"http://o\", weight: 2}]}}\n" +
			"  - {name: b, hostnames: [b.example], origin: {policy: weighted_least_connections, servers: [{url: \"http://o\", weight: 2}]}}\n" +
			"  - {name: c, hostnames: [c.example], origin: {policy: adaptive, servers: [{url: \"http://o\", weight: 2}]}}\n" +
			"  - {name: d, hostnames: [d.example], origin: {policy: ip_hash, servers: [{url: \"http://o\", weight: 2}]}}\n" +
			"  - {name: e, hostnames: [e.example], origin: {policy: request_based, servers: [{url: \"http://o\", weight: 2}]}}\n" + pops, nil},
		{"unknown policy skips the checks that depend on it", org(`policy: fastest, hash_key: client_ip, servers: [{url: "http://o", weight: 2}]`), []string{
			`t.yaml:2: services[0].origin.policy: policy "fastest" not supported (want one of round_robin, weighted_round_robin, least_connections, weighted_least_connections, adaptive, ip_hash, request_based)`,
		}},
		{"policy is a list", org(`policy: [ip_hash], servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.policy: want a string, got a list`,
		}},
		{"hash_key without ip_hash", org(`policy: weighted_round_robin, hash_key: client_ip, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.hash_key: hash_key applies only to policy ip_hash (policy is weighted_round_robin)`,
		}},
		{"unknown hash_key", org(`policy: ip_hash, hash_key: url, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.hash_key: hash_key "url" not supported (want client_ip or cache_key)`,
		}},
		{"load without adaptive", org(`load: {path: /load}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.load: load applies only to policy adaptive (policy is round_robin)`,
		}},
		{"load path without a slash", org(`policy: adaptive, load: {path: load}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.load.path: path "load" must start with a single / (e.g. /healthz)`,
		}},
		{"load interval zero", org(`policy: adaptive, load: {interval: 0s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.load.interval: interval must be positive (remove the key for the default)`,
		}},
		{"load timeout longer than the interval", org(`policy: adaptive, load: {timeout: 3s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.load.timeout: timeout 3s is longer than the interval 2s`,
		}},
		{"load unknown key", org(`policy: adaptive, load: {url: /x}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.load.url: unknown key "url" (want keys path, interval, timeout)`,
		}},
		{"health without a path", org(`health: {interval: 1s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.path: missing required key`,
		}},
		{"health left empty", "services:\n  - name: demo\n    hostnames: [a.example]\n    origin:\n      servers: [{url: \"http://o\"}]\n      health:\n" + pops, []string{
			`t.yaml:6: services[0].origin.health.path: missing required key`,
		}},
		{"health path with a fragment", org(`health: {path: "/h#x"}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.path: path "/h#x" must be a path and optional query only`,
		}},
		{"health path that is a URL", org(`health: {path: "//evil.example/h"}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.path: path "//evil.example/h" must start with a single /`,
		}},
		{"health rise and fall out of range", org(`health: {path: /h, rise: 0, fall: 101}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.rise: 0 is out of range (want 1..100)`,
			`t.yaml:2: services[0].origin.health.fall: 101 is out of range (want 1..100)`,
		}},
		{"health negative interval", org(`health: {path: /h, interval: -1s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.interval: duration "-1s" must not be negative`,
		}},
		{"health timeout longer than the default interval", org(`health: {path: /h, timeout: 10s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.health.timeout: timeout 10s is longer than the interval 5s`,
		}},
		{"ejection failures zero", org(`ejection: {failures: 0}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.ejection.failures: 0 is out of range (want 1..1000)`,
		}},
		{"ejection cooldown zero", org(`ejection: {cooldown: 0s}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.ejection.cooldown: cooldown must be positive (remove the key for the default)`,
		}},
		{"ejection key misspelt", org(`ejection: {failure: 3}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.ejection.failure: unknown key "failure" (did you mean "failures"?)`,
		}},
		{"max_conns negative", org(`servers: [{url: "http://o", max_conns: -1}]`), []string{
			`t.yaml:2: services[0].origin.servers[0].max_conns: -1 is out of range (want 0..1000000)`,
		}},
		{"tls with only http servers", org(`tls: {server_name: o.example}, servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls: tls applies only to https servers, and every server here uses http`,
		}},
		{"tls ca_file missing", org(`tls: {ca_file: testdata/missing.pem}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.ca_file: cannot read the CA file: open testdata/missing.pem: no such file or directory`,
		}},
		{"tls ca_file without certificates", org(`tls: {ca_file: testdata/README.md}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.ca_file: testdata/README.md holds no PEM certificate`,
		}},
		{"tls ca_file is a directory", org(`tls: {ca_file: testdata}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.ca_file: testdata is not a regular file`,
		}},
		{"tls ca_file with insecure_skip_verify", org(`tls: {ca_file: testdata/ca.pem, insecure_skip_verify: true}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.insecure_skip_verify: insecure_skip_verify makes ca_file (line 2) pointless; keep one`,
		}},
		{"tls insecure_skip_verify not a bool", org(`tls: {insecure_skip_verify: sure}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.insecure_skip_verify: want true or false, got "sure"`,
		}},
		{"tls bad server_name", org(`tls: {server_name: o_2.example}, servers: [{url: "https://o"}]`), []string{
			`t.yaml:2: services[0].origin.tls.server_name: hostname "o_2.example": invalid character '_'`,
		}},
		{"host_header with a space", org(`host_header: "www example", servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.host_header: hostname "www example": invalid character ' '`,
		}},
		{"host_header with a bad port", org(`host_header: "www.example:0", servers: [{url: "http://o"}]`), []string{
			`t.yaml:2: services[0].origin.host_header: "www.example:0": port "0" out of range (want 1..65535)`,
		}},

		// Durations.
		{"bad duration", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}], timeouts: {connect: soon}}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.timeouts.connect: invalid duration "soon" (want e.g. 500ms, 30s, 5m, 1h)`,
		}},
		{"duration without unit", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}], timeouts: {idle: 30}}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.timeouts.idle: invalid duration "30" (a duration needs a unit, e.g. "30s")`,
		}},
		{"duration in days", svcs + popBlock + "    drain: 1d\n", []string{
			`t.yaml:8: pops[0].drain: invalid duration "1d" (the largest unit is h, e.g. "24h")`,
		}},
		{"negative duration", svcs + popBlock + "    drain: -5s\n", []string{
			`t.yaml:8: pops[0].drain: duration "-5s" must not be negative`,
		}},
		{"zero timeout", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}], timeouts: {first_byte: 0s}}}\n" + pops, []string{
			`t.yaml:2: services[0].origin.timeouts.first_byte: timeout must be positive`,
		}},
		{"negative server timeout", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \":1\", admin: \":2\", timeouts: {read_header: -1s}}\n", []string{
			`t.yaml:4: pops[0].timeouts.read_header: duration "-1s" must not be negative`,
		}},

		// Cache policy.
		{"min_ttl above max_ttl", "services:\n  - name: demo\n    hostnames: [a.example]\n    origin: {servers: [{url: \"http://o\"}]}\n    cache:\n      max_ttl: 1m\n      min_ttl: 1h\n" + pops, []string{
			`t.yaml:7: services[0].cache.min_ttl: min_ttl 1h is greater than max_ttl 1m`,
		}},
		{"bad max_object", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {max_object: 12XB}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.max_object: invalid size "12XB": unknown unit "XB"`,
		}},
		{"zero max_object", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {max_object: 0}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.max_object: size 0 is too small (want at least 1B)`,
		}},
		{"sort not a bool", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {query: {sort: yes}}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.query.sort: want true or false, got "yes"`,
		}},
		{"drop parameter twice and empty", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {query: {drop: [a, \"\", a]}}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.query.drop[1]: empty parameter name`,
			`t.yaml:2: services[0].cache.query.drop[2]: parameter "a" is listed twice (first at line 2)`,
		}},

		// PoPs.
		{"no location", svcs + "pops:\n  - {name: prg, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location: missing required key`,
		}},
		{"latitude out of range", svcs + "pops:\n  - {name: prg, location: {lat: 90.5, lon: 2}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location.lat: 90.5 is out of range (want -90..90)`,
		}},
		{"longitude out of range", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: -181}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location.lon: -181 is out of range (want -180..180)`,
		}},
		{"latitude NaN", svcs + "pops:\n  - {name: prg, location: {lat: .nan, lon: 1}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location.lat: .nan is out of range (want -90..90)`,
		}},
		{"latitude not a number", svcs + "pops:\n  - {name: prg, location: {lat: north, lon: 1}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location.lat: want a number, got "north"`,
		}},
		{"missing lon", svcs + "pops:\n  - {name: prg, location: {lat: 1}, listen: \":1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].location.lon: missing required key`,
		}},
		{"no listen", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].listen: missing required key`,
		}},
		{"no admin", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \":1\"}\n", []string{
			`t.yaml:4: pops[0].admin: missing required key`,
		}},
		{"listen without port", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: 127.0.0.1, admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].listen: invalid address "127.0.0.1": missing port in address (want host:port`,
		}},
		{"listen as a bare port number", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: 8080, admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].listen: invalid address "8080": missing port in address`,
		}},
		{"named port", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \":http\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].listen: invalid address ":http": port "http" must be a number in 0..65535`,
		}},
		{"port out of range", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \":1\", admin: \"127.0.0.1:65536\"}\n", []string{
			`t.yaml:4: pops[0].admin: invalid address "127.0.0.1:65536": port "65536" must be a number in 0..65535`,
		}},
		{"bad listen host", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \"bad host:1\", admin: \":2\"}\n", []string{
			`t.yaml:4: pops[0].listen: invalid address "bad host:1": hostname "bad host": invalid character ' '`,
		}},
		{"admin same as listen", svcs + "pops:\n  - name: prg\n    location: {lat: 1, lon: 2}\n    listen: 127.0.0.1:8081\n    admin: 127.0.0.1:8081\n", []string{
			`t.yaml:7: pops[0].admin: admin address "127.0.0.1:8081" clashes with listen address "127.0.0.1:8081" (line 6); they must differ`,
		}},
		{"admin on all addresses, same port as listen", svcs + "pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:80\", admin: \"0.0.0.0:80\"}\n", []string{
			`t.yaml:4: pops[0].admin: admin address "0.0.0.0:80" clashes with listen address "127.0.0.1:80"`,
		}},
		{"two PoPs with the same listen address", svcs + pops + "  - {name: fra, location: {lat: 1, lon: 2}, listen: \"127.0.0.9:7000\", admin: \":9082\"}\n  - {name: ber, location: {lat: 1, lon: 2}, listen: \"127.0.0.9:7000\", admin: \":9083\"}\n", []string{
			`t.yaml:6: pops[2].listen: address "127.0.0.9:7000" is already used by pops[1] "fra" as its listen address (line 5)`,
		}},
		{"PoP admin on another PoP's listen address", svcs + pops + "  - {name: fra, location: {lat: 1, lon: 2}, listen: \"127.0.0.9:7000\", admin: \":9082\"}\n  - {name: ber, location: {lat: 1, lon: 2}, listen: \":8082\", admin: \"127.0.0.9:7000\"}\n", []string{
			`t.yaml:6: pops[2].admin: address "127.0.0.9:7000" is already used by pops[1] "fra" as its listen address (line 5)`,
		}},
		{"cache_size too small", svcs + popBlock + "    cache_size: 512KiB\n", []string{
			`t.yaml:8: pops[0].cache_size: size 512KiB is too small (want at least 1MiB)`,
		}},
		{"cache_size garbage", svcs + popBlock + "    cache_size: lots\n", []string{
			`t.yaml:8: pops[0].cache_size: invalid size "lots": want a number`,
		}},
		{"cache_size negative", svcs + popBlock + "    cache_size: -1\n", []string{
			`t.yaml:8: pops[0].cache_size: invalid size "-1": size must not be negative`,
		}},
		{"cache_size overflows", svcs + popBlock + "    cache_size: 9999999TiB\n", []string{
			`t.yaml:8: pops[0].cache_size: invalid size "9999999TiB": too large`,
		}},

		// Client-side timeouts and limits of a PoP (lines 3-7, the setting on 8).
		{"send timeout zero", svcs + popBlock + "    timeouts: {send: 0s}\n", []string{
			`t.yaml:8: pops[0].timeouts.send: timeout must be positive (remove the key for the default)`,
		}},
		{"request_body without a unit", svcs + popBlock + "    timeouts: {request_body: 30}\n", []string{
			`t.yaml:8: pops[0].timeouts.request_body: invalid duration "30" (a duration needs a unit, e.g. "30s")`,
		}},
		{"timeouts typo", svcs + popBlock + "    timeouts: {request_bdy: 1s}\n", []string{
			`t.yaml:8: pops[0].timeouts.request_bdy: unknown key "request_bdy" (did you mean "request_body"?)`,
		}},
		{"limits is a list", svcs + popBlock + "    limits: [max_conns]\n", []string{
			`t.yaml:8: pops[0].limits: want a mapping (keys max_conns, inflight_bytes, detached_fills, max_ranges, request_buffer), got a list`,
		}},
		{"limits typo", svcs + popBlock + "    limits: {max_con: 10}\n", []string{
			`t.yaml:8: pops[0].limits.max_con: unknown key "max_con" (did you mean "max_conns"?)`,
		}},
		{"max_conns zero", svcs + popBlock + "    limits: {max_conns: 0}\n", []string{
			`t.yaml:8: pops[0].limits.max_conns: 0 is out of range (want 1..1000000)`,
		}},
		{"max_conns too many", svcs + popBlock + "    limits: {max_conns: 1000001}\n", []string{
			`t.yaml:8: pops[0].limits.max_conns: 1000001 is out of range (want 1..1000000)`,
		}},
		{"max_conns a size", svcs + popBlock + "    limits: {max_conns: 10k}\n", []string{
			`t.yaml:8: pops[0].limits.max_conns: want a whole number, got "10k"`,
		}},
		{"inflight_bytes below 1MiB", svcs + popBlock + "    limits: {inflight_bytes: 512KiB}\n", []string{
			`t.yaml:8: pops[0].limits.inflight_bytes: size 512KiB is too small (want at least 1MiB)`,
		}},
		{"inflight_bytes zero", svcs + popBlock + "    limits: {inflight_bytes: 0}\n", []string{
			`t.yaml:8: pops[0].limits.inflight_bytes: size 0 is too small (want at least 1MiB)`,
		}},
		{"pop detached_fills negative", svcs + popBlock + "    limits: {detached_fills: -1}\n", []string{
			`t.yaml:8: pops[0].limits.detached_fills: -1 is out of range (want 0..100000)`,
		}},
		{"pop detached_fills too many", svcs + popBlock + "    limits: {detached_fills: 100001}\n", []string{
			`t.yaml:8: pops[0].limits.detached_fills: 100001 is out of range (want 0..100000)`,
		}},
		{"max_ranges zero", svcs + popBlock + "    limits: {max_ranges: 0}\n", []string{
			`t.yaml:8: pops[0].limits.max_ranges: 0 is out of range (want 1..10000)`,
		}},
		{"max_ranges too many", svcs + popBlock + "    limits: {max_ranges: 10001}\n", []string{
			`t.yaml:8: pops[0].limits.max_ranges: 10001 is out of range (want 1..10000)`,
		}},
		{"request_buffer above 1GiB", svcs + popBlock + "    limits: {request_buffer: 1.5GiB}\n", []string{
			`t.yaml:8: pops[0].limits.request_buffer: size 1.5GiB is too large (want at most 1GiB)`,
		}},
		{"request_buffer negative", svcs + popBlock + "    limits: {request_buffer: -1}\n", []string{
			`t.yaml:8: pops[0].limits.request_buffer: invalid size "-1": size must not be negative`,
		}},

		// Fill limits of an origin and hit-for-miss of a cache (line 2).
		{"fill timeout zero", org(`servers: [{url: "http://o"}], timeouts: {fill: 0s}`), []string{
			`t.yaml:2: services[0].origin.timeouts.fill: timeout must be positive (remove the key for the default)`,
		}},
		{"origin detached_fills negative", org(`servers: [{url: "http://o"}], detached_fills: -1`), []string{
			`t.yaml:2: services[0].origin.detached_fills: -1 is out of range (want 0..100000)`,
		}},
		{"origin detached_fills too many", org(`servers: [{url: "http://o"}], detached_fills: 100001`), []string{
			`t.yaml:2: services[0].origin.detached_fills: 100001 is out of range (want 0..100000)`,
		}},
		{"origin detached_fill typo", org(`servers: [{url: "http://o"}], detached_fill: 1`), []string{
			`t.yaml:2: services[0].origin.detached_fill: unknown key "detached_fill" (did you mean "detached_fills"?)`,
		}},
		{"hit_for_miss negative", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {hit_for_miss: -1s}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.hit_for_miss: duration "-1s" must not be negative`,
		}},
		{"hit_for_miss typo", "services:\n  - {name: demo, hostnames: [a.example], origin: {servers: [{url: \"http://o\"}]}, cache: {hit_for_mis: 1m}}\n" + pops, []string{
			`t.yaml:2: services[0].cache.hit_for_mis: unknown key "hit_for_mis" (did you mean "hit_for_miss"?)`,
		}},

		// Zone and purge.
		{"invalid zone", "zone: cdn..example\n" + svcs + pops, []string{
			`t.yaml:1: zone: zone "cdn..example": empty label`,
		}},
		{"purge without token", svcs + pops + "purge: {}\n", []string{
			`t.yaml:5: purge: want token or token_file (or leave purge out and set $OUTPOST_PURGE_TOKEN)`,
		}},
		{"purge with token and token_file", svcs + pops + "purge:\n  token: s3cr3t\n  token_file: testdata/purge-token\n", []string{
			`t.yaml:7: purge.token_file: token (line 6) and token_file both give the token; keep one`,
		}},
		{"token_file missing", svcs + pops + "purge: {token_file: testdata/no-such-token}\n", []string{
			`t.yaml:5: purge.token_file: cannot read the token file: open testdata/no-such-token: no such file or directory`,
		}},
		{"token_file empty value", svcs + pops + "purge: {token_file: \"\"}\n", []string{
			`t.yaml:5: purge.token_file: token_file must not be empty`,
		}},
		{"token_file is a directory", svcs + pops + "purge: {token_file: testdata}\n", []string{
			`t.yaml:5: purge.token_file: testdata is not a regular file`,
		}},
		{"token_fiel typo", svcs + pops + "purge: {token_fiel: x}\n", []string{
			`t.yaml:5: purge.token_fiel: unknown key "token_fiel" (did you mean "token_file"?)`,
			`t.yaml:5: purge: want token or token_file`,
		}},
		{"empty token", svcs + pops + "purge: {token: \"\"}\n", []string{
			`t.yaml:5: purge.token: token must not be empty`,
		}},
		{"token with a space", svcs + pops + "purge:\n  token: change me\n", []string{
			`t.yaml:6: purge.token: token must be printable ASCII without spaces`,
		}},
		{"purge is a string", svcs + pops + "purge: change-me\n", []string{
			`t.yaml:5: purge: want a mapping (keys token, token_file), got "change-me"`,
		}},

		// Regression rows for inputs found by FuzzParse go here.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.in))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded (%+v); want errors:\n%s", c, strings.Join(tt.want, "\n"))
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			if lines := strings.Count(msg, "\n") + 1; lines != len(tt.want) {
				t.Errorf("error has %d lines, want %d:\n%s", lines, len(tt.want), msg)
			}
		})
	}
}

// TestParseReportsEveryProblem checks that problems in different places are
// all reported, one per line, in line order, each as its own joined error.
func TestParseReportsEveryProblem(t *testing.T) {
	in := `services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers:
        - url: ftp://127.0.0.1:8000
pops:
  - name: prg
    location: {lat: 50.08, lon: 14.43}
    listen: 127.0.0.1:8081
    admin: 127.0.0.1:9081
    cache_sise: 1GiB
    drain: -1s
`
	_, err := Parse("three.yaml", []byte(in))
	if err == nil {
		t.Fatal("Parse succeeded; want three problems")
	}
	want := []string{
		`three.yaml:6: services[0].origin.servers[0].url: scheme "ftp" not supported (want http or https)`,
		`three.yaml:12: pops[0].cache_sise: unknown key "cache_sise" (did you mean "cache_size"?)`,
		`three.yaml:13: pops[0].drain: duration "-1s" must not be negative`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 3 {
		t.Errorf("error is not errors.Join of 3 problems: %#v", err)
	}
}

// TestParseStopsOnAliasBomb checks that aliases that expand a small file to
// a huge tree are cut short instead of hanging the process.
func TestParseStopsOnAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x: &srv {url: \"http://o\"}\n")
	b.WriteString("services:\n  - &s\n    name: a\n    hostnames: [a.example]\n    origin:\n      servers: [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*srv")
	}
	b.WriteString("]\n")
	for range 2000 {
		b.WriteString("  - *s\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if !strings.Contains(err.Error(), "stopped after") {
		t.Errorf("error does not say decoding stopped: ...%s", err.Error()[max(0, len(err.Error())-300):])
	}
}

// TestParseStopsOnAliasExpansion checks the other budget: a valid-looking
// file whose aliases expand to millions of values.
func TestParseStopsOnAliasExpansion(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "  - {name: s%d, hostnames: [s%d.example], origin: ", i, i)
		if i == 0 {
			b.WriteString("&o {servers: [")
			for j := range 1000 {
				fmt.Fprintf(&b, "{url: \"http://o%d\"}, ", j)
			}
			b.WriteString("]}}\n")
		} else {
			b.WriteString("*o}\n")
		}
	}
	b.WriteString("pops: [{name: p, location: {lat: 0, lon: 0}, listen: \":1\", admin: \":2\"}]\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "aliases expand the file to more than") {
		t.Errorf("Parse = %v; want an error about alias expansion", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Path != path || c.Version != version(minimal) || len(c.Version) != 12 {
		t.Errorf("Load: Path %q Version %q, want %q %q", c.Path, c.Version, path, version(minimal))
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want an fs.ErrNotExist error naming %s", err, missing)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("services: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":") {
		t.Errorf("Load(bad) = %v; want an error starting with %s:", err, bad)
	}
}

// TestCAFileRelativeToConfig checks that a relative ca_file is found next
// to the config file, whatever the working directory.
func TestCAFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	pemBytes, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "origin-ca.pem"), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	in := strings.Replace(minimal, `        - url: http://127.0.0.1:8000`,
		"        - url: https://127.0.0.1:8443\n      tls: {ca_file: origin-ca.pem}", 1)
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := c.Services[0].Origin.TLS.CAFile, filepath.Join(dir, "origin-ca.pem"); got != want {
		t.Errorf("CAFile %q, want %q", got, want)
	}
}

// TestExamples loads every example config shipped in deploy/examples.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("../deploy/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no examples found in ../deploy/examples")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := Load(path); err != nil {
				t.Errorf("Load:\n%v", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "1024B", want: 1024},
		{in: "64KiB", want: 64 << 10},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "10MB", want: 10_000_000},
		{in: "1kb", want: 1000},
		{in: "3GB", want: 3_000_000_000},
		{in: "1TB", want: 1_000_000_000_000},
		{in: "1.5GiB", want: 3 << 29},
		{in: "0.5k", want: 512},
		{in: ".5KiB", want: 512},
		{in: "1.0001KiB", want: 1024},
		{in: "1.5", want: 1},
		{in: "64k", want: 64 << 10},
		{in: "64K", want: 64 << 10},
		{in: "512m", want: 512 << 20},
		{in: "2g", want: 2 << 30},
		{in: "1t", want: 1 << 40},
		{in: "512mib", want: 512 << 20},
		{in: "512MIB", want: 512 << 20},
		{in: " 512 MiB ", want: 512 << 20},
		{in: "8388607TiB", want: 8388607 << 40},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "9223372036854775.807KB", want: 1<<63 - 1},
		{in: "8388607.9999999999999999999TiB", want: 1<<63 - 1},
		{in: "", wantErr: "empty size"},
		{in: "  ", wantErr: "empty size"},
		{in: "-1", wantErr: "must not be negative"},
		{in: "-1GiB", wantErr: "must not be negative"},
		{in: "+1", wantErr: "want a number"},
		{in: "GiB", wantErr: "want a number"},
		{in: "lots", wantErr: "want a number"},
		{in: "1.", wantErr: "missing digits after the decimal point"},
		{in: "1..5", wantErr: "missing digits after the decimal point"},
		{in: "12XB", wantErr: `unknown unit "XB"`},
		{in: "1 2", wantErr: `unknown unit "2"`},
		{in: "1e3", wantErr: `unknown unit "e3"`},
		{in: "0x10", wantErr: `unknown unit "x10"`},
		{in: "1_000", wantErr: `unknown unit "_000"`},
		{in: "8388608TiB", wantErr: "too large"},
		{in: "9223372036854775808", wantErr: "too large"},
		{in: "99999999999999999999", wantErr: "too large"},
		{in: "8388608.5TiB", wantErr: "too large"},
		{in: "9223372036854775.9KB", wantErr: "too large"}, // the fraction overflows
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "config: ") {
					t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestServiceByHost(t *testing.T) {
	c, err := Parse("t.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	handBuilt := &Config{Services: c.Services} // no host index: ServiceByHost scans
	tests := []struct {
		host string
		want string // service name; "" for none
	}{
		{"demo.example", "demo"},
		{"localhost", "demo"},
		{"192.0.2.1", "demo"},
		{"2001:db8::1", "demo"},
		{"[2001:db8::1]", "demo"},
		{"other.example", "other_2"},
		{"other.example.", "other_2"},
		{"Other.Example", "other_2"},
		{"nope.example", ""},
		{"", ""},
		{"demo.example:8081", ""}, // the caller removes the port
	}
	for _, cfg := range []struct {
		name string
		c    *Config
	}{{"parsed", c}, {"hand-built", handBuilt}} {
		for _, tt := range tests {
			t.Run(cfg.name+"/"+tt.host, func(t *testing.T) {
				s, ok := cfg.c.ServiceByHost(tt.host)
				switch {
				case tt.want == "" && ok:
					t.Errorf("ServiceByHost(%q) = %q; want none", tt.host, s.Name)
				case tt.want != "" && !ok:
					t.Errorf("ServiceByHost(%q) found none; want %q", tt.host, tt.want)
				case ok && s.Name != tt.want:
					t.Errorf("ServiceByHost(%q) = %q; want %q", tt.host, s.Name, tt.want)
				case ok && s != &cfg.c.Services[0] && s != &cfg.c.Services[1]:
					t.Errorf("ServiceByHost(%q) returned a copy, not an element of Services", tt.host)
				}
			})
		}
	}
}

func TestPOP(t *testing.T) {
	one, err := Parse("one.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	two, err := Parse("two.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		c       *Config
		pop     string
		want    string
		wantErr string
	}{
		{"only PoP by default", one, "", "prg", ""},
		{"only PoP by name", one, "prg", "prg", ""},
		{"unknown name", one, "fra", "", `config: no PoP named "fra" in one.yaml (have prg)`},
		{"several PoPs need a name", two, "", "", `config: two.yaml has 2 PoPs (prg, fra); name the one to run`},
		{"second PoP by name", two, "fra", "fra", ""},
		{"unknown name among several", two, "ams", "", `config: no PoP named "ams" in two.yaml (have prg, fra)`},
		{"no PoPs at all", &Config{Path: "hand.yaml"}, "", "", `config: hand.yaml has no PoPs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.c.POP(tt.pop)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("POP(%q) = %v, %v; want error %q", tt.pop, p, err, tt.wantErr)
				}
				return
			}
			if err != nil || p.Name != tt.want {
				t.Fatalf("POP(%q) = %v, %v; want %q", tt.pop, p, err, tt.want)
			}
			if p != &tt.c.POPs[0] && p != &tt.c.POPs[len(tt.c.POPs)-1] {
				t.Errorf("POP(%q) returned a copy, not an element of POPs", tt.pop)
			}
		})
	}
}
