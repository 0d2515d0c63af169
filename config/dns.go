package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is the dns section: the settings of `outpost dns`, the
// authoritative geo DNS server, and the PoP keys it reads (address,
// address6, weight). Checks that need the whole file (the zone, the PoP
// names in fallback, each PoP's answer address) run in dnsRefs once every
// section is decoded, so the order of sections in the file does not matter.

// Defaults of the dns section.
const (
	defaultDNSTTL            = 30 * time.Second
	maxDNSTTL                = 24 * time.Hour
	defaultNegativeTTL       = 60 * time.Second
	maxNegativeTTL           = 3 * time.Hour // RFC 2308 §5 suggests 1–3 hours at most
	defaultSOARefresh        = time.Hour
	defaultSOARetry          = 15 * time.Minute
	defaultSOAExpire         = 7 * 24 * time.Hour
	defaultSOATTL            = time.Hour
	maxSOATimer              = 365 * 24 * time.Hour
	defaultSOASerial         = 1
	defaultDNSHealthIntvl    = 2 * time.Second
	defaultDNSHealthTmo      = time.Second
	defaultDNSRise           = 2
	defaultDNSFall           = 2
	defaultUDPSize           = 1232 // the DNS flag day 2020 value: no IP fragmentation on common paths
	minUDPSize               = 512
	maxUDPSize               = 4096
	defaultAnswerCache       = 1 << 14 // dns.answer_cache: answers of the UDP answer cache
	maxAnswerCache           = 1 << 20
	maxSpread                = 20040 // km, half the Earth's circumference: "every PoP"
	maxNameServers           = 64
	defaultRRLSlip           = 2
	defaultRRLIPv4Prefix     = 24
	defaultRRLIPv6Prefix     = 56
	defaultRRLTableSize      = 65536
	maxRRLRate               = 1_000_000
	maxRRLTableSize          = 1 << 24
	defaultStateMaxAgeFactor = 2 // dns.states.max_age: twice control.state_interval
	minStateMaxAge           = 100 * time.Millisecond
	maxStateMaxAge           = time.Minute
	defaultStateSkew         = 500 * time.Millisecond
	defaultShedThreshold     = 0.8
	defaultShedBand          = 0.1   // release = threshold - band unless given
	defaultShedChangePerTTL  = 0.1   // change_per_second: 10 points of share per dns.ttl …
	maxDefaultShedChange     = 0.015 // … but at most 1.5 points a second (states lag a second or two)
	defaultShedMaxShare      = 0.5
	maxShedThreshold         = 10
)

// DNS configures `outpost dns`, the authoritative geo DNS server for the
// zone. It is the zero value (see Enabled) when the file has no dns
// section; otherwise Parse has applied every default.
type DNS struct {
	// Listen are host:port addresses, each served over both UDP and TCP;
	// at least one, normalized (":53" means all addresses).
	Listen []string
	// Admin is the host:port of the admin listener (/healthz, /metrics,
	// /stats); "" (the default) means none.
	Admin string
	// TTL is the TTL of geo answers (A and AAAA of service hostnames), in
	// whole seconds, 1s..24h; default 30s.
	TTL time.Duration
	// NegativeTTL is how long resolvers may cache NXDOMAIN and NODATA
	// answers: the SOA minimum field and the TTL of the SOA sent with
	// them (RFC 2308 §3), whole seconds, 0s..3h; default 60s.
	NegativeTTL time.Duration
	// SOA holds the zone's SOA fields.
	SOA SOA
	// NS are the zone's name servers, in order; default one,
	// ns1.<zone>, whose addresses are the IPs of Listen.
	NS []NameServer
	// Networks is the absolute path of the network map (a CSV file of
	// CIDR → PoP or location rows parsed by package dnsgeo; a relative
	// path in the file is relative to the file); "" (the default) means
	// none. The file is read by the DNS server, not by Parse.
	Networks string
	// GeoIP is the absolute path of a City database in the MaxMind DB
	// format (GeoLite2-City, GeoIP2-City, DB-IP City Lite, or one made by
	// `outpost geodb build`), relative to the file like Networks; it places
	// clients the network map does not. "" (the default) means none.
	GeoIP string
	// ASN is the absolute path of an ASN database in the MaxMind DB
	// format (GeoLite2-ASN, or one made by `outpost geodb build --asn`),
	// relative to the file like Networks; it places clients in the
	// autonomous systems that the network map's ASN rows name. "" (the
	// default) means none.
	ASN string
	// Fallback is the order in which PoPs answer clients that no network
	// matches: the PoPs the file lists, then every other PoP in file order,
	// so that some PoP answers while any is healthy. Default: all PoPs in
	// file order.
	Fallback []string
	// Health says how the DNS server probes each PoP's admin /healthz.
	Health DNSHealth
	// Spread is a distance in km: PoPs no farther than Spread beyond the
	// nearest healthy PoP share the answers in proportion to their
	// weights. 0 (the default) means the nearest PoP always answers.
	Spread float64
	// UDPSize is the largest UDP response sent to EDNS clients, in bytes
	// (512..4096); larger answers are truncated so the client retries over
	// TCP. Default 1232.
	UDPSize int
	// AnswerCache is how many answers the UDP answer cache may hold
	// (rounded up to a power of two; about 300 bytes each, never more
	// than 4 MiB together): repeated queries are answered from the packed
	// reply. 0 turns it off. Default 16384.
	AnswerCache int
	// RateLimit is response rate limiting (RRL) of UDP answers; off
	// unless rate_limit.responses_per_second is set.
	RateLimit RateLimit
	// States says how the server uses the PoP states of the control
	// plane, when it receives any.
	States DNSStates
	// LoadShedding says how the server moves users away from PoPs that
	// run above their capacity, by the load their states report.
	LoadShedding LoadShedding
	// Records are the zone's static records (dns.records: TXT, CAA, MX,
	// CNAME, A and AAAA of names that are not services, NS delegations
	// below the apex with their glue), in file order; none by default.
	Records []Record
	// ACME is the admin endpoint for ACME DNS-01 challenge records; off
	// unless a token is given.
	ACME ACME
	// DNSSEC signs the zone online; off without keys.
	DNSSEC DNSSEC
}

