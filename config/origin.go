package config

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/origin"
	"go.yaml.in/yaml/v3"
)

// This file is a service's origin section: its servers and how requests
// are spread over them, timeouts, health checks, ejection and TLS. The
// policy names, their rules and the pool's defaults are package origin's,
// so the file and the pool cannot disagree on them.

// The names of origin's balancing policies and hash keys, as text, for
// callers that hold them as strings. Origin.Policy and Origin.HashKey
// carry origin's own types; see origin.Policy for what each policy does.
const (
	PolicyRoundRobin               = string(origin.PolicyRoundRobin)
	PolicyWeightedRoundRobin       = string(origin.PolicyWeightedRoundRobin)
	PolicyLeastConnections         = string(origin.PolicyLeastConnections)
	PolicyWeightedLeastConnections = string(origin.PolicyWeightedLeastConnections)
	PolicyAdaptive                 = string(origin.PolicyAdaptive)
	PolicyIPHash                   = string(origin.PolicyIPHash)
	PolicyRequestBased             = string(origin.PolicyRequestBased)

	HashKeyClientIP = string(origin.HashClientIP)
	HashKeyCacheKey = string(origin.HashCacheKey)
)

// Defaults and bounds of a service's origin section that are the PoP's
// own. The pool's defaults (policy, timeouts, health checks, ejection,
// load polls) are package origin's Default constants.
const (
	defaultFillTimeout    = 5 * time.Minute
	defaultOriginDetached = 16
	maxRiseFall           = 100
	maxEjectFailures      = 1000
)

