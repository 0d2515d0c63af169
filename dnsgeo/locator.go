package dnsgeo

import (
	"net/netip"

	"github.com/outpost-cdn/outpost/dnsgeo/netmap"
)

// Location is a point on Earth in decimal degrees.
type Location struct {
	Lat float64 // latitude, -90..90
	Lon float64 // longitude, -180..180
}

// Match is what a Locator knows about a client.
type Match struct {
	// Network is the widest prefix around the client's address over
	// which the locator's result is the same, on a hit and on a miss. It
	// may be longer than the prefix the locator was asked about (RFC 7871
	// §7.2.1: a scope longer than the source prefix asks the resolver for
	// more bits), and its length bounds the ECS scope of the answer.
	Network netip.Prefix
	// POP names the PoP that serves the client; "" when Location is set
	// instead.
	POP string
	// Location is where the client is, when POP is "".
	Location Location
	// Country is the client's ISO 3166-1 alpha-2 country code, "" if
	// unknown.
	Country string
	// Source says where the result came from, such as "networks.csv:12",
	// for explanations.
	Source string
}

// A Locator places clients: a network map, a geo database. Locators are
// consulted in order and the first that knows the client decides.
// Implementations must be safe for concurrent use and fast: Locate runs
// on every query.
type Locator interface {
	// Name is a short fixed label for metrics and explanations, such as
	// "networks" or "geoip".
	Name() string
	// Locate places the client known by the prefix client (an address
	// and how many of its leading bits are known). ok is false when the
	// locator does not know the client; m.Network is set either way.
	Locate(client netip.Prefix) (m Match, ok bool)
}

// NetworkLocator returns a Locator backed by the network map m, named
// "networks".
func NetworkLocator(m *netmap.Map) Locator { return mapLocator{m} }

// mapLocator adapts a netmap.Map to Locator.
type mapLocator struct{ m *netmap.Map }

var _ Locator = mapLocator{}

// Name returns "networks".
func (l mapLocator) Name() string { return "networks" }

// Locate looks client up in the map.
func (l mapLocator) Locate(client netip.Prefix) (Match, bool) {
	e, network, ok := l.m.Lookup(client)
	if !ok {
		return Match{Network: network}, false
	}
	return Match{
		Network:  network,
		POP:      e.POP,
		Location: Location{Lat: e.Lat, Lon: e.Lon},
		Country:  e.Country,
		Source:   e.Source,
	}, true
}