// DNSStates configures how the DNS server reads the states PoPs publish
// on the control plane (package popapi). It uses them only once it
// receives some; a server without a control plane routes on its probes
// alone.
type DNSStates struct {
	// MaxAge is how old a PoP's latest state may be and still count: a
	// state older than MaxAge is stale. While the server hears fresh
	// states of other PoPs, a PoP whose states are stale is out (it
	// stopped talking: killed, or cut off). Longer than
	// control.state_interval, at most 1m; default twice
	// control.state_interval: 2s.
	MaxAge time.Duration
	// Skew is how far in the future (by the server's clock) a state's
	// time may be, for clocks that disagree a little; states from
	// further ahead are ignored. 0..MaxAge; default 500ms.
	Skew time.Duration
}

// LoadShedding configures load-aware routing. Once a second or so each
// PoP's state carries its load, the larger of its request and byte rates
// as a share of its capacity (pops[].capacity; 1.0 is at capacity). While
// a PoP's load stays above Threshold, the share of its users the DNS
// server sends to the next-nearest healthy PoP grows by ChangePerSecond
// each second, up to MaxShare; while the load stays below Release it
// shrinks at the same pace; in between it holds. Which users move is
// fixed per client subnet, so a user does not flip between PoPs.
type LoadShedding struct {
	// Threshold is the load above which shedding starts and grows;
	// (0, 10]; default 0.8.
	Threshold float64
	// Release is the load below which shed users come back; 0..Threshold;
	// default Threshold - 0.1 (0 when that is negative).
	Release float64
	// ChangePerSecond is how fast the shed share moves, as a share of the
	// PoP's users per second; (0, 1]. A change reaches users only as
	// resolvers' cached answers expire (dns.ttl), so a faster change
	// overshoots and swings: the default, 0.1 per TTL (0.0033 with the
	// default TTL of 30s) and at most 0.015, keeps the loop steady.
	ChangePerSecond float64
	// MaxShare is the largest share of a PoP's users ever moved; 0..1;
	// default 0.5. 0 turns load shedding off.
	MaxShare float64
}

// dnsAt is where the dns section gave its values, for the checks of
// dnsRefs, which run once the whole file is decoded. The decoder keeps it
// beside the DNS it decoded, so that a Config holds no YAML nodes.
type dnsAt struct {
	section  *yaml.Node   // the section; nil when it is not a mapping
	fallback []nameAt     // the fallback names
	listen   []*yaml.Node // each of DNS.Listen
	admin    *yaml.Node
	ns       []*yaml.Node // each of DNS.NS

	stateMaxAge, stateSkew *yaml.Node // dns.states keys, when given
}

// Enabled reports whether the file has a dns section.
func (d *DNS) Enabled() bool { return len(d.Listen) > 0 }

// SOA holds the fields of the zone's SOA record (RFC 1035 §3.3.13). The
// minimum field is DNS.NegativeTTL.
type SOA struct {
	MName   string        // the primary name server; default the first NS name
	RName   string        // the responsible person's mailbox in DNS form (hostmaster.cdn.example); default hostmaster.<zone>
	Serial  uint32        // default 1: the server does no zone transfers, so it is informative only
	Refresh time.Duration // whole seconds; default 1h
	Retry   time.Duration // whole seconds; default 15m
	Expire  time.Duration // whole seconds; default 168h (a week)
	TTL     time.Duration // TTL of the SOA and NS records and of name server addresses, whole seconds; default 1h
}

