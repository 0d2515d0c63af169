package dnsgeo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestExplain checks explanations made from the file alone (health not
// probed): the text's first line, the match, the scope and the distances.
func TestExplain(t *testing.T) {
	s := newGeoServer(t)
	tests := []struct {
		name   string
		client string
		qtype  uint16
		pop    string
		by     string
		lines  []string // substrings of the text, in order
	}{
		{"ECS subnet placed by the City database", "81.0.1.0/24", dns.TypeA, "prg", "geoip", []string{
			"answer: prg\n", "address: 127.0.0.11 (A)", "client: 81.0.1.0/24, as an ECS subnet",
			"placed by: geoip: city.mmdb, network 81.0.0.0/16: location 50.11, 8.68 (DE)", "ecs scope: /16",
			"health: unknown (not probed): every PoP assumed healthy", "pops (nearest first):",
			"prg", "410 km", "unknown", "<- answer", "iad", "nrt", "reasons:", "geoip: 81.0.1.0/24 matches"}},
		{"a /32 source in a /28 network: the database network is shown", "82.0.7.1/32", dns.TypeA, "prg", "geoip", []string{
			"answer: prg\n", "network 82.0.7.0/24", "database network: 82.0.7.0/28", "ecs scope: /24"}},
		{"an address is a source address", "24.0.200.9", dns.TypeA, "iad", "geoip", []string{
			"answer: iad\n", "client: 24.0.200.9, as a query's source address (no ECS)", "(US)"}},
		{"an ASN row", "82.0.9.0/24", dns.TypeA, "nrt", "asn", []string{
			"answer: nrt\n", "asn: AS64500 Example Mobile", "placed by: asn: networks.csv:6 AS64500, network 82.0.9.0/24: PoP nrt"}},
		{"the network map", "198.51.100.7", dns.TypeA, "prg", "networks", []string{
			"answer: prg\n", "placed by: networks: networks.csv:1"}},
		{"fallback", "9.9.9.9", dns.TypeA, "prg", "fallback", []string{
			"answer: prg\n", "placed by: nothing", "pops (in the fallback order):", "prg", "iad", "nrt"}},
		{"AAAA: only nrt has an IPv6 address", "81.0.1.0/24", dns.TypeAAAA, "nrt", "geoip", []string{
			"answer: nrt\n", "address: 2001:db8::13 (AAAA)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseClient(tt.client)
			if err != nil {
				t.Fatal(err)
			}
			q.Type = tt.qtype
			e := s.Explain(q, false)
			if e.POP != tt.pop || e.By != tt.by {
				t.Errorf("got %s by %s, want %s by %s", e.POP, e.By, tt.pop, tt.by)
			}
			var b bytes.Buffer
			if err := e.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			if first, _, _ := strings.Cut(text, "\n"); first != "answer: "+tt.pop {
				t.Errorf("first line %q, want %q", first, "answer: "+tt.pop)
			}
			at := 0
			for _, l := range tt.lines {
				i := strings.Index(text[at:], l)
				if i < 0 {
					t.Fatalf("text lacks %q (in order):\n%s", l, text)
				}
				at += i + len(l)
			}
		})
	}
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		in, subnet, source, err string
	}{
		{in: "198.51.100.7", source: "198.51.100.7"},
		{in: " 2001:db8::1 ", source: "2001:db8::1"},
		{in: "::ffff:198.51.100.7", source: "198.51.100.7"},
		{in: "198.51.100.0/24", subnet: "198.51.100.0/24"},
		{in: "::ffff:198.51.100.0/120", subnet: "198.51.100.0/24"},
		{in: "0.0.0.0/0", subnet: "0.0.0.0/0"},
		{in: "", err: "no client"},
		{in: "example.com", err: `invalid IP address "example.com"`},
		{in: "198.51.100.7/24", err: "did you mean 198.51.100.0/24?"},
		{in: "198.51.100.0/33", err: `invalid prefix "198.51.100.0/33"`},
		{in: "fe80::1%eth0/64", err: "invalid prefix"},
		{in: strings.Repeat("1", 100), err: "too long"},
	}
	for _, tt := range tests {
		q, err := ParseClient(tt.in)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseClient(%q) error %v, want %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("ParseClient(%q): %v", tt.in, err)
		case tt.subnet != "" && q.Subnet.String() != tt.subnet, tt.source != "" && q.Source.String() != tt.source:
			t.Errorf("ParseClient(%q) = %+v", tt.in, q)
		}
	}
}

// TestExplainHTTP checks the admin /explain endpoint of a running server:
// JSON with the answer and the health the probes see, and 400 for bad
// input.
func TestExplainHTTP(t *testing.T) {
	ts := startServer(t, geoConfig(t, "  health: {interval: 1h}"))
	get := func(query string) (int, string) {
		t.Helper()
		resp, err := http.Get(ts.admin + "/explain" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name   string
		query  string
		status int
		pop    string
		want   string // a substring of the body
	}{
		{"an ECS subnet", "?ip=" + url.QueryEscape("81.0.1.0/24"), 200, "prg", `"ecs_scope": 16`},
		{"an address", "?ip=24.0.200.9", 200, "iad", `"by": "geoip"`},
		{"AAAA", "?ip=81.0.1.0/24&type=aaaa", 200, "nrt", `"type": "AAAA"`},
		{"health is probed", "?ip=81.0.1.0/24", 200, "prg", `"health_probed": true`},
		{"no ip", "", 400, "", "explain: no client"},
		{"garbage", "?ip=garbage", 400, "", `explain: invalid IP address "garbage"`},
		{"host bits", "?ip=" + url.QueryEscape("81.0.1.7/24"), 400, "", "did you mean 81.0.1.0/24?"},
		{"a bad type", "?ip=81.0.1.7&type=MX", 400, "", `invalid type "MX"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(tt.query)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body lacks %q:\n%s", tt.want, body)
			}
			if status != 200 {
				return
			}
			var e Explanation
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatal(err)
			}
			if e.POP != tt.pop || len(e.POPs) == 0 || len(e.Reasons) == 0 {
				t.Errorf("pop %q with %d PoPs and %d reasons, want %s:\n%s", e.POP, len(e.POPs), len(e.Reasons), tt.pop, body)
			}
		})
	}
}

// FuzzParseClient feeds arbitrary text to the /explain ip parser: it
// returns a query or an error, never panics, and a query it returns has
// exactly one of a source address and a masked subnet.
func FuzzParseClient(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "198.51.100.0/24", "2001:db8::/56", "::ffff:1.2.3.0/120", "1.2.3.4/24", "", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseClient(s)
		if err != nil {
			return
		}
		if q.Source.IsValid() == q.Subnet.IsValid() {
			t.Fatalf("ParseClient(%q) = %+v: want one of source and subnet", s, q)
		}
		if q.Subnet.IsValid() && q.Subnet.Masked() != q.Subnet {
			t.Fatalf("ParseClient(%q): subnet %s not masked", s, q.Subnet)
		}
	})
}
