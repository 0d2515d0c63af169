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