// NameServer is one name server of the zone.
type NameServer struct {
	// Name is lowercased, without the trailing dot.
	Name string
	// Addresses are the name server's IPv4 and IPv6 addresses, which the
	// server returns for Name (and as glue with NS answers) when Name is
	// inside the zone. Only names inside the zone have them; a name inside
	// the zone given without addresses gets the IPs of DNS.Listen.
	Addresses []netip.Addr
}

// DNSHealth configures how the DNS server probes each PoP: GET /healthz on
// the PoP's admin address every Interval, answered within Timeout. A 200
// passes; a 503 "draining" takes the PoP out at once; Fall failures in a
// row take it out and Rise passes in a row bring it back. Every PoP counts
// as healthy from the start until probes prove otherwise.
type DNSHealth struct {
	Interval time.Duration // positive; default 2s
	Timeout  time.Duration // positive, at most Interval; default 1s (or Interval if shorter)
	Rise     int           // 1..100; default 2
	Fall     int           // 1..100; default 2
}

// RateLimit configures response rate limiting (RRL) of UDP answers, per
// client network (a /24 or /56 by default) and response: answers for one
// name and type, NXDOMAIN and NODATA per zone, and errors each count on
// their own, as BIND counts them. Each account refills at
// ResponsesPerSecond and holds at most Burst responses; a response over
// the limit is dropped, except every Slip-th one, which is sent empty and
// truncated (TC) so that a real client retries over TCP. TCP is never
// limited.
type RateLimit struct {
	// ResponsesPerSecond is the rate of each account; 0 (the default)
	// turns rate limiting off. 1..1000000.
	ResponsesPerSecond int
	// Burst is how many responses an idle account may send at once;
	// default ResponsesPerSecond. 1..1000000.
	Burst int
	// Slip says which limited responses are sent truncated instead of
	// dropped: every Slip-th one; 0 drops them all, 1 truncates them all.
	// 0..10; default 2.
	Slip int
	// IPv4Prefix and IPv6Prefix are the lengths of the client networks
	// that share an account: 8..32, default 24; 16..128, default 56.
	IPv4Prefix int
	IPv6Prefix int
	// TableSize is the number of accounts kept, a fixed memory bound
	// (about 32 bytes each): 1024..16777216, rounded up to a power of
	// two; default 65536. When it is full, new clients take over the
	// slots of others.
	TableSize int
}

// Enabled reports whether rate limiting is on.
func (r RateLimit) Enabled() bool { return r.ResponsesPerSecond > 0 }

// nameAt is a name and the node it was given at.
type nameAt struct {
	name string
	node *yaml.Node
	path string
}

// dns decodes the dns section and says where its values were given.
// Checks against the rest of the file happen later, in dnsRefs.
func (d *decoder) dns(n *yaml.Node, path string) (DNS, dnsAt) {
	var at dnsAt
	c := DNS{
		TTL:         defaultDNSTTL,
		NegativeTTL: defaultNegativeTTL,
		SOA: SOA{
			Serial:  defaultSOASerial,
			Refresh: defaultSOARefresh,
			Retry:   defaultSOARetry,
			Expire:  defaultSOAExpire,
			TTL:     defaultSOATTL,
		},
		Health:      DNSHealth{Interval: defaultDNSHealthIntvl, Rise: defaultDNSRise, Fall: defaultDNSFall},
		UDPSize:     defaultUDPSize,
		AnswerCache: defaultAnswerCache,
		RateLimit: RateLimit{Slip: defaultRRLSlip, IPv4Prefix: defaultRRLIPv4Prefix,
			IPv6Prefix: defaultRRLIPv6Prefix, TableSize: defaultRRLTableSize},
		States: DNSStates{Skew: defaultStateSkew}, // MaxAge: see dnsStatesRefs
		ACME:   ACME{MaxRecords: defaultACMEMax, TTL: defaultACMETTL, MaxValueSize: defaultACMEValueSize},
		DNSSEC: DNSSEC{SignatureValidity: defaultSigValidity, CacheSize: defaultSigCache},
		LoadShedding: LoadShedding{Threshold: defaultShedThreshold, Release: -1,
			ChangePerSecond: -1, MaxShare: defaultShedMaxShare}, // -1: not given, see below
	}
	ok := d.fields(n, path, []field{
		required("listen", func(n *yaml.Node, path string) { c.Listen, at.listen = d.listenList(n, path) }),
		optional("admin", func(n *yaml.Node, path string) {
			at.admin = n
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			hp, err := parseHostPort(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			c.Admin = hp.String()
		}),
		optional("ttl", d.setSeconds(&c.TTL, time.Second, maxDNSTTL)),
		optional("negative_ttl", d.setSeconds(&c.NegativeTTL, 0, maxNegativeTTL)),
		optional("soa", func(n *yaml.Node, path string) { d.soa(n, path, &c.SOA) }),
		optional("ns", func(n *yaml.Node, path string) { c.NS, at.ns = d.nameServers(n, path) }),
		optional("networks", d.setPath(&c.Networks, "networks", "no network map")),
		optional("geoip", d.setPath(&c.GeoIP, "geoip", "no geo database")),
		optional("asn", d.setPath(&c.ASN, "asn", "no ASN database")),
		optional("fallback", func(n *yaml.Node, path string) { at.fallback = d.popNameList(n, path) }),
		optional("health", func(n *yaml.Node, path string) { d.dnsHealth(n, path, &c.Health) }),
		optional("spread", d.setFloat(&c.Spread, 0, maxSpread)),
		optional("udp_size", d.setInt(&c.UDPSize, minUDPSize, maxUDPSize)),
		optional("answer_cache", d.setInt(&c.AnswerCache, 0, maxAnswerCache)),
		optional("rate_limit", func(n *yaml.Node, path string) { d.rateLimit(n, path, &c.RateLimit) }),
		optional("states", func(n *yaml.Node, path string) { d.dnsStates(n, path, &c.States, &at) }),
		optional("load_shedding", func(n *yaml.Node, path string) { d.loadShedding(n, path, &c.LoadShedding) }),
		optional("records", func(n *yaml.Node, path string) { c.Records = d.records(n, path) }), // zone.go
		optional("acme", func(n *yaml.Node, path string) { d.acme(n, path, &c.ACME) }),
		optional("dnssec", func(n *yaml.Node, path string) { d.dnssec(n, path, &c.DNSSEC) }),
	})
	if c.LoadShedding.Release < 0 { // not given: a band of 0.1 below the threshold
		c.LoadShedding.Release = max(math.Round((c.LoadShedding.Threshold-defaultShedBand)*1e6)/1e6, 0)
	}
	if c.LoadShedding.ChangePerSecond < 0 { // not given: 0.1 per TTL
		c.LoadShedding.ChangePerSecond = DefaultShedChange(c.TTL)
	}
	if ok {
		at.section = d.node(n, path)
	}
	if c.Health.Timeout == 0 {
		c.Health.Timeout = min(defaultDNSHealthTmo, c.Health.Interval)
	}
	return c, at
}

// setPath decodes a file name, relative to the configuration file, into
// dst; none says what leaving the key out means.
func (d *decoder) setPath(dst *string, key, none string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		switch {
		case !ok:
		case s == "":
			d.errorf(n, path, "%s must not be empty (remove the key for %s)", key, none)
		default:
			*dst = d.resolvePath(s)
		}
	}
}

