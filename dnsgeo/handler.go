package dnsgeo

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// outcome is what answering one query did, for the metrics.
type outcome struct {
	qtype     uint16
	rcode     int
	pop       *pop // the PoP answered with; nil when none
	ecs       bool // the answer depended on the ECS subnet
	by        int  // index of what placed the client (locators, then fallback); -1 when no decision was made
	failover  bool
	failOpen  bool
	shedFrom  *pop // the PoP that shed this client for load; nil when none did
	truncated bool
}

// ServeDNS answers one query; it implements dns.Handler. A message that is
// not a query gets no reply. UDP replies over the rate limit are dropped
// or sent empty and truncated (see rrl).
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	src, tcp := remote(w)
	if resp := s.reply(req, src, tcp, new(scratch)); resp != nil {
		s.write(w, resp, src)
	}
}

// reply returns the reply to req from src, over TCP or UDP, ready to
// pack; nil means none is sent.
func (s *Server) reply(req *dns.Msg, src netip.Addr, tcp bool, sc *scratch) *dns.Msg {
	resp, _, _ := s.replyState(s.state.Load(), req, src, tcp, sc)
	return resp
}

// replyState is reply under the state st. plain reports that the reply
// is the answer as made: neither slipped by the rate limit nor truncated
// (the answer cache keeps only those), and out is what answering it did.
func (s *Server) replyState(st *state, req *dns.Msg, src netip.Addr, tcp bool, sc *scratch) (_ *dns.Msg, out outcome, plain bool) {
	resp, out, limit := st.respond(req, src, s.moment(st), sc)
	if resp == nil {
		return nil, out, false
	}
	if tcp {
		resp.Compress = true
		s.metrics.count(st, out)
		return resp, out, false
	}
	if st.rrl != nil {
		kind, name, qtype := rrlKind(st, resp)
		switch st.rrl.check(st.rrl.key(src, kind, name, qtype), s.now().UnixNano()) {
		case rrlDrop:
			s.metrics.rrlDropped.Add(1)
			return nil, out, false
		case rrlSlip:
			s.metrics.rrlSlipped.Add(1)
			slip(resp)
			return resp, out, false
		}
	}
	if !fits(resp, limit) {
		truncate(resp, limit)
		out.truncated = resp.Truncated
	}
	s.metrics.count(st, out) // before the reply leaves, so a client that got it sees it counted
	return resp, out, !out.truncated
}

// truncate cuts resp to at most limit bytes. TC is set only when records
// of the answer or authority sections had to go: RFC 2181 §9 says not to
// set it when the client has all it needs, and additional records
// (addresses of name servers) are extras it can look up.
//
// A referral's glue is required, though (RFC 9471 §3): TC is set when
// any of it had to go.
func truncate(resp *dns.Msg, limit int) {
	an, ns, ex := len(resp.Answer), len(resp.Ns), len(resp.Extra)
	referral := !resp.Authoritative && len(resp.Ns) > 0 && resp.Rcode == dns.RcodeSuccess
	resp.Truncate(limit)
	resp.Truncated = len(resp.Answer) < an || len(resp.Ns) < ns || referral && len(resp.Extra) < ex
}

// fits reports, cheaply, that resp surely packs into limit bytes without
// compression: a reply with at most one A or AAAA record and no other
// record but OPT (with at most an ECS option), for a name short enough.
// Most geo answers are such; Truncate would measure them by packing.
func fits(resp *dns.Msg, limit int) bool {
	if len(resp.Ns) > 0 || len(resp.Answer) > 1 || len(resp.Extra) > 1 || len(resp.Question) != 1 {
		return false
	}
	if len(resp.Answer) == 1 {
		if t := resp.Answer[0].Header().Rrtype; t != dns.TypeA && t != dns.TypeAAAA {
			return false
		}
	}
	if len(resp.Extra) == 1 {
		opt, ok := resp.Extra[0].(*dns.OPT)
		if !ok || len(opt.Option) > 1 {
			return false
		}
	}
	// header 12; question name+4; answer name+10+16; OPT 11+ECS 4+4+16:
	// each name's wire form is at most its text length+1.
	n := len(resp.Question[0].Name) + 1
	return 12+n+4+n+26+35 <= limit
}

