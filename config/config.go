// Package config parses and validates the one YAML file that describes a
// whole Outpost CDN: its services (hostnames, origins, cache policy), its
// PoPs (location, listen and admin addresses, cache size) and the shared
// purge token.
//
// Every role (PoP, DNS, bench, purge…) reads the same file and takes its
// part, so the file is validated as a whole: the decoder walks the YAML node
// tree itself rather than unmarshalling into structs, which lets it keep
// going after a problem and report every problem at once, each as
// "FILE:LINE: KEY: message" with KEY the dotted path of the offending value
// (for example services[0].origin.servers[1].url). Unknown and duplicate
// keys are errors, and every optional setting has a documented default that
// is applied here, so the rest of the program never sees a zero value that
// means "unset".
//
// A Config is read-only once Load or Parse returns it and may be shared by
// any number of goroutines.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file is the top of the file: the Config, Load and Parse, the
// top-level keys, and what the sections share (names, weights). Each
// section has a file of its own holding its types, its defaults and its
// decoder: services.go, cache.go, origin.go, pops.go, limits.go, tls.go,
// accesslog.go, purge.go, dns.go and control.go; to add a section, give it such a
// file and a row in the table of (*decoder).config. decode.go is the
// generic half of the decoder (YAML nodes, kinds, scalars, problems),
// validate.go checks single values, size.go reads sizes.

// Bounds shared by the weights of origin servers and of PoPs.
const (
	defaultWeight = 1
	maxWeight     = 1000
)

// Config is a validated CDN description. Load and Parse apply every default,
// so each field holds the value to use.
type Config struct {
	Path string // the file it came from (the name given to Parse)
	// Version is the first 12 hex digits of the SHA-256 of the file's
	// bytes, to tell configs apart in logs and /healthz. A purge token
	// read from purge.token_file or $OUTPOST_PURGE_TOKEN is not part of
	// it, so a version says nothing about a token kept out of the file
	// (and rotating such a token leaves the version as it is).
	Version  string
	Zone     string    // the DNS zone the CDN answers for, lowercased without a trailing dot; "" if not set
	Services []Service // at least one
	POPs     []POP     // at least one
	Purge    Purge     // see purge.go
	DNS      DNS       // the dns section (see dns.go); zero when the file has none
	Control  Control   // the control section (see control.go); zero when the file has none

	// hosts maps each hostname to its index in Services. It is built by
	// Parse; a Config assembled by hand has none and ServiceByHost scans.
	hosts map[string]int
}

// Load reads and validates the file at path. See Parse for the errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as if read from a file named name. On failure the
// error joins (errors.Join) one error per problem found, each formatted
// "NAME:LINE: KEY: message", so its message lists every problem, one per
// line.
func Parse(name string, data []byte) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &problem{file: name, msg: `file is empty (want a mapping with at least "services" and "pops")`}
	}
	root, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}
	d := newDecoder(name)
	c := d.config(root)
	if err := d.err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	c.Path = name
	c.Version = hex.EncodeToString(sum[:])[:12]
	c.hosts = make(map[string]int)
	for i, s := range c.Services {
		for _, h := range s.Hostnames {
			c.hosts[h] = i
		}
	}
	return c, nil
}

// config decodes the top-level mapping.
func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{}
	var dnsPos dnsAt
	var ctl controlAt
	d.fields(root, "", []field{
		optional("zone", func(n *yaml.Node, path string) {
			if s, ok := d.str(n, path); ok {
				z, err := normalizeZone(s)
				if err != nil {
					d.wrapf(n, path, err, "%v", err)
					return
				}
				c.Zone = z
			}
		}),
		required("services", func(n *yaml.Node, path string) { c.Services = d.services(n, path) }), // services.go
		required("pops", func(n *yaml.Node, path string) { c.POPs = d.pops(n, path) }),             // pops.go
		optional("purge", func(n *yaml.Node, path string) { c.Purge = d.purge(n, path) }),          // purge.go
		optional("dns", func(n *yaml.Node, path string) { c.DNS, dnsPos = d.dns(n, path) }),        // dns.go
		optional("control", func(n *yaml.Node, p string) { c.Control, ctl = d.control(n, p) }),     // control.go
	})
	d.dnsRefs(c, &dnsPos) // checks dns against the rest of the file (see dns.go)
	d.shieldRefs(c)       // services' shield PoPs against the PoPs (see shield.go)
	d.purgeEnv(&c.Purge)  // $OUTPOST_PURGE_TOKEN (see purge.go)

	d.controlRefs(c, &ctl)   // pop users against the PoPs (see control.go)
	d.controlEnv(&c.Control) // $OUTPOST_CONTROL_USER (see control.go)
	return c
}

// seen remembers where a value that must be unique was first used.
type seen struct {
	path  string
	line  int
	owner string // e.g. `service "demo"`
}

// name decodes the name of a service or PoP into dst.
func (d *decoder) name(n *yaml.Node, path string, dst *string) {
	s, ok := d.str(n, path)
	if !ok {
		return
	}
	if !nameRE.MatchString(s) {
		d.errorf(n, path, "invalid name %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit (%s)", s, nameRE)
		return
	}
	*dst = s
}

// ServiceByHost returns the service that serves host, which should already
// be lowercased with any port removed (as the PoP does with the Host
// header). A trailing dot and IPv6 brackets are tolerated.
func (c *Config) ServiceByHost(host string) (*Service, bool) {
	if i, ok := c.lookupHost(host); ok {
		return &c.Services[i], true
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == host {
		return nil, false
	}
	if i, ok := c.lookupHost(h); ok {
		return &c.Services[i], true
	}
	return nil, false
}

// lookupHost finds host exactly as given, through the index when Parse built
// one, else by scanning.
func (c *Config) lookupHost(host string) (int, bool) {
	if c.hosts != nil {
		i, ok := c.hosts[host]
		if ok && i < len(c.Services) {
			return i, true
		}
		return 0, false
	}
	for i, s := range c.Services {
		if slices.Contains(s.Hostnames, host) {
			return i, true
		}
	}
	return 0, false
}

// POP returns the PoP with the given name. When name is "" and the file has
// exactly one PoP, it returns that one; otherwise the error lists the PoP
// names to choose from.
func (c *Config) POP(name string) (*POP, error) {
	if name == "" {
		switch len(c.POPs) {
		case 0:
			return nil, fmt.Errorf("config: %s has no PoPs", c.Path)
		case 1:
			return &c.POPs[0], nil
		}
		return nil, fmt.Errorf("config: %s has %d PoPs (%s); name the one to run", c.Path, len(c.POPs), c.popNames())
	}
	for i := range c.POPs {
		if c.POPs[i].Name == name {
			return &c.POPs[i], nil
		}
	}
	return nil, fmt.Errorf("config: no PoP named %q in %s (have %s)", name, c.Path, c.popNames())
}

// popNames lists the PoP names for error messages.
func (c *Config) popNames() string {
	names := make([]string, len(c.POPs))
	for i, p := range c.POPs {
		names[i] = p.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
