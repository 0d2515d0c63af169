package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// This file is the services list: each service's name and hostnames,
// unique across the file. Its origin and cache sections are in origin.go
// and cache.go, its https section in tls.go.

// Service is one site the CDN serves: the hostnames it answers for, where
// its content comes from, and how it is cached.
type Service struct {
	Name      string   // unique among services; matches ^[a-z0-9][a-z0-9_-]*$
	Hostnames []string // at least one; lowercased, no port, no trailing dot; IPv6 literals without brackets
	Origin    Origin
	Cache     CachePolicy
	HTTPS     HTTPS // redirect to https and HSTS; see tls.go
	// SignedURLs, when enabled, makes the service answer only signed URLs;
	// see signed.go.
	SignedURLs SignedURLs
	// Compress, when enabled, makes the PoP compress responses for
	// clients that accept it; see compress.go.
	Compress Compress
	// Shield names the PoPs the others send this service's misses to; see
	// shield.go.
	Shield Shield
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
	s := Service{Origin: originDefaults(), Cache: cacheDefaults()}
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
		required("origin", func(n *yaml.Node, path string) { d.origin(n, path, &s.Origin) }),              // origin.go
		optional("cache", func(n *yaml.Node, path string) { d.cache(n, path, &s.Cache) }),                 // cache.go
		optional("https", func(n *yaml.Node, path string) { d.https(n, path, &s.HTTPS) }),                 // tls.go
		optional("signed_urls", func(n *yaml.Node, path string) { d.signedURLs(n, path, &s.SignedURLs) }), // signed.go
		optional("compress", func(n *yaml.Node, path string) { d.compress(n, path, &s.Compress) }),
		optional("shield", func(n *yaml.Node, path string) { d.shield(n, path, &s.Shield) }), // compress.go
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
