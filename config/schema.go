package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// This file is the schema: which keys each section has, their defaults, and
// the checks that span several values (unique names, hostnames and
// addresses). To add a section, add a field to the table in config and a
// method that decodes it.

// config decodes the top-level mapping.
func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{}
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
		required("services", func(n *yaml.Node, path string) { c.Services = d.services(n, path) }),
		required("pops", func(n *yaml.Node, path string) { c.POPs = d.pops(n, path) }),
		optional("purge", func(n *yaml.Node, path string) { c.Purge = d.purge(n, path) }),
	})
	return c
}

// seen remembers where a value that must be unique was first used.
type seen struct {
	path  string
	line  int
	owner string // e.g. `service "demo"`
}

// services decodes the services list.
func (d *decoder) services(n *yaml.Node, path string) []Service {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, path, "at least one service is required")
		return nil
	}
	names := make(map[string]seen)
	hosts := make(map[string]seen)
	out := make([]Service, 0, len(items))
	for i, item := range items {
		out = append(out, d.service(item, index(path, i), names, hosts))
	}
	return out
}

// service decodes one service. names and hosts hold the names and
// hostnames of the services before it.
func (d *decoder) service(n *yaml.Node, path string, names, hosts map[string]seen) Service {
	s := Service{
		Origin: Origin{
			Policy: defaultPolicy,
			Timeouts: OriginTimeouts{
				Connect:   defaultConnectTimeout,
				FirstByte: defaultFirstByteTimeout,
				Idle:      defaultIdleTimeout,
			},
		},
		Cache: CachePolicy{MaxObject: defaultMaxObject, Keep: defaultKeep},
	}
	var nameAt *yaml.Node
	type hostAt struct {
		name string
		node *yaml.Node
		path string
	}
	var hostNodes []hostAt
	ok := d.fields(n, path, []field{
		required("name", func(n *yaml.Node, path string) {
			nameAt = n
			d.name(n, path, &s.Name)
		}),
		required("hostnames", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			if len(items) == 0 {
				d.errorf(n, path, "at least one hostname is required")
			}
			for i, item := range items {
				p := index(path, i)
				h, ok := d.str(item, p)
				if !ok {
					continue
				}
				h, err := normalizeHost(h)
				if err != nil {
					d.wrapf(item, p, err, "%v", err)
					continue
				}
				hostNodes = append(hostNodes, hostAt{h, item, p})
			}
		}),
		required("origin", func(n *yaml.Node, path string) { d.origin(n, path, &s.Origin) }),
		optional("cache", func(n *yaml.Node, path string) { d.cache(n, path, &s.Cache) }),
	})
	if !ok {
		return s
	}
	owner := path
	if s.Name != "" {
		owner = fmt.Sprintf("service %q", s.Name)
		if first, dup := names[s.Name]; dup {
			d.errorf(nameAt, join(path, "name"), "service name %q is already used by %s (line %d)", s.Name, first.path, first.line)
		} else {
			names[s.Name] = seen{path: path, line: nameAt.Line, owner: owner}
		}
	}
	for _, h := range hostNodes {
		if first, dup := hosts[h.name]; dup {
			if first.path == path {
				d.errorf(h.node, h.path, "hostname %q is listed twice (first at line %d)", h.name, first.line)
			} else {
				d.errorf(h.node, h.path, "hostname %q of %s is already used by %s (line %d)", h.name, owner, first.owner, first.line)
			}
			continue
		}
		hosts[h.name] = seen{path: path, line: h.node.Line, owner: owner}
		s.Hostnames = append(s.Hostnames, h.name)
	}
	return s
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

// origin decodes a service's origin into o, which holds the defaults.
func (d *decoder) origin(n *yaml.Node, path string, o *Origin) {
	d.fields(n, path, []field{
		optional("policy", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			switch {
			case !ok:
			case s != PolicyRoundRobin:
				d.errorf(n, path, "policy %q not supported (want %s, which honours server weights)", s, PolicyRoundRobin)
			default:
				o.Policy = s
			}
		}),
		required("servers", func(n *yaml.Node, path string) { o.Servers = d.servers(n, path) }),
		optional("timeouts", func(n *yaml.Node, path string) {
			t := &o.Timeouts
			d.fields(n, path, []field{
				optional("connect", d.setTimeout(&t.Connect)),
				optional("first_byte", d.setTimeout(&t.FirstByte)),
				optional("idle", d.setTimeout(&t.Idle)),
			})
		}),
	})
}

// servers decodes an origin's server list.
func (d *decoder) servers(n *yaml.Node, path string) []OriginServer {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, path, "at least one server is required")
		return nil
	}
	var out []OriginServer
	urls := make(map[string]int) // URL → line
	for i, item := range items {
		p := index(path, i)
		srv := OriginServer{Weight: defaultWeight}
		var urlAt *yaml.Node
		d.fields(item, p, []field{
			required("url", func(n *yaml.Node, path string) {
				s, ok := d.str(n, path)
				if !ok {
					return
				}
				u, err := parseOriginURL(s)
				if err != nil {
					d.wrapf(n, path, err, "%v", err)
					return
				}
				urlAt, srv.URL = n, u
			}),
			optional("weight", d.setInt(&srv.Weight, 1, maxWeight)),
		})
		if srv.URL == nil {
			continue
		}
		if line, dup := urls[srv.URL.String()]; dup {
			d.errorf(urlAt, join(p, "url"), "server %s is listed twice (first at line %d)", srv.URL, line)
			continue
		}
		urls[srv.URL.String()] = urlAt.Line
		out = append(out, srv)
	}
	return out
}

