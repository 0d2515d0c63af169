// Package geodb reads and writes IP geolocation databases in the MaxMind
// DB format: City databases (GeoLite2-City, GeoIP2-City, DB-IP City Lite)
// that place an address at a latitude, longitude and country, and ASN
// databases (GeoLite2-ASN) that name the autonomous system announcing it.
//
// Lookups decode only the fields the geo DNS needs, into small structs,
// so that placing a client costs no allocation; each result comes with
// the database network it holds for, which bounds the EDNS Client Subnet
// scope of an answer. Build turns a small CSV file into a database of the
// same layout, so operators can describe their own networks and tests
// can make their fixtures without downloading anything.
package geodb

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Kind is what a database holds.
type Kind int

// The kinds of database.
const (
	// City databases place addresses at a location and country.
	City Kind = iota
	// ASN databases name the autonomous system of addresses.
	ASN
)

// String returns "City" or "ASN".
func (k Kind) String() string {
	if k == ASN {
		return "ASN"
	}
	return "City"
}

// Database types Build writes. Names starting with "GeoIP" are reserved
// for MaxMind's own databases.
const (
	CityType = "Outpost-City"
	ASNType  = "Outpost-ASN"
)

// DB is an open database of one Kind. It is safe for concurrent use;
// Close must not run concurrently with lookups.
type DB struct {
	path string
	kind Kind
	r    *maxminddb.Reader
}

// Open opens the database file at path and checks that its type is of
// kind k (a City database for City, an ASN database for ASN). Errors name
// the file.
func Open(path string, k Kind) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geodb: %s: not a readable MaxMind DB file: %w", path, err)
	}
	return newDB(path, k, r)
}

// OpenBytes is Open for a database held in memory, named name in errors.
func OpenBytes(name string, b []byte, k Kind) (*DB, error) {
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("geodb: %s: not a readable MaxMind DB file: %w", name, err)
	}
	return newDB(name, k, r)
}

func newDB(path string, k Kind, r *maxminddb.Reader) (*DB, error) {
	db := &DB{path: path, kind: k, r: r}
	if err := db.check(); err != nil {
		r.Close()
		return nil, err
	}
	return db, nil
}

// check verifies the database's type and, cheaply, that its records can
// be decoded as kind k.
func (db *DB) check() error {
	t := strings.ToUpper(db.r.Metadata.DatabaseType)
	ok := strings.Contains(t, "CITY") || strings.Contains(t, "ENTERPRISE") // Enterprise has the City layout
	what, examples := "a City", "GeoLite2-City, GeoIP2-City or DBIP-City-Lite"
	if db.kind == ASN {
		ok = strings.Contains(t, "ASN")
		what, examples = "an ASN", "GeoLite2-ASN or DBIP-ASN-Lite"
	}
	if !ok {
		return fmt.Errorf("geodb: %s: database type %q is not %s database (want %s)", db.path, db.r.Metadata.DatabaseType, what, examples)
	}
	// A corrupt data section shows on the first lookup of any network;
	// try one address of each family so that it shows now instead.
	for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{1, 1, 1, 1}), netip.MustParseAddr("2001:4860::1")} {
		if a.Is6() && db.r.Metadata.IPVersion != 6 {
			continue
		}
		var err error
		if db.kind == City {
			_, _, _, err = db.City(a)
		} else {
			_, _, _, err = db.ASN(a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Path returns the file the database was opened from.
func (db *DB) Path() string { return db.path }

// Kind returns what the database holds.
func (db *DB) Kind() Kind { return db.kind }

// Type returns the database's type from its metadata, such as
// "GeoLite2-City".
func (db *DB) Type() string { return db.r.Metadata.DatabaseType }

// Close releases the database's file.
func (db *DB) Close() error { return db.r.Close() }

// Place is where a City database places an address.
type Place struct {
	Lat, Lon float64 // decimal degrees
	// Country is the ISO 3166-1 alpha-2 code, "" when the record has none.
	Country string
}

// cityRecord is the part of a GeoIP2-City record that is read. Fields
// absent from a record keep their value, so Lat starts as NaN to tell a
// record without a location.
type cityRecord struct {
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
}

var (
	cityPool = sync.Pool{New: func() any { return new(cityRecord) }}
	asnPool  = sync.Pool{New: func() any { return new(asnRecord) }}
)

// City looks addr up in a City database. network is the database network
// that holds addr, on a hit and on a miss (the network the database knows
// nothing about); ok is false when the database has no record for addr or
// the record has no location. IPv4-mapped IPv6 addresses are looked up as
// IPv4.
func (db *DB) City(addr netip.Addr) (p Place, network netip.Prefix, ok bool, err error) {
	addr = addr.Unmap().WithZone("")
	res := db.r.Lookup(addr)
	network = res.Prefix()
	if !res.Found() {
		if err := res.Err(); err != nil {
			return p, network, false, fmt.Errorf("geodb: %s: lookup %s: %w", db.path, addr, err)
		}
		return p, network, false, nil
	}
	// Decode stores through an interface, which would move a local
	// record to the heap on every lookup; pooled records do not.
	rec := cityPool.Get().(*cityRecord)
	defer cityPool.Put(rec)
	*rec = cityRecord{}
	rec.Location.Latitude = math.NaN()
	if err := res.Decode(rec); err != nil {
		return p, network, false, fmt.Errorf("geodb: %s: record of %s: %w", db.path, network, err)
	}
	lat, lon := rec.Location.Latitude, rec.Location.Longitude
	if math.IsNaN(lat) || lat < -90 || lat > 90 || math.IsNaN(lon) || lon < -180 || lon > 180 {
		return p, network, false, nil
	}
	return Place{Lat: lat, Lon: lon, Country: rec.Country.ISOCode}, network, true, nil
}

// asnRecord is the part of a GeoLite2-ASN record that is read.
type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
}

// ASN looks addr up in an ASN database: the number of the autonomous
// system that announces it, and the database network that holds addr (on
// a miss too). ok is false when the database has no number for addr.
func (db *DB) ASN(addr netip.Addr) (asn uint32, network netip.Prefix, ok bool, err error) {
	addr = addr.Unmap().WithZone("")
	res := db.r.Lookup(addr)
	network = res.Prefix()
	if !res.Found() {
		if err := res.Err(); err != nil {
			return 0, network, false, fmt.Errorf("geodb: %s: lookup %s: %w", db.path, addr, err)
		}
		return 0, network, false, nil
	}
	rec := asnPool.Get().(*asnRecord)
	defer asnPool.Put(rec)
	*rec = asnRecord{}
	if err := res.Decode(rec); err != nil {
		return 0, network, false, fmt.Errorf("geodb: %s: record of %s: %w", db.path, network, err)
	}
	return rec.Number, network, rec.Number != 0, nil
}

// Org returns the name of the organization the ASN database gives for
// addr, "" when it has none. It allocates; it is for explanations, not
// for answering queries.
func (db *DB) Org(addr netip.Addr) string {
	var org string
	if err := db.r.Lookup(addr.Unmap().WithZone("")).DecodePath(&org, "autonomous_system_organization"); err != nil {
		return ""
	}
	return org
}