// listenList decodes dns.listen: a non-empty list of distinct host:port
// addresses, normalized.
func (d *decoder) listenList(n *yaml.Node, path string) (out []string, at []*yaml.Node) {
	items, ok := d.list(n, path)
	if !ok {
		return nil, nil
	}
	if len(items) == 0 {
		d.errorf(n, path, `at least one address is required (e.g. ["127.0.0.1:5353"])`)
		return nil, nil
	}
	lines := make(map[string]int)
	for i, item := range items {
		p := index(path, i)
		s, ok := d.str(item, p)
		if !ok {
			continue
		}
		hp, err := parseHostPort(s)
		if err != nil {
			d.wrapf(item, p, err, "%v", err)
			continue
		}
		k := hp.String()
		if line, dup := lines[k]; dup && hp.port != 0 {
			d.errorf(item, p, "address %q is listed twice (first at line %d)", k, line)
			continue
		}
		lines[k] = item.Line
		out = append(out, k)
		at = append(at, item)
	}
	return out, at
}

// soa decodes dns.soa into s, which holds the defaults.
func (d *decoder) soa(n *yaml.Node, path string, s *SOA) {
	d.fields(n, path, []field{
		optional("mname", func(n *yaml.Node, path string) {
			if v, ok := d.dnsName(n, path); ok {
				s.MName = v
			}
		}),
		optional("rname", func(n *yaml.Node, path string) {
			v, ok := d.str(n, path)
			if !ok {
				return
			}
			r, err := normalizeMailbox(v)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			s.RName = r
		}),
		optional("serial", d.setUint32(&s.Serial)),
		optional("refresh", d.setSeconds(&s.Refresh, time.Second, maxSOATimer)),
		optional("retry", d.setSeconds(&s.Retry, time.Second, maxSOATimer)),
		optional("expire", d.setSeconds(&s.Expire, time.Second, maxSOATimer)),
		optional("ttl", d.setSeconds(&s.TTL, time.Second, maxDNSTTL)),
	})
}

