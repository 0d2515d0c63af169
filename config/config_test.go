package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
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
	defaultSlice := SlicePolicy{Enabled: true, Size: 4 << 20}
	defaultCache := CachePolicy{MaxObject: 64 << 20, Keep: time.Hour, HitForMiss: 2 * time.Minute, Slice: defaultSlice}
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
							Slice:      SlicePolicy{Enabled: true, Size: 1536 << 10},
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
						Cache:     CachePolicy{MaxTTL: time.Hour, MaxObject: 64 << 20, Keep: 5 * time.Minute, HitForMiss: 2 * time.Minute, Slice: defaultSlice},
					},
					{
						Name:      "b",
						Hostnames: []string{"b.example"},
						Origin:    defaultOrigin(OriginServer{URL: mustURL(t, "http://127.0.0.1:8000"), Weight: 1}),
						Cache:     CachePolicy{MaxTTL: time.Hour, MaxObject: 64 << 20, Keep: 10 * time.Minute, HitForMiss: 2 * time.Minute, Slice: defaultSlice},
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

// update makes TestParseErrors rewrite the golden files from what Parse
// reports: go test ./config -run TestParseErrors -update, then read the
// diff.
var update = flag.Bool("update", false, "rewrite testdata/errors/*.golden with the current output")

// TestParseErrors has a file per validation rule in testdata/errors, named
// after the section it checks: NAME.yaml, a bad file, beside NAME.golden,
// every problem Parse must report for it, one per line, as
// "FILE:LINE: KEY: message" (empty for the few files that check that a
// rule does not fire). Each file is parsed under its own path, so its
// relative paths (ca_file, token_file) are relative to testdata/errors.
func TestParseErrors(t *testing.T) {
	t.Setenv(TokenEnv, "") // keep every file's input its own
	dir := filepath.Join("testdata", "errors")
	inputs, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs in %s: %v", dir, err)
	}
	goldens, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".yaml"); err != nil && !*update {
			t.Errorf("%s has no input beside it: %v", g, err)
		}
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(in, data)
			got := ""
			if err != nil {
				got = err.Error() + "\n"
				if c != nil {
					t.Errorf("Parse returned a Config with an error")
				}
			}
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestParseErrors -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("Parse(%s) reports:\n%s\nwant (%s):\n%s", in, got, golden, want)
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
