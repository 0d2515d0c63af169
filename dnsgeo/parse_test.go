package dnsgeo

import (
	"reflect"
	"testing"

	"github.com/miekg/dns"
)

// sameAsDNSPackage fails t unless the query parser and the dns package read
// pkt alike, whenever the parser takes it.
func sameAsDNSPackage(t *testing.T, pkt []byte, canon map[string]string) (took bool) {
	t.Helper()
	var p queryParser
	got := new(dns.Msg)
	if !p.parse(pkt, got, canon) {
		return false
	}
	want := new(dns.Msg)
	if err := want.Unpack(pkt); err != nil {
		t.Fatalf("the parser took a packet the dns package rejects (%v):\n%v", err, got)
	}
	if !reflect.DeepEqual(got.MsgHdr, want.MsgHdr) {
		t.Fatalf("header\n got %+v\nwant %+v", got.MsgHdr, want.MsgHdr)
	}
	if !reflect.DeepEqual(got.Question, want.Question) {
		t.Fatalf("question\n got %+v\nwant %+v", got.Question, want.Question)
	}
	if len(got.Answer)+len(got.Ns)+len(want.Answer)+len(want.Ns) != 0 {
		t.Fatalf("answer or authority records: %v / %v", got, want)
	}
	if !reflect.DeepEqual(got.Extra, want.Extra) {
		t.Fatalf("additional\n got %v\nwant %v", got.Extra, want.Extra)
	}
	return true
}

// TestParseQuery checks which queries the parser takes, that it reads
// them as the dns package does, and that it allocates nothing for a name
// of the zone.
func TestParseQuery(t *testing.T) {
	canon := map[string]string{"demo.cdn.example.": "demo.cdn.example."}
	withOption := func(m *dns.Msg, o dns.EDNS0) *dns.Msg {
		m.IsEdns0().Option = append(m.IsEdns0().Option, o)
		return m
	}
	tests := []struct {
		name string
		pkt  []byte
		took bool
	}{
		{"no EDNS", mustPack(t, query("demo.cdn.example.", dns.TypeA, "", 0)), true},
		{"EDNS, no option", mustPack(t, query("demo.cdn.example.", dns.TypeA, "", 1232)), true},
		{"RFC 7871: ECS IPv4 /24", mustPack(t, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)), true},
		{"RFC 7871: ECS IPv6 /48", mustPack(t, query("demo.cdn.example.", dns.TypeAAAA, "2001:db8:1::/48", 0)), true},
		{"a name outside the zone", mustPack(t, query("Example.COM.", dns.TypeA, "", 0)), true},
		{"RFC 7871: ECS family 0 (dig +subnet=0): the dns package", mustPack(t, query("demo.cdn.example.", dns.TypeA, "0.0.0.0/0", 0)), false},
		{"RFC 7873: a cookie: the dns package", mustPack(t, withOption(query("demo.cdn.example.", dns.TypeA, "", 1232),
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})), false},
		{"a name with a space: the dns package", mustPack(t, query("a\\032b.cdn.example.", dns.TypeA, "", 0)), false},
		{"RFC 7871 §6: ECS prefix 33: the dns package", badECSPrefix(t), false},
		{"truncated", mustPack(t, query("demo.cdn.example.", dns.TypeA, "", 0))[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if took := sameAsDNSPackage(t, tt.pkt, canon); took != tt.took {
				t.Errorf("parser took it: %v, want %v", took, tt.took)
			}
		})
	}
	pkt := mustPack(t, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	var p queryParser
	req := new(dns.Msg)
	if n := testing.AllocsPerRun(100, func() { p.parse(pkt, req, canon) }); n != 0 {
		t.Errorf("%v allocations per query, want 0", n)
	}
}

// FuzzParseQuery checks that the query parser reads every packet it takes
// exactly as the dns package does. The seed corpus is in
// testdata/fuzz/FuzzParseQuery (rebuild it with OUTPOST_WRITE_SEEDS=1 go
// test -run TestWriteFuzzSeeds).
func FuzzParseQuery(f *testing.F) {
	canon := map[string]string{"demo.cdn.example.": "demo.cdn.example."}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		sameAsDNSPackage(t, pkt, canon)
	})
}
