package dnsgeo

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestPackReply checks that packReply's own packing of common replies
// gives the message the dns package gives: every seed of FuzzHandler and
// the rows below, answered as a UDP worker answers them, unpacked from
// both and compared whole. FuzzHandler runs the same packer on every
// input it makes.
func TestPackReply(t *testing.T) {
	s := newTestServer(t, staticRecords)
	pkts := [][]byte{}
	for _, sd := range fuzzSeeds(t) {
		pkts = append(pkts, sd.pkt)
	}
	for _, m := range []*dns.Msg{
		query("demo.cdn.example.", dns.TypeA, "198.51.100.7/32", 0),
		query("DeMo.cdn.example.", dns.TypeAAAA, "2001:db8:1:2::/56", 0),
		query("demo.cdn.example.", dns.TypeA, "198.51.96.0/20", 0),
		query("demo.cdn.example.", dns.TypeA, "", 0),
		query("demo.cdn.example.", dns.TypeA, "", 4096),
		query("www.cdn.example.", dns.TypeA, "198.51.100.0/24", 0),
		query("api.cdn.example.", dns.TypeA, "", 0),
		query("cdn.example.", dns.TypeNS, "", 0),
		query("nope.cdn.example.", dns.TypeA, "198.51.100.0/24", 0),
	} {
		m.Id = 0x4242
		pkts = append(pkts, mustPack(t, m))
	}
	fast := 0
	for i, pkt := range pkts {
		resp := s.serveUDP(pkt, netip.MustParseAddr("127.0.0.1"), new(dns.Msg), new(scratch))
		if resp == nil {
			continue
		}
		mine, err := packReply(resp, make([]byte, 2*udpReadSize))
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if _, ok := packCommon(resp, nil); ok {
			fast++
		}
		theirs, err := resp.PackBuffer(make([]byte, 2*udpReadSize))
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		a, b := new(dns.Msg), new(dns.Msg)
		if err := a.Unpack(mine); err != nil {
			t.Fatalf("packet %d: ours does not parse: %v", i, err)
		}
		if err := b.Unpack(theirs); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() || len(mine) > len(theirs) {
			t.Errorf("packet %d: ours (%d bytes)\n%v\nthe dns package's (%d bytes)\n%v", i, len(mine), a, len(theirs), b)
		}
	}
	if fast < 10 {
		t.Errorf("only %d replies took the fast packer", fast)
	}
}
