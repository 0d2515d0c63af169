package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Policy holds a service's overrides of the origin's caching instructions.
type Policy struct {
	// DefaultTTL is the freshness lifetime given to storable responses that
	// carry no explicit freshness (max-age, s-maxage, Expires). Zero leaves
	// them to heuristic freshness (RFC 9111 §4.2.2).
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp every freshness lifetime; zero means no clamp.
	MinTTL, MaxTTL time.Duration
	// StaleIfError is the stale-if-error window used when the origin gives
	// none; zero means none.
	StaleIfError time.Duration
}

// Reason says why a response is not stored; it is what Cache-Status's
// detail reports (RFC 9211 §2.8), so it is an sf-token. The empty Reason
// means the response is stored.
type Reason string

// Reasons a response is not stored.
const (
	ReasonMethod         Reason = "method"
	ReasonRequestNoStore Reason = "request-no-store"
	ReasonAuthorization  Reason = "authorization"
	ReasonStatus         Reason = "status"
	ReasonNoStore        Reason = "no-store"
	ReasonPrivate        Reason = "private"
	ReasonSetCookie      Reason = "set-cookie"
	ReasonVaryStar       Reason = "vary-star"
	ReasonNoFreshness    Reason = "no-freshness"
	ReasonTooLarge       Reason = "too-large"
	ReasonPartial        Reason = "partial"
)

// Request is what the caching rules need of the request a response
// answers (RFC 9111 §3): its method, whether it forbade storing, and
// whether it carried credentials.
type Request struct {
	// Method is the request method; only GET responses are stored.
	Method string
	// NoStore: the request's Cache-Control said no-store (RFC 9111
	// §5.2.1.5).
	NoStore bool
	// Authorization: the request carried an Authorization field (RFC 9111
	// §3.5).
	Authorization bool
}

// RequestOf returns what the caching rules need of a request with the
// given method and header fields.
func RequestOf(method string, h http.Header) Request {
	return Request{
		Method:        method,
		NoStore:       ParseCacheControl(h).Has("no-store"),
		Authorization: h.Get("Authorization") != "",
	}
}

// HeuristicMaxLifetime caps heuristic freshness (RFC 9111 §4.2.2), as
// Apache Traffic Server's default does.
const HeuristicMaxLifetime = 24 * time.Hour

// heuristicStatus lists the status codes that are heuristically cacheable
// (RFC 9110 §15.1), less 206: the PoP stores whole objects only.
var heuristicStatus = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// Targeted fields (RFC 9213) that govern this cache, most specific first,
// then Surrogate-Control (W3C Edge Architecture 1.0), which CDNs honoured
// before RFC 9213 and many origins still send. When one is present,
// Cache-Control and Expires are ignored for caching decisions, and the
// field is never forwarded to clients.
var targetedFields = []string{"Outpost-Cache-Control", "CDN-Cache-Control", "Surrogate-Control"}

// SurrogateDevice is the device token Surrogate-Control directives can be
// targeted at ("max-age=60;outpost"); directives without a target apply to
// every surrogate.
const SurrogateDevice = "outpost"

// TargetedFields returns the names of the targeted cache-control fields the
// PoP obeys and removes from responses it forwards.
func TargetedFields() []string { return slices.Clone(targetedFields) }

// canonicalTargeted are targetedFields in canonical form, as keys of an
// http.Header.
var canonicalTargeted = func() []string {
	names := make([]string, len(targetedFields))
	for i, n := range targetedFields {
		names[i] = http.CanonicalHeaderKey(n)
	}
	return names
}()

// StripTargeted removes the targeted cache-control fields from h: they
// govern this CDN and are never forwarded to clients (RFC 9213 §2; W3C
// Edge Architecture 1.0 for Surrogate-Control). Every serving path calls
// it, or asks IsTargeted, so the list lives here only.
func StripTargeted(h http.Header) {
	for _, name := range canonicalTargeted {
		delete(h, name)
	}
}

