package synthetic

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds of the fault parameters, so one request cannot hold a handler for
// longer than a test or benchmark would ever want.
const (
	maxDelay     = 5 * time.Minute  // ?delay=
	maxSlowPause = 10 * time.Second // ?slow=
	slowChunk    = 1 << 10          // bytes sent between pauses of ?slow=
	defaultSlow  = 10 * time.Millisecond
)

// params are a content request's query parameters, validated.
type params struct {
	size    int64 // ?size=; -1 when absent
	cc      string
	hasCC   bool   // ?cc= was given (an empty value means no header)
	etag    string // ?etag=, quoted
	hasETag bool   // ?etag= was given ("none" leaves etag empty)
	vary    string
	tags    string // ?tag= values joined by single spaces
	delay   time.Duration
	status  int           // ?status=; 0 when absent
	reset   bool          // ?reset=
	slow    time.Duration // ?slow=: pause between chunks; 0 when off
}

// parseParams validates the query parameters the origin understands and
// ignores the others (so ?v=2 makes a new cache key). It reports every bad
// parameter at once.
func parseParams(q url.Values) (params, error) {
	p := params{size: -1}
	var errs []error
	bad := func(name, v string, err error) {
		errs = append(errs, fmt.Errorf("bad %s %q: %w", name, v, err))
	}
	if vs, ok := q["size"]; ok {
		n, err := parseSize(vs[0])
		if err != nil {
			bad("size", vs[0], err)
		}
		p.size = n
	}
	if vs, ok := q["cc"]; ok {
		p.cc, p.hasCC = vs[0], true
		if !validFieldValue(p.cc) {
			bad("cc", p.cc, errFieldValue)
		}
	}
	if vs, ok := q["etag"]; ok {
		p.hasETag = true
		if vs[0] != "none" {
			t, err := parseETag(vs[0])
			if err != nil {
				bad("etag", vs[0], err)
			}
			p.etag = t
		}
	}
	if vs, ok := q["vary"]; ok {
		p.vary = vs[0]
		if !validFieldValue(p.vary) {
			bad("vary", p.vary, errFieldValue)
		}
	}
	if vs, ok := q["tag"]; ok {
		var tags []string
		for _, v := range vs {
			tags = append(tags, strings.Fields(v)...)
		}
		p.tags = strings.Join(tags, " ")
		if !validFieldValue(p.tags) {
			bad("tag", p.tags, errFieldValue)
		}
	}
	if vs, ok := q["delay"]; ok {
		d, err := parseDelay(vs[0])
		if err != nil {
			bad("delay", vs[0], err)
		}
		p.delay = d
	}
	if vs, ok := q["status"]; ok {
		c, err := parseStatus(vs[0])
		if err != nil {
			bad("status", vs[0], err)
		}
		p.status = c
	}
	if vs, ok := q["reset"]; ok {
		r, err := strconv.ParseBool(vs[0])
		if err != nil {
			bad("reset", vs[0], errors.New("want 1 or 0"))
		}
		p.reset = r
	}
	if vs, ok := q["slow"]; ok {
		d, err := parseSlow(vs[0])
		if err != nil {
			bad("slow", vs[0], err)
		}
		p.slow = d
	}
	if len(errs) > 0 {
		return params{}, fmt.Errorf("synthetic: %w", errors.Join(errs...))
	}
	return p, nil
}

// parseDelay parses ?delay=: a Go duration from 0 to 5m.
func parseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 200ms or 1.5s")
	}
	if d < 0 || d > maxDelay {
		return 0, fmt.Errorf("want a duration from 0 to %v", maxDelay)
	}
	return d, nil
}

// parseStatus parses ?status=: three digits, 200 to 599. Informational
// (1xx) codes are not final responses, so they cannot be asked for.
func parseStatus(s string) (int, error) {
	if len(s) != 3 || s[0] < '2' || s[0] > '5' || !isDigit(s[1]) || !isDigit(s[2]) {
		return 0, errors.New("want a status code from 200 to 599")
	}
	return int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0'), nil
}

// parseSlow parses ?slow=: 1 or true for a pause of 10ms between 1 KiB
// chunks, a duration up to 10s for another pause, 0 or false for none.
func parseSlow(s string) (time.Duration, error) {
	if b, err := strconv.ParseBool(s); err == nil {
		if b {
			return defaultSlow, nil
		}
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxSlowPause {
		return 0, fmt.Errorf("want 1, 0 or a pause from 0 to %v such as 50ms", maxSlowPause)
	}
	return d, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var errFieldValue = errors.New("control characters are not allowed in a header field value")

// validFieldValue reports whether v may be sent as a header field value
// (RFC 9110 §5.5): no control characters other than horizontal tab.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// parseETag turns ?etag= into an entity-tag (RFC 9110 §8.8.3): a quoted
// opaque tag, optionally weak (W/"x"), is kept as it is; a bare one is
// quoted ("x").
func parseETag(s string) (string, error) {
	opaque, weak := s, false
	if rest, ok := strings.CutPrefix(s, "W/"); ok {
		opaque, weak = rest, true
	}
	quoted := len(opaque) >= 2 && opaque[0] == '"' && opaque[len(opaque)-1] == '"'
	if quoted {
		opaque = opaque[1 : len(opaque)-1]
	} else if weak {
		return "", errors.New(`a weak tag must be quoted: W/"x"`)
	}
	for i := 0; i < len(opaque); i++ {
		// etagc = %x21 / %x23-7E / obs-text
		if c := opaque[i]; c < 0x21 || c == '"' || c == 0x7f {
			return "", errors.New(`want an entity-tag such as abc, "abc" or W/"abc" (no spaces, quotes or control characters inside)`)
		}
	}
	if quoted {
		return s, nil
	}
	return `"` + s + `"`, nil
}
