package bench

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Region is a share of the simulated client population: the virtual
// clients placed in it take addresses in Prefix and send them to the DNS
// server as EDNS Client Subnet, as a resolver near them would.
type Region struct {
	// Name labels the region in the results ("fra").
	Name string
	// Prefix is the region's client subnet.
	Prefix netip.Prefix
	// Weight is the region's share of the virtual clients, relative to the
	// other regions'; zero means 1.
	Weight float64
}

// ParseRegion parses "name=CIDR[:weight]", e.g. "fra=198.51.100.0/24:3".
func ParseRegion(s string) (Region, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Region{}, fmt.Errorf("bench: region %q: want name=CIDR[:weight], e.g. fra=198.51.100.0/24:3", s)
	}
	cidr, weight := rest, 1.0
	// The weight follows the last colon after the slash (IPv6 has colons).
	if slash := strings.LastIndexByte(rest, '/'); slash >= 0 {
		if colon := strings.IndexByte(rest[slash:], ':'); colon >= 0 {
			cidr = rest[:slash+colon]
			w, err := strconv.ParseFloat(rest[slash+colon+1:], 64)
			if err != nil || !(w > 0) || math.IsInf(w, 0) {
				return Region{}, fmt.Errorf("bench: region %q: weight %q is not a number > 0", s, rest[slash+colon+1:])
			}
			weight = w
		}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return Region{}, fmt.Errorf("bench: region %q: %w", s, err)
	}
	return Region{Name: name, Prefix: p.Masked(), Weight: weight}, nil
}

// String formats the region as ParseRegion reads it.
func (r Region) String() string {
	return fmt.Sprintf("%s=%s:%g", r.Name, r.Prefix, r.weight())
}

func (r Region) weight() float64 {
	if r.Weight == 0 {
		return 1
	}
	return r.Weight
}

// pickRegion returns the index of the region virtual client i belongs to,
// drawn by weight from the seed.
func pickRegion(regions []Region, seed uint64, i int) int {
	var total float64
	for _, r := range regions {
		total += r.weight()
	}
	g := newRNG(seed, streamClient, uint64(i))
	x := g.float() * total
	for j, r := range regions {
		if x < r.weight() {
			return j
		}
		x -= r.weight()
	}
	return len(regions) - 1
}

// clientAddr returns virtual client i's address: a random host in the
// region's prefix.
func clientAddr(p netip.Prefix, seed uint64, i int) netip.Addr {
	g := newRNG(seed, streamClient, uint64(i))
	g.next() // the region draw
	a := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for b := bits; b < 128; b++ {
		if g.next()&1 == 1 {
			a[b/8] |= 0x80 >> (b % 8)
		}
	}
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return addr
}