// IsTargeted reports whether a canonical field name is a targeted
// cache-control field (see StripTargeted).
func IsTargeted(name string) bool { return slices.Contains(canonicalTargeted, name) }

// responseDirectives returns the directives that govern a shared cache for
// a response, and whether they came from a targeted field.
//
// A targeted field is a Structured Field Dictionary; the first one that
// parses and is not empty wins, and one that does not parse is ignored
// (RFC 9213 §2.1), so Cache-Control then applies.
func responseDirectives(h http.Header) (Directives, bool) {
	for _, name := range targetedFields {
		values := h.Values(name)
		if len(values) == 0 {
			continue
		}
		parse := parseTargeted
		if name == "Surrogate-Control" {
			parse = parseSurrogateControl
		}
		if d, ok := parse(values); ok && len(d) > 0 {
			return d, true
		}
	}
	return ParseCacheControl(h), false
}

// Decision is what the caching rules say about one response.
type Decision struct {
	// Storable says the response may be stored; if not, Reason says why.
	Storable bool
	Reason   Reason
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1) after the
	// policy's clamps; Heuristic says it was computed by §4.2.2.
	Lifetime  time.Duration
	Heuristic bool
	// InitialAge is corrected_initial_age (RFC 9111 §4.2.3).
	InitialAge time.Duration
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows.
	StaleWhileRevalidate, StaleIfError time.Duration
	// NoCache: a stored copy must be revalidated before every use
	// (response no-cache without field names).
	NoCache bool
	// MustRevalidate: once stale, the copy must not be used without
	// successful revalidation (must-revalidate, proxy-revalidate, s-maxage).
	MustRevalidate bool
	// StripFields are header fields that must not be stored or served from
	// storage (private="..." and no-cache="..." with field names).
	StripFields []string
	// Private says the response as a whole is for one user (private
	// without field names): no other request may ever receive it.
	Private bool
}

// Decide applies RFC 9111 §3 and §4.2 to the response to req: whether a
// shared cache may store it, and for how long it is fresh. requestTime and
// responseTime bracket the origin exchange. req is what the rules need of
// the request (RequestOf makes it from a method and header fields).
//
// Responses with Set-Cookie are stored only when the origin marked them
// public explicitly, so one user's cookie is never served to another.
func Decide(req Request, status int, h http.Header, p Policy, requestTime, responseTime time.Time) Decision {
	cc, targeted := responseDirectives(h)
	d := Decision{InitialAge: InitialAge(h, requestTime, responseTime)}
	date := dateOrReceived(h, responseTime)
	d.StaleWhileRevalidate, _, _ = cc.Seconds("stale-while-revalidate")
	d.StaleIfError, _, _ = cc.Seconds("stale-if-error")
	if d.StaleIfError == 0 {
		d.StaleIfError = p.StaleIfError
	}
	d.MustRevalidate = cc.Has("must-revalidate") || cc.Has("proxy-revalidate") || cc.Has("s-maxage")
	if arg, ok := cc["no-cache"]; ok {
		if fields := fieldNames(arg); len(fields) > 0 {
			d.StripFields = append(d.StripFields, fields...)
		} else {
			d.NoCache = true
		}
	}
	if arg, ok := cc["private"]; ok {
		if fields := fieldNames(arg); len(fields) > 0 {
			d.StripFields = append(d.StripFields, fields...)
		} else {
			d.Private = true
		}
	}

	lifetime, explicit := explicitLifetime(h, cc, targeted, date)
	switch {
	case explicit:
	case p.DefaultTTL > 0:
		lifetime = p.DefaultTTL
	default:
		lifetime, d.Heuristic = heuristicLifetime(h, status, cc.Has("public"), date)
	}
	if p.MinTTL > 0 && lifetime < p.MinTTL {
		lifetime = p.MinTTL
	}
	if p.MaxTTL > 0 && lifetime > p.MaxTTL {
		lifetime = p.MaxTTL
	}
	d.Lifetime = lifetime
	d.Storable, d.Reason = storable(req, status, h, cc, explicit, d)
	return d
}

