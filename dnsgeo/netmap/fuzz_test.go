package netmap

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text to the parser: it must return a map or
// an error naming the file, never panic, and a map it returns must answer
// lookups within its promises.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("198.51.100.0/24, prg\n")
	f.Add("\"unterminated\n")
	f.Add("::/0, 0, 0\n0.0.0.0/0, prg\n")
	f.Add("AS64500, prg\nas1, 1, 2, de\nAS4294967295, x\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := Parse("f.csv", strings.NewReader(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, c := range []string{"198.51.100.7/32", "10.1.2.0/24", "2001:db8::1/128", "0.0.0.0/0", "::/0"} {
			client := netip.MustParsePrefix(c)
			e, network, ok := m.Lookup(client)
			if !network.Contains(client.Addr()) || client.Bits() == 0 && network.Bits() != 0 {
				t.Fatalf("Lookup(%s): network %s does not hold the client's address", c, network)
			}
			if ok && (!e.Network.Contains(client.Addr()) || e.Network.Bits() > network.Bits()) {
				t.Fatalf("Lookup(%s): row %s does not hold the client's address, or is narrower than network %s", c, e.Network, network)
			}
		}
	})
}
