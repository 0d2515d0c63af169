package dnsgeo

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exchangeRaw sends the packet pkt over proto and returns the reply's
// bytes; over TCP with the two-byte length, as RFC 1035 §4.2.2 frames it.
func (ts *testServer) exchangeRaw(t *testing.T, proto string, pkt []byte) *dns.Msg {
	t.Helper()
	addr := ts.udp
	if proto == "tcp" {
		addr = ts.tcp
	}
	conn, err := net.DialTimeout(proto, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	var b []byte
	if proto == "tcp" {
		if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf[:2]); err != nil {
			t.Fatal(err)
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := io.ReadFull(conn, buf[:n]); err != nil {
			t.Fatal(err)
		}
		b = buf[:n]
	} else {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		b = buf[:n]
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return r
}

// withECSBytes returns q packed with EDNS and an ECS option of family,
// source prefix and address bytes as given, whatever their length.
func withECSBytes(t testing.TB, q *dns.Msg, family uint16, source uint8, addr []byte) []byte {
	t.Helper()
	q.SetEdns0(1232, false)
	b := mustPack(t, q) // the OPT record is last, with RDLENGTH 0
	opt := binary.BigEndian.AppendUint16(nil, dns.EDNS0SUBNET)
	opt = binary.BigEndian.AppendUint16(opt, uint16(4+len(addr)))
	opt = binary.BigEndian.AppendUint16(opt, family)
	opt = append(opt, source, 0)
	opt = append(opt, addr...)
	binary.BigEndian.PutUint16(b[len(b)-2:], uint16(len(opt)))
	return append(b, opt...)
}

// allFlags sets every flag a query may carry, so that a test sees which
// the reply copies.
func allFlags(m *dns.Msg) *dns.Msg {
	m.RecursionDesired, m.RecursionAvailable, m.AuthenticatedData, m.CheckingDisabled, m.Truncated = true, true, true, true, true
	return m
}

// TestErrorReplies checks FORMERR and NOTIMP replies over UDP and TCP:
// the question kept, an OPT record when the query had one (RFC 6891
// §6.1.1; §7 for a bad option), the DO bit copied (RFC 3225 §3), and QR
// and RD the only flags: RA is a recursive server's (RFC 1035 §4.1.1), AD
// a validator's (RFC 4035 §3.2.3), and an echoed TC sends the client to
// TCP for nothing.
func TestErrorReplies(t *testing.T) {
	ts, _ := startLab(t, steady)
	notify := allFlags(query("cdn.example.", dns.TypeSOA, "", 1232))
	notify.Opcode = dns.OpcodeNotify
	notifyNoOPT := allFlags(query("cdn.example.", dns.TypeSOA, "", 0))
	notifyNoOPT.Opcode = dns.OpcodeNotify
	update := allFlags(query("cdn.example.", dns.TypeSOA, "", 1232))
	update.Opcode = dns.OpcodeUpdate
	twoQuestions := allFlags(query("demo.cdn.example.", dns.TypeA, "", 1232))
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "cdn.example.", Qtype: dns.TypeSOA, Qclass: dns.ClassINET})
	twoECS := allFlags(query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	twoECS.IsEdns0().Option = append(twoECS.IsEdns0().Option, ecsOption("192.0.2.0/24"))
	withDO := allFlags(query("demo.cdn.example.", dns.TypeA, "", 1232))
	withDO.IsEdns0().SetDo()
	withDO.Question = append(withDO.Question, withDO.Question[0])
	answerInQuery := allFlags(query("demo.cdn.example.", dns.TypeA, "", 1232))
	answerInQuery.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "demo.cdn.example.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
	prefix33 := badECSPrefix(t)
	prefix33[2] |= 0x01 | 0x02 // RD, TC
	prefix33[3] |= 0x80 | 0x20 | 0x10

	tests := []struct {
		name   string
		pkt    []byte
		rcode  int
		opcode int
		qname  string // the question expected
		opt    bool
		do     bool
	}{
		{"RFC 6891 §6.1.1: NOTIMP to a NOTIFY keeps the question and the OPT record", mustPack(t, notify), dns.RcodeNotImplemented, dns.OpcodeNotify, "cdn.example.", true, false},
		{"RFC 6891 §6.1.1: NOTIMP to a NOTIFY without EDNS has no OPT record", mustPack(t, notifyNoOPT), dns.RcodeNotImplemented, dns.OpcodeNotify, "cdn.example.", false, false},
		{"RFC 1035 §4.1.1: NOTIMP to an UPDATE: QR and RD only", mustPack(t, update), dns.RcodeNotImplemented, dns.OpcodeUpdate, "cdn.example.", true, false},
		{"RFC 1035 §4.1.2: FORMERR to two questions keeps the first and the OPT record", mustPack(t, twoQuestions), dns.RcodeFormatError, dns.OpcodeQuery, "demo.cdn.example.", true, false},
		{"RFC 1035 §4.1.2: FORMERR to a query with an answer record", mustPack(t, answerInQuery), dns.RcodeFormatError, dns.OpcodeQuery, "demo.cdn.example.", true, false},
		{"RFC 6891 §7: FORMERR to two ECS options keeps the OPT record", mustPack(t, twoECS), dns.RcodeFormatError, dns.OpcodeQuery, "demo.cdn.example.", true, false},
		{"RFC 6891 §7, RFC 7871 §6: FORMERR to an ECS prefix of 33 (the option does not parse) keeps the OPT record", prefix33, dns.RcodeFormatError, dns.OpcodeQuery, "demo.cdn.example.", true, false},
		{"RFC 3225 §3: the DO bit is copied into an error reply", mustPack(t, withDO), dns.RcodeFormatError, dns.OpcodeQuery, "demo.cdn.example.", true, true},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchangeRaw(t, proto, tt.pkt)
				if r.Rcode != tt.rcode || r.Opcode != tt.opcode {
					t.Errorf("rcode %s opcode %s, want %s %s", dns.RcodeToString[r.Rcode], dns.OpcodeToString[r.Opcode], dns.RcodeToString[tt.rcode], dns.OpcodeToString[tt.opcode])
				}
				if r.Id != binary.BigEndian.Uint16(tt.pkt) {
					t.Errorf("id %#x", r.Id)
				}
				if !r.Response || !r.RecursionDesired || r.RecursionAvailable || r.AuthenticatedData || r.CheckingDisabled || r.Truncated || r.Authoritative || r.Zero {
					t.Errorf("flags %+v, want qr rd only", r.MsgHdr)
				}
				if len(r.Question) != 1 || r.Question[0].Name != tt.qname {
					t.Errorf("question %v, want %s", r.Question, tt.qname)
				}
				opt := r.IsEdns0()
				switch {
				case (opt != nil) != tt.opt:
					t.Errorf("OPT record %v, want %v", opt, tt.opt)
				case opt != nil && (opt.Do() != tt.do || opt.UDPSize() != 1232 || opt.Version() != 0):
					t.Errorf("OPT record %v, want DO %v, size 1232, version 0", opt, tt.do)
				}
				if len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("answer %v, authority %v", r.Answer, r.Ns)
				}
			})
		}
	}
}