// storable applies RFC 9111 §3 to a response.
func storable(req Request, status int, h http.Header, cc Directives, explicit bool, d Decision) (bool, Reason) {
	if req.Method != http.MethodGet {
		return false, ReasonMethod
	}
	if req.NoStore {
		return false, ReasonRequestNoStore
	}
	// must-understand (RFC 9111 §5.2.2.3) overrides no-store when the
	// cache implements the status code's semantics.
	if cc.Has("no-store") && !(cc.Has("must-understand") && knownStatus[status]) {
		return false, ReasonNoStore
	}
	if arg, ok := cc["private"]; ok && len(fieldNames(arg)) == 0 {
		return false, ReasonPrivate
	}
	if req.Authorization &&
		!cc.Has("public") && !cc.Has("s-maxage") && !cc.Has("must-revalidate") {
		return false, ReasonAuthorization
	}
	switch {
	case status == http.StatusPartialContent:
		return false, ReasonPartial
	case status < 200 || status == http.StatusNotModified || status > 599:
		return false, ReasonStatus
	case !heuristicStatus[status] && !explicit && !cc.Has("public"):
		return false, ReasonStatus
	}
	if len(h.Values("Set-Cookie")) > 0 && !cc.Has("public") {
		return false, ReasonSetCookie
	}
	for _, v := range h.Values("Vary") {
		if strings.TrimSpace(v) == "*" || strings.Contains(v, "*") {
			return false, ReasonVaryStar
		}
	}
	if d.Lifetime-d.InitialAge <= 0 && !hasValidators(h) {
		return false, ReasonNoFreshness
	}
	return true, ""
}

// fieldNames splits the argument of a qualified no-cache or private
// directive into canonical header names.
func fieldNames(arg string) []string {
	var names []string
	for name := range strings.SplitSeq(arg, ",") {
		if name = strings.TrimSpace(name); name != "" && isToken(name) {
			names = append(names, http.CanonicalHeaderKey(name))
		}
	}
	return names
}

// knownStatus lists the final status codes whose semantics the PoP
// implements, for must-understand (RFC 9111 §5.2.2.3).
var knownStatus = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 302: true, 303: true,
	307: true, 308: true, 400: true, 403: true, 404: true, 405: true, 410: true,
	414: true, 500: true, 501: true, 502: true, 503: true, 504: true,
}

// dateOrReceived returns the response's Date, or receivedAt when Date is
// missing or invalid: a recipient treats an invalid Date as absent and
// records when it received the message (RFC 9110 §6.6.1).
func dateOrReceived(h http.Header, receivedAt time.Time) time.Time {
	if t, _, valid := singleDate(h, "Date"); valid {
		return t
	}
	return receivedAt
}

func hasValidators(h http.Header) bool {
	return h.Get("ETag") != "" || h.Get("Last-Modified") != ""
}

// Lifetime computes a response's freshness lifetime for a shared cache
// (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires minus Date, else
// the policy's default TTL, else heuristic freshness for a 200; then the
// policy's clamps.
func Lifetime(h http.Header, p Policy) time.Duration {
	return Decide(Request{Method: http.MethodGet}, http.StatusOK, h, p, time.Time{}, time.Time{}).Lifetime
}

// explicitLifetime returns the lifetime the origin stated, if it stated one.
// An invalid max-age or Expires makes the response stale (lifetime 0), as
// RFC 9111 §4.2.1 and §5.3 ask.
func explicitLifetime(h http.Header, cc Directives, targeted bool, date time.Time) (time.Duration, bool) {
	for _, name := range []string{"s-maxage", "max-age"} {
		if v, present, valid := cc.Seconds(name); present {
			if !valid {
				return 0, true
			}
			return v, true
		}
	}
	if targeted {
		return 0, false // a targeted field replaces Expires too (RFC 9213 §2.2)
	}
	exp, present, valid := singleDate(h, "Expires")
	switch {
	case !present:
		return 0, false
	case !valid || date.IsZero():
		return 0, true // an invalid Expires means already expired (§5.3)
	}
	return max(exp.Sub(date), 0), true
}

