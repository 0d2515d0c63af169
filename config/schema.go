package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

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
		optional("purge", func(n *yaml.Node, path string) { c.Purge = d.purge(n, path) }), // purge.go
		optional("dns", func(n *yaml.Node, path string) { c.DNS = d.dns(n, path) }),
	})
	d.dnsRefs(c)         // checks dns against the rest of the file (see dns.go)
	d.purgeEnv(&c.Purge) // $OUTPOST_PURGE_TOKEN (see purge.go)
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
				Fill:      defaultFillTimeout,
			},
			DetachedFills: defaultOriginDetached,
		},
		Cache: CachePolicy{MaxObject: defaultMaxObject, Keep: defaultKeep, HitForMiss: defaultHitForMiss},
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
		optional("https", func(n *yaml.Node, path string) { d.https(n, path, &s.HTTPS) }), // tls.go
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
// Settings that depend on the policy are checked once all are read, so
// their order in the file does not matter.
func (d *decoder) origin(n *yaml.Node, path string, o *Origin) {
	o.Ejection = Ejection{Failures: defaultEjectFailures, Cooldown: defaultEjectCooldown}
	var hashAt, loadAt, tlsAt *yaml.Node
	var weights []weightAt // of servers whose weight is not 1
	policyOK := true       // false when the policy given is not known: don't guess which rules apply
	ok := d.fields(n, path, []field{
		optional("policy", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			switch {
			case !ok:
				policyOK = false
			case !slices.Contains(policies, s):
				policyOK = false
				d.errorf(n, path, "policy %q not supported (want one of %s)", s, strings.Join(policies, ", "))
			default:
				o.Policy = s
			}
		}),
		optional("hash_key", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			switch {
			case !ok:
			case s != HashKeyClientIP && s != HashKeyCacheKey:
				d.errorf(n, path, "hash_key %q not supported (want %s or %s)", s, HashKeyClientIP, HashKeyCacheKey)
			default:
				hashAt, o.HashKey = n, s
			}
		}),
		required("servers", func(n *yaml.Node, path string) { o.Servers, weights = d.servers(n, path) }),
		optional("timeouts", func(n *yaml.Node, path string) {
			t := &o.Timeouts
			d.fields(n, path, []field{
				optional("connect", d.setTimeout(&t.Connect)),
				optional("first_byte", d.setTimeout(&t.FirstByte)),
				optional("idle", d.setTimeout(&t.Idle)),
				optional("fill", d.setTimeout(&t.Fill)),
			})
		}),
		optional("detached_fills", d.setInt(&o.DetachedFills, 0, maxDetachedFills)),
		optional("load", func(n *yaml.Node, path string) {
			loadAt = n
			o.Load = d.load(n, path)
		}),
		optional("health", func(n *yaml.Node, path string) { o.Health = d.health(n, path) }),
		optional("ejection", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				optional("failures", d.setInt(&o.Ejection.Failures, 1, maxEjectFailures)),
				optional("cooldown", d.setPositive(&o.Ejection.Cooldown, "cooldown")),
			})
		}),
		optional("tls", func(n *yaml.Node, path string) {
			tlsAt = n
			d.originTLS(n, path, &o.TLS)
		}),
		optional("host_header", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			h, err := normalizeHostHeader(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			o.HostHeader = h
		}),
	})
	if !ok || !policyOK {
		return
	}
	if hashAt != nil && o.Policy != PolicyIPHash {
		d.errorf(hashAt, join(path, "hash_key"), "hash_key applies only to policy %s (policy is %s)", PolicyIPHash, o.Policy)
		o.HashKey = ""
	}
	if o.Policy == PolicyIPHash && o.HashKey == "" {
		o.HashKey = defaultHashKey
	}
	switch {
	case loadAt != nil && o.Policy != PolicyAdaptive:
		d.errorf(loadAt, join(path, "load"), "load applies only to policy %s (policy is %s)", PolicyAdaptive, o.Policy)
		o.Load = nil
	case o.Policy == PolicyAdaptive && o.Load == nil:
		o.Load = &LoadProbe{Path: defaultLoadPath, Interval: defaultLoadInterval, Timeout: defaultLoadTimeout}
	}
	if !weighted(o.Policy) {
		alt := PolicyWeightedRoundRobin
		if o.Policy == PolicyLeastConnections {
			alt = PolicyWeightedLeastConnections
		}
		for _, w := range weights {
			d.errorf(w.node, w.path, "weight %d has no effect: policy %s ignores weights (use %s, or remove the weight)", w.weight, o.Policy, alt)
		}
	}
	if tlsAt != nil && len(o.Servers) > 0 && !slices.ContainsFunc(o.Servers, func(s OriginServer) bool { return s.URL.Scheme == "https" }) {
		d.errorf(tlsAt, join(path, "tls"), "tls applies only to https servers, and every server here uses http")
	}
}

