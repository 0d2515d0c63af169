package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// sizeUnits maps each unit, lowercased, to its number of bytes. The single
// letters are binary, as in most tools that take a cache size.
var sizeUnits = map[string]uint64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"k":   1 << 10,
	"m":   1 << 20,
	"g":   1 << 30,
	"t":   1 << 40,
}

// ParseSize parses a size in bytes: a non-negative number, optionally with
// a fraction, followed by an optional unit, such as "512MiB", "64KiB",
// "1.5GiB", "10MB" or "1024". Units are case-insensitive: B; KB, MB, GB, TB
// (powers of 1000); KiB, MiB, GiB, TiB and the single letters k, m, g, t
// (powers of 1024). A fraction of a byte is dropped. Negative numbers,
// unknown units and sizes that do not fit in an int64 are errors.
func ParseSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("config: invalid size %q: %w", s, err)
	}
	return n, nil
}

// errSizeOverflow is returned for sizes that do not fit in an int64.
var errSizeOverflow = errors.New("too large")

// parseSize is ParseSize with errors that do not repeat the input.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	if t[0] == '-' {
		return 0, errors.New("size must not be negative")
	}
	// Split into whole digits, fraction digits and unit.
	i := 0
	for i < len(t) && isDigit(t[i]) {
		i++
	}
	whole := t[:i]
	var frac string
	if i < len(t) && t[i] == '.' {
		j := i + 1
		for j < len(t) && isDigit(t[j]) {
			j++
		}
		frac, i = t[i+1:j], j
		if frac == "" {
			return 0, errors.New("missing digits after the decimal point")
		}
	}
	if whole == "" && frac == "" {
		return 0, errors.New("want a number followed by an optional unit, e.g. 64MiB")
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", unit)
	}

	var n uint64
	if whole != "" {
		w, err := strconv.ParseUint(whole, 10, 64)
		if err != nil {
			return 0, errSizeOverflow
		}
		hi, lo := bits.Mul64(w, mult)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, errSizeOverflow
		}
		n = lo
	}
	if frac != "" {
		// frac/10^len(frac) of mult bytes, truncated. Digits past the 18th
		// are worth less than a millionth of a byte and are ignored.
		frac = frac[:min(len(frac), 18)]
		f, _ := strconv.ParseUint(frac, 10, 64) // at most 18 digits: fits
		div := uint64(1)
		for range len(frac) {
			div *= 10
		}
		hi, lo := bits.Mul64(f, mult)
		q, _ := bits.Div64(hi, lo, div) // f < div, so q < mult: no overflow
		if n+q > math.MaxInt64 {
			return 0, errSizeOverflow
		}
		n += q
	}
	return int64(n), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// formatSize writes n bytes with the largest binary unit that divides it
// exactly, for messages: 1048576 → "1MiB".
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
