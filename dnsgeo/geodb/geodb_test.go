package geodb

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cities is a City CSV of documentation and public networks on three
// continents, with nested networks.
const cities = `cidr,lat,lon,country
# Europe
198.51.100.0/24,50.11,8.68,DE
198.51.100.128/25,48.86,2.35,FR
# North America
192.0.2.0/24,40.71,-74.01,US
# Asia
203.0.113.0/24,35.69,139.69,JP
2001:db8:1::/48,34.69,135.50,JP
`

const asns = `cidr,asn,org
198.51.100.0/24,AS64500,Example Transit
2001:db8::/32,64501,
`

// build makes a database of kind k from csvText, in memory.
func build(t testing.TB, csvText string, k Kind) *DB {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Build(&buf, "t.csv", strings.NewReader(csvText), k); err != nil {
		t.Fatal(err)
	}
	db, err := OpenBytes("t.mmdb", buf.Bytes(), k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCity(t *testing.T) {
	db := build(t, cities, City)
	for _, tc := range []struct {
		addr    string
		ok      bool
		lat     float64
		country string
		network string
	}{
		{"198.51.100.7", true, 50.11, "DE", "198.51.100.0/25"},
		{"198.51.100.200", true, 48.86, "FR", "198.51.100.128/25"},
		{"192.0.2.1", true, 40.71, "US", "192.0.2.0/24"},
		{"::ffff:192.0.2.1", true, 40.71, "US", "192.0.2.0/24"},
		{"2001:db8:1:2::1", true, 34.69, "JP", "2001:db8:1::/48"},
		{"8.8.8.8", false, 0, "", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			p, network, ok, err := db.City(netip.MustParseAddr(tc.addr))
			if err != nil || ok != tc.ok || p.Lat != tc.lat || p.Country != tc.country {
				t.Fatalf("City = %+v, %s, %v, %v; want lat %v country %q ok %v", p, network, ok, err, tc.lat, tc.country, tc.ok)
			}
			if !network.Contains(netip.MustParseAddr(tc.addr).Unmap()) {
				t.Fatalf("network %s does not hold %s", network, tc.addr)
			}
			if tc.network != "" && network.String() != tc.network {
				t.Fatalf("network %s, want %s", network, tc.network)
			}
		})
	}
}

func TestASN(t *testing.T) {
	db := build(t, asns, ASN)
	for _, tc := range []struct {
		addr string
		asn  uint32
		org  string
	}{
		{"198.51.100.7", 64500, "Example Transit"},
		{"2001:db8:ff::1", 64501, ""},
		{"192.0.2.1", 0, ""},
	} {
		asn, network, ok, err := db.ASN(netip.MustParseAddr(tc.addr))
		if err != nil || asn != tc.asn || ok != (tc.asn != 0) || !network.Contains(netip.MustParseAddr(tc.addr)) {
			t.Errorf("ASN(%s) = %d, %s, %v, %v; want %d", tc.addr, asn, network, ok, err, tc.asn)
		}
		if org := db.Org(netip.MustParseAddr(tc.addr)); org != tc.org {
			t.Errorf("Org(%s) = %q, want %q", tc.addr, org, tc.org)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	var city bytes.Buffer
	if _, err := Build(&city, "c.csv", strings.NewReader(cities), City); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		kind Kind
		want string
	}{
		{"missing", filepath.Join(dir, "nope.mmdb"), City, "nope.mmdb: not a readable MaxMind DB file"},
		{"empty", write("empty.mmdb", nil), City, "empty.mmdb: not a readable MaxMind DB file"},
		{"garbage", write("garbage.mmdb", []byte("not a database\n")), City, "garbage.mmdb: not a readable MaxMind DB file"},
		{"truncated", write("trunc.mmdb", city.Bytes()[:len(city.Bytes())/2]), City, "trunc.mmdb: not a readable MaxMind DB file"},
		{"wrong kind", write("city.mmdb", city.Bytes()), ASN, `city.mmdb: database type "Outpost-City" is not an ASN database`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(tc.path, tc.kind)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		kind       Kind
		want       string
	}{
		{"no rows", "cidr,lat,lon,country\n", City, "t.csv: no networks"},
		{"address", "198.51.100.7,1,2\n", City, `t.csv:1: network "198.51.100.7" has no prefix length`},
		{"host bits", "198.51.100.7/24,1,2\n", City, "did you mean 198.51.100.0/24?"},
		{"latitude", "# c\n198.51.100.0/24,91,2\n", City, "t.csv:2: latitude 91 is out of range"},
		{"country", "198.51.100.0/24,1,2,DEU\n", City, `invalid country "DEU"`},
		{"fields", "198.51.100.0/24,1\n", City, "t.csv:1: 2 fields"},
		{"duplicate", "198.51.100.0/24,1,2\n198.51.100.0/24,3,4\n", City, "t.csv:2: network 198.51.100.0/24 is listed twice (first at line 1)"},
		{"asn", "198.51.100.0/24,ASX\n", ASN, `t.csv:1: invalid ASN "ASX"`},
		{"asn zero", "198.51.100.0/24,0\n", ASN, `invalid ASN "0"`},
		{"quote", "198.51.100.0/24,\"1,2\n", City, "t.csv:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV("t.csv", strings.NewReader(tc.text), tc.kind)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkCity is one City lookup, decoding the location and country.
func BenchmarkCity(b *testing.B) {
	db := build(b, cities, City)
	a := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok, err := db.City(a); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkASN is one ASN lookup, decoding the number only.
func BenchmarkASN(b *testing.B) {
	db := build(b, asns, ASN)
	a := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok, err := db.ASN(a); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
