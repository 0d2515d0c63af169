package dnsgeo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo/dnssec"
)

// Online signing (dns.dnssec). A query with the DO bit (RFC 3225) gets
// its answer signed as it is made: every RRset of the answer and
// authority sections with its RRSIGs (package dnssec caches them per
// RRset), and authenticated denial in compact form (RFC 9824, "black
// lies"): an NSEC record at the name asked, whose next name is the
// name's immediate successor (\000.NAME), so that it covers no other
// name and the zone cannot be walked. NODATA gets that NSEC with the
// types the name has; NXDOMAIN becomes NOERROR with an NSEC whose only
// types are RRSIG, NSEC and NXNAME. A referral carries an NSEC proving
// the delegation has no DS (an unsigned child). The zone has no
// wildcards, so no answer needs a wildcard proof. Queries without DO get
// the unsigned answers they always had.

// loadSigner loads the keys of dc and makes the zone's signer; nil when
// the zone is not signed. old is the running signer: when the keys and
// settings are the same it is kept, with its cache.
func (s *Server) loadSigner(cfg *config.Config, z *zone, old *dnssec.Signer) (*dnssec.Signer, error) {
	ds := cfg.DNS.DNSSEC
	if !ds.Enabled() {
		return nil, nil
	}
	var keys []*dnssec.Key
	for _, k := range ds.Keys {
		key, err := dnssec.Load(k.File, !k.Published)
		if err != nil {
			return nil, fmt.Errorf("dnsgeo: dns.dnssec: %w", err)
		}
		keys = append(keys, key)
	}
	opts := dnssec.Options{Validity: ds.SignatureValidity, CacheSize: ds.CacheSize, DNSKEYTTL: z.zoneTTL, Now: s.now}
	if old != nil && sameKeys(old.Keys(), keys) && old.Options().Validity == opts.Validity && old.Options().CacheSize == opts.CacheSize && old.Options().DNSKEYTTL == opts.DNSKEYTTL {
		return old, nil
	}
	signer, err := dnssec.NewSigner(z.name, keys, opts)
	if err != nil {
		return nil, fmt.Errorf("dnsgeo: dns.dnssec: %w", err)
	}
	return signer, nil
}

// sameKeys reports whether a and b are the same keys in the same states.
func sameKeys(a, b []*dnssec.Key) bool {
	return slices.EqualFunc(a, b, func(x, y *dnssec.Key) bool {
		return x.Active == y.Active && x.DNSKEY.String() == y.DNSKEY.String()
	})
}

// sign adds the DNSSEC records to resp, the answer to q made by answer,
// for a query with the DO bit.
func (st *state) sign(q dns.Question, resp *dns.Msg) {
	z := st.zone
	// The name denied: the name asked, or the end of its CNAMEs.
	name := strings.ToLower(q.Name)
	if n := len(resp.Answer); n > 0 {
		if cn, ok := resp.Answer[n-1].(*dns.CNAME); ok {
			name = strings.ToLower(cn.Target)
		}
	}
	switch {
	case resp.Rcode == dns.RcodeNameError:
		// RFC 9824 §3.1: NOERROR, and an NSEC at the name with NXNAME.
		resp.Rcode = dns.RcodeSuccess
		resp.Ns = append(resp.Ns, st.nsec(name, []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME}))
	case resp.Rcode != dns.RcodeSuccess:
		return
	case !resp.Authoritative && len(resp.Ns) > 0:
		// A referral (RFC 4035 §3.1.4): the NS RRset is the child's and
		// unsigned; the DS RRset, when the child is signed, is signed,
		// else an NSEC proves there is no DS.
		d := strings.ToLower(resp.Ns[0].Header().Name)
		if ds := z.static.sets[d][dns.TypeDS]; len(ds) > 0 {
			resp.Ns = append(resp.Ns, ds...)
		} else {
			resp.Ns = append(resp.Ns, st.nsec(d, st.typesAt(d)))
		}
	case len(resp.Ns) > 0 && resp.Ns[0].Header().Rrtype == dns.TypeSOA:
		// NODATA at the name asked, or at the end of its CNAMEs.
		if z.contains(name) {
			resp.Ns = append(resp.Ns, st.nsec(name, st.typesAt(name)))
		}
	}
	resp.Answer = st.signSection(resp.Answer, false)
	resp.Ns = st.signSection(resp.Ns, !resp.Authoritative)
}

// signSection returns rrs with the RRSIGs of each of its RRsets after
// it. In a referral (referral true) the NS RRset is left unsigned.
func (st *state) signSection(rrs []dns.RR, referral bool) []dns.RR {
	if len(rrs) == 0 {
		return rrs
	}
	out := make([]dns.RR, 0, 2*len(rrs))
	for i := 0; i < len(rrs); {
		h := rrs[i].Header()
		j := i + 1
		for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && strings.EqualFold(rrs[j].Header().Name, h.Name) {
			j++
		}
		out = append(out, rrs[i:j]...)
		if !(referral && h.Rrtype == dns.TypeNS) {
			sigs, err := st.signer.Sign(rrs[i:j])
			if err == nil {
				out = append(out, sigs...)
			}
		}
		i = j
	}
	return out
}

// nsec makes the compact-denial NSEC record of name (lowercased, in the
// zone) with the types given (RFC 9824 §3): its next name is \000.name,
// the first name after it in canonical order.
//
// A name too long for one more label gets, as next name, its first
// label with its last octet incremented: between the two lie only names
// below it, which cannot exist, being too long.
func (st *state) nsec(name string, types []uint16) dns.RR {
	slices.Sort(types)
	next := `\000.` + name
	if off, _ := dns.PackDomainName(next, make([]byte, 512), 0, nil, false); off == 0 || off > 255 {
		next = successor(name)
	}
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: st.zone.negTTL},
		NextDomain: next,
		TypeBitMap: slices.Compact(types),
	}
}

// successor returns name with the last octet of its first label
// incremented (in \DDD form), or name itself when that octet is 255.
func successor(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) == 0 {
		return name
	}
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(labels[0]+".", buf, 0, nil, false)
	if err != nil || n < 3 || buf[n-2] == 255 {
		return name
	}
	first := buf[1 : n-1]
	first[len(first)-1]++
	var b strings.Builder
	for _, c := range first {
		if plainNameByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	return b.String() + name[len(labels[0]):]
}

// typesAt lists the types name (lowercased, in the zone) has, with RRSIG
// and NSEC, for its NSEC record.
func (st *state) typesAt(name string) []uint16 {
	z := st.zone
	types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
	kind := z.names[name]
	if kind&kindApex != 0 {
		types = append(types, dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY)
	}
	if kind&kindService != 0 {
		if len(st.byFamily[v4]) > 0 {
			types = append(types, dns.TypeA)
		}
		if len(st.byFamily[v6]) > 0 {
			types = append(types, dns.TypeAAAA)
		}
	}
	if kind&kindNS != 0 {
		if len(z.nsAddrs[name][v4]) > 0 {
			types = append(types, dns.TypeA)
		}
		if len(z.nsAddrs[name][v6]) > 0 {
			types = append(types, dns.TypeAAAA)
		}
	}
	for t := range z.static.sets[name] {
		types = append(types, t)
	}
	if st.acme != nil && st.acme.has(name) {
		types = append(types, dns.TypeTXT)
	}
	return types
}
