package geodb

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/outpost-cdn/outpost/dnsgeo/netmap"
)

// Limits on what a CSV file given to Build may hold.
const (
	// MaxRows bounds the rows of one file.
	MaxRows = 1_000_000
)

// Row is one network of a CSV file given to Build.
type Row struct {
	// Network is the row's prefix, masked, IPv4 in dotted form.
	Network netip.Prefix
	// Place is the network's location and country (City files).
	Place Place
	// ASN and Org are the network's autonomous system (ASN files).
	ASN uint32
	Org string
	// Line is the row's line number in its file.
	Line int
}

// ParseError is one problem in a CSV file, "FILE:LINE: message"; the
// network map's, whose reader ParseCSV shares.
type ParseError = netmap.ParseError

// ParseCSV reads the rows of a CSV file of kind k from r, as if from the
// file named name. City files have rows "cidr,lat,lon[,country]", ASN
// files "cidr,asn[,org]" (asn as 64500 or AS64500). Blank lines and lines
// starting with '#' are skipped; a first row whose first field has no
// digit is a header and is skipped too. A network may be listed once;
// networks may nest, the longer prefix winning. On failure the error
// joins one error per problem (at most 50), each "NAME:LINE: message".
func ParseCSV(name string, r io.Reader, k Kind) ([]Row, error) {
	var rows []Row
	seen := make(map[netip.Prefix]int)
	first := true
	problems, err := netmap.ReadRows(name, r, MaxRows, func(line int, rec []string) error {
		if first {
			first = false
			if !strings.ContainsAny(rec[0], "0123456789") {
				return nil // a header
			}
		}
		row, err := parseRow(rec, k)
		if err != nil {
			return err
		}
		if at, dup := seen[row.Network]; dup {
			return fmt.Errorf("network %s is listed twice (first at line %d)", row.Network, at)
		}
		seen[row.Network] = line
		row.Line = line
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("geodb: %w", err)
	}
	if problems != nil {
		return nil, problems
	}
	if len(rows) == 0 {
		return nil, &ParseError{File: name, Msg: "no networks"}
	}
	return rows, nil
}

// parseRow parses the fields of one row of kind k.
func parseRow(rec []string, k Kind) (Row, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	var row Row
	want := `"cidr,lat,lon[,country]"`
	if k == ASN {
		want = `"cidr,asn[,org]"`
	}
	lo, hi := 3, 4
	if k == ASN {
		lo, hi = 2, 3
	}
	if len(rec) < lo || len(rec) > hi {
		return row, fmt.Errorf("%d fields; want %s", len(rec), want)
	}
	p, err := netmap.ParseNetwork(rec[0])
	if err != nil {
		return row, err
	}
	row.Network = p
	if k == ASN {
		s := strings.TrimPrefix(strings.ToUpper(rec[1]), "AS")
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return row, fmt.Errorf("invalid ASN %q (want a number 1..4294967295, such as 64500 or AS64500)", rec[1])
		}
		row.ASN = uint32(n)
		if len(rec) == 3 {
			row.Org = rec[2]
		}
		return row, nil
	}
	if row.Place.Lat, err = netmap.ParseDegrees(rec[1], "latitude", 90); err != nil {
		return row, err
	}
	if row.Place.Lon, err = netmap.ParseDegrees(rec[2], "longitude", 180); err != nil {
		return row, err
	}
	if len(rec) == 4 && rec[3] != "" {
		c := strings.ToUpper(rec[3])
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			return row, fmt.Errorf("invalid country %q (want a two-letter ISO 3166 code such as DE)", rec[3])
		}
		row.Place.Country = c
	}
	return row, nil
}

// Write writes a database of kind k holding rows to w, in the layout of
// GeoIP2-City (location.latitude, location.longitude, country.iso_code) or
// GeoLite2-ASN (autonomous_system_number, autonomous_system_organization).
// Nested networks are allowed: the longer prefix wins. Reserved ranges
// (private, documentation) may be listed, as an operator's own map needs.
// name is the CSV file's name, for errors.
func Write(w io.Writer, name string, rows []Row, k Kind) error {
	typ := CityType
	if k == ASN {
		typ = ASNType
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            typ,
		Description:             map[string]string{"en": "built by outpost geodb build from " + name},
		IncludeReservedNetworks: true,
		IPVersion:               6,
		RecordSize:              28,
		BuildEpoch:              time.Now().Unix(),
	})
	if err != nil {
		return fmt.Errorf("geodb: %w", err)
	}
	// Shorter prefixes first, so each nested network replaces its part
	// of the network around it.
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b Row) int { return cmp.Compare(a.Network.Bits()+v4Offset(a), b.Network.Bits()+v4Offset(b)) })
	for _, r := range sorted {
		var rec mmdbtype.Map
		if k == ASN {
			rec = mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(r.ASN)}
			if r.Org != "" {
				rec["autonomous_system_organization"] = mmdbtype.String(r.Org)
			}
		} else {
			rec = mmdbtype.Map{"location": mmdbtype.Map{
				"latitude":  mmdbtype.Float64(r.Place.Lat),
				"longitude": mmdbtype.Float64(r.Place.Lon),
			}}
			if r.Place.Country != "" {
				rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(r.Place.Country)}
			}
		}
		a := r.Network.Addr()
		ipnet := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(r.Network.Bits(), a.BitLen())}
		if err := tree.Insert(ipnet, rec); err != nil {
			return &ParseError{File: name, Line: r.Line, Msg: fmt.Sprintf("network %s: %v", r.Network, err)}
		}
	}
	if _, err := tree.WriteTo(w); err != nil {
		return fmt.Errorf("geodb: writing the database: %w", err)
	}
	return nil
}

// v4Offset places IPv4 networks at their depth in the IPv6 tree, where
// they sit under ::/96.
func v4Offset(r Row) int {
	if r.Network.Addr().Is4() {
		return 96
	}
	return 0
}

// Build reads a CSV file of kind k from r (see ParseCSV), named name in
// errors, and writes the database to w (see Write).
func Build(w io.Writer, name string, r io.Reader, k Kind) (rows int, err error) {
	rs, err := ParseCSV(name, r, k)
	if err != nil {
		return 0, err
	}
	return len(rs), Write(w, name, rs, k)
}

// BuildFile builds a database of kind k from the CSV file at csvPath and
// writes it to outPath, through a temporary file in the same directory
// renamed into place, so a server never sees half a database. It returns
// the number of networks.
func BuildFile(csvPath, outPath string, k Kind) (rows int, err error) {
	in, err := os.Open(csvPath)
	if err != nil {
		return 0, fmt.Errorf("geodb: %w", err)
	}
	defer in.Close()
	rs, err := ParseCSV(csvPath, in, k)
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".*")
	if err != nil {
		return 0, fmt.Errorf("geodb: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Write(tmp, csvPath, rs, k); err != nil {
		return 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("geodb: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("geodb: %w", err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return 0, fmt.Errorf("geodb: %w", err)
	}
	return len(rs), nil
}
