package synthetic

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// MaxSize is the largest object ?size= may ask for: 1 GiB.
const MaxSize = 1 << 30

// The size distribution of SizeOf. These are the numbers of Outpost's
// hit-ratio study (research/hitratio.md in the shared notes: "lognormal,
// median 20 KiB, sigma 1.5, clamped to 64 B..10 MiB", mean about 61 KiB),
// so benchmarks against this origin see the workload the cache was chosen
// on.
const (
	sizeMedian = 20 << 10
	sizeSigma  = 1.5
	sizeMin    = 64
	sizeMax    = 10 << 20
)

// SizeOf returns the size of id's object when the request names none: a
// lognormal draw (median 20 KiB, sigma 1.5, clamped to 64 B..10 MiB) seeded
// by the id's hash, so it is the same on every call and every server, and a
// load tool can predict the bytes a workload moves.
func SizeOf(id string) int64 { return sizeOf(idHash(id)) }

func sizeOf(h [4]uint64) int64 {
	// Box–Muller on two 53-bit uniforms; u1 in (0, 1], u2 in [0, 1).
	u1 := float64(h[2]>>11+1) / (1 << 53)
	u2 := float64(h[3]>>11) / (1 << 53)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	// The float64 conversion forbids fusing into an FMA, which would make
	// the result differ between architectures.
	s := sizeMedian * math.Exp(float64(sizeSigma*z))
	switch {
	case s < sizeMin:
		return sizeMin
	case s > sizeMax:
		return sizeMax
	}
	return int64(math.Round(s))
}

// sizeUnits maps each unit, lowercased, to its bytes. The single letters
// and the IEC units are binary; KB, MB and GB are decimal, as in the CDN
// file's sizes.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
}

var errSizeSyntax = errors.New("want a whole number of bytes with an optional unit: 512, 10k, 1m, 1g, 64KiB, 2MiB, 1GiB")

// ParseSize parses an object size as ?size= takes it: a whole number of
// bytes followed by an optional unit, case-insensitive: k, m, g, KiB, MiB
// and GiB are powers of 1024 (10k = 10240), KB, MB and GB powers of 1000,
// B is bytes. Sizes above MaxSize, fractions, signs, spaces and unknown
// units are errors.
func ParseSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("synthetic: bad size %q: %w", s, err)
	}
	return n, nil
}

func parseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errSizeSyntax
	}
	mult, ok := sizeUnits[strings.ToLower(s[i:])]
	if !ok {
		return 0, errSizeSyntax
	}
	v, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("more than %d bytes", MaxSize)
	}
	hi, n := bits.Mul64(v, mult)
	if hi != 0 || n > MaxSize {
		return 0, fmt.Errorf("more than %d bytes", MaxSize)
	}
	return int64(n), nil
}
