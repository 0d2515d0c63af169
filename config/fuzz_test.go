package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/origin"
)

// FuzzParse feeds Parse arbitrary bytes. The file is operator input, but a
// bad one must still never crash the process, and whatever Parse returns
// must keep its promises: a Config that passes has what the PoP relies on,
// and an error lists one "FILE..." problem per line. The seed corpus is in
// testdata/fuzz/FuzzParse; crashers found here become named files in
// testdata/errors (see TestParseErrors).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(full))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a Config and an error")
			}
			for line := range strings.Lines(err.Error()) {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error line %q does not start with the file name; whole error:\n%v", line, err)
				}
			}
			return
		}
		if c.Path != "fuzz.yaml" || len(c.Version) != 12 {
			t.Fatalf("Path %q, Version %q", c.Path, c.Version)
		}
		if len(c.Services) == 0 || len(c.POPs) == 0 {
			t.Fatalf("valid Config with %d services and %d PoPs", len(c.Services), len(c.POPs))
		}
		for i := range c.Services {
			s := &c.Services[i]
			if s.Name == "" || len(s.Hostnames) == 0 || len(s.Origin.Servers) == 0 {
				t.Fatalf("service %d is incomplete: %+v", i, s)
			}
			for _, srv := range s.Origin.Servers {
				if srv.URL == nil || srv.URL.Host == "" || srv.Weight < 1 || srv.MaxConns < 0 {
					t.Fatalf("service %q has a bad server: %+v", s.Name, srv)
				}
			}
			o := &s.Origin
			if !slices.Contains(origin.Policies(), o.Policy) || (o.HashKey != "") != (o.Policy == origin.PolicyIPHash) ||
				(o.Load != nil) != (o.Policy == origin.PolicyAdaptive) || o.Ejection.Failures < 1 || o.Ejection.Cooldown <= 0 {
				t.Fatalf("service %q has a bad origin: %+v", s.Name, o)
			}
			if o.Load != nil && (o.Load.Interval <= 0 || o.Load.Timeout <= 0 || o.Load.Timeout > o.Load.Interval || o.Load.Path == "") {
				t.Fatalf("service %q has a bad load probe: %+v", s.Name, o.Load)
			}
			if o.Timeouts.Fill <= 0 || o.DetachedFills < 0 || o.DetachedFills > maxDetachedFills || s.Cache.HitForMiss < 0 {
				t.Fatalf("service %q has bad fill limits: %+v, hit_for_miss %s", s.Name, o, s.Cache.HitForMiss)
			}
			if h := o.Health; h != nil && (h.Interval <= 0 || h.Timeout <= 0 || h.Timeout > h.Interval || h.Rise < 1 || h.Fall < 1 || h.Path == "") {
				t.Fatalf("service %q has a bad health check: %+v", s.Name, h)
			}
			for _, h := range s.Hostnames {
				if got, ok := c.ServiceByHost(h); !ok || got != s {
					t.Fatalf("ServiceByHost(%q) does not find service %q", h, s.Name)
				}
			}
		}
		for i := range c.POPs {
			p := &c.POPs[i]
			if got, err := c.POP(p.Name); err != nil || got != p {
				t.Fatalf("POP(%q) = %v, %v", p.Name, got, err)
			}
			if p.CacheSize < minCacheSize || p.Listen == "" || p.Admin == "" {
				t.Fatalf("PoP %q is incomplete: %+v", p.Name, p)
			}
			l := p.Limits
			if p.Timeouts.Send <= 0 || p.Timeouts.RequestBody <= 0 || l.MaxConns < 1 || l.MaxConns > maxMaxConns ||
				l.InflightBytes < minInflightBytes || l.DetachedFills < 0 || l.DetachedFills > maxDetachedFills ||
				l.MaxRanges < 1 || l.MaxRanges > maxMaxRanges || l.RequestBuffer < 0 || l.RequestBuffer > maxRequestBuffer {
				t.Fatalf("PoP %q has bad limits: %+v %+v", p.Name, p.Timeouts, l)
			}
		}
	})
}
