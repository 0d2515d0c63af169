package dnsgeo

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// mustPack packs m or fails the test.
func mustPack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badECSBits is a query whose ECS option (198.51.96.0/20) has an address
// bit set past its source prefix, which the dns package's packer would
// clear: RFC 7871 §6 asks for FORMERR.
func badECSBits(t testing.TB) []byte {
	m := query("demo.cdn.example.", dns.TypeA, "198.51.96.0/20", 0)
	b := mustPack(t, m)
	// The option is last: family, prefix, scope, then three address
	// bytes (C6 33 60). Set a bit past /20 in the third.
	b[len(b)-1] |= 0x01
	return b
}

// badECSPrefix is a query whose IPv4 ECS source prefix is 33.
func badECSPrefix(t testing.TB) []byte {
	b := mustPack(t, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	b[len(b)-5] = 33 // family(2) prefix(1) scope(1) address(3): the prefix byte
	return b
}

// TestRawPackets sends malformed packets over a real UDP socket. Packets
// that must get no reply are each followed by a valid query: the first
// reply read must be the valid query's, so no test waits for a timeout.
func TestRawPackets(t *testing.T) {
	ts, _ := startLab(t, steady)
	valid := query("demo.cdn.example.", dns.TypeA, "", 0)
	valid.Id = 0xbeef
	response := query("demo.cdn.example.", dns.TypeA, "", 0)
	response.Response = true
	noQuestion := query("demo.cdn.example.", dns.TypeA, "", 0)
	noQuestion.Question = nil
	truncatedBody := mustPack(t, query("demo.cdn.example.", dns.TypeA, "", 0))
	truncatedBody = truncatedBody[:len(truncatedBody)-3]

	tests := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no reply
	}{
		{"RFC 7871 §6: ECS address bits past the source prefix: FORMERR", badECSBits(t), dns.RcodeFormatError},
		{"RFC 7871 §6: ECS source prefix 33 for IPv4: FORMERR", badECSPrefix(t), dns.RcodeFormatError},
		{"no question: FORMERR", mustPack(t, noQuestion), dns.RcodeFormatError},
		{"a header and a cut question: FORMERR", truncatedBody, dns.RcodeFormatError},
		{"a response: no reply (no loops)", mustPack(t, response), -1},
		{"shorter than a header: no reply", []byte{1, 2, 3, 4, 5}, -1},
		{"empty: no reply", []byte{}, -1},
	}
	conn, err := net.Dial("udp", ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := conn.Write(tt.pkt); err != nil {
				t.Fatal(err)
			}
			if tt.rcode < 0 {
				if _, err := conn.Write(mustPack(t, valid)); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if tt.rcode < 0 {
				if r.Id != valid.Id {
					t.Errorf("got a reply (id %#x, %s) to a packet that must get none", r.Id, dns.RcodeToString[r.Rcode])
				}
				return
			}
			if want := binary.BigEndian.Uint16(tt.pkt); r.Id != want || r.Rcode != tt.rcode {
				t.Errorf("reply id %#x rcode %s, want %#x %s", r.Id, dns.RcodeToString[r.Rcode], want, dns.RcodeToString[tt.rcode])
			}
		})
	}
}
