package cache

import (
	"strings"
)

// parseTargeted parses the field lines of a targeted cache-control field
// (RFC 9213 §2.1) as a Structured Field Dictionary (RFC 9651 §3.2). It
// reports false when the field does not parse, and the cache then ignores
// the field as the RFC asks. A directive whose value has the wrong type for
// it (max-age="60") is dropped. Keys are matched case-insensitively, as
// Cache-Control's directive names are.
func parseTargeted(lines []string) (Directives, bool) {
	d := make(Directives, 4)
	s := strings.Join(lines, ",")
	s = strings.TrimLeft(s, " ")
	for s != "" {
		key, rest, ok := sfKey(s)
		if !ok {
			return nil, false
		}
		s = rest
		value, kind := "", sfBoolean
		if strings.HasPrefix(s, "=") {
			if value, kind, s, ok = sfBareItem(s[1:]); !ok {
				return nil, false
			}
		} else {
			value = "?1"
		}
		isBool := kind == sfBoolean
		if s, ok = sfParams(s); !ok {
			return nil, false
		}
		switch key {
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if kind != sfInteger || !isDigits(value) {
				break // wrong type: the directive is ignored
			}
			fallthrough
		default:
			if isBool && value == "?0" {
				break // a false boolean is the directive's absence
			}
			if isBool {
				value = ""
			}
			if _, seen := d[key]; !seen {
				d[key] = value
			}
		}
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		s = strings.TrimLeft(s[1:], " \t")
		if s == "" {
			return nil, false // trailing comma
		}
	}
	return d, true
}

// sfKey reads a dictionary key: lcalpha or "*", then lcalpha, digits,
// "_", "-", "." or "*" (upper case is folded, see parseTargeted).
func sfKey(s string) (key, rest string, ok bool) {
	if s == "" || !(isLetter(s[0]) || s[0] == '*') {
		return "", s, false
	}
	i := 1
	for i < len(s) {
		c := s[i]
		if isLetter(c) || c >= '0' && c <= '9' || strings.IndexByte("_-.*", c) >= 0 {
			i++
			continue
		}
		break
	}
	return strings.ToLower(s[:i]), s[i:], true
}

// Kinds of Structured Field items.
const (
	sfInteger = iota
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
	sfInnerList
)

// sfBareItem reads an item after "=": an integer or decimal, a string, a
// token, a byte sequence or a boolean (value "?0" or "?1"); or an inner
// list, kept as its text.
func sfBareItem(s string) (value string, kind int, rest string, ok bool) {
	if s == "" {
		return "", 0, s, false
	}
	switch c := s[0]; {
	case c == '-' || c >= '0' && c <= '9':
		i := 0
		if c == '-' {
			i = 1
		}
		start, dot := i, -1
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' && dot < 0) {
			if s[i] == '.' {
				dot = i
			}
			i++
		}
		if i == start || dot == i-1 || (dot < 0 && i-start > 15) || (dot >= 0 && (dot-start > 12 || i-dot-1 > 3)) {
			return "", 0, s, false
		}
		if dot >= 0 {
			return s[:i], sfDecimal, s[i:], true
		}
		return s[:i], sfInteger, s[i:], true
	case c == '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch ch := s[i]; {
			case ch == '\\':
				if i+1 >= len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
					return "", 0, s, false
				}
				i++
				b.WriteByte(s[i])
			case ch == '"':
				return b.String(), sfString, s[i+1:], true
			case ch < 0x20 || ch > 0x7e:
				return "", 0, s, false
			default:
				b.WriteByte(ch)
			}
		}
		return "", 0, s, false
	case c == '?':
		if len(s) < 2 || (s[1] != '0' && s[1] != '1') {
			return "", 0, s, false
		}
		return s[:2], sfBoolean, s[2:], true
	case c == ':':
		end := strings.IndexByte(s[1:], ':')
		if end < 0 {
			return "", 0, s, false
		}
		return s[1 : end+1], sfBytes, s[end+2:], true
	case c == '(':
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					return s[:i+1], sfInnerList, s[i+1:], true
				}
			}
		}
		return "", 0, s, false
	case isLetter(c) || c == '*':
		i := 1
		for i < len(s) && (isToken(s[i:i+1]) || s[i] == ':' || s[i] == '/') {
			i++
		}
		return s[:i], sfToken, s[i:], true
	}
	return "", 0, s, false
}

// sfParams skips the parameters after an item (";key" or ";key=item").
func sfParams(s string) (string, bool) {
	for strings.HasPrefix(s, ";") {
		s = strings.TrimLeft(s[1:], " ")
		_, rest, ok := sfKey(s)
		if !ok {
			return s, false
		}
		s = rest
		if strings.HasPrefix(s, "=") {
			var ok bool
			if _, _, s, ok = sfBareItem(s[1:]); !ok {
				return s, false
			}
		}
	}
	return s, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseSurrogateControl parses Surrogate-Control (W3C Edge Architecture
// 1.0 §3): Cache-Control-like directives, each optionally targeted at a
// device with ";token". Directives targeted at another device are left
// out; the rest follow Cache-Control's grammar, so a malformed directive is
// ignored. no-store-remote, for surrogates far from the origin, counts as
// no-store: a PoP is one. "max-age=60+600" is max-age=60 with 600 seconds
// of stale-if-error. The field governs only when it says max-age or
// no-store: one that only carries content="ESI/1.0" leaves Cache-Control
// in charge.
func parseSurrogateControl(lines []string) (Directives, bool) {
	d := make(Directives, 4)
	for _, line := range lines {
		for _, member := range splitMembers(line) {
			directive, target, targeted := cutTarget(member)
			if targeted && !strings.EqualFold(strings.TrimSpace(target), SurrogateDevice) {
				continue
			}
			parseDirectives(directive, d)
		}
	}
	if _, ok := d["no-store-remote"]; ok {
		if _, seen := d["no-store"]; !seen {
			d["no-store"] = ""
		}
	}
	if v, ok := d["max-age"]; ok {
		if age, extra, plus := strings.Cut(v, "+"); plus {
			d["max-age"] = age
			if _, seen := d["stale-if-error"]; !seen {
				d["stale-if-error"] = extra
			}
		}
	}
	_, maxAge := d["max-age"]
	_, noStore := d["no-store"]
	return d, maxAge || noStore
}

// splitMembers splits a field line at the commas outside quoted strings.
func splitMembers(line string) []string {
	var members []string
	quoted, start := false, 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				members = append(members, line[start:i])
				start = i + 1
			}
		}
	}
	return append(members, line[start:])
}

// cutTarget splits "max-age=60;device" at the ";" outside quoted strings.
func cutTarget(member string) (directive, target string, targeted bool) {
	quoted := false
	for i := 0; i < len(member); i++ {
		switch member[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				return member[:i], member[i+1:], true
			}
		}
	}
	return member, "", false
}