// write sends resp.
func (s *Server) write(w dns.ResponseWriter, resp *dns.Msg, src netip.Addr) {
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("writing a DNS reply", "err", err, "client", src)
	}
}

// slip empties resp and sets TC, so that the client asks again over TCP
// (RRL's slip). The question and the OPT record stay.
func slip(resp *dns.Msg) {
	resp.Truncated = true
	resp.Answer, resp.Ns = nil, nil
	extra := resp.Extra[:0]
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	resp.Extra = extra
}

// remote returns the client's address and whether it came over TCP.
func remote(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), false
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), true
	}
	return netip.Addr{}, false
}

// respond builds the reply to req from src, and the largest size a UDP
// reply may have. A nil reply means none is sent.
func (st *state) respond(req *dns.Msg, src netip.Addr, m moment, sc *scratch) (*dns.Msg, outcome, int) {
	out := outcome{by: -1}
	if req.Response {
		return nil, out, 0 // never answer an answer: no loops, no reflection
	}
	resp := sc.reset(req)
	if len(req.Question) > 0 {
		out.qtype = req.Question[0].Qtype
	}

	// EDNS (RFC 6891): one OPT at the root at most.
	var opt *dns.OPT
	for _, rr := range req.Extra {
		o, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		if opt != nil || o.Hdr.Name != "." {
			return st.fail(resp, dns.RcodeFormatError, nil, &out)
		}
		opt = o
	}
	limit := dns.MinMsgSize
	var ropt *dns.OPT
	if opt != nil {
		sc.ropt = dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: sc.opts[:0]}
		ropt = &sc.ropt
		ropt.SetUDPSize(st.udpSize)
		if opt.Do() {
			ropt.SetDo()
		}
		limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), int(st.udpSize))
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: answer with our version, 0.
			return st.fail(resp, dns.RcodeBadVers, ropt, &out)
		}
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return st.fail(resp, dns.RcodeNotImplemented, ropt, &out)
	case len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Extra) > 2:
		return st.fail(resp, dns.RcodeFormatError, ropt, &out)
	case len(req.Ns) > 0 && !isIXFR(req):
		return st.fail(resp, dns.RcodeFormatError, ropt, &out)
	}
	ecs, ok := clientSubnet(opt)
	if !ok || ecs.opt != nil && !ecsAddressLenOK(opt, ecs.opt) {
		return st.fail(resp, dns.RcodeFormatError, ropt, &out)
	}
	if ecs.opt != nil {
		// RFC 7871 §7.2.1: echo the option, scope 0 unless the answer
		// depends on the subnet.
		sc.echo = *ecs.opt
		sc.echo.SourceScope = 0
		ecs.echo = &sc.echo
		ropt.Option = append(ropt.Option, ecs.echo)
	}
	st.answer(req.Question[0], resp, src, ecs, m, &out, sc)
	if st.signer != nil && opt != nil && opt.Do() {
		st.sign(req.Question[0], resp) // sign.go
	}
	if ropt != nil {
		resp.Extra = append(resp.Extra, ropt)
	}
	out.rcode = resp.Rcode
	return resp, out, limit
}

// isIXFR reports whether req is an IXFR query as RFC 1995 §3 has it: the
// zone's SOA, alone, in the authority section.
func isIXFR(req *dns.Msg) bool {
	if req.Question[0].Qtype != dns.TypeIXFR || len(req.Ns) != 1 {
		return false
	}
	_, ok := req.Ns[0].(*dns.SOA)
	return ok
}