// load decodes the load probe of policy adaptive.
func (d *decoder) load(n *yaml.Node, path string) *LoadProbe {
	l := &LoadProbe{Path: defaultLoadPath, Interval: defaultLoadInterval}
	var timeoutAt *yaml.Node
	d.fields(n, path, []field{
		optional("path", d.setProbePath(&l.Path)),
		optional("interval", d.setPositive(&l.Interval, "interval")),
		optional("timeout", func(n *yaml.Node, path string) {
			timeoutAt = n
			d.setTimeout(&l.Timeout)(n, path)
		}),
	})
	l.Timeout = d.probeTimeout(timeoutAt, join(path, "timeout"), l.Timeout, l.Interval, defaultLoadTimeout)
	return l
}

// health decodes the active health check settings.
func (d *decoder) health(n *yaml.Node, path string) *HealthCheck {
	h := &HealthCheck{Interval: defaultHealthInterval, Rise: defaultRise, Fall: defaultFall}
	var timeoutAt *yaml.Node
	d.fields(n, path, []field{
		required("path", d.setProbePath(&h.Path)),
		optional("interval", d.setPositive(&h.Interval, "interval")),
		optional("timeout", func(n *yaml.Node, path string) {
			timeoutAt = n
			d.setTimeout(&h.Timeout)(n, path)
		}),
		optional("rise", d.setInt(&h.Rise, 1, maxRiseFall)),
		optional("fall", d.setInt(&h.Fall, 1, maxRiseFall)),
	})
	h.Timeout = d.probeTimeout(timeoutAt, join(path, "timeout"), h.Timeout, h.Interval, defaultHealthTimeout)
	return h
}

// probeTimeout returns the timeout of a probe sent every interval: the
// one given (at node at), which may not exceed the interval, or the
// default cut to the interval.
func (d *decoder) probeTimeout(at *yaml.Node, path string, given, interval, def time.Duration) time.Duration {
	if given == 0 {
		return min(def, interval)
	}
	if given > interval {
		d.errorf(at, path, "timeout %s is longer than the interval %s", formatDuration(given), formatDuration(interval))
	}
	return given
}

// setProbePath returns a decodeFunc that stores in dst a path (with an
// optional query) to probe on each origin server.
func (d *decoder) setProbePath(dst *string) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		if err := checkProbePath(s); err != nil {
			d.wrapf(n, path, err, "%v", err)
			return
		}
		*dst = s
	}
}

// originTLS decodes the TLS settings of an origin.
func (d *decoder) originTLS(n *yaml.Node, path string, t *OriginTLS) {
	var caAt, insecureAt *yaml.Node
	d.fields(n, path, []field{
		optional("ca_file", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			f, err := d.checkCAFile(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			caAt, t.CAFile = n, f
		}),
		optional("server_name", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			h, err := normalizeHost(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			t.ServerName = h
		}),
		optional("insecure_skip_verify", func(n *yaml.Node, path string) {
			insecureAt = n
			d.setBool(&t.InsecureSkipVerify)(n, path)
		}),
	})
	if caAt != nil && t.InsecureSkipVerify {
		d.errorf(insecureAt, join(path, "insecure_skip_verify"), "insecure_skip_verify makes ca_file (line %d) pointless; keep one", caAt.Line)
	}
}

