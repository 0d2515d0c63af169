package config

import (
	"net"
	"slices"

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

	at   *yaml.Node // for shieldRefs' errors
	path string
}

// Enabled reports whether the service has a shield.
func (s Shield) Enabled() bool { return len(s.POPs) > 0 }

// Has reports whether pop is one of the shield PoPs.
func (s Shield) Has(pop string) bool { return slices.Contains(s.POPs, pop) }

// shield decodes a service's shield section: pops, a list of PoP names
// (checked against the pops list by shieldRefs).
func (d *decoder) shield(n *yaml.Node, path string, s *Shield) {
	d.fields(n, path, []field{
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
			host, port, err := net.SplitHostPort(p.Listen)
			if err != nil {
				continue // reported with the PoP
			}
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				if !p.Address.IsValid() {
					d.errorf(s.at, s.path, "shield PoP %q listens on a wildcard address (%s) and has no address to reach it at; give it address", name, p.Listen)
					continue
				}
				host = p.Address.String()
			}
			s.Addrs = append(s.Addrs, net.JoinHostPort(host, port))
		}
	}
}
