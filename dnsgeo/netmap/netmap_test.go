package netmap

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `# a comment
198.51.100.0/24, 50.11, 8.68, de      # Frankfurt, with a comment, and commas
192.0.2.0/24,40.71,-74.01
203.0.113.0/24, nrt
  # an indented comment

10.0.0.0/8, prg
10.1.0.0/16, iad
10.1.2.0/24, nrt
10.200.0.0/16, 35.0, 139.0
2001:db8::/32, iad
2001:db8:1::/48, nrt
`

func mustParse(t *testing.T, text string) *Map {
	t.Helper()
	m, err := Parse("networks.csv", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseRows(t *testing.T) {
	m := mustParse(t, sample)
	if m.Len() != 9 {
		t.Fatalf("Len = %d, want 9", m.Len())
	}
	var got []Entry
	m.Entries(func(e Entry) bool { got = append(got, e); return true })
	first := got[0]
	want := Entry{Network: netip.MustParsePrefix("198.51.100.0/24"), Lat: 50.11, Lon: 8.68, Country: "DE", Source: "networks.csv:2", Line: 2}
	if first != want {
		t.Errorf("first row = %+v, want %+v", first, want)
	}
	if got[2].POP != "nrt" || got[2].Line != 4 {
		t.Errorf("third row = %+v, want PoP nrt at line 4", got[2])
	}
	if last := got[len(got)-1]; last.Network.String() != "2001:db8:1::/48" || last.Line != 12 {
		t.Errorf("last row = %+v, want 2001:db8:1::/48 at line 12", last)
	}
}

// TestLookup checks longest-prefix match and the network returned, which
// becomes the ECS scope (RFC 7871 §7.2.1): the widest prefix around the
// client over which the result cannot change.
func TestLookup(t *testing.T) {
	m := mustParse(t, sample)
	tests := []struct {
		name    string
		client  string
		wantOK  bool
		wantNet string // the matched row's network, when wantOK
		network string // the network returned
	}{
		{"one address in a /24 row", "198.51.100.7/32", true, "198.51.100.0/24", "198.51.100.0/24"},
		{"a /24 subnet equal to a row", "198.51.100.0/24", true, "198.51.100.0/24", "198.51.100.0/24"},
		{"RFC 7871 §7.2.1: a /16 subnet wider than the /24 row: no match, a network longer than the source", "198.51.0.0/16", false, "", "198.51.0.0/18"},
		{"a miss far from every row: a wide network", "8.8.8.0/24", false, "", "8.0.0.0/7"},
		{"nested rows: the /8 minus the /16 inside it", "10.2.0.0/24", true, "10.0.0.0/8", "10.2.0.0/15"},
		{"nested rows: the /16", "10.1.9.0/24", true, "10.1.0.0/16", "10.1.8.0/21"},
		{"nested rows: the /24 inside the /16", "10.1.2.3/32", true, "10.1.2.0/24", "10.1.2.0/24"},
		{"RFC 7871 §7.2.1: a subnet overlapping a nested row gets a network longer than its own length", "10.1.0.0/16", true, "10.1.0.0/16", "10.1.0.0/23"},
		{"RFC 7871 §7.2.1: a /16 subnet whose address is in a longer row matches that row", "10.1.2.0/16", true, "10.1.0.0/16", "10.1.0.0/23"},
		{"a location row", "10.200.1.0/24", true, "10.200.0.0/16", "10.200.0.0/16"},
		{"IPv6", "2001:db8:2::/56", true, "2001:db8::/32", "2001:db8:2::/47"},
		{"IPv6 nested", "2001:db8:1:5::/64", true, "2001:db8:1::/48", "2001:db8:1::/48"},
		{"IPv4-mapped IPv6 is IPv4", "::ffff:198.51.100.7/128", true, "198.51.100.0/24", "198.51.100.0/24"},
		{"prefix 0 matches nothing", "0.0.0.0/0", false, "", "0.0.0.0/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, network, ok := m.Lookup(netip.MustParsePrefix(tt.client))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && e.Network.String() != tt.wantNet {
				t.Errorf("row %s, want %s", e.Network, tt.wantNet)
			}
			if network.String() != tt.network {
				t.Errorf("network %s, want %s", network, tt.network)
			}
		})
	}
}

// TestLookupNetworkIsUniform checks the promise behind the network
// returned: every address in it gets the same row.
func TestLookupNetworkIsUniform(t *testing.T) {
	m := mustParse(t, sample)
	for _, c := range []string{"10.2.0.0/32", "10.1.9.0/32", "8.8.8.8/32", "10.1.3.0/32", "203.0.113.5/32"} {
		e, network, ok := m.Lookup(netip.MustParsePrefix(c))
		// Walk the network's addresses in steps, including its ends.
		size := uint64(1) << (32 - network.Bits())
		step := max(size/257, 1)
		base := network.Addr().As4()
		start := uint64(base[0])<<24 | uint64(base[1])<<16 | uint64(base[2])<<8 | uint64(base[3])
		for off := uint64(0); off < size; off += step {
			checkSame(t, m, c, start+off, e, ok)
		}
		checkSame(t, m, c, start+size-1, e, ok)
	}
}

