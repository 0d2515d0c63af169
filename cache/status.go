package cache

import (
	"strconv"
	"strings"
	"time"
)

// Forward reasons of Cache-Status (RFC 9211 §2.2): why a request went to
// the origin.
const (
	FwdBypass  = "bypass"   // configured not to use the cache
	FwdMethod  = "method"   // the method is not cacheable
	FwdURIMiss = "uri-miss" // nothing stored for the key
	FwdVary    = "vary-miss"
	FwdStale   = "stale"   // stored but stale
	FwdRequest = "request" // the request's directives (no-cache, ...)
)

// Status is one cache's member of the Cache-Status header (RFC 9211).
type Status struct {
	Hit       bool
	Fwd       string        // a Fwd constant; empty on a hit
	FwdStatus int           // status the origin answered with; 0 if none
	TTL       time.Duration // remaining freshness; reported when HasTTL
	HasTTL    bool
	Stored    bool
	Collapsed bool
	Detail    string // an sf-token: the reason a response was not stored, etc.
}

// Format renders s as a Cache-Status list member for the cache named name
// (which must be an sf-token, e.g. "outpost/prg").
func (s Status) Format(name string) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString(name)
	if s.Hit {
		b.WriteString("; hit")
	}
	if s.Fwd != "" {
		b.WriteString("; fwd=")
		b.WriteString(s.Fwd)
	}
	if s.FwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(s.FwdStatus))
	}
	if s.HasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(int64(s.TTL/time.Second), 10))
	}
	if s.Stored {
		b.WriteString("; stored")
	}
	if s.Collapsed {
		b.WriteString("; collapsed")
	}
	if s.Detail != "" {
		b.WriteString("; detail=")
		b.WriteString(s.Detail)
	}
	return b.String()
}