// TestECSAddressLength checks RFC 7871 §6: ADDRESS holds exactly the
// octets SOURCE PREFIX-LENGTH needs, no fewer and no more; anything else
// is FORMERR (as gdnsd answers), not an echo that differs from the query.
func TestECSAddressLength(t *testing.T) {
	ts, _ := startLab(t, steady)
	tests := []struct {
		name   string
		family uint16
		source uint8
		addr   []byte
		rcode  int
	}{
		{"RFC 7871 §6: a /24 with its 3 octets", 1, 24, []byte{198, 51, 100}, dns.RcodeSuccess},
		{"RFC 7871 §6: a /24 with 2 octets: FORMERR", 1, 24, []byte{198, 51}, dns.RcodeFormatError},
		{"RFC 7871 §6: a /24 with 4 octets: FORMERR", 1, 24, []byte{198, 51, 100, 0}, dns.RcodeFormatError},
		{"RFC 7871 §6: a /20 with its 3 octets", 1, 20, []byte{198, 51, 96}, dns.RcodeSuccess},
		{"RFC 7871 §6: a /56 with its 7 octets", 2, 56, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0}, dns.RcodeSuccess},
		{"RFC 7871 §6: a /56 with 8 octets: FORMERR", 2, 56, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0}, dns.RcodeFormatError},
		{"RFC 7871 §6: a /128 with 19 octets: FORMERR", 2, 128, make([]byte, 19), dns.RcodeFormatError},
		{"RFC 7871 §6: a /0 with no octet", 1, 0, nil, dns.RcodeSuccess},
		{"RFC 7871 §6: a /0 with one octet: FORMERR", 1, 0, []byte{0}, dns.RcodeFormatError},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				q := query("demo.cdn.example.", dns.TypeA, "", 0)
				r := ts.exchangeRaw(t, proto, withECSBytes(t, q, tt.family, tt.source, tt.addr))
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				e := replyECS(r)
				switch {
				case tt.rcode != dns.RcodeSuccess && r.IsEdns0() == nil:
					t.Error("FORMERR without an OPT record (RFC 6891 §7)")
				case tt.rcode == dns.RcodeSuccess && (e == nil || e.SourceNetmask != tt.source || e.Family != tt.family):
					t.Errorf("echo %v, want family %d source /%d", e, tt.family, tt.source)
				}
			})
		}
	}
}

