// Package netmap reads an operator's network map, a CSV file that places
// client networks (CIDR prefixes, or autonomous systems by number) either
// at a PoP or at a point on Earth, and answers longest-prefix-match
// lookups on it.
//
// Geo DNS needs more than "which row matches": a resolver caches an answer
// for the whole subnet the server says it is valid for (the EDNS Client
// Subnet scope, RFC 7871 §7.2.1), so a lookup also returns the widest
// network around the client over which the answer cannot change — the
// matched row narrowed just enough to exclude any more specific row that
// would answer differently. Rows are kept per prefix length for the
// match, and each row's directly nested rows are kept sorted, so that
// narrowing costs one binary search.
//
// The file format, one row per line, '#' starting a comment (at the start
// of a line or after a row's fields):
//
//	# network, pop                 the network's clients go to that PoP
//	203.0.113.0/24, nrt
//	# network, lat, lon[, country] the network is there; the nearest PoP answers
//	198.51.100.0/24, 50.11, 8.68, DE
//	# ASN, pop  or  ASN, lat, lon[, country]: the same for the clients an
//	# ASN database places in that autonomous system
//	AS64500, prg
//
// CIDR rows win over ASN rows: Lookup matches CIDR rows only, and
// LookupASN, for clients no CIDR row holds, matches ASN rows. Every error
// names the file and line.
package netmap

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Limits on what a map file may hold.
const (
	// MaxRows bounds the rows of one file; a map of a whole ISP market
	// has far fewer, and a bound keeps a wrong file from eating memory.
	MaxRows = 1_000_000
	// maxErrors bounds the problems reported for one file.
	maxErrors = 50
)

// Entry is one row of the map.
type Entry struct {
	// Network is the row's prefix, masked, IPv4 in dotted form; the zero
	// Prefix for an ASN row.
	Network netip.Prefix
	// ASN is the autonomous system number of an ASN row; 0 for a CIDR
	// row.
	ASN uint32
	// POP names the PoP that answers the network's clients; "" when the
	// row gives a location instead.
	POP string
	// Lat and Lon place the network in decimal degrees when POP is "".
	Lat, Lon float64
	// Country is the row's ISO 3166-1 alpha-2 code, uppercased; "" when
	// not given.
	Country string
	// Source is where the row came from, "FILE:LINE" with the file's base
	// name, for explanations.
	Source string
	// Line is the row's line number in its file.
	Line int
}

// Map is a parsed network map. It is immutable and safe for concurrent
// use. The zero Map is empty.
type Map struct {
	name   string
	v4     family
	v6     family
	asns   map[uint32]*Entry // the ASN rows
	asnAll []*Entry          // the same, in file order
}

// family holds the rows of one address family.
type family struct {
	bits    int                      // 32 or 128
	byLen   []map[netip.Prefix]*node // index: prefix length
	lengths []int                    // the lengths present, longest first
	roots   []*node                  // rows not nested in another, sorted by address
	all     []*node                  // every row, in file order
}

// node is a row and the rows directly nested in it, sorted by address.
type node struct {
	entry    Entry
	children []*node
}

