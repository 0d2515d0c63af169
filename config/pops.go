package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is the pops list: each PoP's name, location, listen and admin
// addresses (unique across the file), cache size, drain delay, client
// timeouts and capacity. Its disk list is in disk.go, its tls and
// access_log sections are in tls.go and accesslog.go, its limits in
// limits.go, its DNS keys (address, address6) in dns.go.

// Defaults and bounds of a PoP.
const (
	defaultCacheSize   = 256 << 20 // 256 MiB
	minCacheSize       = 1 << 20   // 1 MiB
	defaultDrain       = 5 * time.Second
	defaultReadHeader  = 10 * time.Second
	defaultServerIdle  = 120 * time.Second
	defaultSendTimeout = 60 * time.Second
	defaultRequestBody = 60 * time.Second
)

// POP is one point of presence: a process that serves every service from
// its own cache.
type POP struct {
	Name      string   // unique among PoPs; see popNameRE (a host name such as edge-1.example.com will do)
	Location  Location // where it is, for geo DNS
	Listen    string   // host:port for the HTTP(S) listener; host "" means all addresses
	Admin     string   // host:port for /healthz, metrics, purge and stats; must not clash with Listen
	CacheSize int64    // cache capacity in bytes; default 256 MiB, at least 1 MiB
	// Drain is how long, after SIGTERM, the PoP keeps serving while
	// /healthz reports draining so DNS steers users away. Default 5s; 0
	// means no delay.
	Drain    time.Duration
	Timeouts ServerTimeouts
	// Address and Address6 are the IPv4 and IPv6 addresses geo DNS answers
	// with for this PoP. Each defaults to Listen's host when that is an IP
	// address of its family (not a wildcard); otherwise it is the zero
	// Addr unless given, and the PoP gets no answers of that family.
	Address  netip.Addr
	Address6 netip.Addr
	// Weight is the PoP's share of DNS answers among the PoPs within
	// dns.spread of the nearest, 1..1000; default 1.
	Weight int
	// TLS is the PoP's HTTPS and HTTP/3 listener; see tls.go.
	TLS POPTLS
	// AccessLog is the PoP's request log; see accesslog.go. Off by default.
	AccessLog AccessLog
	// Limits bound what clients can make the PoP hold.
	Limits Limits
	// Disk is the PoP's disk tier: cache directories behind the memory
	// tier (see disk.go). Empty by default: the cache is in memory only.
	Disk []Disk
	// Capacity is what the PoP is sized to serve; its load is measured
	// against it. The zero value (the default) means not configured: the
	// PoP reports no load, and DNS never sheds its users.
	Capacity Capacity
	// ProxyProtocol, when it names trusted networks, makes the serving
	// listeners (clear and TLS) take the client's address from a PROXY
	// protocol header sent by a load balancer in those networks. Off by
	// default.
	ProxyProtocol ProxyProtocol
}

// ProxyProtocol is a PoP's PROXY protocol (v1 and v2) setting. A
// connection from a trusted network must start with a header, whose
// source address is then the client's; a connection from anywhere else
// must not send one. A connection that breaks either rule, or sends a
// malformed header, is closed.
type ProxyProtocol struct {
	// Trusted are the networks of the load balancers that send headers;
	// empty means PROXY protocol is off.
	Trusted []netip.Prefix
	// Timeout bounds the wait for the header; default 5s.
	Timeout time.Duration
}

// Enabled reports whether the listeners take PROXY protocol headers.
func (p ProxyProtocol) Enabled() bool { return len(p.Trusted) > 0 }

// defaultProxyTimeout is how long a connection may take to send its PROXY
// protocol header.
const defaultProxyTimeout = 5 * time.Second

// proxyProtocol decodes a PoP's proxy_protocol section: trusted (a list of
// networks or addresses, at least one) and timeout.
func (d *decoder) proxyProtocol(n *yaml.Node, path string, p *ProxyProtocol) {
	p.Timeout = defaultProxyTimeout
	d.fields(n, path, []field{
		required("trusted", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			if len(items) == 0 {
				d.errorf(n, path, "at least one network is required (the load balancers' addresses, e.g. 10.0.0.0/8)")
			}
			for i, item := range items {
				ip := index(path, i)
				s, ok := d.str(item, ip)
				if !ok {
					continue
				}
				prefix, err := netip.ParsePrefix(s)
				if err != nil {
					a, aerr := netip.ParseAddr(s)
					if aerr != nil {
						d.errorf(item, ip, "%q is neither a network (10.0.0.0/8) nor an address", s)
						continue
					}
					prefix = netip.PrefixFrom(a, a.BitLen())
				}
				if prefix.Bits() == 0 {
					d.errorf(item, ip, "%q trusts every address: anyone could then claim any client address; name the load balancers' networks", s)
					continue
				}
				p.Trusted = append(p.Trusted, prefix.Masked())
			}
		}),
		optional("timeout", d.setTimeout(&p.Timeout)),
	})
}