// heuristicLifetime is 10% of the time since Last-Modified (RFC 9111
// §4.2.2), for heuristically cacheable status codes and for responses
// marked public, capped at HeuristicMaxLifetime.
func heuristicLifetime(h http.Header, status int, public bool, date time.Time) (time.Duration, bool) {
	if !heuristicStatus[status] && !public {
		return 0, false
	}
	lm, _, valid := singleDate(h, "Last-Modified")
	if !valid || date.IsZero() {
		return 0, false
	}
	since := date.Sub(lm)
	if since <= 0 {
		return 0, false
	}
	return min(since/10, HeuristicMaxLifetime).Truncate(time.Second), true
}

// InitialAge computes corrected_initial_age (RFC 9111 §4.2.3) for a
// response received at responseTime to a request sent at requestTime.
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, _, valid := singleDate(h, "Date"); valid {
		apparent = max(responseTime.Sub(date), 0)
	}
	var ageValue time.Duration
	if v, ok := ageField(h); ok {
		ageValue = v
	}
	delay := max(responseTime.Sub(requestTime), 0)
	return max(apparent, ageValue+delay)
}

// ageField returns the Age of a response (RFC 9111 §5.1). Age is a
// singleton field, so when it arrives as a list (several field lines, or
// one line with commas) the first member is the origin's: "7200, 0" is
// 7200 seconds. A member that is not delta-seconds is ignored, and values
// too large to represent are capped at 2^31 seconds (§1.2.2).
func ageField(h http.Header) (time.Duration, bool) {
	values := h.Values("Age")
	if len(values) == 0 {
		return 0, false
	}
	first, _, _ := strings.Cut(values[0], ",")
	first = strings.TrimSpace(first)
	if !isDigits(first) {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil || n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second, true
}

// AgeHeader formats an age for the Age header: whole seconds, rounded down.
func AgeHeader(age time.Duration) string {
	return strconv.FormatInt(int64(age/time.Second), 10)
}

// personalFields are response fields that belong to the one request that
// caused the response, whatever the response's cache directives: a cookie
// set for one user must never reach another (RFC 9111 §7.3, RFC 6265 §8.3).
var personalFields = []string{"Set-Cookie", "Set-Cookie2"}

// Shareable returns h without the fields that may reach only the request
// that caused the response: Set-Cookie (and Set-Cookie2) always, and the
// fields named by private="..." or no-cache="..." (d.StripFields). It is
// what a shared cache stores, and what every other request that shares one
// origin fetch receives. h is not modified; when it has none of those
// fields, h itself is returned.
func Shareable(h http.Header, d Decision) http.Header {
	var out http.Header
	drop := func(name string) {
		if _, ok := h[name]; !ok {
			return
		}
		if out == nil {
			out = h.Clone()
		}
		delete(out, name)
	}
	for _, name := range personalFields {
		drop(name)
	}
	for _, name := range d.StripFields {
		drop(http.CanonicalHeaderKey(name))
	}
	if out == nil {
		return h
	}
	return out
}

// notModifiedExcluded lists the fields a 304 never updates in a stored
// response (RFC 9111 §3.2): framing fields, and those of §3.1.
var notModifiedExcluded = map[string]bool{
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Content-Range":     true,
	"Connection":        true,
	"Keep-Alive":        true,
	"Trailer":           true,
	"Upgrade":           true,
	"Proxy-Connection":  true,
	"Age":               true,
}

// MergeNotModified returns the stored header fields updated with those of
// a 304 response (RFC 9111 §3.2, §4.3.4): each field the 304 carries
// replaces the stored one, except framing fields. Neither input changes.
func MergeNotModified(stored, notModified http.Header) http.Header {
	merged := stored.Clone()
	for name, values := range notModified {
		if notModifiedExcluded[name] {
			continue
		}
		merged[name] = slices.Clone(values)
	}
	return merged
}
