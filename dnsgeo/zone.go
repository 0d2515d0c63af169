package dnsgeo

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// nameKind says what a name in the zone holds; a name can be the apex and
// a service at once.
type nameKind uint8

const (
	kindApex       nameKind = 1 << iota // SOA and NS
	kindService                         // geo A and AAAA
	kindNS                              // a name server's addresses
	kindEmpty                           // exists only because names below it do (RFC 8020)
	kindStatic                          // has records of dns.records
	kindDelegation                      // delegated to other name servers (NS in dns.records)
)

// zone is the static part of the zone: the names that exist and the
// records that do not depend on the client. It is immutable after
// newZone.
type zone struct {
	name     string // lowercased, fully qualified ("cdn.example.")
	names    map[string]nameKind
	soa      dns.SOA  // header name is the zone; TTL the SOA TTL
	ns       []string // name server names, fully qualified
	nsAddrs  map[string][2][]net.IP
	ttl      uint32            // of geo answers
	negTTL   uint32            // of the SOA in negative answers: min(SOA TTL, minimum), RFC 2308 §3
	zoneTTL  uint32            // of SOA, NS and name server addresses
	services int               // service names in the zone
	canon    map[string]string // each name of names, to itself: parsed queries reuse the string
	static   staticRRs         // dns.records
}

// newZone builds the zone from the configuration.
func newZone(cfg *config.Config) *zone {
	dc := &cfg.DNS
	z := &zone{
		name:    dns.Fqdn(cfg.Zone),
		names:   make(map[string]nameKind),
		nsAddrs: make(map[string][2][]net.IP),
		ttl:     seconds(dc.TTL),
		zoneTTL: seconds(dc.SOA.TTL),
	}
	z.negTTL = min(z.zoneTTL, seconds(dc.NegativeTTL))
	z.soa = dns.SOA{
		Hdr:     dns.RR_Header{Name: z.name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.zoneTTL},
		Ns:      dns.Fqdn(dc.SOA.MName),
		Mbox:    dns.Fqdn(dc.SOA.RName),
		Serial:  dc.SOA.Serial,
		Refresh: seconds(dc.SOA.Refresh),
		Retry:   seconds(dc.SOA.Retry),
		Expire:  seconds(dc.SOA.Expire),
		Minttl:  seconds(dc.NegativeTTL),
	}
	z.add(z.name, kindApex)
	for _, s := range cfg.Services {
		for _, h := range s.Hostnames {
			if n := dns.Fqdn(h); z.contains(n) {
				z.add(n, kindService)
				z.services++
			}
		}
	}
	for _, ns := range dc.NS {
		n := dns.Fqdn(ns.Name)
		z.ns = append(z.ns, n)
		if !z.contains(n) {
			continue
		}
		z.add(n, kindNS)
		var addrs [2][]net.IP
		for _, a := range ns.Addresses {
			f := v4
			if a.Is6() {
				f = v6
			}
			addrs[f] = append(addrs[f], net.IP(a.AsSlice()))
		}
		z.nsAddrs[n] = addrs
	}
	z.addStatic(dc.Records)
	z.canon = make(map[string]string, len(z.names))
	for n := range z.names {
		z.canon[n] = n
	}
	return z
}

// add records that name (lowercased, fully qualified, in the zone) has
// kind, and that the names between it and the apex exist.
func (z *zone) add(name string, kind nameKind) {
	z.names[name] |= kind
	for n := name; n != z.name; {
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return
		}
		n = n[i+1:]
		if z.names[n] == 0 {
			z.names[n] = kindEmpty
		}
	}
}

// contains reports whether the fully qualified name, lowercased, is the
// apex or below it. A dot escaped with a backslash is part of a label,
// so "a\.cdn.example." is not below "example." by way of "cdn".
func (z *zone) contains(name string) bool {
	if name == z.name {
		return true
	}
	if len(name) <= len(z.name) || !strings.HasSuffix(name, z.name) || name[len(name)-len(z.name)-1] != '.' {
		return false
	}
	// The dot before the zone must not be escaped: count the backslashes
	// before it.
	i, n := len(name)-len(z.name)-2, 0
	for ; i >= 0 && name[i] == '\\'; i-- {
		n++
	}
	return n%2 == 0
}

// seconds converts a configured duration to a TTL.
func seconds(d time.Duration) uint32 {
	return uint32(min(max(d/time.Second, 0), 1<<31-1))
}