// TestECSScope checks the scope of geo answers against network maps
// with rows inside the query's source prefix: RFC 7871 §7.2.1 lets (and
// here makes) the scope longer than the source, so that resolvers send
// more bits; and RFC 7871 §6: the scope of an IPv4-mapped address in a
// FAMILY 2 option counts IPv6 bits.
func TestECSScope(t *testing.T) {
	const networks = labNetworks + `198.51.100.128/25, iad
2001:db8:1:0:8000::/65, iad
`
	ts := startServer(t, labConfig(t, steady, nil, networks))
	mapped := func(cidr string, bits uint8) *dns.EDNS0_SUBNET {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: bits, Address: net.ParseIP(cidr)}
	}
	tests := []struct {
		name   string
		ecs    *dns.EDNS0_SUBNET
		addr   string
		scope  uint8
		family uint16
	}{
		{"RFC 7871 §7.2.1: a /16 whose address no row holds: the fallback, scope /23 (the widest around it no row overlaps), as gdnsd", ecsOption("192.0.0.0/16"), "127.0.0.11", 23, 1},
		{"RFC 7871 §7.2.1: a /16 source, the map's /24 row nearest: scope /18", ecsOption("198.51.0.0/16"), "127.0.0.11", 18, 1},
		{"RFC 7871 §7.2.1: a /24 whose row holds a /25 with another answer: scope /25", ecsOption("198.51.100.0/24"), "127.0.0.11", 25, 1},
		{"RFC 7871 §7.2.1: the /25 row itself", ecsOption("198.51.100.128/25"), "127.0.0.12", 25, 1},
		{"RFC 7871 §7.2.1: an address in the /25: scope /25", ecsOption("198.51.100.200/32"), "127.0.0.12", 25, 1},
		{"RFC 7871 §7.2.1: IPv6 /56 whose /48 row holds a /65: scope /65", ecsOption("2001:db8:1::/56"), "127.0.0.11", 65, 2},
		{"RFC 7871 §7.2.1: IPv6 the /65 row itself", ecsOption("2001:db8:1:0:8000::/65"), "127.0.0.12", 65, 2},
		{"RFC 7871 §6: IPv4-mapped /120 in FAMILY 2: scope in IPv6 bits, /120", mapped("::ffff:203.0.113.0", 120), "127.0.0.13", 120, 2},
		{"RFC 7871 §6: IPv4-mapped /128 in FAMILY 2 in the /25: scope /121", mapped("::ffff:198.51.100.200", 128), "127.0.0.12", 121, 2},
		{"RFC 7871 §6: IPv4-mapped unmapped subnet: the fallback, scope in IPv6 bits", mapped("::ffff:8.8.8.0", 120), "127.0.0.11", 96 + 7, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := query("demo.cdn.example.", dns.TypeA, "", 1232)
			q.IsEdns0().Option = append(q.IsEdns0().Option, tt.ecs)
			r := ts.exchange(t, "udp", q)
			if got := answerAddr(r); got != tt.addr {
				t.Errorf("answer %q, want %s", got, tt.addr)
			}
			e := replyECS(r)
			if e == nil {
				t.Fatal("no ECS option in the reply")
			}
			if e.SourceScope != tt.scope || e.Family != tt.family || e.SourceNetmask != tt.ecs.SourceNetmask {
				t.Errorf("echo family %d source /%d scope /%d, want family %d source /%d scope /%d",
					e.Family, e.SourceNetmask, e.SourceScope, tt.family, tt.ecs.SourceNetmask, tt.scope)
			}
		})
	}
}

// TestZoneTransferQueries checks that a well-formed IXFR query (the
// zone's SOA in the authority section, RFC 1995 §3) is refused like AXFR
// (RFC 5936 §4.2: a server may refuse transfers), and that a plain query
// with an authority record is FORMERR.
func TestZoneTransferQueries(t *testing.T) {
	ts, _ := startLab(t, steady)
	ixfr := new(dns.Msg).SetIxfr("cdn.example.", 7, "ns1.cdn.example.", "hostmaster.cdn.example.")
	ixfrEDNS := new(dns.Msg).SetIxfr("cdn.example.", 7, "ns1.cdn.example.", "hostmaster.cdn.example.")
	ixfrEDNS.SetEdns0(1232, false)
	notIXFR := query("demo.cdn.example.", dns.TypeA, "", 0)
	notIXFR.Ns = ixfr.Ns
	tests := []struct {
		name  string
		m     *dns.Msg
		rcode int
	}{
		{"RFC 1995 §3: IXFR with the SOA in authority: REFUSED, as AXFR", ixfr, dns.RcodeRefused},
		{"RFC 1995 §3: IXFR with EDNS: REFUSED", ixfrEDNS, dns.RcodeRefused},
		{"RFC 5936 §4.2: AXFR: REFUSED", query("cdn.example.", dns.TypeAXFR, "", 0), dns.RcodeRefused},
		{"RFC 1035 §4.1.2: an A query with an authority record: FORMERR", notIXFR, dns.RcodeFormatError},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchangeRaw(t, proto, mustPack(t, tt.m))
				if r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if len(r.Question) != 1 || r.Question[0] != tt.m.Question[0] {
					t.Errorf("question %v", r.Question)
				}
				if len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("answer %v, authority %v", r.Answer, r.Ns)
				}
			})
		}
	}
}
