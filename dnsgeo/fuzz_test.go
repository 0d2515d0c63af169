package dnsgeo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// serveRaw handles one packet as dns.Server does: a packet shorter than a
// header gets no reply, the header goes through the server's accept
// function, and a packet that does not parse is answered FORMERR by the
// dns package (not by the handler, which never sees it). It returns the
// handler's reply, or nil when the handler did not reply or was not
// reached.
func serveRaw(s *Server, pkt []byte, tcp bool) (req *dns.Msg, w *recorder) {
	if len(pkt) < 12 {
		return nil, nil
	}
	h := dns.Header{
		Id: binary.BigEndian.Uint16(pkt), Bits: binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]), Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]), Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	accept := s.accept
	if tcp {
		accept = s.acceptTCP
	}
	if accept(h) != dns.MsgAccept {
		return nil, nil
	}
	req = new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		return nil, nil
	}
	w = newRecorder(tcp)
	if tcp {
		s.ServeDNS(w, req)
		return req, w
	}
	// UDP goes the way a UDP worker answers, from the raw packet.
	if resp := s.serveUDP(pkt, netip.MustParseAddr("127.0.0.1"), new(dns.Msg), new(scratch)); resp != nil {
		w.msg = resp
		w.raw, w.err = packReply(resp, make([]byte, 2*udpReadSize))
	}
	return req, w
}

// FuzzHandler feeds raw packets to the handler the way the server would.
// Unparseable packets get no reply or FORMERR from the dns package; every
// packet that parses must get a well-formed reply (or none, for
// responses) and never a panic. The seed corpus is in
// testdata/fuzz/FuzzHandler (rebuild it with OUTPOST_WRITE_SEEDS=1 go
// test -run TestWriteFuzzSeeds).
func FuzzHandler(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed.pkt, false)
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		req, w := serveRaw(s, pkt, tcp)
		if w == nil || w.msg == nil {
			if req != nil && !req.Response {
				t.Fatalf("no reply to a query:\n%v", req)
			}
			return
		}
		if w.err != nil {
			t.Fatalf("reply does not pack: %v\n%v", w.err, w.msg)
		}
		r := new(dns.Msg)
		if err := r.Unpack(w.raw); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if r.Id != req.Id || !r.Response || r.RecursionAvailable || r.AuthenticatedData || r.Opcode != req.Opcode {
			t.Fatalf("bad reply header: %v", r.MsgHdr)
		}
		if !tcp && len(w.raw) > 4096 {
			t.Fatalf("UDP reply of %d bytes", len(w.raw))
		}
		if len(req.Question) == 1 && (len(r.Question) != 1 || r.Question[0] != req.Question[0]) {
			t.Fatalf("question %v answered as %v", req.Question, r.Question)
		}
		if !tcp {
			checkCached(t, s, pkt, w.raw)
		}
	})
}

// checkCached answers the UDP query pkt the way the workers do, through
// the answer cache, three times (a key is stored on its second miss, so
// the third can be a hit), and then a copy of pkt with another ID and
// the letters of its question name in the other case, which a hit gets
// from the same entry: each reply must be the uncached path's, want for
// pkt. It returns whether the cache answered any of them.
func checkCached(t testing.TB, s *Server, pkt, want []byte) bool {
	t.Helper()
	src := netip.MustParseAddr("127.0.0.1")
	buf := make([]byte, 2*udpReadSize)
	hits := s.metrics.answerHits.Load()
	for range 3 {
		got, err := s.answerUDP(pkt, src, new(dns.Msg), new(scratch), buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("through the answer cache: %x (%v)\nuncached: %x", got, err, want)
		}
	}
	other := flipCase(pkt)
	var wantOther []byte
	if resp := s.serveUDP(other, src, new(dns.Msg), new(scratch)); resp != nil {
		wantOther, _ = packReply(resp, make([]byte, 2*udpReadSize))
	}
	got, err := s.answerUDP(other, src, new(dns.Msg), new(scratch), buf)
	if err != nil || !bytes.Equal(got, wantOther) {
		t.Fatalf("0x20 twin through the answer cache: %x (%v)\nuncached: %x", got, err, wantOther)
	}
	return s.metrics.answerHits.Load() > hits
}

// flipCase returns pkt with its ID inverted and the letters of its first
// question name (when its labels can be walked) in the other case.
func flipCase(pkt []byte) []byte {
	p := bytes.Clone(pkt)
	if len(p) < 12 {
		return p
	}
	p[0], p[1] = ^p[0], ^p[1]
	for off := 12; off < len(p) && p[off] != 0 && p[off] <= 63; off += int(p[off]) + 1 {
		for i := off + 1; i <= off+int(p[off]) && i < len(p); i++ {
			if c := p[i] | 0x20; 'a' <= c && c <= 'z' {
				p[i] ^= 0x20
			}
		}
	}
	return p
}