// policyNames lists the policies, the default first, for messages.
func policyNames() string {
	var names []string
	for _, p := range origin.Policies() {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

// Origin is the set of servers a service's content is fetched from, and
// how requests are spread over them.
type Origin struct {
	Policy origin.Policy // balancing policy, one of origin.Policies(); default origin.DefaultPolicy
	// HashKey is what origin.PolicyIPHash hashes: origin.HashClientIP (its
	// default) or origin.HashCacheKey. "" for the other policies.
	HashKey  origin.HashKey
	Servers  []OriginServer // at least one
	Timeouts OriginTimeouts
	// Load is where origin.PolicyAdaptive reads each server's load; nil for the
	// other policies.
	Load *LoadProbe
	// Health enables active health checks; nil (the default) means none.
	Health *HealthCheck
	// Ejection takes a server out after consecutive failures; always on.
	Ejection Ejection
	// TLS configures connections to https servers.
	TLS OriginTLS
	// HostHeader is the Host sent to the origin, lowercased; "" (the
	// default) means each server URL's host[:port].
	HostHeader string
	// DetachedFills bounds the fills of this service that go on after
	// every client that asked for them has gone (so the object is stored
	// for the next one); past it such fills are cancelled. Default 16; 0
	// means a fill stops as soon as its last client leaves.
	DetachedFills int
}

// OriginServer is one server of an origin.
type OriginServer struct {
	// URL has an http or https scheme and a host, no user info, query or
	// fragment; its path ("" or "/...") is prefixed to request paths.
	URL *url.URL
	// Weight is the server's share of requests relative to the other
	// servers under the weighted policies, 1..1000; default 1.
	Weight int
	// MaxConns caps the connections to the server; 0, the default, means
	// no cap.
	MaxConns int
}

// OriginTimeouts bound each phase of a request to an origin server. All are
// positive.
type OriginTimeouts struct {
	Connect   time.Duration // to establish the connection (and TLS); default 2s
	FirstByte time.Duration // from sending the request to receiving the response headers; default 15s
	Idle      time.Duration // longest gap between reads while reading the body; default 30s
	// Fill is the longest a fill (a fetch that is to be stored) may take
	// from sending the request to the body's last byte, so an origin that
	// trickles cannot hold a fill and its buffer for ever; default 5m.
	Fill time.Duration
}

// LoadProbe says how origin.PolicyAdaptive polls each server's load: GET Path
// every Interval, answered within Timeout by a 2xx with one number.
type LoadProbe struct {
	Path     string        // starts with "/"; default "/_origin/load"
	Interval time.Duration // positive; default 2s
	Timeout  time.Duration // positive, at most Interval; default 1s (or Interval if shorter)
}

// HealthCheck configures active health checks: GET Path on every server
// every Interval, expecting a 2xx or 3xx within Timeout. Fall failures in a
// row take a server out, Rise successes in a row bring it back.
type HealthCheck struct {
	Path     string        // starts with "/"; required
	Interval time.Duration // positive; default 5s
	Timeout  time.Duration // positive, at most Interval; default 2s (or Interval if shorter)
	Rise     int           // 1..100; default 2
	Fall     int           // 1..100; default 3
}

// Ejection configures passive ejection: Failures failed requests in a row
// take a server out for Cooldown, after which one trial request decides.
type Ejection struct {
	Failures int           // 1..1000; default 5
	Cooldown time.Duration // positive; default 10s
}

// OriginTLS configures TLS to https origin servers. The zero value
// verifies certificates against the system roots for each URL's host.
type OriginTLS struct {
	// CAFile is a PEM file of CA certificates to trust instead of the
	// system roots, as an absolute path (a relative one in the file is
	// relative to the file); "" means the system roots.
	CAFile string
	// ServerName is sent as SNI and verified; "" means each URL's host.
	ServerName string
	// InsecureSkipVerify accepts any certificate: for testing only.
	InsecureSkipVerify bool
}

// originDefaults returns the origin of a service whose file gives only
// its servers.
func originDefaults() Origin {
	return Origin{
		Policy: origin.DefaultPolicy,
		Timeouts: OriginTimeouts{
			Connect:   origin.DefaultConnectTimeout,
			FirstByte: origin.DefaultFirstByteTimeout,
			Idle:      origin.DefaultIdleTimeout,
			Fill:      defaultFillTimeout,
		},
		Ejection:      Ejection{Failures: origin.DefaultEjectFailures, Cooldown: origin.DefaultEjectCooldown},
		DetachedFills: defaultOriginDetached,
	}
}

// origin decodes a service's origin into o, which holds the defaults
// (originDefaults). Settings that depend on the policy are checked once
// all are read, so their order in the file does not matter.
func (d *decoder) origin(n *yaml.Node, path string, o *Origin) {
	var hashAt, loadAt, tlsAt *yaml.Node
	var weights []weightAt // of servers whose weight is not 1
	policyOK := true       // false when the policy given is not known: don't guess which rules apply
	ok := d.fields(n, path, []field{
		optional("policy", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			switch {
			case !ok:
				policyOK = false
			case !slices.Contains(origin.Policies(), origin.Policy(s)):
				policyOK = false
				d.errorf(n, path, "policy %q not supported (want one of %s)", s, policyNames())
			default:
				o.Policy = origin.Policy(s)
			}
		}),
		optional("hash_key", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			switch {
			case !ok:
			case s != string(origin.HashClientIP) && s != string(origin.HashCacheKey):
				d.errorf(n, path, "hash_key %q not supported (want %s or %s)", s, origin.HashClientIP, origin.HashCacheKey)
			default:
				hashAt, o.HashKey = n, origin.HashKey(s)
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
	if hashAt != nil && o.Policy != origin.PolicyIPHash {
		d.errorf(hashAt, join(path, "hash_key"), "hash_key applies only to policy %s (policy is %s)", origin.PolicyIPHash, o.Policy)
		o.HashKey = ""
	}
	if o.Policy == origin.PolicyIPHash && o.HashKey == "" {
		o.HashKey = origin.DefaultHashKey
	}
	switch {
	case loadAt != nil && o.Policy != origin.PolicyAdaptive:
		d.errorf(loadAt, join(path, "load"), "load applies only to policy %s (policy is %s)", origin.PolicyAdaptive, o.Policy)
		o.Load = nil
	case o.Policy == origin.PolicyAdaptive && o.Load == nil:
		o.Load = &LoadProbe{Path: origin.DefaultLoadPath, Interval: origin.DefaultLoadInterval, Timeout: origin.DefaultLoadTimeout}
	}
	if !o.Policy.Weighted() {
		alt := origin.PolicyWeightedRoundRobin
		if o.Policy == origin.PolicyLeastConnections {
			alt = origin.PolicyWeightedLeastConnections
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
	l := &LoadProbe{Path: origin.DefaultLoadPath, Interval: origin.DefaultLoadInterval}
	var timeoutAt *yaml.Node
	d.fields(n, path, []field{
		optional("path", d.setProbePath(&l.Path)),
		optional("interval", d.setPositive(&l.Interval, "interval")),
		optional("timeout", func(n *yaml.Node, path string) {
			timeoutAt = n
			d.setTimeout(&l.Timeout)(n, path)
		}),
	})
	l.Timeout = d.probeTimeout(timeoutAt, join(path, "timeout"), l.Timeout, l.Interval, origin.DefaultLoadTimeout)
	return l
}

// health decodes the active health check settings.
func (d *decoder) health(n *yaml.Node, path string) *HealthCheck {
	h := &HealthCheck{Interval: origin.DefaultHealthInterval, Rise: origin.DefaultHealthRise, Fall: origin.DefaultHealthFall}
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
	h.Timeout = d.probeTimeout(timeoutAt, join(path, "timeout"), h.Timeout, h.Interval, origin.DefaultHealthTimeout)
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