// Load reads the map file at path.
func Load(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netmap: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a map from r as if from the file named name. On failure the
// error joins one error per problem (at most 50), each "NAME:LINE: message".
func Parse(name string, r io.Reader) (*Map, error) {
	m := &Map{name: name}
	m.v4 = newFamily(32)
	m.v6 = newFamily(128)
	base := filepath.Base(name)
	seen := make(map[netip.Prefix]int) // prefix → line
	seenASN := make(map[uint32]int)    // ASN → line
	problems, err := ReadRows(name, r, MaxRows, func(line int, rec []string) error {
		e, err := parseRow(rec)
		if err != nil {
			return err
		}
		e.Line = line
		e.Source = base + ":" + strconv.Itoa(line)
		if e.ASN != 0 {
			if first, dup := seenASN[e.ASN]; dup {
				return fmt.Errorf("AS%d is listed twice (first at line %d)", e.ASN, first)
			}
			seenASN[e.ASN] = line
			if m.asns == nil {
				m.asns = make(map[uint32]*Entry)
			}
			m.asns[e.ASN] = &e
			m.asnAll = append(m.asnAll, &e)
			return nil
		}
		if first, dup := seen[e.Network]; dup {
			return fmt.Errorf("network %s is listed twice (first at line %d)", e.Network, first)
		}
		seen[e.Network] = line
		m.familyOf(e.Network.Addr()).add(&node{entry: e})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netmap: %w", err)
	}
	if problems != nil {
		return nil, problems
	}
	m.v4.build()
	m.v6.build()
	return m, nil
}

// ReadRows reads a CSV file of networks the way the network map and
// `outpost geodb build` take them, from r as if from the file named name:
// blank lines and lines starting with '#' (indented too) are skipped,
// leading spaces are trimmed, rows may have any number of fields. It calls
// row with each row and the line it starts on; an error row returns is a
// problem at that line. Problems, CSV syntax errors among them, come back
// joined as problems, each a *ParseError, at most 50 and then a last "too
// many problems"; past maxRows rows reading stops with a problem too. err
// is set only when r itself fails.
func ReadRows(name string, r io.Reader, maxRows int, row func(line int, rec []string) error) (problems, err error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	cr.LazyQuotes = true // a quote in a comment is not an error
	var errs []error
	report := func(line int, msg string) {
		errs = append(errs, &ParseError{File: name, Line: line, Msg: msg})
	}
	rows := 0
	for len(errs) < maxErrors {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if pe, ok := errors.AsType[*csv.ParseError](err); ok {
				report(pe.Line, pe.Err.Error())
				if !errors.Is(pe.Err, csv.ErrFieldCount) {
					break // the reader cannot resync after a quoting error
				}
				continue
			}
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if first := strings.TrimSpace(rec[0]); len(rec) == 1 && first == "" || strings.HasPrefix(first, "#") {
			continue // a blank line, or an indented comment
		}
		line, _ := cr.FieldPos(0)
		rows++
		if rows > maxRows {
			report(line, fmt.Sprintf("more than %d rows", maxRows))
			break
		}
		if err := row(line, rec); err != nil {
			report(line, err.Error())
		}
	}
	if len(errs) == maxErrors {
		errs = append(errs, &ParseError{File: name, Msg: fmt.Sprintf("too many problems; stopped after %d", maxErrors)})
	}
	return errors.Join(errs...), nil
}

// ParseError is a problem at one line of a map file.
type ParseError struct {
	File string
	Line int // 0 when the problem is not at one line
	Msg  string
}

// Error returns "FILE:LINE: message".
func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// popNameRE is what PoP names look like (as package config requires).
var popNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// parseRow parses the fields of one row.
func parseRow(rec []string) (Entry, error) {
	// '#' starts a comment after the fields too (no field can hold one);
	// the comment may contain commas, which split it into more fields.
	for i := range rec {
		if before, _, cut := strings.Cut(rec[i], "#"); cut {
			rec = rec[:i+1]
			rec[i] = before
			if strings.TrimSpace(before) == "" {
				rec = rec[:i]
			}
			break
		}
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	var e Entry
	if len(rec) < 2 || len(rec) > 4 {
		return e, fmt.Errorf("%d fields; want \"network, pop\" or \"network, lat, lon[, country]\" (network: a CIDR prefix or an ASN such as AS64500)", len(rec))
	}
	if isASN(rec[0]) {
		n, err := strconv.ParseUint(rec[0][2:], 10, 32)
		if err != nil || n == 0 {
			return e, fmt.Errorf("invalid ASN %q (want AS and a number 1..4294967295, such as AS64500)", rec[0])
		}
		e.ASN = uint32(n)
	} else {
		p, err := ParseNetwork(rec[0])
		if err != nil {
			return e, err
		}
		e.Network = p
	}
	var err error
	if len(rec) == 2 {
		if !popNameRE.MatchString(rec[1]) {
			return e, fmt.Errorf("invalid PoP name %q (lowercase letters, digits, '-' and '_'; for a location give lat and lon)", rec[1])
		}
		e.POP = rec[1]
		return e, nil
	}
	if e.Lat, err = parseDegrees(rec[1], "latitude", 90); err != nil {
		return e, err
	}
	if e.Lon, err = parseDegrees(rec[2], "longitude", 180); err != nil {
		return e, err
	}
	if len(rec) == 4 && rec[3] != "" {
		c := strings.ToUpper(rec[3])
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			return e, fmt.Errorf("invalid country %q (want a two-letter ISO 3166 code such as DE)", rec[3])
		}
		e.Country = c
	}
	return e, nil
}

// isASN reports whether a row's first field names an autonomous system
// ("AS64500", any letter case) rather than a network.
func isASN(s string) bool {
	return len(s) > 2 && (s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's')
}

// ParseNetwork parses a CIDR prefix as a network of a CSV row: no bits
// set past its length, no IPv6 zone, IPv4 in dotted form. Its errors say
// how to write the network instead.
func ParseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return p, fmt.Errorf("network %q has no prefix length (for one address write %s/%d)", s, a, a.BitLen())
		}
		return p, fmt.Errorf("invalid network %q (want a CIDR prefix such as 198.51.100.0/24)", s)
	}
	switch {
	case p.Addr().Zone() != "":
		return p, fmt.Errorf("network %q: IPv6 zones are not supported", s)
	case p.Addr().Is4In6():
		return p, fmt.Errorf("network %q is IPv4-mapped; write IPv4 networks in dotted form", s)
	case p.Masked() != p:
		return p, fmt.Errorf("network %q has bits set past its length; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ParseDegrees parses a latitude or longitude (what) in decimal degrees
// within [-limit, limit].
func ParseDegrees(s, what string, limit float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("invalid %s %q (want decimal degrees)", what, s)
	}
	if v < -limit || v > limit {
		return 0, fmt.Errorf("%s %s is out of range (want %g..%g)", what, s, -limit, limit)
	}
	return v, nil
}

// parseDegrees is ParseDegrees for a row of the map, where a PoP name may
// stand in place of the coordinates.
func parseDegrees(s, what string, limit float64) (float64, error) {
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return 0, fmt.Errorf("invalid %s %q (want decimal degrees, or a PoP name in place of lat, lon)", what, s)
	}
	return ParseDegrees(s, what, limit)
}