// nameServers decodes dns.ns: a list whose items are a name, or a mapping
// {name, addresses}.
func (d *decoder) nameServers(n *yaml.Node, path string) (out []NameServer, at []*yaml.Node) {
	items, ok := d.list(n, path)
	if !ok {
		return nil, nil
	}
	if len(items) == 0 {
		d.errorf(n, path, "at least one name server is required (remove the key for the default ns1.<zone>)")
		return nil, nil
	}
	if len(items) > maxNameServers {
		d.errorf(n, path, "%d name servers is more than %d", len(items), maxNameServers)
		return nil, nil
	}
	lines := make(map[string]int)
	for i, item := range items {
		p := index(path, i)
		var ns NameServer
		var nameNode *yaml.Node
		if r := d.node(item, p); r != nil && r.Kind == yaml.MappingNode {
			d.fields(r, p, []field{
				required("name", func(n *yaml.Node, path string) {
					nameNode = n
					ns.Name, _ = d.dnsName(n, path)
				}),
				optional("addresses", func(n *yaml.Node, path string) { ns.Addresses = d.addrList(n, path) }),
			})
		} else {
			nameNode = item
			ns.Name, _ = d.dnsName(item, p)
		}
		if ns.Name == "" {
			continue
		}
		if line, dup := lines[ns.Name]; dup {
			d.errorf(nameNode, p, "name server %q is listed twice (first at line %d)", ns.Name, line)
			continue
		}
		lines[ns.Name] = nameNode.Line
		out = append(out, ns)
		at = append(at, item)
	}
	return out, at
}

// addrList decodes a list of distinct IP addresses.
func (d *decoder) addrList(n *yaml.Node, path string) []netip.Addr {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	var out []netip.Addr
	for i, item := range items {
		p := index(path, i)
		s, ok := d.str(item, p)
		if !ok {
			continue
		}
		a, err := parseAnswerAddr(s)
		switch {
		case err != nil:
			d.wrapf(item, p, err, "%v", err)
		case slices.Contains(out, a):
			d.errorf(item, p, "address %s is listed twice", a)
		default:
			out = append(out, a)
		}
	}
	return out
}

// popNameList decodes a list of PoP names, which dnsRefs checks once the
// PoPs are known.
func (d *decoder) popNameList(n *yaml.Node, path string) []nameAt {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	var out []nameAt
	for i, item := range items {
		p := index(path, i)
		var name string
		d.name(item, p, &name)
		if name == "" {
			continue
		}
		if j := slices.IndexFunc(out, func(a nameAt) bool { return a.name == name }); j >= 0 {
			d.errorf(item, p, "PoP %q is listed twice (first at line %d)", name, out[j].node.Line)
			continue
		}
		out = append(out, nameAt{name: name, node: item, path: p})
	}
	return out
}

// dnsHealth decodes dns.health into h, which holds the defaults.
func (d *decoder) dnsHealth(n *yaml.Node, path string, h *DNSHealth) {
	var timeoutAt *yaml.Node
	d.fields(n, path, []field{
		optional("interval", d.setPositiveDuration(&h.Interval, "interval")),
		optional("timeout", func(n *yaml.Node, path string) {
			timeoutAt = n
			d.setPositiveDuration(&h.Timeout, "timeout")(n, path)
		}),
		optional("rise", d.setInt(&h.Rise, 1, 100)),
		optional("fall", d.setInt(&h.Fall, 1, 100)),
	})
	switch {
	case h.Timeout == 0:
		h.Timeout = min(defaultDNSHealthTmo, h.Interval)
	case h.Timeout > h.Interval:
		d.errorf(timeoutAt, join(path, "timeout"), "timeout %s is longer than the interval %s", formatDuration(h.Timeout), formatDuration(h.Interval))
	}
}

// rateLimit decodes dns.rate_limit into r, which holds the defaults.
func (d *decoder) rateLimit(n *yaml.Node, path string, r *RateLimit) {
	var burstAt *yaml.Node
	d.fields(n, path, []field{
		optional("responses_per_second", d.setInt(&r.ResponsesPerSecond, 0, maxRRLRate)),
		optional("burst", func(n *yaml.Node, path string) {
			burstAt = n
			d.setInt(&r.Burst, 1, maxRRLRate)(n, path)
		}),
		optional("slip", d.setInt(&r.Slip, 0, 10)),
		optional("ipv4_prefix", d.setInt(&r.IPv4Prefix, 8, 32)),
		optional("ipv6_prefix", d.setInt(&r.IPv6Prefix, 16, 128)),
		optional("table_size", d.setInt(&r.TableSize, 1024, maxRRLTableSize)),
	})
	switch {
	case r.Burst > 0 && r.ResponsesPerSecond == 0 && burstAt != nil:
		d.errorf(burstAt, join(path, "burst"), "burst needs responses_per_second (rate limiting is off without it)")
	case r.Burst == 0:
		r.Burst = r.ResponsesPerSecond
	}
	if r.TableSize&(r.TableSize-1) != 0 {
		r.TableSize = 1 << bits.Len(uint(r.TableSize))
	}
}

// DefaultShedChange is dns.load_shedding.change_per_second when the file
// does not give it: 0.1 of a PoP's users per TTL of geo answers, at most
// 0.015 a second, rounded to 4 decimals. Simulations of resolvers that
// cache answers for up to twice the TTL, with states that lag two
// seconds, settle inside the band with it; 0.02 a second with a 30s TTL
// swings between release and threshold for ever.
func DefaultShedChange(ttl time.Duration) float64 {
	if ttl <= 0 {
		ttl = defaultDNSTTL
	}
	v := min(defaultShedChangePerTTL/ttl.Seconds(), maxDefaultShedChange)
	return max(math.Round(v*1e4)/1e4, 1e-4)
}

