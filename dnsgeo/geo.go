package dnsgeo

import "math"

// earthRadiusKm is the mean radius of the Earth (IUGG), which the
// haversine formula treats as a sphere; the error, under 0.5 %, does not
// change which PoP is nearest in practice.
const earthRadiusKm = 6371.0088

// point is a Location prepared for distance computations.
type point struct {
	lat, lon float64 // radians
	cosLat   float64
}

func newPoint(l Location) point {
	lat := l.Lat * math.Pi / 180
	return point{lat: lat, lon: l.Lon * math.Pi / 180, cosLat: math.Cos(lat)}
}

// distanceKm is the great-circle distance between a and b (haversine).
func distanceKm(a, b point) float64 {
	sdLat := math.Sin((b.lat - a.lat) / 2)
	sdLon := math.Sin((b.lon - a.lon) / 2)
	h := sdLat*sdLat + a.cosLat*b.cosLat*sdLon*sdLon
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(h, 1)))
}

// Distance returns the great-circle distance between a and b in km.
func Distance(a, b Location) float64 { return distanceKm(newPoint(a), newPoint(b)) }
