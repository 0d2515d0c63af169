package config

import (
	"net"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is a service's shield section: the PoPs that form its origin
// shield, a second cache tier the other PoPs send their misses to (see
// pop/shield.go).

// Shield names the PoPs that shield a service's origin. The zero value
// means none: every PoP goes to the origin.
type Shield struct {
	// POPs are the shield PoPs' names, as in the pops list.
	POPs []string
	// Addrs are their serving addresses (host:port), in the order of
	// POPs: the listen address, with address in place of a wildcard host.
	Addrs []string
	// Admins are their admin addresses (host:port), in the order of POPs,
	// likewise: the edges' active health checks GET /healthz there.
	Admins []string
	// Health configures those checks; zero fields take the defaults.
	Health ShieldHealth

	at   *yaml.Node // for shieldRefs' errors
	path string
}

// Enabled reports whether the service has a shield.
func (s Shield) Enabled() bool { return len(s.POPs) > 0 }

// Has reports whether pop is one of the shield PoPs.
func (s Shield) Has(pop string) bool { return slices.Contains(s.POPs, pop) }

// The defaults of a shield's health checks: quicker than an origin's
// (origin.DefaultHealthInterval), so a shield that starts draining (its
// /healthz answers 503 "draining" for the PoP's drain delay, default 5s)
// is out of every edge's rotation well before its listener closes.
const (
	DefaultShieldHealthInterval = time.Second
	DefaultShieldHealthTimeout  = time.Second // or the interval, if shorter
	DefaultShieldHealthRise     = 2
	DefaultShieldHealthFall     = 2
)

// ShieldHealth configures the edges' active health checks of the shield
// PoPs: every Interval each edge GETs each shield's admin /healthz and
// expects a 2xx within Timeout. A 503 "draining" takes the shield out at
// once, Fall other failures in a row take it out, Rise passes in a row
// bring it back. Shields start in rotation.
type ShieldHealth struct {
	Interval time.Duration // positive; default 1s
	Timeout  time.Duration // positive, at most Interval; default 1s (or Interval if shorter)
	Rise     int           // 1..100; default 2
	Fall     int           // 1..100; default 2
}

// WithDefaults returns h with its zero fields set to the defaults.
func (h ShieldHealth) WithDefaults() ShieldHealth {
	if h.Interval <= 0 {
		h.Interval = DefaultShieldHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = min(DefaultShieldHealthTimeout, h.Interval)
	}
	if h.Rise <= 0 {
		h.Rise = DefaultShieldHealthRise
	}
	if h.Fall <= 0 {
		h.Fall = DefaultShieldHealthFall
	}
	return h
}

// shield decodes a service's shield section: pops, a list of PoP names
// (checked against the pops list by shieldRefs), and health.
func (d *decoder) shield(n *yaml.Node, path string, s *Shield) {
	s.Health = ShieldHealth{}.WithDefaults()
	d.fields(n, path, []field{
		optional("health", func(n *yaml.Node, path string) {
			h := &s.Health
			var timeoutAt *yaml.Node
			h.Timeout = 0
			d.fields(n, path, []field{
				optional("interval", d.setPositive(&h.Interval, "interval")),
				optional("timeout", func(n *yaml.Node, path string) {
					timeoutAt = n
					d.setTimeout(&h.Timeout)(n, path)
				}),
				optional("rise", d.setInt(&h.Rise, 1, maxRiseFall)),
				optional("fall", d.setInt(&h.Fall, 1, maxRiseFall)),
			})
			h.Timeout = d.probeTimeout(timeoutAt, join(path, "timeout"), h.Timeout, h.Interval, DefaultShieldHealthTimeout)
		}),
		required("pops", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			if len(items) == 0 {
				d.errorf(n, path, "at least one PoP is required (or leave shield out)")
			}
			for i, item := range items {
				name, ok := d.str(item, index(path, i))
				if !ok {
					continue
				}
				if slices.Contains(s.POPs, name) {
					d.errorf(item, index(path, i), "PoP %q is listed twice", name)
					continue
				}
				s.POPs = append(s.POPs, name)
			}
			s.at, s.path = n, path
		}),
	})
}

// shieldRefs resolves each service's shield PoPs against the pops list.
func (d *decoder) shieldRefs(c *Config) {
	for i := range c.Services {
		s := &c.Services[i].Shield
		for _, name := range s.POPs {
			i := slices.IndexFunc(c.POPs, func(p POP) bool { return p.Name == name })
			if i < 0 {
				d.errorf(s.at, s.path, "no PoP is named %q", name)
				continue
			}
			p := &c.POPs[i]
			serve, ok := d.reachable(s, p, p.Listen)
			if !ok {
				continue
			}
			admin, ok := d.reachable(s, p, p.Admin)
			if !ok {
				continue
			}
			s.Addrs = append(s.Addrs, serve)
			s.Admins = append(s.Admins, admin)
		}
	}
}

// reachable returns the address other PoPs reach shield PoP p's listener
// addr at: addr, with p's address in place of a wildcard host.
func (d *decoder) reachable(s *Shield, p *POP, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false // reported with the PoP
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if !p.Address.IsValid() {
			d.errorf(s.at, s.path, "shield PoP %q listens on a wildcard address (%s) and has no address to reach it at; give it address", p.Name, addr)
			return "", false
		}
		host = p.Address.String()
	}
	return net.JoinHostPort(host, port), true
}