// fail turns resp into an error reply with rcode: the question and OPT
// record stay, and QR and RD are the only flags (see reject.go).
func (st *state) fail(resp *dns.Msg, rcode int, ropt *dns.OPT, out *outcome) (*dns.Msg, outcome, int) {
	resp.Rcode = rcode
	resp.CheckingDisabled = false
	if ropt != nil {
		resp.Extra = append(resp.Extra, ropt)
	}
	out.rcode = rcode
	return resp, *out, dns.MinMsgSize
}

// subnet is a query's ECS option, parsed.
type subnet struct {
	opt    *dns.EDNS0_SUBNET // as received; nil when absent
	prefix netip.Prefix      // its address and source prefix length
	echo   *dns.EDNS0_SUBNET // the option in the reply
}

// clientSubnet finds the ECS option of a query. ok is false for a query the
// server must answer with FORMERR (RFC 7871 §6, §7.1.2): more than one
// option, a source prefix too long for the family, or address bits set
// past the source prefix.
func clientSubnet(opt *dns.OPT) (sub subnet, ok bool) {
	if opt == nil {
		return sub, true
	}
	for _, o := range opt.Option {
		e, isECS := o.(*dns.EDNS0_SUBNET)
		if !isECS {
			continue
		}
		if sub.opt != nil {
			return sub, false
		}
		sub.opt = e
	}
	e := sub.opt
	if e == nil {
		return sub, true
	}
	var a netip.Addr
	switch e.Family {
	case 0: // only with prefix 0, as dig sends +subnet=0
		a = netip.IPv4Unspecified()
	case 1:
		ip := e.Address.To4()
		if ip == nil {
			return sub, false
		}
		a = netip.AddrFrom4([4]byte(ip))
	case 2:
		ip := e.Address.To16()
		if ip == nil {
			return sub, false
		}
		a = netip.AddrFrom16([16]byte(ip))
	default:
		return sub, false
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	if err != nil || p.Addr() != a {
		return sub, false
	}
	sub.prefix = netip.PrefixFrom(a, int(e.SourceNetmask))
	return sub, true
}

// maxChain bounds the CNAMEs followed inside the zone for one answer.
const maxChain = 8

// answer fills resp for question q, asked by src. It sets AA for names in
// the zone, and follows CNAMEs of dns.records inside the zone (RFC 1034
// §4.3.2), geo answers included.
func (st *state) answer(q dns.Question, resp *dns.Msg, src netip.Addr, ecs subnet, m moment, out *outcome, sc *scratch) {
	z := st.zone
	name := strings.ToLower(q.Name)
	if (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) || !z.contains(name) {
		resp.Rcode = dns.RcodeRefused // not ours: no recursion, no referral
		return
	}
	resp.Authoritative = true
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // no zone transfers: the zone is made per query
		return
	}
	owner := q.Name // the owner of the records answered: the query's spelling, then CNAME targets
	for chain := 0; ; chain++ {
		if d := z.delegation(name); d != "" {
			switch {
			case chain > 0: // a CNAME into a delegation: the resolver follows it
			case name == d && q.Qtype == dns.TypeDS:
				// The DS is the parent's, ours (RFC 4035 §3.1.4.1): the
				// child's DS of dns.records, or none.
				if ds := z.static.sets[d][dns.TypeDS]; len(ds) > 0 {
					resp.Answer = append(resp.Answer, withOwner(ds, q.Name)...)
				} else {
					st.negative(q.Name, resp, sc)
				}
			default:
				st.referral(d, resp)
			}
			return
		}
		kind, ok := z.names[name]
		if !ok && st.acme != nil {
			switch {
			case st.acme.has(name):
				kind, ok = kindStatic, true
			case st.acme.above(name):
				kind, ok = kindEmpty, true // above a challenge record (RFC 8020)
			}
		}
		if !ok {
			resp.Rcode = dns.RcodeNameError
			st.negative(q.Name, resp, sc)
			return
		}
		if kind&kindStatic != 0 && q.Qtype != dns.TypeCNAME {
			if cn := z.static.sets[name][dns.TypeCNAME]; len(cn) > 0 {
				resp.Answer = append(resp.Answer, withOwner(cn, owner)...)
				target := cn[0].(*dns.CNAME).Target
				name, owner = strings.ToLower(target), target
				if !z.contains(name) || chain+1 == maxChain {
					return // out of the zone: the resolver follows it
				}
				continue
			}
		}
		n := len(resp.Answer)
		st.answerName(q, name, owner, kind, resp, src, ecs, m, out, sc)
		if len(resp.Answer) == n {
			st.negative(q.Name, resp, sc) // NODATA (RFC 2308 §2.2)
		}
		return
	}
}

