package cache

import (
	"net/http"
	"strings"
	"time"
)

// RequestDirectives are a request's caching directives (RFC 9111 §5.2.1).
type RequestDirectives struct {
	NoCache      bool // validate with the origin before using a stored response
	NoStore      bool // store nothing of this exchange
	OnlyIfCached bool // answer from storage or with 504

	MaxAge      time.Duration // accept a stored response no older than this ...
	HasMaxAge   bool          // ... when set
	MaxStale    time.Duration // accept a stale response this far past its lifetime ...
	HasMaxStale bool          // ... when set; AnyStale when no value was given
	AnyStale    bool
	MinFresh    time.Duration // require at least this much freshness left ...
	HasMinFresh bool          // ... when set
}

// ParseRequestDirectives reads a request's Cache-Control, and Pragma:
// no-cache when Cache-Control is absent (RFC 9111 §5.4).
func ParseRequestDirectives(h http.Header) RequestDirectives {
	var rd RequestDirectives
	if len(h.Values("Cache-Control")) == 0 {
		for _, v := range h.Values("Pragma") {
			if strings.Contains(strings.ToLower(v), "no-cache") {
				rd.NoCache = true
			}
		}
		return rd
	}
	cc := ParseCacheControl(h)
	rd.NoCache = cc.Has("no-cache")
	rd.NoStore = cc.Has("no-store")
	rd.OnlyIfCached = cc.Has("only-if-cached")
	if v, present, valid := cc.Seconds("max-age"); present {
		// An invalid max-age asks for a response of age zero.
		rd.MaxAge, rd.HasMaxAge = v, true
		if !valid {
			rd.MaxAge = 0
		}
	}
	if v, present, valid := cc.Seconds("max-stale"); present {
		rd.HasMaxStale = true
		if valid {
			rd.MaxStale = v
		} else if cc["max-stale"] == "" {
			rd.AnyStale = true
		}
	}
	if v, present, valid := cc.Seconds("min-fresh"); present && valid {
		rd.MinFresh, rd.HasMinFresh = v, true
	}
	return rd
}

// Use is how a stored entry may answer a request.
type Use int

const (
	// UseFresh: serve it; it is fresh enough for this request.
	UseFresh Use = iota
	// UseStale: serve it stale, as the request allows (max-stale).
	UseStale
	// UseStaleRevalidate: serve it stale at once and refresh it in the
	// background (stale-while-revalidate, RFC 5861 §3).
	UseStaleRevalidate
	// UseValidate: it must be validated with the origin first.
	UseValidate
)

// Usable decides whether e may answer a request with directives rd at now
// (RFC 9111 §4, §4.2.4, §5.2.1; RFC 5861).
func (e *Entry) Usable(now time.Time, rd RequestDirectives) Use {
	age := e.Age(now)
	left := e.Lifetime - age
	if rd.NoCache || e.NoCache {
		return UseValidate
	}
	if rd.HasMaxAge && age > rd.MaxAge {
		return UseValidate
	}
	if rd.HasMinFresh && left < rd.MinFresh {
		return UseValidate
	}
	if left > 0 {
		return UseFresh
	}
	if e.MustRevalidate {
		return UseValidate
	}
	stale := -left
	if rd.HasMaxStale && (rd.AnyStale || stale <= rd.MaxStale) {
		return UseStale
	}
	if e.StaleWhileRevalidate > 0 && stale <= e.StaleWhileRevalidate && !rd.HasMaxAge && !rd.HasMinFresh {
		return UseStaleRevalidate
	}
	return UseValidate
}

// UsableOnError reports whether e may be served when the origin fails at
// now (stale-if-error, RFC 5861 §4): within its window, and not marked
// must-revalidate or no-cache.
func (e *Entry) UsableOnError(now time.Time) bool {
	if e.MustRevalidate || e.NoCache || e.IsVaryIndex() {
		return false
	}
	stale := e.Age(now) - e.Lifetime
	return stale <= e.StaleIfError
}