// fuzzServer is the lab's server with static records, the ACME
// endpoint and a signed zone (a KSK and a ZSK), so that fuzzing reaches
// every kind of answer.
func fuzzServer(t testing.TB) *Server {
	t.Helper()
	keys := zoneKeys(t, t.TempDir(), dns.ECDSAP256SHA256, true, false)
	s, err := New(signedConfig(t, keys), Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seed is a named packet of the seed corpus.
type seed struct {
	name string
	pkt  []byte
}

// fuzzSeeds are valid queries of every kind the tests cover, and broken
// and truncated ones.
func fuzzSeeds(t testing.TB) []seed {
	q := func(name string, qtype uint16, subnet string, edns uint16, change func(*dns.Msg)) []byte {
		m := query(name, qtype, subnet, edns)
		m.Id = 0x1234
		if change != nil {
			change(m)
		}
		return mustPack(t, m)
	}
	ecsA := q("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0, nil)
	seeds := []seed{
		{"a-ecs", ecsA},
		{"a-ecs-v6", q("demo.cdn.example.", dns.TypeA, "2001:db8:1::/48", 0, nil)},
		{"a-ecs-zero", q("demo.cdn.example.", dns.TypeA, "0.0.0.0/0", 0, nil)},
		{"aaaa", q("demo.cdn.example.", dns.TypeAAAA, "", 1232, nil)},
		{"any", q("demo.cdn.example.", dns.TypeANY, "", 0, nil)},
		{"ns", q("cdn.example.", dns.TypeNS, "", 0, nil)},
		{"soa-mixed-case", q("CDN.Example.", dns.TypeSOA, "", 4096, nil)},
		{"nxdomain", q("nope.cdn.example.", dns.TypeA, "", 0, nil)},
		{"refused", q("example.com.", dns.TypeA, "", 0, nil)},
		{"badvers", q("demo.cdn.example.", dns.TypeA, "", 1232, func(m *dns.Msg) { m.IsEdns0().SetVersion(1) })},
		{"notify", q("cdn.example.", dns.TypeSOA, "", 0, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })},
		{"two-ecs", q("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0, func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption("192.0.2.0/24"))
		})},
		{"ecs-bits-past-prefix", badECSBits(t)},
		{"ecs-prefix-33", badECSPrefix(t)},
		{"response", q("demo.cdn.example.", dns.TypeA, "", 0, func(m *dns.Msg) { m.Response = true })},
		{"truncated-question", ecsA[:20]},
		{"truncated-opt", ecsA[:len(ecsA)-4]},
		{"header-only", ecsA[:12]},
		{"ixfr", mustPack(t, new(dns.Msg).SetIxfr("cdn.example.", 7, "ns1.cdn.example.", "hostmaster.cdn.example."))},
		{"ecs-short-address", withECSBytes(t, query("demo.cdn.example.", dns.TypeA, "", 0), 1, 24, []byte{198, 51})},
		{"a-ecs-do", q("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0, func(m *dns.Msg) { m.IsEdns0().SetDo() })},
		{"nxdomain-do", q("nope.cdn.example.", dns.TypeA, "", 1232, func(m *dns.Msg) { m.IsEdns0().SetDo() })},
		{"nodata-do", q("demo.cdn.example.", dns.TypeMX, "", 1232, func(m *dns.Msg) { m.IsEdns0().SetDo() })},
		{"dnskey-do", q("cdn.example.", dns.TypeDNSKEY, "", 1232, func(m *dns.Msg) { m.IsEdns0().SetDo() })},
		{"referral-do", q("x.sub.cdn.example.", dns.TypeA, "", 1232, func(m *dns.Msg) { m.IsEdns0().SetDo() })},
		{"cname", q("www.cdn.example.", dns.TypeA, "203.0.113.0/24", 0, nil)},
		{"txt", q("long.cdn.example.", dns.TypeTXT, "", 0, nil)},
		{"a-ecs-0x20", q("DeMo.CDN.example.", dns.TypeA, "198.51.100.0/24", 0, nil)},
		{"a-ecs-cookie", q("demo.cdn.example.", dns.TypeA, "203.0.113.0/24", 0, func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		})},
		{"ecs-mapped-v4", q("demo.cdn.example.", dns.TypeA, "", 1232, func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 120, Address: net.ParseIP("::ffff:203.0.113.0")})
		})},
	}
	return seeds
}

// TestWriteFuzzSeeds writes the seed corpora of FuzzHandler and
// FuzzParseQuery as go test fuzz v1 files. It runs only with
// OUTPOST_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("OUTPOST_WRITE_SEEDS") != "1" {
		t.Skip("set OUTPOST_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzHandler")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandler")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join("testdata", "fuzz", "FuzzParseQuery")
	if err := os.MkdirAll(pq, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.pkt)
		if err := os.WriteFile(filepath.Join(pq, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tcp := range []bool{false, true} {
			name := s.name
			if tcp {
				name += "-tcp"
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", s.pkt, tcp)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestHandlerSeeds runs every seed through the handler in
// both transports, as a plain test that needs no fuzzing engine, and the
// UDP ones through the answer cache too (checkCached), which must answer
// some of them.
func TestHandlerSeeds(t *testing.T) {
	s := fuzzServer(t)
	hit := false
	for _, sd := range fuzzSeeds(t) {
		for _, tcp := range []bool{false, true} {
			req, w := serveRaw(s, sd.pkt, tcp)
			if req != nil && !req.Response && (w == nil || w.msg == nil) {
				t.Errorf("%s: no reply", sd.name)
			}
			if !tcp && w != nil && w.msg != nil {
				hit = checkCached(t, s, sd.pkt, w.raw) || hit
			}
		}
	}
	if !hit {
		t.Error("no seed was answered from the answer cache")
	}
}
