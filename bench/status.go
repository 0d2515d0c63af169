package bench

import (
	"bytes"
	"strconv"
)

// Class is what became of a request at the CDN, read from the last member
// of the response's Cache-Status (RFC 9211): the figures of Outpost's
// README, so a run's counts can be compared with a PoP's /stats.
type Class uint8

// The classes. Every response is exactly one of them.
const (
	Unknown      Class = iota // no Cache-Status, or a form not understood
	Hit                       // served from storage without waiting on origin
	Collapsed                 // waited on another request's fill
	Revalidated               // origin answered 304, body from storage
	StaleOnError              // origin failed, stored body served
	Miss                      // cache-eligible, body from origin
	Pass                      // not eligible for the cache
	Error                     // the CDN could not answer (origin failure, unknown host, ...)
	numClasses
)

var classNames = [numClasses]string{
	Unknown:      "unknown",
	Hit:          "hit",
	Collapsed:    "collapsed",
	Revalidated:  "revalidated",
	StaleOnError: "stale_on_error",
	Miss:         "miss",
	Pass:         "pass",
	Error:        "error",
}

// String returns the class's name as /stats and the results spell it.
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// fromStorage reports whether a response of this class had its body from
// the cache, for the byte hit ratio.
func (c Class) fromStorage() bool {
	switch c {
	case Hit, Collapsed, Revalidated, StaleOnError:
		return true
	}
	return false
}

// isHit reports whether the class counts in the hit ratio.
func (c Class) isHit() bool { return c == Hit || c == Collapsed }

// CacheStatus is the last member of a Cache-Status field (RFC 9211 §2):
// the cache nearest the client.
type CacheStatus struct {
	Name      []byte // the cache's identifier, e.g. "outpost/fra"
	Hit       bool   // hit: served from storage
	Collapsed bool   // collapsed: waited on another request's fill
	Stored    bool   // stored: the response was stored
	Fwd       []byte // fwd: why the request went forward (uri-miss, stale, ...)
	FwdStatus int    // fwd-status: the status the next hop answered with
	Detail    []byte // detail: more on what happened (stale-if-error, ...)
}

// ParseCacheStatus parses the last member of a Cache-Status field value.
// When the field arrives in several lines, pass the last line: members are
// appended in order. It allocates nothing: the slices point into v. ok is
// false for an empty value.
func ParseCacheStatus(v []byte) (cs CacheStatus, ok bool) {
	// The last comma outside a quoted string starts the last member.
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			start = i + 1
		}
	}
	m := trimOWS(v[start:])
	if len(m) == 0 {
		return cs, false
	}
	item, params := splitParam(m)
	cs.Name = unquote(trimOWS(item))
	if len(cs.Name) == 0 {
		return cs, false
	}
	for len(params) > 0 {
		var p []byte
		p, params = splitParam(params)
		key, val, hasVal := bytes.Cut(trimOWS(p), []byte{'='})
		key = trimOWS(key)
		val = trimOWS(val)
		boolean := !hasVal || string(val) == "?1"
		switch string(key) {
		case "hit":
			cs.Hit = boolean
		case "collapsed":
			cs.Collapsed = boolean
		case "stored":
			cs.Stored = boolean
		case "fwd":
			cs.Fwd = unquote(val)
		case "fwd-status":
			if n, err := strconv.Atoi(string(val)); err == nil {
				cs.FwdStatus = n
			}
		case "detail":
			cs.Detail = unquote(val)
		}
	}
	return cs, true
}

// splitParam cuts s at its first semicolon outside a quoted string.
func splitParam(s []byte) (head, rest []byte) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ';':
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

// unquote removes the quotes of an sf-string (escapes are left as they
// are: the values compared here have none).
func unquote(s []byte) []byte {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func trimOWS(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Classify maps a parsed Cache-Status member to a class, as Outpost's PoP
// counts the request (the README's "figures"), in this order:
//
//	detail=origin-error|origin-timeout|unknown-host|only-if-cached → Error
//	detail=stale-if-error                                          → StaleOnError
//	hit                                                            → Hit
//	collapsed                                                      → Collapsed
//	fwd-status=304 with fwd=stale|request|bypass|method            → Revalidated
//	fwd=uri-miss|vary-miss|miss|stale|partial                      → Miss
//	fwd=request with stored or detail=request-no-store             → Miss
//	fwd=bypass|method|request                                      → Pass
//	anything else                                                  → Unknown
//
// The fwd=request rows follow the README: a request whose own directives
// (no-cache, max-age, no-store) sent it to the origin counts by what
// happened, and only a request the cache could not use at all (with
// Authorization, say) is a pass.
func Classify(cs CacheStatus) Class {
	switch string(cs.Detail) {
	case "origin-error", "origin-timeout", "unknown-host", "only-if-cached":
		return Error
	case "stale-if-error":
		return StaleOnError
	}
	if cs.Hit {
		return Hit
	}
	if cs.Collapsed {
		return Collapsed
	}
	fwd := string(cs.Fwd)
	switch fwd {
	case "stale", "request", "bypass", "method":
		if cs.FwdStatus == 304 {
			return Revalidated
		}
	}
	switch fwd {
	case "uri-miss", "vary-miss", "miss", "stale", "partial":
		return Miss
	case "request":
		if cs.Stored || string(cs.Detail) == "request-no-store" {
			return Miss
		}
		return Pass
	case "bypass", "method":
		return Pass
	}
	return Unknown
}

// ClassifyHeader classifies a response by the value of its last
// Cache-Status field line; an empty value is Unknown.
func ClassifyHeader(v []byte) Class {
	cs, ok := ParseCacheStatus(v)
	if !ok {
		return Unknown
	}
	return Classify(cs)
}
