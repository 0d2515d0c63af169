package geodb

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzBuild feeds arbitrary text to the City and ASN CSV parsers: they
// must return rows or an error naming the file, never panic, and a
// database built from rows they return must open and place each row's
// network as the row says (unless a longer row nested in it wins).
func FuzzBuild(f *testing.F) {
	f.Add(cities, false)
	f.Add(asns, true)
	f.Add("198.51.100.0/24,1,2\n198.51.100.0/25,3,4,de\n::/0,0,0\n", false)
	f.Add("0.0.0.0/0,AS1\n", true)
	f.Add("\"unterminated\n", false)
	f.Fuzz(func(t *testing.T, text string, asn bool) {
		k := City
		if asn {
			k = ASN
		}
		rows, err := ParseCSV("f.csv", strings.NewReader(text), k)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(rows) > 20 {
			return // building is slow; parsing was the point
		}
		var buf bytes.Buffer
		if err := Write(&buf, "f.csv", rows, k); err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") && !strings.HasPrefix(err.Error(), "geodb:") {
				t.Fatalf("error names neither the file nor the package: %v", err)
			}
			return
		}
		db, err := OpenBytes("f.mmdb", buf.Bytes(), k)
		if err != nil {
			t.Fatalf("the database built does not open: %v", err)
		}
		defer db.Close()
		for _, r := range rows {
			a := r.Network.Addr()
			if k == ASN {
				if _, network, _, err := db.ASN(a); err != nil || !network.Contains(a) {
					t.Fatalf("ASN(%s): %s, %v", a, network, err)
				}
				continue
			}
			p, network, ok, err := db.City(a)
			if err != nil || !network.Contains(a) {
				t.Fatalf("City(%s): %s, %v", a, network, err)
			}
			if ok && network == r.Network && p != r.Place {
				t.Fatalf("City(%s) = %+v, want %+v", a, p, r.Place)
			}
		}
	})
}
