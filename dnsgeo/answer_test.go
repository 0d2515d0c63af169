package dnsgeo

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// steady probes once at the start and then not for an hour, so PoPs stay
// as they are for tests of answers.
const steady = "  health: {interval: 1h}"

// startLab runs the lab's DNS server with three healthy fake PoPs.
func startLab(t *testing.T, extraDNS string) (*testServer, []*fakePoP) {
	t.Helper()
	pops := make([]*fakePoP, 3)
	admins := make([]string, 3)
	for i := range pops {
		pops[i] = newFakePoP(t)
		admins[i] = pops[i].srv.Listener.Addr().String()
	}
	return startServer(t, labConfig(t, extraDNS, admins, labNetworks)), pops
}

// TestAnswers runs each row over UDP and over TCP against a real server.
func TestAnswers(t *testing.T) {
	ts, _ := startLab(t, steady)
	const noECS = -1
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		subnet    string // ECS option; "" for none
		edns      uint16 // EDNS UDP size; 0 for no EDNS (unless subnet)
		rcode     int
		addr      string // the one A/AAAA address expected; "" for none
		scope     int    // ECS scope expected, or noECS for no option in the reply
		check     func(t *testing.T, r *dns.Msg)
		wantNoOPT bool
	}{
		// Geo answers (RFC 7871 §7.2.1: scope = the network that decided).
		{name: "RFC 7871: ECS in Frankfurt gets prg, scope /24", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "198.51.100.0/24", addr: "127.0.0.11", scope: 24},
		{name: "RFC 7871: ECS in New York gets iad", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "192.0.2.0/24", addr: "127.0.0.12", scope: 24},
		{name: "RFC 7871: ECS in Osaka gets nrt", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "203.0.113.0/24", addr: "127.0.0.13", scope: 24},
		{name: "RFC 7871: a /32 source gets the /24 network's scope", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "198.51.100.7/32", addr: "127.0.0.11", scope: 24},
		{name: "RFC 7871 §7.2.1: a /16 source wider than the mapped /24 gets the fallback, scope /18 (longer than the source)", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "198.51.0.0/16", addr: "127.0.0.11", scope: 18},
		{name: "RFC 7871: a public subnet no network knows gets the fallback, scope of the unmapped network", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "8.8.8.0/24", addr: "127.0.0.11", scope: 7},
		{name: "a private subnet in the map is used", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "10.9.1.0/24", addr: "127.0.0.13", scope: 16},
		{name: "a private subnet not in the map is ignored: scope 0", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "10.1.2.0/24", addr: "127.0.0.11", scope: 0},
		{name: "a loopback subnet is ignored: scope 0", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "127.0.0.0/8", addr: "127.0.0.11", scope: 0},
		{name: "RFC 7871 §7.1.2: source prefix 0 means do not use my address: scope 0", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "0.0.0.0/0", addr: "127.0.0.11", scope: 0},
		{name: "an IPv6 subnet located in Frankfurt", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "2001:db8:1:2::/56", addr: "127.0.0.11", scope: 48},
		{name: "no ECS: the source address (loopback, unmapped) gets the fallback", qname: "demo.cdn.example.", qtype: dns.TypeA, addr: "127.0.0.11", scope: noECS, wantNoOPT: true},
		{name: "AAAA: only nrt has an IPv6 address", qname: "demo.cdn.example.", qtype: dns.TypeAAAA, subnet: "198.51.100.0/24", addr: "2001:db8::13", scope: 24},
		{name: "TTL of geo answers is 30s", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "198.51.100.0/24", addr: "127.0.0.11", scope: 24,
			check: func(t *testing.T, r *dns.Msg) {
				if ttl := r.Answer[0].Header().Ttl; ttl != 30 {
					t.Errorf("TTL %d, want 30", ttl)
				}
			}},

		// Letter case (RFC 4343): the question and the owner keep it.
		{name: "RFC 4343: letter case is kept", qname: "DeMo.CDN.example.", qtype: dns.TypeA, subnet: "203.0.113.0/24", addr: "127.0.0.13", scope: 24,
			check: func(t *testing.T, r *dns.Msg) {
				if r.Question[0].Name != "DeMo.CDN.example." || r.Answer[0].Header().Name != "DeMo.CDN.example." {
					t.Errorf("question %q, owner %q", r.Question[0].Name, r.Answer[0].Header().Name)
				}
			}},
		{name: "RFC 4343: the SOA of an NXDOMAIN keeps the zone's case from the question", qname: "NoPe.CDN.Example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, scope: noECS, wantNoOPT: true,
			check: func(t *testing.T, r *dns.Msg) {
				if r.Ns[0].Header().Name != "CDN.Example." {
					t.Errorf("SOA owner %q", r.Ns[0].Header().Name)
				}
			}},

		// Negative answers (RFC 2308).
		{name: "RFC 2308 §2.1: NXDOMAIN with the SOA, TTL the negative TTL", qname: "nope.cdn.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, scope: noECS, check: negative(60)},
		{name: "RFC 2308 §2.2: NODATA for a type the name lacks", qname: "demo.cdn.example.", qtype: dns.TypeMX, scope: noECS, check: negative(60)},
		{name: "RFC 8020: an empty non-terminal is NODATA, not NXDOMAIN", qname: "eu.cdn.example.", qtype: dns.TypeA, scope: noECS, check: negative(60)},
		{name: "RFC 2308: NXDOMAIN below a service name", qname: "x.demo.cdn.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, scope: noECS, check: negative(60)},
		{name: "RFC 7871 §7.2.1: NXDOMAIN echoes ECS with scope 0", qname: "nope.cdn.example.", qtype: dns.TypeA, subnet: "198.51.100.0/24", rcode: dns.RcodeNameError, scope: 0},
		{name: "AAAA NODATA where no PoP has IPv6 is NODATA (here via ANY of the apex: SOA)", qname: "cdn.example.", qtype: dns.TypeAAAA, scope: noECS, check: negative(60)},

		// The apex.
		{name: "RFC 1035: SOA at the apex", qname: "cdn.example.", qtype: dns.TypeSOA, scope: noECS,
			check: func(t *testing.T, r *dns.Msg) {
				soa, ok := r.Answer[0].(*dns.SOA)
				if len(r.Answer) != 1 || !ok || soa.Ns != "ns1.cdn.example." || soa.Mbox != "hostmaster.cdn.example." || soa.Minttl != 60 || soa.Hdr.Ttl != 3600 {
					t.Errorf("answer %v", r.Answer)
				}
			}},
		{name: "RFC 1035: NS at the apex with the name server's address", qname: "cdn.example.", qtype: dns.TypeNS, scope: noECS,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 1 || r.Answer[0].(*dns.NS).Ns != "ns1.cdn.example." {
					t.Errorf("answer %v", r.Answer)
				}
				if len(r.Extra) != 1 || r.Extra[0].(*dns.A).A.String() != "127.0.0.1" {
					t.Errorf("additional %v", r.Extra)
				}
			}},
		{name: "the name server's own address", qname: "ns1.cdn.example.", qtype: dns.TypeA, addr: "127.0.0.1", scope: noECS},

		// ANY (RFC 8482): one RRset.
		{name: "RFC 8482: ANY for a service gets one A record", qname: "demo.cdn.example.", qtype: dns.TypeANY, subnet: "192.0.2.0/24", addr: "127.0.0.12", scope: 24},
		{name: "RFC 8482: ANY at the apex gets the SOA alone", qname: "cdn.example.", qtype: dns.TypeANY, scope: noECS,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("answer %v", r.Answer)
				}
			}},

		// Not ours.
		{name: "RFC 2136-era practice: REFUSED outside the zone, not authoritative", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused, scope: noECS,
			check: func(t *testing.T, r *dns.Msg) {
				if r.Authoritative || len(r.Ns) != 0 {
					t.Errorf("AA %v, authority %v", r.Authoritative, r.Ns)
				}
			}},
		{name: "REFUSED for a service hostname outside the zone", qname: "other.example.", qtype: dns.TypeA, rcode: dns.RcodeRefused, scope: noECS},
		{name: "REFUSED for a name that only ends like the zone", qname: "xcdn.example.", qtype: dns.TypeA, rcode: dns.RcodeRefused, scope: noECS},
		{name: "REFUSED for the root", qname: ".", qtype: dns.TypeNS, rcode: dns.RcodeRefused, scope: noECS},
		{name: "REFUSED for zone transfers", qname: "cdn.example.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused, scope: noECS},

		// EDNS (RFC 6891).
		{name: "RFC 6891 §6.2.3: the reply carries our UDP size", qname: "demo.cdn.example.", qtype: dns.TypeA, edns: 4096, addr: "127.0.0.11", scope: noECS,
			check: func(t *testing.T, r *dns.Msg) {
				if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != 1232 || opt.Version() != 0 {
					t.Errorf("OPT %v", opt)
				}
			}},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchange(t, proto, query(tt.qname, tt.qtype, tt.subnet, tt.edns))
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
				}
				if r.RecursionAvailable {
					t.Error("RA set: the server does no recursion")
				}
				if !r.RecursionDesired {
					t.Error("RD not copied from the query")
				}
				if tt.rcode != dns.RcodeRefused && !r.Authoritative {
					t.Error("AA clear for a name in the zone")
				}
				if got := answerAddr(r); got != tt.addr {
					t.Errorf("answer %q, want %q\n%v", got, tt.addr, r)
				}
				e := replyECS(r)
				switch {
				case tt.scope == noECS && e != nil:
					t.Errorf("ECS option %v in the reply, want none", e)
				case tt.scope != noECS && e == nil:
					t.Errorf("no ECS option in the reply, want scope %d", tt.scope)
				case e != nil && int(e.SourceScope) != tt.scope:
					t.Errorf("ECS scope %d, want %d", e.SourceScope, tt.scope)
				}
				if e != nil && tt.subnet != "" {
					sent := ecsOption(tt.subnet)
					if e.Family != sent.Family || e.SourceNetmask != sent.SourceNetmask {
						t.Errorf("ECS echo %v, sent %v", e, sent)
					}
				}
				if tt.wantNoOPT && r.IsEdns0() != nil {
					t.Error("OPT in the reply to a query without EDNS")
				}
				if tt.check != nil {
					tt.check(t, r)
				}
			})
		}
	}
}