// dnsStates decodes dns.states into s, which holds the defaults but for
// MaxAge (dnsRefs sets it from control.state_interval when not given).
// at keeps where each key was, for the checks of dnsRefs.
func (d *decoder) dnsStates(n *yaml.Node, path string, s *DNSStates, at *dnsAt) {
	d.fields(n, path, []field{
		optional("max_age", func(n *yaml.Node, path string) {
			v, ok := d.duration(n, path)
			switch {
			case !ok:
			case v < minStateMaxAge || v > maxStateMaxAge:
				d.errorf(n, path, "%s is out of range (want %s..%s)", formatDuration(v), formatDuration(minStateMaxAge), formatDuration(maxStateMaxAge))
			default:
				s.MaxAge, at.stateMaxAge = v, n
			}
		}),
		optional("skew", func(n *yaml.Node, path string) {
			if v, ok := d.duration(n, path); ok {
				s.Skew, at.stateSkew = v, n
			}
		}),
	})
}

// dnsStatesRefs applies the default of dns.states.max_age, twice the
// interval at which PoPs publish their states, and checks the states'
// settings against it.
func (d *decoder) dnsStatesRefs(c *Config, at *dnsAt) {
	s := &c.DNS.States
	interval := DefaultControlStateInterval
	if c.Control.Enabled() && c.Control.StateInterval > 0 {
		interval = c.Control.StateInterval
	}
	switch {
	case s.MaxAge == 0:
		s.MaxAge = min(max(defaultStateMaxAgeFactor*interval, minStateMaxAge), maxStateMaxAge)
	case s.MaxAge <= interval:
		d.errorf(at.stateMaxAge, "dns.states.max_age", "%s is not longer than control.state_interval %s: every PoP would go stale between two of its states (the default is twice the interval, %s)",
			formatDuration(s.MaxAge), formatDuration(interval), formatDuration(defaultStateMaxAgeFactor*interval))
	}
	if s.Skew > s.MaxAge && at.stateSkew != nil {
		d.errorf(at.stateSkew, "dns.states.skew", "skew %s is longer than max_age %s", formatDuration(s.Skew), formatDuration(s.MaxAge))
	}
}

// loadShedding decodes dns.load_shedding into l, which holds the
// defaults (Release -1: not given).
func (d *decoder) loadShedding(n *yaml.Node, path string, l *LoadShedding) {
	var thresholdAt, releaseAt, changeAt *yaml.Node
	d.fields(n, path, []field{
		optional("threshold", func(n *yaml.Node, path string) {
			thresholdAt = n
			d.setFloat(&l.Threshold, 0, maxShedThreshold)(n, path)
		}),
		optional("release", func(n *yaml.Node, path string) {
			releaseAt = n
			d.setFloat(&l.Release, 0, maxShedThreshold)(n, path)
		}),
		optional("change_per_second", func(n *yaml.Node, path string) {
			changeAt = n
			d.setFloat(&l.ChangePerSecond, 0, 1)(n, path)
		}),
		optional("max_share", d.setFloat(&l.MaxShare, 0, 1)),
	})
	switch {
	case l.Threshold == 0 && thresholdAt != nil:
		d.errorf(thresholdAt, join(path, "threshold"), "threshold must be above 0 (set max_share: 0 to turn load shedding off)")
	case l.Release > l.Threshold && releaseAt != nil:
		d.errorf(releaseAt, join(path, "release"), "release %g is above the threshold %g; users would come back while the PoP is still over it", l.Release, l.Threshold)
	}
	if l.ChangePerSecond == 0 && changeAt != nil {
		d.errorf(changeAt, join(path, "change_per_second"), "change_per_second must be above 0 (set max_share: 0 to turn load shedding off)")
	}
}

