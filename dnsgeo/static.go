package dnsgeo

import (
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// staticRRs holds the zone's static records (dns.records) by owner and
// type, and its delegations. It is part of the immutable zone.
type staticRRs struct {
	sets        map[string]map[uint16][]dns.RR // owner (lowercased, fully qualified) → type → RRset
	delegations map[string][]dns.RR            // delegated name → its NS RRset
}

// addStatic builds the static records of dc into z.
func (z *zone) addStatic(records []config.Record) {
	z.static = staticRRs{sets: make(map[string]map[uint16][]dns.RR), delegations: make(map[string][]dns.RR)}
	for _, r := range records {
		rr := staticRR(r)
		if rr == nil {
			continue
		}
		name := rr.Header().Name
		t := rr.Header().Rrtype
		if z.static.sets[name] == nil {
			z.static.sets[name] = make(map[uint16][]dns.RR)
		}
		z.static.sets[name][t] = append(z.static.sets[name][t], rr)
		if t == dns.TypeNS && name != z.name {
			z.static.delegations[name] = append(z.static.delegations[name], rr)
			z.add(name, kindDelegation)
			continue
		}
		if t == dns.TypeDS { // at a delegation (config checks it): the parent's side of a signed child
			z.add(name, kindDelegation)
			continue
		}
		z.add(name, kindStatic)
	}
}

// staticRR makes the resource record of r.
func staticRR(r config.Record) dns.RR {
	hdr := dns.RR_Header{Name: dns.Fqdn(r.Name), Class: dns.ClassINET, Ttl: seconds(r.TTL)}
	switch r.Type {
	case "A":
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: net.IP(r.Addr.AsSlice())}
	case "AAAA":
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: net.IP(r.Addr.AsSlice())}
	case "CNAME":
		hdr.Rrtype = dns.TypeCNAME
		return &dns.CNAME{Hdr: hdr, Target: dns.Fqdn(r.Target)}
	case "NS":
		hdr.Rrtype = dns.TypeNS
		return &dns.NS{Hdr: hdr, Ns: dns.Fqdn(r.Target)}
	case "MX":
		hdr.Rrtype = dns.TypeMX
		return &dns.MX{Hdr: hdr, Preference: r.Preference, Mx: dns.Fqdn(r.Target)}
	case "TXT":
		hdr.Rrtype = dns.TypeTXT
		return &dns.TXT{Hdr: hdr, Txt: txtStrings(r.Text)}
	case "CAA":
		hdr.Rrtype = dns.TypeCAA
		return &dns.CAA{Hdr: hdr, Flag: r.Flag, Tag: r.Tag, Value: escapeText(r.Text)}
	case "DS":
		hdr.Rrtype = dns.TypeDS
		return &dns.DS{Hdr: hdr, KeyTag: r.KeyTag, Algorithm: r.Algorithm, DigestType: r.DigestType, Digest: r.Text}
	}
	return nil
}

// txtStrings cuts text into the character-strings of a TXT record, 255
// octets at most each, in the dns package's escaped form.
func txtStrings(text string) []string {
	var out []string
	for len(text) > 255 {
		out = append(out, escapeText(text[:255]))
		text = text[255:]
	}
	return append(out, escapeText(text))
}

// escapeText escapes s as the dns package reads the text of TXT and CAA
// records: '"' and '\' with a backslash, other bytes outside printable
// ASCII as \DDD.
func escapeText(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' || r == '"' || r == '\\' }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			d := strconv.Itoa(int(c))
			b.WriteString(strings.Repeat("0", 3-len(d)) + d)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// delegation returns the delegated name at or above name (lowercased,
// fully qualified, in the zone, not the apex), or "" when name is not
// delegated.
func (z *zone) delegation(name string) string {
	if len(z.static.delegations) == 0 {
		return ""
	}
	for n := name; n != z.name && len(n) > len(z.name); {
		if _, ok := z.static.delegations[n]; ok {
			return n
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			return ""
		}
		n = n[i+1:]
	}
	return ""
}

// withOwner returns rrs with owner as their name (the letter case the
// client used), copying them when it differs.
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	if len(rrs) == 0 || rrs[0].Header().Name == owner {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
	}
	return out
}