// weightAt is where a server's weight was given.
type weightAt struct {
	node   *yaml.Node
	path   string
	weight int
}

// servers decodes an origin's server list. weights lists the servers whose
// weight is not 1, so the policy can be checked against them.
func (d *decoder) servers(n *yaml.Node, path string) (out []OriginServer, weights []weightAt) {
	items, ok := d.list(n, path)
	if !ok {
		return nil, nil
	}
	if len(items) == 0 {
		d.errorf(n, path, "at least one server is required")
		return nil, nil
	}
	urls := make(map[string]int) // URL → line
	for i, item := range items {
		p := index(path, i)
		srv := OriginServer{Weight: defaultWeight}
		var urlAt, weightNode *yaml.Node
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
			optional("weight", func(n *yaml.Node, path string) {
				weightNode = n
				d.setInt(&srv.Weight, 1, maxWeight)(n, path)
			}),
			optional("max_conns", d.setInt(&srv.MaxConns, 0, maxMaxConns)),
		})
		if srv.URL == nil {
			continue
		}
		if line, dup := urls[srv.URL.String()]; dup {
			d.errorf(urlAt, join(p, "url"), "server %s is listed twice (first at line %d)", srv.URL, line)
			continue
		}
		urls[srv.URL.String()] = urlAt.Line
		if srv.Weight != defaultWeight {
			weights = append(weights, weightAt{weightNode, join(p, "weight"), srv.Weight})
		}
		out = append(out, srv)
	}
	return out, weights
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
		optional("stale_if_error", d.setDuration(&c.StaleIfError)),
		optional("hit_for_miss", d.setDuration(&c.HitForMiss)),
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
		Weight:    defaultWeight,
		Timeouts:  ServerTimeouts{ReadHeader: defaultReadHeader, Idle: defaultServerIdle, Send: defaultSendTimeout, RequestBody: defaultRequestBody},
		Limits: Limits{MaxConns: defaultMaxConns, InflightBytes: defaultInflightBytes, DetachedFills: defaultDetachedFills,
			MaxRanges: defaultMaxRanges, RequestBuffer: defaultRequestBuffer},
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
		optional("address", d.setAnswerAddr(&p.Address, false)),  // dns.go
		optional("address6", d.setAnswerAddr(&p.Address6, true)), // dns.go
		optional("weight", d.setInt(&p.Weight, 1, maxWeight)),
		optional("tls", func(n *yaml.Node, path string) { d.popTLS(n, path, &p.TLS) }),                 // tls.go
		optional("access_log", func(n *yaml.Node, path string) { d.accessLog(n, path, &p.AccessLog) }), // accesslog.go
		optional("timeouts", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				optional("read_header", d.setTimeout(&p.Timeouts.ReadHeader)),
				optional("idle", d.setTimeout(&p.Timeouts.Idle)),
				optional("send", d.setTimeout(&p.Timeouts.Send)),
				optional("request_body", d.setTimeout(&p.Timeouts.RequestBody)),
			})
		}),
		optional("limits", func(n *yaml.Node, path string) { d.limits(n, path, &p.Limits) }),
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
		if ip := net.ParseIP(a.hp.host); a.hp.host == "" || (ip != nil && ip.IsUnspecified()) {
			continue // wildcard addresses: PoPs on different hosts may all use ":80"
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

// limits decodes a PoP's limits into l, which holds the defaults.
func (d *decoder) limits(n *yaml.Node, path string, l *Limits) {
	d.fields(n, path, []field{
		optional("max_conns", d.setInt(&l.MaxConns, 1, maxMaxConns)),
		optional("inflight_bytes", d.setSize(&l.InflightBytes, minInflightBytes)),
		optional("detached_fills", d.setInt(&l.DetachedFills, 0, maxDetachedFills)),
		optional("max_ranges", d.setInt(&l.MaxRanges, 1, maxMaxRanges)),
		optional("request_buffer", d.setSizeRange(&l.RequestBuffer, 0, maxRequestBuffer)),
	})
}