// dnsRefs fills the PoPs' answer addresses from their listen addresses and,
// when the file has a dns section (given at pos), checks it against the
// rest of the file and applies the defaults that depend on it. It runs once
// the whole file is decoded.
func (d *decoder) dnsRefs(c *Config, pos *dnsAt) {
	for i := range c.POPs {
		p := &c.POPs[i]
		hp, err := parseHostPort(p.Listen)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(hp.host); err == nil && !a.IsUnspecified() {
			switch {
			case a.Is4() && !p.Address.IsValid():
				p.Address = a
			case a.Is6() && !p.Address6.IsValid():
				p.Address6 = a
			}
		}
	}
	dc := &c.DNS
	at, fallback, listenAt, adminAt, nsAt := pos.section, pos.fallback, pos.listen, pos.admin, pos.ns
	if !dc.Enabled() || at == nil {
		return
	}
	const path = "dns"
	d.dnsStatesRefs(c, pos)
	if c.Zone == "" {
		if !d.reported("zone") {
			d.errorf(at, path, "the dns section needs the top-level zone key (the DNS zone to answer for, e.g. zone: cdn.example)")
		}
		return
	}
	if !slices.ContainsFunc(c.Services, func(s Service) bool {
		return slices.ContainsFunc(s.Hostnames, func(h string) bool { return inZone(h, c.Zone) })
	}) && len(c.Services) > 0 {
		d.errorf(at, path, "no service hostname is inside zone %q, so DNS would answer for no service", c.Zone)
	}

	// Name servers: the default, addresses, and clashes with hostnames.
	if len(dc.NS) == 0 {
		dc.NS = []NameServer{{Name: "ns1." + c.Zone}}
	}
	var listenIPs []netip.Addr
	for _, l := range dc.Listen {
		if hp, err := parseHostPort(l); err == nil {
			if a, err := netip.ParseAddr(hp.host); err == nil && !a.IsUnspecified() && !slices.Contains(listenIPs, a) {
				listenIPs = append(listenIPs, a)
			}
		}
	}
	for i := range dc.NS {
		ns := &dc.NS[i]
		nsNode := at
		if i < len(nsAt) {
			nsNode = nsAt[i]
		}
		switch {
		case !inZone(ns.Name, c.Zone) && len(ns.Addresses) > 0:
			d.errorf(nsNode, fmt.Sprintf("dns.ns[%d].addresses", i), "name server %q is outside zone %q: the server cannot answer for its addresses (remove them)", ns.Name, c.Zone)
		case inZone(ns.Name, c.Zone) && len(ns.Addresses) == 0:
			ns.Addresses = slices.Clone(listenIPs)
		}
		if _, ok := c.ServiceByHost(ns.Name); ok {
			d.errorf(nsNode, fmt.Sprintf("dns.ns[%d]", i), "name server %q is also a service hostname; a name is one or the other", ns.Name)
		}
	}
	if dc.SOA.MName == "" {
		dc.SOA.MName = dc.NS[0].Name
	}
	if dc.SOA.RName == "" {
		dc.SOA.RName = "hostmaster." + c.Zone
	}
	d.acmeEnv(&dc.ACME)
	d.zoneRefs(c, at)

	// PoPs: each needs an address to answer with. If the PoPs failed to
	// decode there is nothing useful to say.
	if len(c.POPs) == 0 || d.reported("pops") {
		return
	}
	for i, p := range c.POPs {
		if !p.Address.IsValid() && !p.Address6.IsValid() && p.Name != "" {
			d.errorf(at, path, "PoP %q (pops[%d]) has no address to answer with: its listen host in %q is not an IP address; set pops[%d].address (IPv4) or address6", p.Name, i, p.Listen, i)
		}
	}
	d.dnsClashes(c, listenAt, adminAt)

	// Fallback order: the names given, then the other PoPs in file order.
	dc.Fallback = dc.Fallback[:0]
	for _, f := range fallback {
		if !slices.ContainsFunc(c.POPs, func(p POP) bool { return p.Name == f.name }) {
			d.errorf(f.node, f.path, "no PoP is named %q (have %s)", f.name, c.popNames())
			continue
		}
		dc.Fallback = append(dc.Fallback, f.name)
	}
	for _, p := range c.POPs {
		if p.Name != "" && !slices.Contains(dc.Fallback, p.Name) {
			dc.Fallback = append(dc.Fallback, p.Name)
		}
	}
}

// dnsClashes reports DNS listen and admin addresses (given at listenAt and
// adminAt) that clash with each other or with a PoP's TCP listeners on the
// same machine.
func (d *decoder) dnsClashes(c *Config, listenAt []*yaml.Node, adminAt *yaml.Node) {
	type use struct {
		hp   hostPort
		what string
		at   *yaml.Node
	}
	var taken []use
	for i, p := range c.POPs {
		for _, a := range []struct{ addr, key string }{{p.Listen, "listen"}, {p.Admin, "admin"}} {
			if hp, err := parseHostPort(a.addr); err == nil {
				taken = append(taken, use{hp, fmt.Sprintf("pops[%d].%s of PoP %q", i, a.key, p.Name), nil})
			}
		}
	}
	mine := make([]use, 0, len(c.DNS.Listen)+1)
	for i, l := range c.DNS.Listen {
		if hp, err := parseHostPort(l); err == nil && i < len(listenAt) {
			mine = append(mine, use{hp, fmt.Sprintf("dns.listen[%d]", i), listenAt[i]})
		}
	}
	if c.DNS.Admin != "" {
		if hp, err := parseHostPort(c.DNS.Admin); err == nil {
			for _, m := range mine {
				if hp.clashes(m.hp) {
					d.errorf(adminAt, "dns.admin", "admin address %q clashes with %s %q", c.DNS.Admin, m.what, m.hp)
				}
			}
			mine = append(mine, use{hp, "dns.admin", adminAt})
		}
	}
	for _, m := range mine {
		for _, t := range taken {
			if m.hp.clashes(t.hp) {
				d.errorf(m.at, m.what, "address %q clashes with %s (%q); use another port", m.hp, t.what, t.hp)
			}
		}
	}
}

