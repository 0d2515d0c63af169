package cache

import (
	"net/http"
	"strings"
	"time"
)

// ParseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate
// format, or one of the two obsolete formats (RFC 850 and asctime) that
// recipients must still accept. Names of days and months and the "GMT"
// zone are matched case-insensitively; everything else is strict: one
// space between fields, two-digit hours, minutes and seconds, and no zone
// but GMT. http.ParseTime is laxer (it takes "2:01:18", runs of spaces and
// a second field line), and RFC 9111 §5.3 has a cache treat an invalid
// Expires as a time in the past, so the difference decides what is fresh.
func ParseHTTPDate(s string) (time.Time, bool) {
	for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
		if !shapeMatches(s, layout) {
			continue
		}
		v := s
		if layout != time.ANSIC {
			v = s[:len(s)-3] + "GMT"
		}
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// shapeMatches checks s against layout character by character: digits
// where the layout has digits, letters where it has letters, the same
// punctuation elsewhere. RFC 850's day name varies in length, and
// asctime's day of month may be a space-padded single digit.
func shapeMatches(s, layout string) bool {
	switch layout {
	case time.RFC850: // Sunday, 06-Nov-94 08:49:37 GMT
		comma := strings.IndexByte(s, ',')
		if comma < 6 || comma > 9 || !allLetters(s[:comma]) {
			return false
		}
		return shape(s[comma:], ", dd-aaa-dd dd:dd:dd aaa")
	case time.ANSIC: // Sun Nov  6 08:49:37 1994
		return shape(s, "aaa aaa dd dd:dd:dd dddd") || shape(s, "aaa aaa  d dd:dd:dd dddd")
	default: // Sun, 06 Nov 1994 08:49:37 GMT
		return shape(s, "aaa, dd aaa dddd dd:dd:dd aaa")
	}
}

// shape matches s against a pattern where 'a' is an ASCII letter, 'd' an
// ASCII digit, and any other byte itself.
func shape(s, pattern string) bool {
	if len(s) != len(pattern) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch pattern[i] {
		case 'a':
			if !isLetter(c) {
				return false
			}
		case 'd':
			if c < '0' || c > '9' {
				return false
			}
		default:
			if c != pattern[i] {
				return false
			}
		}
	}
	if !strings.HasSuffix(pattern, "aaa") {
		return true
	}
	return strings.EqualFold(s[len(s)-3:], "GMT")
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) {
			return false
		}
	}
	return true
}

// singleDate returns the one HTTP-date in a singleton field such as Date or
// Expires. More than one field line, or an unparsable value, is invalid.
func singleDate(h http.Header, name string) (t time.Time, present, valid bool) {
	values := h.Values(name)
	if len(values) == 0 {
		return time.Time{}, false, false
	}
	if len(values) > 1 {
		return time.Time{}, true, false
	}
	t, valid = ParseHTTPDate(strings.TrimSpace(values[0]))
	return t, true, valid
}