func newFamily(bits int) family {
	return family{bits: bits, byLen: make([]map[netip.Prefix]*node, bits+1)}
}

func (m *Map) familyOf(a netip.Addr) *family {
	if a.Is4() {
		return &m.v4
	}
	return &m.v6
}

func (f *family) add(n *node) {
	l := n.entry.Network.Bits()
	if f.byLen[l] == nil {
		f.byLen[l] = make(map[netip.Prefix]*node)
		f.lengths = append(f.lengths, l)
	}
	f.byLen[l][n.entry.Network] = n
	f.all = append(f.all, n)
}

// build sorts the lengths and links each row to the rows nested in it.
func (f *family) build() {
	slices.SortFunc(f.lengths, func(a, b int) int { return cmp.Compare(b, a) })
	sorted := slices.Clone(f.all)
	// By address, then shorter first: a row comes after every row that
	// contains it, and the rows nested in one row follow it in a run.
	slices.SortFunc(sorted, func(a, b *node) int {
		if c := a.entry.Network.Addr().Compare(b.entry.Network.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.entry.Network.Bits(), b.entry.Network.Bits())
	})
	var stack []*node
	for _, n := range sorted {
		for len(stack) > 0 && !contains(stack[len(stack)-1].entry.Network, n.entry.Network) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			f.roots = append(f.roots, n)
		} else {
			p := stack[len(stack)-1]
			p.children = append(p.children, n)
		}
		stack = append(stack, n)
	}
}

// contains reports whether outer contains inner.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// Len returns the number of rows, CIDR and ASN.
func (m *Map) Len() int { return len(m.v4.all) + len(m.v6.all) + len(m.asnAll) }