// reported reports whether a problem was already recorded at key or
// inside it, so that later checks do not pile on.
func (d *decoder) reported(key string) bool {
	return slices.ContainsFunc(d.problems, func(p *problem) bool {
		return p.key == key || strings.HasPrefix(p.key, key+".") || strings.HasPrefix(p.key, key+"[")
	})
}

// inZone reports whether name (lowercase, no trailing dot) is zone or
// inside it.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// dnsName decodes a DNS name, lowercased without the trailing dot.
func (d *decoder) dnsName(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	if err := checkDNSName(name); err != nil {
		d.wrapf(n, path, err, "name %q: %v", s, err)
		return "", false
	}
	return name, true
}

// normalizeMailbox turns an SOA RNAME given as a DNS name
// (hostmaster.cdn.example) or an email address (hostmaster@cdn.example)
// into the DNS form, lowercased without the trailing dot.
func normalizeMailbox(s string) (string, error) {
	name := s
	if local, domain, ok := strings.Cut(s, "@"); ok {
		if strings.Contains(local, ".") || local == "" {
			return "", fmt.Errorf("rname %q: the part before @ must be a single label, without dots", s)
		}
		name = local + "." + domain
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("rname %q: %w", s, err)
	}
	return name, nil
}

// parseAnswerAddr parses an IP address that DNS answers may carry: unicast,
// without a zone; IPv4-mapped IPv6 addresses become IPv4.
func parseAnswerAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	a = a.Unmap()
	switch {
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("address %q: IPv6 zones are not supported", s)
	case a.IsUnspecified(), a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("address %q cannot be given to clients (want a unicast address)", s)
	}
	return a, nil
}

// setAnswerAddr returns a decodeFunc that stores in dst an address of the
// family given (IPv6 when v6), for a PoP's address and address6.
func (d *decoder) setAnswerAddr(dst *netip.Addr, v6 bool) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		a, err := parseAnswerAddr(s)
		switch {
		case err != nil:
			d.wrapf(n, path, err, "%v", err)
		case v6 && a.Is4():
			d.errorf(n, path, "%s is an IPv4 address; put it in address", a)
		case !v6 && a.Is6():
			d.errorf(n, path, "%s is an IPv6 address; put it in address6", a)
		default:
			*dst = a
		}
	}
}

// setSeconds returns a decodeFunc that stores in dst a duration of whole
// seconds in [lo, hi], as DNS TTLs and SOA timers are.
func (d *decoder) setSeconds(dst *time.Duration, lo, hi time.Duration) decodeFunc {
	return func(n *yaml.Node, path string) {
		v, ok := d.duration(n, path)
		switch {
		case !ok:
		case v%time.Second != 0:
			d.errorf(n, path, "%s is not a whole number of seconds (DNS counts time in seconds)", formatDuration(v))
		case v < lo || v > hi:
			d.errorf(n, path, "%s is out of range (want %s..%s)", formatDuration(v), formatDuration(lo), formatDuration(hi))
		default:
			*dst = v
		}
	}
}

// setPositiveDuration returns a decodeFunc that stores a duration > 0 in
// dst; what names the setting in the message.
func (d *decoder) setPositiveDuration(dst *time.Duration, what string) decodeFunc {
	return func(n *yaml.Node, path string) {
		v, ok := d.duration(n, path)
		switch {
		case !ok:
		case v == 0:
			d.errorf(n, path, "%s must be positive (remove the key for the default)", what)
		default:
			*dst = v
		}
	}
}

// setUint32 returns a decodeFunc that stores a whole number in
// 0..4294967295 in dst.
func (d *decoder) setUint32(dst *uint32) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "a whole number")
		if !ok {
			return
		}
		var v int64
		if s.Tag != "!!int" || s.Decode(&v) != nil {
			d.errorf(s, path, "want a whole number, got %s", describe(s))
			return
		}
		if v < 0 || v > math.MaxUint32 {
			d.errorf(s, path, "%s is out of range (want 0..%d)", s.Value, uint32(math.MaxUint32))
			return
		}
		*dst = uint32(v)
	}
}

// resolvePath makes name, relative to the config file's directory unless
// absolute, an absolute path.
func (d *decoder) resolvePath(name string) string {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return path
}

// errNoDNS is returned by DNSConfig for a file without a dns section.
var errNoDNS = errors.New("config: the file has no dns section")

// DNSConfig returns the dns section, or an error naming the file when it
// has none.
func (c *Config) DNSConfig() (*DNS, error) {
	if !c.DNS.Enabled() {
		return nil, fmt.Errorf("%w (%s): add one to run the DNS server (see deploy/examples/lab.yaml)", errNoDNS, c.Path)
	}
	return &c.DNS, nil
}
