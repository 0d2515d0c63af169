package dnsgeo

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestTruncation checks RFC 1035 §4.2.1 / RFC 6891 §7: a UDP reply larger
// than the client's size (512 without EDNS) is cut, with TC set when
// records of the answer had to go but not when only additional addresses
// did (RFC 2181 §9), and the same question over TCP gets the whole answer.
func TestTruncation(t *testing.T) {
	// Forty name servers with their addresses make the NS answer large.
	var ns strings.Builder
	ns.WriteString("  health: {interval: 1h}\n  ns:\n")
	for i := range 40 {
		fmt.Fprintf(&ns, "    - {name: ns%02d.a-long-label-for-name-servers.cdn.example, addresses: [192.0.2.%d]}\n", i, i+1)
	}
	ts, _ := startLab(t, ns.String())
	tests := []struct {
		name   string
		edns   uint16
		proto  string
		wantTC bool
	}{
		{"RFC 1035 §4.2.1: UDP without EDNS: 512 bytes, TC", 0, "udp", true},
		{"RFC 2181 §9: UDP with EDNS 1232: every NS record fits, only addresses are dropped: no TC", 1232, "udp", false},
		{"RFC 7766: TCP: the whole answer", 0, "tcp", false},
		{"RFC 7766: TCP with EDNS: the whole answer", 1232, "tcp", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query("cdn.example.", dns.TypeNS, "", tt.edns)
			c := &dns.Client{Net: tt.proto, UDPSize: 65535}
			addr := ts.udp
			if tt.proto == "tcp" {
				addr = ts.tcp
			}
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Truncated != tt.wantTC {
				t.Fatalf("TC %v, want %v", r.Truncated, tt.wantTC)
			}
			r.Compress = true // as it came over the wire
			size := r.Len()
			limit := 512
			if tt.edns > 0 {
				limit = int(tt.edns)
			}
			switch {
			case tt.wantTC && size > limit:
				t.Errorf("truncated reply is %d bytes, more than %d", size, limit)
			case !tt.wantTC && tt.proto == "udp" && (len(r.Answer) != 40 || len(r.Extra) >= 41 || size > limit):
				t.Errorf("UDP reply has %d NS and %d additional records in %d bytes, want 40 NS, some addresses dropped, at most %d bytes", len(r.Answer), len(r.Extra), size, limit)
			case !tt.wantTC && tt.proto == "tcp" && (len(r.Answer) != 40 || len(r.Extra) < 40):
				t.Errorf("TCP reply has %d NS and %d additional records, want 40 and 40", len(r.Answer), len(r.Extra))
			}
		})
	}
	if got := ts.Stats().Truncated; got != 1 {
		t.Errorf("Stats().Truncated = %d, want 1", got)
	}
}