// Capacity is the traffic a PoP is sized for. A PoP's load is its
// measured rate as a share of it (see Load); geo DNS moves part of a PoP's
// users to the next-nearest PoP while that share stays above
// dns.load_shedding.threshold.
type Capacity struct {
	// RequestsPerSec is the request rate the PoP is sized for; 0 (the
	// default) means no request capacity.
	RequestsPerSec float64
	// BytesPerSec is the response bytes per second the PoP is sized for;
	// 0 (the default) means no byte capacity.
	BytesPerSec int64
}

// Configured reports whether any capacity is given.
func (c Capacity) Configured() bool { return c.RequestsPerSec > 0 || c.BytesPerSec > 0 }

// Load is a PoP's load, as it reports it: the larger of its request rate
// and its byte rate, each as a share of the capacity given for it (1.0 is
// at capacity). A rate without a capacity counts as 0; Load is 0 when no
// capacity is configured.
func (c Capacity) Load(requestsPerSec, bytesPerSec float64) float64 {
	var load float64
	if c.RequestsPerSec > 0 {
		load = max(load, requestsPerSec/c.RequestsPerSec)
	}
	if c.BytesPerSec > 0 {
		load = max(load, bytesPerSec/float64(c.BytesPerSec))
	}
	return load
}

// Location is a point on Earth in decimal degrees.
type Location struct {
	Lat float64 // latitude, -90..90
	Lon float64 // longitude, -180..180
}

// ServerTimeouts bound client connections to a PoP. All are positive.
type ServerTimeouts struct {
	ReadHeader time.Duration // to read a request's headers; default 10s
	Idle       time.Duration // keep-alive connection idle time; default 120s
	// Send is the longest one write to a client may wait (nginx's and
	// Varnish's send_timeout): a client that stops reading is cut off
	// after it. Not a bound on a whole response. Default 60s.
	Send time.Duration
	// RequestBody is the longest a client may take to send the buffered
	// part of a request body (Limits.RequestBuffer), and the longest pause
	// while it sends the rest. Default 60s.
	RequestBody time.Duration
}

// popNameRE is what PoP names look like: service names (nameRE), or
// several of them joined by dots, so that a host's or a Kubernetes node's
// name (edge-1.example.com) can name the PoP it runs. The dots are safe
// where PoP names go: metric labels, Cache-Status and Via (RFC 9211's and
// RFC 9110's tokens allow them), logs and file names.
var popNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$`)

// maxPOPName is the longest PoP name: a DNS name's length (RFC 1035 §2.3.4).
const maxPOPName = 253

// popName decodes a PoP's name.
func (d *decoder) popName(n *yaml.Node, path string, dst *string) {
	s, ok := d.str(n, path)
	if !ok {
		return
	}
	if len(s) > maxPOPName || !popNameRE.MatchString(s) {
		d.errorf(n, path, "invalid PoP name %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit, in labels joined by dots (at most %d characters: a host name will do)", s, maxPOPName)
		return
	}
	*dst = s
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
		Limits:    limitsDefaults(),
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
			d.popName(n, path, &p.Name)
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
		optional("limits", func(n *yaml.Node, path string) { d.limits(n, path, &p.Limits) }), // limits.go
		optional("capacity", func(n *yaml.Node, path string) { d.capacity(n, path, &p.Capacity) }),
		optional("disk", func(n *yaml.Node, path string) { d.disks(n, path, &p.Disk) }), // disk.go
		optional("proxy_protocol", func(n *yaml.Node, path string) { d.proxyProtocol(n, path, &p.ProxyProtocol) }),
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

// Bounds of a PoP's capacity.
const (
	maxCapacityRequests = 1e9         // requests per second
	maxCapacityBytes    = int64(1e13) // bytes per second: 80 Tbit/s
)

// capacity decodes a PoP's capacity: requests_per_sec and bytes_per_sec,
// each optional; 0 means none of that kind.
func (d *decoder) capacity(n *yaml.Node, path string, c *Capacity) {
	d.fields(n, path, []field{
		optional("requests_per_sec", d.setFloat(&c.RequestsPerSec, 0, maxCapacityRequests)),
		optional("bytes_per_sec", d.setSizeRange(&c.BytesPerSec, 0, maxCapacityBytes)),
	})
}
