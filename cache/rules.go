package cache

import (
	"net/http"
	"strconv"
	"time"
)

// Policy holds a service's overrides of the origin's caching instructions.
type Policy struct {
	// DefaultTTL is the freshness lifetime given to storable responses that
	// carry no explicit freshness (max-age, s-maxage, Expires). Zero leaves
	// them with none.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp every freshness lifetime; zero means no clamp.
	MinTTL, MaxTTL time.Duration
}

// Reasons a response is not stored, as reported in Cache-Status's detail.
const (
	ReasonMethod         = "method"
	ReasonRequestNoStore = "request-no-store"
	ReasonAuthorization  = "authorization"
	ReasonStatus         = "status"
	ReasonNoStore        = "no-store"
	ReasonPrivate        = "private"
	ReasonSetCookie      = "set-cookie"
	ReasonVary           = "vary"
	ReasonNoFreshness    = "no-freshness"
	ReasonTooLarge       = "too-large"
)

// storableStatus lists the final status codes the PoP stores. They are the
// codes RFC 9110 §15.1 defines as heuristically cacheable, less 206 (the PoP
// always fetches whole objects).
var storableStatus = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// Storable decides whether a shared cache may store the response to req
// (RFC 9111 §3) with the freshness lifetime it computed, and if not, why.
// The returned reason is one of the Reason constants.
//
// Responses with Set-Cookie are stored only when the origin marked them
// public explicitly, so one user's cookie is never served to another.
// Responses with Vary are not stored yet: serving one user's variant to
// another would be wrong, and variant storage is not built.
func Storable(req *http.Request, status int, h http.Header, lifetime time.Duration) (ok bool, reason string) {
	if req.Method != http.MethodGet {
		return false, ReasonMethod
	}
	reqCC := ParseCacheControl(req.Header)
	if reqCC.Has("no-store") {
		return false, ReasonRequestNoStore
	}
	cc := ParseCacheControl(h)
	if cc.Has("no-store") {
		return false, ReasonNoStore
	}
	if cc.Has("private") {
		return false, ReasonPrivate
	}
	if req.Header.Get("Authorization") != "" &&
		!cc.Has("public") && !cc.Has("s-maxage") && !cc.Has("must-revalidate") {
		return false, ReasonAuthorization
	}
	if !storableStatus[status] {
		return false, ReasonStatus
	}
	if len(h.Values("Set-Cookie")) > 0 && !cc.Has("public") {
		return false, ReasonSetCookie
	}
	if len(h.Values("Vary")) > 0 {
		return false, ReasonVary
	}
	if lifetime <= 0 {
		return false, ReasonNoFreshness
	}
	return true, ""
}

// Lifetime computes a response's freshness lifetime for a shared cache
// (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires minus Date, else
// the policy's default TTL; then the policy's clamps. An invalid max-age or
// Expires makes the response stale (lifetime 0), as §5.2.2.1 and §5.3 ask.
func Lifetime(h http.Header, p Policy) time.Duration {
	lifetime, explicit := explicitLifetime(h)
	if !explicit {
		lifetime = p.DefaultTTL
	}
	if p.MinTTL > 0 && lifetime < p.MinTTL {
		lifetime = p.MinTTL
	}
	if p.MaxTTL > 0 && lifetime > p.MaxTTL {
		lifetime = p.MaxTTL
	}
	return lifetime
}

// explicitLifetime returns the lifetime the origin stated, if it stated one.
func explicitLifetime(h http.Header) (time.Duration, bool) {
	cc := ParseCacheControl(h)
	for _, name := range []string{"s-maxage", "max-age"} {
		if v, present, valid := cc.Seconds(name); present {
			if !valid {
				return 0, true
			}
			return v, true
		}
	}
	expires := h.Values("Expires")
	if len(expires) == 0 {
		return 0, false
	}
	exp, err := http.ParseTime(expires[0])
	if err != nil {
		return 0, true // an invalid Expires means already expired (§5.3)
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0, true
	}
	return max(exp.Sub(date), 0), true
}

// StaleWindows returns the RFC 5861 stale-while-revalidate and
// stale-if-error windows of a response.
func StaleWindows(h http.Header) (whileRevalidate, ifError time.Duration) {
	cc := ParseCacheControl(h)
	whileRevalidate, _, _ = cc.Seconds("stale-while-revalidate")
	ifError, _, _ = cc.Seconds("stale-if-error")
	return whileRevalidate, ifError
}

// InitialAge computes corrected_initial_age (RFC 9111 §4.2.3) for a
// response received at responseTime to a request sent at requestTime.
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		apparent = max(responseTime.Sub(date), 0)
	}
	var ageValue time.Duration
	if v := h.Get("Age"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			ageValue = time.Duration(min(n, 1<<31)) * time.Second
		}
	}
	delay := max(responseTime.Sub(requestTime), 0)
	return max(apparent, ageValue+delay)
}

// AgeHeader formats an age for the Age header: whole seconds, rounded down.
func AgeHeader(age time.Duration) string {
	return strconv.FormatInt(int64(age/time.Second), 10)
}