// cache decodes a service's cache policy into c, which holds the defaults.
func (d *decoder) cache(n *yaml.Node, path string, c *CachePolicy) {
	var minAt *yaml.Node
	d.fields(n, path, []field{
		optional("default_ttl", d.setDuration(&c.DefaultTTL)),
		optional("min_ttl", func(n *yaml.Node, path string) {
			minAt = n
			d.setDuration(&c.MinTTL)(n, path)
		}),
		optional("max_ttl", d.setDuration(&c.MaxTTL)),
		optional("max_object", d.setSize(&c.MaxObject, 1)),
		optional("keep", d.setDuration(&c.Keep)),
		optional("query", func(n *yaml.Node, path string) { d.query(n, path, &c.Query) }),
	})
	if c.MinTTL > 0 && c.MaxTTL > 0 && c.MinTTL > c.MaxTTL {
		d.errorf(minAt, join(path, "min_ttl"), "min_ttl %s is greater than max_ttl %s", formatDuration(c.MinTTL), formatDuration(c.MaxTTL))
	}
}

// query decodes a cache policy's query section into q.
func (d *decoder) query(n *yaml.Node, path string, q *QueryPolicy) {
	d.fields(n, path, []field{
		optional("sort", d.setBool(&q.Sort)),
		optional("drop", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			lines := make(map[string]int)
			for i, item := range items {
				p := index(path, i)
				s, ok := d.str(item, p)
				switch {
				case !ok:
				case s == "":
					d.errorf(item, p, "empty parameter name")
				case lines[s] > 0:
					d.errorf(item, p, "parameter %q is listed twice (first at line %d)", s, lines[s])
				default:
					lines[s] = item.Line
					q.Drop = append(q.Drop, s)
				}
			}
		}),
	})
}

// pops decodes the PoP list.
func (d *decoder) pops(n *yaml.Node, path string) []POP {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, path, "at least one PoP is required")
		return nil
	}
	names := make(map[string]seen)
	addrs := make(map[string]seen) // normalized listen and admin addresses
	out := make([]POP, 0, len(items))
	for i, item := range items {
		out = append(out, d.pop(item, index(path, i), names, addrs))
	}
	return out
}

// pop decodes one PoP. names and addrs hold the names and addresses of the
// PoPs before it.
func (d *decoder) pop(n *yaml.Node, path string, names, addrs map[string]seen) POP {
	p := POP{
		CacheSize: defaultCacheSize,
		Drain:     defaultDrain,
		Timeouts:  ServerTimeouts{ReadHeader: defaultReadHeader, Idle: defaultServerIdle},
	}
	var nameAt, listenAt, adminAt *yaml.Node
	var listen, admin hostPort
	addr := func(at **yaml.Node, dst *string, hp *hostPort) decodeFunc {
		return func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			v, err := parseHostPort(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			*at, *dst, *hp = n, s, v
		}
	}
	ok := d.fields(n, path, []field{
		required("name", func(n *yaml.Node, path string) {
			nameAt = n
			d.name(n, path, &p.Name)
		}),
		required("location", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				required("lat", d.setFloat(&p.Location.Lat, -90, 90)),
				required("lon", d.setFloat(&p.Location.Lon, -180, 180)),
			})
		}),
		required("listen", addr(&listenAt, &p.Listen, &listen)),
		required("admin", addr(&adminAt, &p.Admin, &admin)),
		optional("cache_size", d.setSize(&p.CacheSize, minCacheSize)),
		optional("drain", d.setDuration(&p.Drain)),
		optional("timeouts", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				optional("read_header", d.setTimeout(&p.Timeouts.ReadHeader)),
				optional("idle", d.setTimeout(&p.Timeouts.Idle)),
			})
		}),
	})
	if !ok {
		return p
	}
	owner := path
	if p.Name != "" {
		owner = fmt.Sprintf("%s %q", path, p.Name)
		if first, dup := names[p.Name]; dup {
			d.errorf(nameAt, join(path, "name"), "PoP name %q is already used by %s (line %d)", p.Name, first.path, first.line)
		} else {
			names[p.Name] = seen{path: path, line: nameAt.Line}
		}
	}
	if listenAt != nil && adminAt != nil && listen.clashes(admin) {
		d.errorf(adminAt, join(path, "admin"), "admin address %q clashes with listen address %q (line %d); they must differ", p.Admin, p.Listen, listenAt.Line)
	}
	for _, a := range []struct {
		key string
		at  *yaml.Node
		hp  hostPort
	}{{"listen", listenAt, listen}, {"admin", adminAt, admin}} {
		if a.at == nil || a.hp.port == 0 {
			continue // port 0 picks a free port, so it never clashes
		}
		k := a.hp.String()
		if first, dup := addrs[k]; dup {
			if first.path != path { // a clash inside one PoP is reported above
				d.errorf(a.at, join(path, a.key), "address %q is already used by %s (line %d)", k, first.owner, first.line)
			}
			continue
		}
		addrs[k] = seen{path: path, line: a.at.Line, owner: owner + " as its " + a.key + " address"}
	}
	return p
}

// purge decodes the purge section.
func (d *decoder) purge(n *yaml.Node, path string) Purge {
	var p Purge
	d.fields(n, path, []field{
		required("token", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			if err := checkToken(s); err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			p.Token = s
		}),
	})
	return p
}
