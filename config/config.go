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
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Parse to settings the file leaves out.
const (
	defaultPolicy           = PolicyRoundRobin
	defaultWeight           = 1
	defaultConnectTimeout   = 2 * time.Second
	defaultFirstByteTimeout = 15 * time.Second
	defaultIdleTimeout      = 30 * time.Second
	defaultMaxObject        = 64 << 20 // 64 MiB
	defaultKeep             = time.Hour
	defaultCacheSize        = 256 << 20 // 256 MiB
	minCacheSize            = 1 << 20   // 1 MiB
	defaultDrain            = 5 * time.Second
	defaultReadHeader       = 10 * time.Second
	defaultServerIdle       = 120 * time.Second
	defaultSendTimeout      = 60 * time.Second
	defaultRequestBody      = 60 * time.Second
	defaultFillTimeout      = 5 * time.Minute
	defaultMaxConns         = 10_000
	defaultInflightBytes    = 256 << 20 // 256 MiB
	defaultDetachedFills    = 64
	defaultOriginDetached   = 16
	defaultMaxRanges        = 200
	defaultRequestBuffer    = 1 << 20 // 1 MiB
	defaultHitForMiss       = 2 * time.Minute
	minInflightBytes        = 1 << 20 // 1 MiB
	maxDetachedFills        = 100_000
	maxMaxRanges            = 10_000
	maxRequestBuffer        = 1 << 30 // 1 GiB
	maxWeight               = 1000
	maxMaxConns             = 1_000_000
	defaultHashKey          = HashKeyClientIP
	defaultLoadPath         = "/_origin/load"
	defaultLoadInterval     = 2 * time.Second
	defaultLoadTimeout      = time.Second
	defaultHealthInterval   = 5 * time.Second
	defaultHealthTimeout    = 2 * time.Second
	defaultRise             = 2
	defaultFall             = 3
	maxRiseFall             = 100
	defaultEjectFailures    = 5
	maxEjectFailures        = 1000
	defaultEjectCooldown    = 10 * time.Second
	maxCAFile               = 1 << 20 // 1 MiB of PEM is far more than any CA bundle
)

// The origin balancing policies (see package origin for how each works).
const (
	// PolicyRoundRobin sends requests to the servers in turn. It is the
	// default, and it ignores weights: servers with different weights
	// need a weighted policy.
	PolicyRoundRobin = "round_robin"
	// PolicyWeightedRoundRobin sends requests in proportion to the
	// weights, spread out (nginx's smooth weighted round robin).
	PolicyWeightedRoundRobin = "weighted_round_robin"
	// PolicyLeastConnections picks the server with the fewest requests in
	// flight, ties in turn; it ignores weights.
	PolicyLeastConnections = "least_connections"
	// PolicyWeightedLeastConnections picks the fewest requests in flight
	// per unit of weight.
	PolicyWeightedLeastConnections = "weighted_least_connections"
	// PolicyAdaptive prefers servers that report a low load at the
	// origin's load path (Origin.Load).
	PolicyAdaptive = "adaptive"
	// PolicyIPHash keeps each client, or each cached object, on one server
	// by consistent (rendezvous) hashing (Origin.HashKey).
	PolicyIPHash = "ip_hash"
	// PolicyRequestBased favours servers that answer fast and have few
	// requests in flight (peak-EWMA response time, two random choices).
	PolicyRequestBased = "request_based"
)

// policies lists the policies, the default first, for messages.
var policies = []string{
	PolicyRoundRobin, PolicyWeightedRoundRobin, PolicyLeastConnections,
	PolicyWeightedLeastConnections, PolicyAdaptive, PolicyIPHash, PolicyRequestBased,
}

// weighted reports whether policy honours server weights.
func weighted(policy string) bool {
	return policy != PolicyRoundRobin && policy != PolicyLeastConnections
}

// What PolicyIPHash hashes.
const (
	// HashKeyClientIP keeps each client on one server. The default.
	HashKeyClientIP = "client_ip"
	// HashKeyCacheKey sends all misses of one cached object to one server.
	HashKeyCacheKey = "cache_key"
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

	// hosts maps each hostname to its index in Services. It is built by
	// Parse; a Config assembled by hand has none and ServiceByHost scans.
	hosts map[string]int
}