// negative checks an NXDOMAIN or NODATA reply (RFC 2308): no answer, the
// zone's SOA in the authority section with the negative TTL.
func negative(ttl uint32) func(t *testing.T, r *dns.Msg) {
	return func(t *testing.T, r *dns.Msg) {
		t.Helper()
		if len(r.Answer) != 0 {
			t.Errorf("answer %v, want none", r.Answer)
		}
		if len(r.Ns) != 1 {
			t.Fatalf("authority %v, want the SOA", r.Ns)
		}
		soa, ok := r.Ns[0].(*dns.SOA)
		if !ok || !strings.EqualFold(soa.Hdr.Name, "cdn.example.") || soa.Hdr.Ttl != ttl || soa.Minttl != ttl {
			t.Errorf("authority %v, want the SOA with TTL and minimum %d", r.Ns, ttl)
		}
	}
}

// TestProtocolErrors covers replies the dns package and the handler give
// to malformed or unsupported queries, over a real socket.
func TestProtocolErrors(t *testing.T) {
	ts, _ := startLab(t, steady)
	tests := []struct {
		name  string
		build func() *dns.Msg
		rcode int
		check func(t *testing.T, r *dns.Msg)
	}{
		{"RFC 6891 §6.1.3: EDNS version 1 gets BADVERS with version 0", func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "", 1232)
			m.IsEdns0().SetVersion(1)
			return m
		}, dns.RcodeBadVers, func(t *testing.T, r *dns.Msg) {
			if opt := r.IsEdns0(); opt == nil || opt.Version() != 0 {
				t.Errorf("OPT %v, want version 0", opt)
			}
			if len(r.Answer) != 0 {
				t.Errorf("answer %v", r.Answer)
			}
		}},
		{"RFC 7871 §7.1.2: two ECS options get FORMERR", func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption("192.0.2.0/24"))
			return m
		}, dns.RcodeFormatError, nil},
		{"RFC 6891 §6.1.1: two OPT records get FORMERR", func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "", 1232)
			m.SetEdns0(1232, false)
			return m
		}, dns.RcodeFormatError, nil},
		{"RFC 1035 §4.1.1: NOTIFY is not implemented", func() *dns.Msg {
			m := query("cdn.example.", dns.TypeSOA, "", 0)
			m.Opcode = dns.OpcodeNotify
			return m
		}, dns.RcodeNotImplemented, nil},
		{"RFC 1035 §4.1.1: UPDATE is not implemented", func() *dns.Msg {
			m := query("cdn.example.", dns.TypeSOA, "", 0)
			m.Opcode = dns.OpcodeUpdate
			return m
		}, dns.RcodeNotImplemented, nil},
		{"two questions get FORMERR", func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "", 0)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, dns.RcodeFormatError, nil},
		{"REFUSED for class CHAOS", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT, "", 0)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, dns.RcodeRefused, nil},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchange(t, proto, tt.build())
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
				}
				if tt.check != nil {
					tt.check(t, r)
				}
			})
		}
	}
}
