package dnsgeo

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo/geodb"
	"github.com/outpost-cdn/outpost/dnsgeo/netmap"
)

// Database networks longer than these are widened to them for the ECS
// scope: the widest networks ISPs give one customer site, and what
// resolvers cache by. A City database often splits a /24 into many small
// networks that all place users in the same city; answering for each one
// alone would only fragment resolvers' caches.
const (
	maxScope4 = 24
	maxScope6 = 56
)

// locatorInfo describes what loadLocators read.
type locatorInfo struct {
	// networkMap is the network map; nil when there is none. The caller
	// checks its PoP names against the PoPs (every row's, ASN rows too).
	networkMap *netmap.Map
	// networks is the number of rows of the network map; -1 when there is
	// none.
	networks int
	// geoip and asn are the databases; nil when not configured. They stay
	// open until closeFn runs.
	geoip, asn *geodb.DB
}

// loadLocators makes the locators the dns section names, in the order they
// are consulted: the network map's CIDR rows (dns.networks), its ASN rows
// through the ASN database (dns.asn), then the City database (dns.geoip).
// A client none of them places gets the fallback order. closeFn releases
// the databases; it is never nil and may be called once, when no query
// can still use the locators. Every error names the file at fault.
func loadLocators(dc *config.DNS) (locs []Locator, info locatorInfo, closeFn func() error, err error) {
	info.networks = -1
	var closers []func() error
	closeFn = func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			closeFn()
			locs, info, closeFn = nil, locatorInfo{networks: -1}, func() error { return nil }
		}
	}()

	if dc.Networks != "" {
		m, err := netmap.Load(dc.Networks)
		if err != nil {
			return nil, info, closeFn, fmt.Errorf("dnsgeo: network map: %w", err)
		}
		info.networkMap, info.networks = m, m.Len()
		locs = append(locs, NetworkLocator(m))
	}
	if dc.ASN != "" {
		db, err := geodb.Open(dc.ASN, geodb.ASN)
		if err != nil {
			return nil, info, closeFn, fmt.Errorf("dnsgeo: dns.asn: %w", err)
		}
		closers = append(closers, db.Close)
		info.asn = db
	}
	if m := info.networkMap; m != nil && m.ASNs() > 0 {
		if info.asn == nil {
			first := 0
			for e := range m.Entries {
				if e.ASN != 0 {
					first = e.Line
					break
				}
			}
			return nil, info, closeFn, fmt.Errorf("dnsgeo: network map: %w", &netmap.ParseError{File: m.Name(), Line: first,
				Msg: fmt.Sprintf("%d ASN rows need an ASN database: set dns.asn to a GeoLite2-ASN file (or one from outpost geodb build --asn)", m.ASNs())})
		}
		locs = append(locs, newASNLocator(m, info.asn))
	}
	if dc.GeoIP != "" {
		db, err := geodb.Open(dc.GeoIP, geodb.City)
		if err != nil {
			return nil, info, closeFn, fmt.Errorf("dnsgeo: dns.geoip: %w", err)
		}
		closers = append(closers, db.Close)
		info.geoip = db
		locs = append(locs, GeoIPLocator(db))
	}
	return locs, info, closeFn, nil
}

// capScope bounds the network a database gave for the client's address:
// no longer than /24 (IPv4) or /56 (IPv6). It may be longer than the
// client's known bits (RFC 7871 §7.2.1). A network that does not hold
// the address (a database without that family) becomes its /0.
func capScope(network netip.Prefix, client netip.Prefix) netip.Prefix {
	a := client.Addr()
	bits := network.Bits()
	if !network.IsValid() || network.Addr().Is4() != a.Is4() || !network.Contains(a) {
		bits = 0
	}
	limit := maxScope4
	if a.Is6() {
		limit = maxScope6
	}
	p, _ := a.Prefix(min(bits, limit))
	return p
}

// GeoIPLocator returns a Locator backed by the City database db, named
// "geoip". A hit's network is the database network, capped at /24 and
// /56 (see the ECS scope). Locate allocates nothing.
func GeoIPLocator(db *geodb.DB) Locator {
	return &geoipLocator{db: db, source: filepath.Base(db.Path())}
}

// geoipLocator adapts a City database to Locator.
type geoipLocator struct {
	db     *geodb.DB
	source string // the file's base name
}

var _ Locator = (*geoipLocator)(nil)

// Name returns "geoip".
func (l *geoipLocator) Name() string { return "geoip" }

// Locate looks the client's network address up in the database. A
// database error counts as a miss.
func (l *geoipLocator) Locate(client netip.Prefix) (Match, bool) {
	client = client.Masked()
	p, network, ok, err := l.db.City(client.Addr())
	if err != nil || !ok {
		if err != nil {
			network = netip.Prefix{}
		}
		return Match{Network: capScope(network, client)}, false
	}
	return Match{
		Network:  capScope(network, client),
		Location: Location{Lat: p.Lat, Lon: p.Lon},
		Country:  p.Country,
		Source:   l.source,
	}, true
}

// asnLocator places clients by the ASN rows of a network map: the ASN
// database names the client's autonomous system, and the map's row for
// it answers.
type asnLocator struct {
	db   *geodb.DB
	rows map[uint32]Match // by ASN, built once; Network is set per query
}

var _ Locator = (*asnLocator)(nil)

func newASNLocator(m *netmap.Map, db *geodb.DB) *asnLocator {
	l := &asnLocator{db: db, rows: make(map[uint32]Match, m.ASNs())}
	for e := range m.Entries {
		if e.ASN == 0 {
			continue
		}
		l.rows[e.ASN] = Match{
			POP:      e.POP,
			Location: Location{Lat: e.Lat, Lon: e.Lon},
			Country:  e.Country,
			Source:   e.Source + " AS" + strconv.FormatUint(uint64(e.ASN), 10),
		}
	}
	return l
}

// Name returns "asn".
func (l *asnLocator) Name() string { return "asn" }

// Locate finds the client's autonomous system in the database and its
// row in the map. The network is the database's, capped like geoip's.
func (l *asnLocator) Locate(client netip.Prefix) (Match, bool) {
	client = client.Masked()
	asn, network, ok, err := l.db.ASN(client.Addr())
	if err != nil {
		return Match{Network: capScope(netip.Prefix{}, client)}, false
	}
	network = capScope(network, client)
	if !ok {
		return Match{Network: network}, false
	}
	m, ok := l.rows[asn]
	m.Network = network
	return m, ok
}