// Service is one site the CDN serves: the hostnames it answers for, where
// its content comes from, and how it is cached.
type Service struct {
	Name      string   // unique among services; matches ^[a-z0-9][a-z0-9_-]*$
	Hostnames []string // at least one; lowercased, no port, no trailing dot; IPv6 literals without brackets
	Origin    Origin
	Cache     CachePolicy
	HTTPS     HTTPS // redirect to https and HSTS; see tls.go
}

// Origin is the set of servers a service's content is fetched from, and
// how requests are spread over them.
type Origin struct {
	Policy string // balancing policy, one of the Policy constants; default PolicyRoundRobin
	// HashKey is what PolicyIPHash hashes: HashKeyClientIP (its default)
	// or HashKeyCacheKey. "" for the other policies.
	HashKey  string
	Servers  []OriginServer // at least one
	Timeouts OriginTimeouts
	// Load is where PolicyAdaptive reads each server's load; nil for the
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

// LoadProbe says how PolicyAdaptive polls each server's load: GET Path
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

// CachePolicy says how a service's responses are cached.
type CachePolicy struct {
	// DefaultTTL is the freshness lifetime of storable responses that carry
	// no explicit freshness (max-age, Expires). 0, the default, means such
	// responses are not given one.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp every freshness lifetime; 0 means no clamp
	// (the default for both). When both are set MinTTL <= MaxTTL.
	MinTTL time.Duration
	MaxTTL time.Duration
	// MaxObject is the largest body, in bytes, that is stored; larger
	// responses stream through uncached. Default 64 MiB.
	MaxObject int64
	// Keep is how long past staleness an entry with validators (ETag,
	// Last-Modified) is kept so it can be revalidated. Default 1h; 0 means
	// stale entries are dropped.
	Keep time.Duration
	// StaleIfError is the stale-if-error window (RFC 5861) given to
	// responses that state none: how long past freshness a stored response
	// may still be served when the origin fails. Default 0: only the
	// origin's own stale-if-error applies.
	StaleIfError time.Duration
	// HitForMiss is how long the PoP remembers that a URL answered with
	// a response it may not store (private, no-store, Set-Cookie...):
	// requests for it in that time go to the origin in parallel instead
	// of waiting for one another (Varnish's hit-for-miss). A response
	// that may be stored ends it at once. Default 2m; 0 turns it off.
	HitForMiss time.Duration
	Query      QueryPolicy
}

// QueryPolicy says how the query string takes part in the cache key.
type QueryPolicy struct {
	Sort bool     // sort parameters so ?a=1&b=2 and ?b=2&a=1 share an entry; default false
	Drop []string // parameter names removed from the key (e.g. utm_source); case-sensitive
}

// POP is one point of presence: a process that serves every service from
// its own cache.
type POP struct {
	Name      string   // unique among PoPs; matches ^[a-z0-9][a-z0-9_-]*$
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
}

// Limits bound the memory, connections and origin load that clients can
// cause at one PoP.
type Limits struct {
	// MaxConns caps the client connections open on each listener (clear,
	// TLS); past it new connections wait in the kernel's accept queue.
	// Default 10000.
	MaxConns int
	// InflightBytes is the PoP-wide budget for bytes held in memory by
	// fills in flight and by request bodies being buffered. A fill that
	// cannot get its bytes from the budget stops storing and relays the
	// origin's body at its clients' pace with a small buffer. Default
	// 256 MiB, at least 1 MiB.
	InflightBytes int64
	// DetachedFills bounds, PoP-wide, the fills that go on after every
	// client that asked for them has gone. Default 64; 0 means none.
	DetachedFills int
	// MaxRanges is the most ranges one Range request may ask for; a
	// request with more is answered with the whole representation (as
	// Apache's MaxRanges). Default 200.
	MaxRanges int
	// RequestBuffer is how much of a request body (POST, PUT...) the PoP
	// reads before it contacts the origin, so a client that sends slowly
	// holds no origin connection; longer bodies stream after it. Default
	// 1 MiB; 0 means bodies always stream.
	RequestBuffer int64
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
