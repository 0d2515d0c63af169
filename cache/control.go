package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Directives is a parsed Cache-Control field (RFC 9111 §5.2): directive
// names, lowercased, mapped to their argument ("" when there is none). When a
// directive appears more than once, the first occurrence wins (§4.2.1).
type Directives map[string]string

// ParseCacheControl parses every Cache-Control field line in h. Malformed
// members are skipped, never fatal: the field comes from untrusted peers.
func ParseCacheControl(h http.Header) Directives {
	values := h.Values("Cache-Control")
	if len(values) == 0 {
		return nil
	}
	d := make(Directives, 4)
	for _, line := range values {
		parseDirectives(line, d)
	}
	return d
}

// parseDirectives adds the members of one field line to d.
func parseDirectives(line string, d Directives) {
	for len(line) > 0 {
		line = strings.TrimLeft(line, " \t,")
		if line == "" {
			return
		}
		end := strings.IndexAny(line, "=,")
		if end < 0 {
			end = len(line)
		}
		raw := line[:end]
		name := strings.ToLower(strings.TrimSpace(raw))
		line = line[end:]
		var arg string
		spaced := false // the grammar has no whitespace around "=" (§5.2)
		if strings.HasPrefix(line, "=") {
			spaced = strings.TrimRight(raw, " \t") != raw ||
				strings.HasPrefix(line[1:], " ") || strings.HasPrefix(line[1:], "\t")
			line = strings.TrimLeft(line[1:], " \t")
			arg, line = parseArgument(line)
		}
		if name == "" || !isToken(name) || spaced {
			continue
		}
		if _, seen := d[name]; !seen {
			d[name] = arg
		}
	}
}

// parseArgument reads a token or a quoted-string (RFC 9110 §5.6.4) from the
// start of s and returns it and the rest of s after the member.
func parseArgument(s string) (arg, rest string) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				rest = s[i+1:]
				if j := strings.IndexByte(rest, ','); j >= 0 {
					return b.String(), rest[j:]
				}
				return b.String(), ""
			default:
				b.WriteByte(c)
			}
		}
		return b.String(), "" // unterminated: take what there is
	}
	end := strings.IndexByte(s, ',')
	if end < 0 {
		end = len(s)
	}
	return strings.TrimSpace(s[:end]), s[end:]
}

// isToken reports whether s consists of RFC 9110 tchars only.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Has reports whether the directive is present.
func (d Directives) Has(name string) bool {
	_, ok := d[name]
	return ok
}

// Seconds returns a delta-seconds directive's value (RFC 9111 §1.2.2).
// present reports whether the directive appeared at all; valid whether its
// argument was a non-negative integer. Values too large to represent are
// capped at 2^31 seconds, as the RFC asks.
func (d Directives) Seconds(name string) (v time.Duration, present, valid bool) {
	arg, ok := d[name]
	if !ok {
		return 0, false, false
	}
	if arg == "" {
		return 0, true, false
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] < '0' || arg[i] > '9' {
			return 0, true, false
		}
	}
	const maxDelta = 1 << 31
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n > maxDelta {
		n = maxDelta
	}
	return time.Duration(n) * time.Second, true, true
}