// ASNs returns the number of ASN rows.
func (m *Map) ASNs() int { return len(m.asnAll) }

// LookupASN finds the row of autonomous system asn.
func (m *Map) LookupASN(asn uint32) (Entry, bool) {
	if m == nil {
		return Entry{}, false
	}
	if e := m.asns[asn]; e != nil {
		return *e, true
	}
	return Entry{}, false
}

// Name returns the file name the map was parsed from.
func (m *Map) Name() string { return m.name }

// Entries calls yield with every row, IPv4 rows first, each family in file
// order, then the ASN rows in file order, until yield returns false.
func (m *Map) Entries(yield func(Entry) bool) {
	for _, f := range []*family{&m.v4, &m.v6} {
		for _, n := range f.all {
			if !yield(n.entry) {
				return
			}
		}
	}
	for _, e := range m.asnAll {
		if !yield(*e) {
			return
		}
	}
}

// Lookup finds the row for a client known by the prefix client: an
// address and how many of its leading bits are known (32 or 128 for a
// whole address; an ECS source prefix length otherwise). The address,
// with the bits past the known ones cleared, is looked up: the longest
// row that holds it wins, even a row longer than the known bits (as
// gdnsd does: RFC 7871 §7.2.1 lets the scope exceed the source prefix,
// so that a resolver sends more bits). IPv4-mapped IPv6 addresses are
// looked up as IPv4.
//
// network is the widest prefix around the address over which the result
// is the same — on a hit the matched row, narrowed to exclude nested
// rows. It is valid on a miss too: the widest prefix around the address
// that no row overlaps. It may be longer than the known bits, unless none
// are known (a /0 client gets a /0 network, and only a /0 row).
func (m *Map) Lookup(client netip.Prefix) (e Entry, network netip.Prefix, ok bool) {
	if m == nil || !client.IsValid() {
		return Entry{}, netip.Prefix{}, false
	}
	a, known := client.Addr(), client.Bits()
	if a.Is4In6() {
		a = a.Unmap()
		known = max(known-96, 0)
	}
	a = a.WithZone("")
	f := m.familyOf(a)
	known = min(known, f.bits)
	if pm, err := a.Prefix(known); err == nil {
		a = pm.Addr()
	}
	var match *node
	for _, l := range f.lengths {
		if known == 0 && l > 0 {
			continue // nothing is known: only a /0 row holds the client
		}
		p, _ := a.Prefix(l)
		if n, hit := f.byLen[l][p]; hit {
			match = n
			break
		}
	}
	scope := 0
	nested := f.roots
	if match != nil {
		scope = match.entry.Network.Bits()
		nested = match.children
	}
	// Narrow the network until it excludes every nested row. The nested
	// rows are disjoint and sorted, so the ones sharing the longest
	// leading bits with a are its neighbours in that order.
	i, _ := slices.BinarySearchFunc(nested, a, func(n *node, t netip.Addr) int { return n.entry.Network.Addr().Compare(t) })
	for _, j := range []int{i - 1, i} {
		if j < 0 || j >= len(nested) {
			continue
		}
		p := nested[j].entry.Network
		common := min(commonBits(a, p.Addr()), p.Bits())
		scope = max(scope, common+1)
	}
	if known == 0 {
		scope = 0
	}
	network, _ = a.Prefix(min(scope, f.bits))
	if match == nil {
		return Entry{}, network, false
	}
	return match.entry, network, true
}

// commonBits returns how many leading bits a and b, of one family, share.
func commonBits(a, b netip.Addr) int {
	if a.Is4() {
		x, y := a.As4(), b.As4()
		return bits.LeadingZeros32(be32(x[:]) ^ be32(y[:]))
	}
	x, y := a.As16(), b.As16()
	if n := bits.LeadingZeros64(be64(x[:8]) ^ be64(y[:8])); n < 64 {
		return n
	}
	return 64 + bits.LeadingZeros64(be64(x[8:])^be64(y[8:]))
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 {
	return uint64(be32(b[:4]))<<32 | uint64(be32(b[4:]))
}