// answerName adds the records of type q.Qtype at name (in the zone, not
// delegated, of kind kind) to resp, with owner as their owner name.
func (st *state) answerName(q dns.Question, name, owner string, kind nameKind, resp *dns.Msg, src netip.Addr, ecs subnet, m moment, out *outcome, sc *scratch) {
	z := st.zone
	// ANY (RFC 8482): one RRset, the one users ask for most.
	qtype := q.Qtype
	if qtype == dns.TypeANY {
		switch {
		case kind&kindService != 0 && len(st.byFamily[v4]) == 0:
			qtype = dns.TypeAAAA
		case kind&(kindService|kindNS) != 0:
			qtype = dns.TypeA
			if kind&kindNS != 0 && len(z.nsAddrs[name][v4]) == 0 {
				qtype = dns.TypeAAAA
			}
		case kind&kindApex != 0:
			qtype = dns.TypeSOA
		case kind&kindStatic != 0:
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeCAA} {
				if len(z.static.sets[name][t]) > 0 || t == dns.TypeTXT && st.acme != nil && st.acme.has(name) {
					qtype = t
					break
				}
			}
		}
	}
	switch {
	case kind&kindService != 0 && (qtype == dns.TypeA || qtype == dns.TypeAAAA):
		d := st.decide(Query{Source: src, Subnet: ecs.prefix, Type: qtype}, m, nil)
		out.by = st.byIndex(d.By)
		out.failover, out.failOpen, out.shedFrom = d.Failover, d.FailOpen, d.shedFrom
		if d.POP == "" {
			return // no PoP has an address of this family: NODATA
		}
		p := st.popByName[d.POP]
		out.pop = p
		hdr := dns.RR_Header{Name: owner, Rrtype: qtype, Class: dns.ClassINET, Ttl: z.ttl}
		if qtype == dns.TypeA {
			sc.a = dns.A{Hdr: hdr, A: p.ip[v4]}
			resp.Answer = append(resp.Answer, &sc.a)
		} else {
			sc.aaaa = dns.AAAA{Hdr: hdr, AAAA: p.ip[v6]}
			resp.Answer = append(resp.Answer, &sc.aaaa)
		}
		if d.ECS && ecs.echo != nil {
			ecs.echo.SourceScope = uint8(d.Scope)
			out.ecs = true
		}
	case kind&kindApex != 0 && qtype == dns.TypeSOA:
		sc.soa = z.soa
		sc.soa.Hdr.Name = owner
		resp.Answer = append(resp.Answer, &sc.soa)
	case kind&kindApex != 0 && qtype == dns.TypeNS:
		for _, n := range z.ns {
			resp.Answer = append(resp.Answer, &dns.NS{
				Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: z.zoneTTL}, Ns: n,
			})
		}
		for _, n := range z.ns {
			resp.Extra = st.appendAddrs(resp.Extra, n, v4)
			resp.Extra = st.appendAddrs(resp.Extra, n, v6)
		}
	case kind&kindApex != 0 && qtype == dns.TypeDNSKEY && st.signer != nil:
		resp.Answer = append(resp.Answer, st.signer.DNSKEYs()...)
	case kind&kindNS != 0 && qtype == dns.TypeA:
		resp.Answer = st.appendAddrs(resp.Answer, owner, v4)
	case kind&kindNS != 0 && qtype == dns.TypeAAAA:
		resp.Answer = st.appendAddrs(resp.Answer, owner, v6)
	case kind&kindStatic != 0:
		resp.Answer = append(resp.Answer, withOwner(z.static.sets[name][qtype], owner)...)
		if qtype == dns.TypeTXT && st.acme != nil {
			resp.Answer = st.acme.appendTXT(resp.Answer, name, owner, seconds(st.cfg.ACME.TTL))
		}
	}
}