func checkSame(t *testing.T, m *Map, from string, v uint64, e Entry, ok bool) {
	t.Helper()
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	e2, _, ok2 := m.Lookup(netip.PrefixFrom(a, 32))
	if ok2 != ok || e2.Network != e.Network {
		t.Fatalf("from %s: %s gets row %v (%v), want %v (%v)", from, a, e2.Network, ok2, e.Network, ok)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one field", "198.51.100.0/24\n", []string{"networks.csv:1: 1 fields"}},
		{"too many fields", "198.51.100.0/24, 1, 2, DE, x\n", []string{"networks.csv:1: 5 fields"}},
		{"not a prefix", "# c\nhello, prg\n", []string{`networks.csv:2: invalid network "hello"`}},
		{"an address without length", "192.0.2.1, prg\n", []string{`networks.csv:1: network "192.0.2.1" has no prefix length (for one address write 192.0.2.1/32)`}},
		{"host bits set", "198.51.100.7/24, prg\n", []string{`networks.csv:1: network "198.51.100.7/24" has bits set past its length; did you mean 198.51.100.0/24?`}},
		{"mapped", "::ffff:192.0.2.0/120, prg\n", []string{`is IPv4-mapped`}},
		{"bad PoP name", "192.0.2.0/24, Prague\n", []string{`networks.csv:1: invalid PoP name "Prague"`}},
		{"bad latitude", "192.0.2.0/24, north, 8\n", []string{`networks.csv:1: invalid latitude "north"`}},
		{"latitude out of range", "192.0.2.0/24, 91, 8\n", []string{`networks.csv:1: latitude 91 is out of range (want -90..90)`}},
		{"longitude out of range", "192.0.2.0/24, 50, -181\n", []string{`networks.csv:1: longitude -181 is out of range`}},
		{"NaN", "192.0.2.0/24, NaN, 8\n", []string{`invalid latitude "NaN"`}},
		{"bad country", "192.0.2.0/24, 50, 8, Germany\n", []string{`networks.csv:1: invalid country "Germany"`}},
		{"duplicate", "192.0.2.0/24, prg\n\n192.0.2.0/24, iad\n", []string{`networks.csv:3: network 192.0.2.0/24 is listed twice (first at line 1)`}},
		{"every problem is reported", "x, prg\n192.0.2.0/24, prg\ny, prg\n", []string{`networks.csv:1:`, `networks.csv:3:`}},
		{"quoting error", "192.0.2.0/24, \"prg\"x\n", []string{`networks.csv:1:`}},
		{"ASN zero", "AS0, prg\n", []string{`networks.csv:1: invalid ASN "AS0"`}},
		{"ASN not a number", "ASX, prg\n", []string{`networks.csv:1: invalid ASN "ASX"`}},
		{"ASN too large", "AS4294967296, prg\n", []string{`invalid ASN "AS4294967296"`}},
		{"ASN duplicate", "AS64500, prg\nas64500, 1, 2\n", []string{`networks.csv:2: AS64500 is listed twice (first at line 1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("networks.csv", strings.NewReader(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			if lines := strings.Count(msg, "\n") + 1; lines != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%s", lines, len(tt.want), msg)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nets.csv")
	if err := os.WriteFile(path, []byte("192.0.2.0/24, prg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil || m.Len() != 1 || m.Name() != path {
		t.Fatalf("Load = %v, %v", m, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.csv")); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("Load of a missing file: %v", err)
	}
	// The example the lab uses must parse.
	if _, err := Load("../../deploy/examples/networks.csv"); err != nil {
		t.Errorf("example: %v", err)
	}
}

func TestEmptyMap(t *testing.T) {
	m := mustParse(t, "# nothing\n")
	if _, network, ok := m.Lookup(netip.MustParsePrefix("192.0.2.1/32")); ok || network.Bits() != 0 {
		t.Errorf("empty map: ok %v, network %v", ok, network)
	}
	var nilMap *Map
	if _, _, ok := nilMap.Lookup(netip.MustParsePrefix("192.0.2.1/32")); ok {
		t.Error("nil map matched")
	}
}

func TestASNRows(t *testing.T) {
	m := mustParse(t, "198.51.100.0/24, prg\nAS64500, nrt # a comment\nas64501, 50.11, 8.68, de\n")
	if m.Len() != 3 || m.ASNs() != 2 {
		t.Fatalf("Len = %d, ASNs = %d; want 3 and 2", m.Len(), m.ASNs())
	}
	for _, tt := range []struct {
		asn  uint32
		ok   bool
		want Entry
	}{
		{64500, true, Entry{ASN: 64500, POP: "nrt", Source: "networks.csv:2", Line: 2}},
		{64501, true, Entry{ASN: 64501, Lat: 50.11, Lon: 8.68, Country: "DE", Source: "networks.csv:3", Line: 3}},
		{64502, false, Entry{}},
	} {
		e, ok := m.LookupASN(tt.asn)
		if ok != tt.ok || e != tt.want {
			t.Errorf("LookupASN(%d) = %+v, %v; want %+v, %v", tt.asn, e, ok, tt.want, tt.ok)
		}
	}
	// ASN rows take no part in CIDR lookups.
	if _, network, ok := m.Lookup(netip.MustParsePrefix("8.8.8.0/24")); ok || !network.IsValid() {
		t.Errorf("Lookup of an unmapped network = %s, %v", network, ok)
	}
	var rows []Entry
	m.Entries(func(e Entry) bool { rows = append(rows, e); return true })
	if len(rows) != 3 || rows[1].ASN != 64500 || rows[2].ASN != 64501 {
		t.Errorf("Entries = %+v, want the CIDR row then the ASN rows in file order", rows)
	}
}