// referral makes resp a referral to the name servers of the delegated
// name d (RFC 1034 §4.3.2 step 3b): not authoritative, their NS records
// in the authority section and the addresses of those inside this zone
// (glue) in the additional section.
func (st *state) referral(d string, resp *dns.Msg) {
	z := st.zone
	resp.Authoritative = false
	resp.Ns = append(resp.Ns, z.static.delegations[d]...) // a signed child's DS joins them for DO queries (sign.go)
	for _, rr := range z.static.delegations[d] {
		target := strings.ToLower(rr.(*dns.NS).Ns)
		resp.Extra = append(resp.Extra, z.static.sets[target][dns.TypeA]...)
		resp.Extra = append(resp.Extra, z.static.sets[target][dns.TypeAAAA]...)
	}
}

// appendAddrs appends the addresses of family f of the in-zone name server
// name, with name (as the client spelled it, when it asked) as the owner.
func (st *state) appendAddrs(rrs []dns.RR, name string, f family) []dns.RR {
	for _, ip := range st.zone.nsAddrs[strings.ToLower(name)][f] {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: st.zone.zoneTTL}
		if f == v4 {
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: ip})
		} else {
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	return rrs
}

// negative adds the SOA that lets resolvers cache a negative answer
// (RFC 2308 §3): its TTL is the smaller of the SOA's TTL and its minimum.
// The owner keeps the letter case of the query's name.
func (st *state) negative(qname string, resp *dns.Msg, sc *scratch) {
	sc.neg = st.zone.soa
	sc.neg.Hdr.Name = qname[len(qname)-len(st.zone.name):]
	sc.neg.Hdr.Ttl = st.zone.negTTL
	resp.Ns = append(resp.Ns, &sc.neg)
}

// scratch holds the records of one reply, so that a UDP worker builds
// each reply in the same memory: the reply must be packed before the
// scratch is used again.
type scratch struct {
	resp     dns.Msg
	question [1]dns.Question
	answer   [1]dns.RR
	ns       [1]dns.RR
	extra    [1]dns.RR
	opts     [1]dns.EDNS0
	ropt     dns.OPT
	echo     dns.EDNS0_SUBNET
	a        dns.A
	aaaa     dns.AAAA
	soa, neg dns.SOA

	in  queryParser             // the UDP workers' parser of common queries
	key [answerKeyMax + 16]byte // the answer cache's key of the query (answerKey)
}

// reset makes the scratch's message the start of a reply to req, as
// dns.Msg.SetReply does.
func (sc *scratch) reset(req *dns.Msg) *dns.Msg {
	sc.resp = dns.Msg{
		MsgHdr: dns.MsgHdr{Id: req.Id, Response: true, Opcode: req.Opcode, Rcode: dns.RcodeSuccess},
		Answer: sc.answer[:0], Ns: sc.ns[:0], Extra: sc.extra[:0],
	}
	sc.resp.RecursionDesired = req.RecursionDesired // RFC 1035 §4.1.1: copied
	if req.Opcode == dns.OpcodeQuery {
		sc.resp.CheckingDisabled = req.CheckingDisabled
	}
	if len(req.Question) > 0 {
		sc.question[0] = req.Question[0]
		sc.resp.Question = sc.question[:]
	}
	return &sc.resp
}
