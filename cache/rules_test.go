package cache

import (
	"net/http"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name                     string
		scheme, host, path, rawQ string
		q                        QueryPolicy
		want                     string
	}{
		{"plain", "http", "demo.example", "/a", "", QueryPolicy{}, "http://demo.example/a"},
		{"empty path is /", "http", "demo.example", "", "", QueryPolicy{}, "http://demo.example/"},
		{"https is its own key", "https", "demo.example", "/a", "", QueryPolicy{}, "https://demo.example/a"},
		{"query kept in order", "http", "h", "/", "b=2&a=1", QueryPolicy{}, "http://h/?b=2&a=1"},
		{"query sorted", "http", "h", "/", "b=2&a=1", QueryPolicy{Sort: true}, "http://h/?a=1&b=2"},
		{"params dropped", "http", "h", "/", "utm_source=x&id=3&utm_medium=y", QueryPolicy{Drop: []string{"utm_source", "utm_medium"}}, "http://h/?id=3"},
		{"encoded name dropped", "http", "h", "/", "utm%5Fsource=x&id=3", QueryPolicy{Drop: []string{"utm_source"}}, "http://h/?id=3"},
		{"all dropped leaves no ?", "http", "h", "/p", "utm_source=x", QueryPolicy{Drop: []string{"utm_source"}}, "http://h/p"},
		{"empty members removed when normalizing", "http", "h", "/", "a=1&&b=2", QueryPolicy{Sort: true}, "http://h/?a=1&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Key(tt.scheme, tt.host, tt.path, tt.rawQ, tt.q); got != tt.want {
				t.Errorf("Key() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	date := "Mon, 02 Jan 2006 15:04:05 GMT"
	tests := []struct {
		name   string
		header http.Header
		policy Policy
		want   time.Duration
	}{
		{"RFC9111 4.2.1 s-maxage beats max-age", http.Header{"Cache-Control": {"max-age=10, s-maxage=20"}}, Policy{}, 20 * time.Second},
		{"RFC9111 4.2.1 max-age beats Expires", http.Header{"Cache-Control": {"max-age=10"}, "Date": {date}, "Expires": {"Mon, 02 Jan 2006 16:04:05 GMT"}}, Policy{}, 10 * time.Second},
		{"RFC9111 4.2.1 Expires minus Date", http.Header{"Date": {date}, "Expires": {"Mon, 02 Jan 2006 16:04:05 GMT"}}, Policy{}, time.Hour},
		{"RFC9111 5.3 invalid Expires is stale", http.Header{"Date": {date}, "Expires": {"0"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"RFC9111 5.3 Expires before Date is stale", http.Header{"Date": {date}, "Expires": {"Mon, 02 Jan 2006 14:04:05 GMT"}}, Policy{}, 0},
		{"RFC9111 5.2.2.1 invalid max-age is stale", http.Header{"Cache-Control": {"max-age=abc"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"no freshness, no default", http.Header{}, Policy{}, 0},
		{"no freshness, default TTL", http.Header{}, Policy{DefaultTTL: time.Minute}, time.Minute},
		{"min clamp", http.Header{"Cache-Control": {"max-age=5"}}, Policy{MinTTL: time.Minute}, time.Minute},
		{"max clamp", http.Header{"Cache-Control": {"max-age=86400"}}, Policy{MaxTTL: time.Hour}, time.Hour},
		{"RFC9110 5.6.7 Expires with a 1-digit hour is invalid", http.Header{"Date": {date}, "Expires": {"Mon, 02 Jan 2006 6:04:05 GMT"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"RFC9110 5.6.7 Expires with runs of spaces is invalid", http.Header{"Date": {date}, "Expires": {"Mon, 02  Jan  2006 16:04:05 GMT"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"RFC9110 5.6.7 Expires zone other than GMT is invalid", http.Header{"Date": {date}, "Expires": {"Mon, 02 Jan 2006 16:04:05 UTC"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"RFC9110 5.6.7 GMT in another case is valid", http.Header{"Date": {date}, "Expires": {"Mon, 02 JAN 2006 16:04:05 gmt"}}, Policy{}, time.Hour},
		{"RFC9110 5.6.7 Expires in RFC 850 format", http.Header{"Date": {date}, "Expires": {"Monday, 02-Jan-06 16:04:05 GMT"}}, Policy{}, time.Hour},
		{"RFC9110 5.6.7 Expires in asctime format", http.Header{"Date": {date}, "Expires": {"Mon Jan  2 16:04:05 2006"}}, Policy{}, time.Hour},
		{"RFC9111 5.3 two Expires lines are invalid", http.Header{"Date": {date}, "Expires": {"Mon, 02 Jan 2006 16:04:05 GMT", "Mon, 02 Jan 2006 17:04:05 GMT"}}, Policy{DefaultTTL: time.Hour}, 0},
		{"RFC9111 5.2 max-age with whitespace around = is ignored", http.Header{"Cache-Control": {"max-age =3600"}}, Policy{}, 0},
		{"RFC9111 5.2.2.1 max-age in a quoted string is not max-age", http.Header{"Cache-Control": {`ext="max-age=3600", max-age=1`}}, Policy{}, time.Second},
		{"RFC9213 2.1 CDN-Cache-Control that is not a Dictionary is ignored", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=100, &&&"}}, Policy{}, time.Second},
		{"RFC9213 2.1 CDN-Cache-Control with whitespace before = is ignored", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age =100"}}, Policy{}, time.Second},
		{"RFC9213 2.1 CDN-Cache-Control with whitespace after = is ignored", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age= 100"}}, Policy{}, time.Second},
		{"RFC9213 2.1 CDN-Cache-Control max-age as a String is ignored", http.Header{"Cdn-Cache-Control": {`max-age="100", public`}}, Policy{}, 0},
		{"RFC9213 2.1 CDN-Cache-Control with an extension and parameters", http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"foo;a=1, max-age=100"}}, Policy{}, 100 * time.Second},
		{"EdgeArch 3 Surrogate-Control max-age beats Cache-Control", http.Header{"Cache-Control": {"max-age=1"}, "Surrogate-Control": {"max-age=100"}}, Policy{}, 100 * time.Second},
		{"EdgeArch 3 Surrogate-Control replaces Expires too", http.Header{"Surrogate-Control": {"max-age=100"}, "Date": {date}, "Expires": {"Mon, 02 Jan 2006 14:04:05 GMT"}}, Policy{}, 100 * time.Second},
		{"EdgeArch 3 Surrogate-Control targeted at this device", http.Header{"Cache-Control": {"max-age=1"}, "Surrogate-Control": {"max-age=100;outpost"}}, Policy{}, 100 * time.Second},
		{"EdgeArch 3 Surrogate-Control targeted at another device is ignored", http.Header{"Cache-Control": {"max-age=1"}, "Surrogate-Control": {"max-age=100;other"}}, Policy{}, time.Second},
		{"EdgeArch 3 Surrogate-Control with whitespace before = is ignored", http.Header{"Cache-Control": {"max-age=1"}, "Surrogate-Control": {"max-age =100"}}, Policy{}, time.Second},
		{"EdgeArch 3 Surrogate-Control content only leaves Cache-Control in charge", http.Header{"Cache-Control": {"max-age=10"}, "Surrogate-Control": {`content="ESI/1.0"`}}, Policy{}, 10 * time.Second},
		{"EdgeArch 3 Surrogate-Control max-age=N+M", http.Header{"Surrogate-Control": {"max-age=100+600"}}, Policy{}, 100 * time.Second},
		{"RFC9213 2.1 CDN-Cache-Control beats Surrogate-Control", http.Header{"Cdn-Cache-Control": {"max-age=10"}, "Surrogate-Control": {"max-age=100"}}, Policy{}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Lifetime(tt.header, tt.policy); got != tt.want {
				t.Errorf("Lifetime() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecideStorable(t *testing.T) {
	get := func(h http.Header) Request { return RequestOf(http.MethodGet, h) }
	fresh := http.Header{"Cache-Control": {"max-age=60"}}
	tests := []struct {
		name       string
		req        Request
		status     int
		header     http.Header
		policy     Policy
		wantOK     bool
		wantReason Reason
	}{
		{"RFC9111 3 fresh 200", get(http.Header{}), 200, fresh, Policy{}, true, ""},
		{"RFC9111 3 POST not stored", RequestOf(http.MethodPost, http.Header{}), 200, fresh, Policy{}, false, ReasonMethod},
		{"RFC9111 3 request no-store", get(http.Header{"Cache-Control": {"no-store"}}), 200, fresh, Policy{}, false, ReasonRequestNoStore},
		{"RFC9111 5.2.2.5 response no-store", get(http.Header{}), 200, http.Header{"Cache-Control": {"no-store, max-age=60"}}, Policy{}, false, ReasonNoStore},
		{"RFC9111 5.2.2.7 private in a shared cache", get(http.Header{}), 200, http.Header{"Cache-Control": {"private, max-age=60"}}, Policy{}, false, ReasonPrivate},
		{"RFC9111 5.2.2.7 qualified private is stored without the field", get(http.Header{}), 200, http.Header{"Cache-Control": {`private="X-User", max-age=60`}}, Policy{}, true, ""},
		{"RFC9111 3.5 Authorization without public", get(http.Header{"Authorization": {"Bearer x"}}), 200, fresh, Policy{}, false, ReasonAuthorization},
		{"RFC9111 3.5 Authorization with public", get(http.Header{"Authorization": {"Bearer x"}}), 200, http.Header{"Cache-Control": {"public, max-age=60"}}, Policy{}, true, ""},
		{"RFC9111 3.5 Authorization with s-maxage", get(http.Header{"Authorization": {"Bearer x"}}), 200, http.Header{"Cache-Control": {"s-maxage=60"}}, Policy{}, true, ""},
		{"RFC9111 3.5 Authorization with must-revalidate", get(http.Header{"Authorization": {"Bearer x"}}), 200, http.Header{"Cache-Control": {"must-revalidate, max-age=60"}}, Policy{}, true, ""},
		{"RFC9110 15.1 404 with max-age", get(http.Header{}), 404, fresh, Policy{}, true, ""},
		{"RFC9111 3 302 with explicit freshness", get(http.Header{}), 302, fresh, Policy{}, true, ""},
		{"RFC9111 3 302 without freshness", get(http.Header{}), 302, http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Date": {"Mon, 09 Jan 2006 15:04:05 GMT"}}, Policy{}, false, ReasonStatus},
		{"RFC9111 3 500 with max-age is understood", get(http.Header{}), 500, fresh, Policy{}, true, ""},
		{"RFC9111 3 default TTL only for heuristic statuses", get(http.Header{}), 500, http.Header{}, Policy{DefaultTTL: time.Minute}, false, ReasonStatus},
		{"206 is not stored", get(http.Header{}), 206, fresh, Policy{}, false, ReasonPartial},
		{"304 is not stored", get(http.Header{}), 304, fresh, Policy{}, false, ReasonStatus},
		{"Set-Cookie without public", get(http.Header{}), 200, http.Header{"Set-Cookie": {"a=b"}, "Cache-Control": {"max-age=60"}}, Policy{}, false, ReasonSetCookie},
		{"Set-Cookie with public", get(http.Header{}), 200, http.Header{"Set-Cookie": {"a=b"}, "Cache-Control": {"public, max-age=60"}}, Policy{}, true, ""},
		{"RFC9110 12.5.5 Vary is stored", get(http.Header{}), 200, http.Header{"Vary": {"Accept-Encoding"}, "Cache-Control": {"max-age=60"}}, Policy{}, true, ""},
		{"RFC9110 12.5.5 Vary * never matches", get(http.Header{}), 200, http.Header{"Vary": {"*"}, "Cache-Control": {"max-age=60"}}, Policy{}, false, ReasonVaryStar},
		{"no freshness, no validator", get(http.Header{}), 200, http.Header{}, Policy{}, false, ReasonNoFreshness},
		{"RFC9111 4.3 no freshness but a validator: stored to revalidate", get(http.Header{}), 200, http.Header{"Etag": {`"a"`}}, Policy{}, true, ""},
		{"RFC9111 5.2.2.4 no-cache with validator", get(http.Header{}), 200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"a"`}}, Policy{}, true, ""},
		{"RFC9213 CDN-Cache-Control no-store wins", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"no-store"}}, Policy{}, false, ReasonNoStore},
		{"RFC9213 CDN-Cache-Control makes it storable", get(http.Header{}), 200, http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"max-age=60"}}, Policy{}, true, ""},
		{"RFC9213 2.1 invalid CDN-Cache-Control leaves Cache-Control no-store", get(http.Header{}), 200, http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"max-age=60, &&&"}}, Policy{}, false, ReasonNoStore},
		{"EdgeArch 3 Surrogate-Control no-store beats Cache-Control max-age", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=60"}, "Surrogate-Control": {"no-store"}}, Policy{}, false, ReasonNoStore},
		{"EdgeArch 3 Surrogate-Control no-store-remote counts at a PoP", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=60"}, "Surrogate-Control": {"no-store-remote"}}, Policy{}, false, ReasonNoStore},
		{"EdgeArch 3 Surrogate-Control max-age beats Cache-Control no-store", get(http.Header{}), 200, http.Header{"Cache-Control": {"no-store"}, "Surrogate-Control": {"max-age=60"}}, Policy{}, true, ""},
		{"RFC9111 5.2.2.3 must-understand overrides no-store for a known status", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, Policy{}, true, ""},
		{"RFC9111 5.2.2.3 must-understand with an unknown status keeps no-store", get(http.Header{}), 599, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, Policy{}, false, ReasonNoStore},
		{"RFC9111 4.2.2 public makes any final status heuristically cacheable", get(http.Header{}), 599, http.Header{"Cache-Control": {"public"}, "Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Date": {"Mon, 09 Jan 2006 15:04:05 GMT"}}, Policy{}, true, ""},
		{"RFC9111 4.2.2 no heuristic for an unknown status without public", get(http.Header{}), 599, http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Date": {"Mon, 09 Jan 2006 15:04:05 GMT"}}, Policy{}, false, ReasonStatus},
		{"RFC9111 4.2.3 Age list: the first member makes it stale", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=3600"}, "Age": {"7200, 0"}}, Policy{}, false, ReasonNoFreshness},
		{"RFC9111 4.2.3 Age lines: the first one makes it stale", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=3600"}, "Age": {"7200", "0"}}, Policy{}, false, ReasonNoFreshness},
		{"RFC9111 4.2.3 Age list: a small first member keeps it fresh", get(http.Header{}), 200, http.Header{"Cache-Control": {"max-age=3600"}, "Age": {"0, 7200"}}, Policy{}, true, ""},
		{"RFC9110 6.6.1 invalid Date: Expires counts from receipt", get(http.Header{}), 200, http.Header{"Date": {"foo"}, "Expires": {"Thu, 01 Jan 2026 00:00:10 GMT"}}, Policy{}, true, ""},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.req, tt.status, tt.header, tt.policy, t0, t0)
			if d.Storable != tt.wantOK || d.Reason != tt.wantReason {
				t.Errorf("Decide() storable %v, %q; want %v, %q", d.Storable, d.Reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestRequestOf(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header http.Header
		want   Request
	}{
		{"plain GET", http.MethodGet, http.Header{}, Request{Method: http.MethodGet}},
		{"RFC9111 5.2.1.5 no-store", http.MethodGet, http.Header{"Cache-Control": {"max-age=0, no-store"}}, Request{Method: http.MethodGet, NoStore: true}},
		{"RFC9111 5.4 Pragma no-cache is not no-store", http.MethodGet, http.Header{"Pragma": {"no-cache"}}, Request{Method: http.MethodGet}},
		{"RFC9111 3.5 Authorization", http.MethodGet, http.Header{"Authorization": {"Bearer x"}}, Request{Method: http.MethodGet, Authorization: true}},
		{"RFC9111 3.5 an empty Authorization is none", http.MethodGet, http.Header{"Authorization": {""}}, Request{Method: http.MethodGet}},
		{"RFC9110 9.3.3 POST", http.MethodPost, http.Header{}, Request{Method: http.MethodPost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestOf(tt.method, tt.header); got != tt.want {
				t.Errorf("RequestOf(%q, %v) = %+v, want %+v", tt.method, tt.header, got, tt.want)
			}
		})
	}
}

func TestDecideDirectives(t *testing.T) {
	req := Request{Method: http.MethodGet}
	tests := []struct {
		name   string
		header http.Header
		policy Policy
		check  func(Decision) bool
	}{
		{"RFC9111 5.2.2.4 no-cache revalidates always", http.Header{"Cache-Control": {"no-cache, max-age=60"}}, Policy{}, func(d Decision) bool { return d.NoCache }},
		{"RFC9111 5.2.2.4 qualified no-cache strips the field", http.Header{"Cache-Control": {`no-cache="Set-Cookie", max-age=60`}}, Policy{}, func(d Decision) bool {
			return !d.NoCache && len(d.StripFields) == 1 && d.StripFields[0] == "Set-Cookie"
		}},
		{"RFC9111 5.2.2.2 must-revalidate", http.Header{"Cache-Control": {"must-revalidate, max-age=60"}}, Policy{}, func(d Decision) bool { return d.MustRevalidate }},
		{"RFC9111 5.2.2.8 proxy-revalidate", http.Header{"Cache-Control": {"proxy-revalidate, max-age=60"}}, Policy{}, func(d Decision) bool { return d.MustRevalidate }},
		{"RFC9111 5.2.2.10 s-maxage implies proxy-revalidate", http.Header{"Cache-Control": {"s-maxage=60"}}, Policy{}, func(d Decision) bool { return d.MustRevalidate }},
		{"RFC5861 stale windows", http.Header{"Cache-Control": {"max-age=1, stale-while-revalidate=30, stale-if-error=300"}}, Policy{}, func(d Decision) bool {
			return d.StaleWhileRevalidate == 30*time.Second && d.StaleIfError == 300*time.Second
		}},
		{"policy stale-if-error default", http.Header{"Cache-Control": {"max-age=1"}}, Policy{StaleIfError: time.Hour}, func(d Decision) bool { return d.StaleIfError == time.Hour }},
		{"RFC9111 4.2.2 heuristic: 10% of Date - Last-Modified", http.Header{"Date": {"Mon, 11 Jan 2006 00:00:00 GMT"}, "Last-Modified": {"Mon, 01 Jan 2006 00:00:00 GMT"}}, Policy{}, func(d Decision) bool {
			return d.Heuristic && d.Lifetime == 24*time.Hour
		}},
		{"RFC9111 4.2.2 heuristic is capped", http.Header{"Date": {"Mon, 01 Jan 2007 00:00:00 GMT"}, "Last-Modified": {"Mon, 01 Jan 2006 00:00:00 GMT"}}, Policy{}, func(d Decision) bool {
			return d.Lifetime == HeuristicMaxLifetime
		}},
		{"default TTL beats the heuristic", http.Header{"Date": {"Mon, 11 Jan 2006 00:00:00 GMT"}, "Last-Modified": {"Mon, 01 Jan 2006 00:00:00 GMT"}}, Policy{DefaultTTL: time.Minute}, func(d Decision) bool {
			return !d.Heuristic && d.Lifetime == time.Minute
		}},
		{"RFC9213 targeted field ignores Expires", http.Header{"Cdn-Cache-Control": {"public"}, "Date": {"Mon, 01 Jan 2006 00:00:00 GMT"}, "Expires": {"Mon, 01 Jan 2006 01:00:00 GMT"}}, Policy{}, func(d Decision) bool { return d.Lifetime == 0 }},
		{"Outpost-Cache-Control beats CDN-Cache-Control", http.Header{"Cdn-Cache-Control": {"max-age=10"}, "Outpost-Cache-Control": {"max-age=20"}}, Policy{}, func(d Decision) bool { return d.Lifetime == 20*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(req, 200, tt.header, tt.policy, time.Time{}, time.Time{})
			if !tt.check(d) {
				t.Errorf("Decide() = %+v", d)
			}
		})
	}
}

func TestInitialAgeAndEntryAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		header      http.Header
		req, resp   time.Time
		wantInitial time.Duration
		now         time.Time
		lifetime    time.Duration
		wantAge     time.Duration
		wantFresh   bool
	}{
		{"RFC9111 4.2.3 no Date, no Age: response delay", http.Header{}, t0, t0.Add(2 * time.Second), 2 * time.Second, t0.Add(12 * time.Second), time.Minute, 12 * time.Second, true},
		{"RFC9111 4.2.3 Age header plus delay", http.Header{"Age": {"30"}}, t0, t0.Add(time.Second), 31 * time.Second, t0.Add(time.Second), time.Minute, 31 * time.Second, true},
		{"RFC9111 4.2.3 apparent age from Date", http.Header{"Date": {t0.Add(-50 * time.Second).Format(http.TimeFormat)}}, t0, t0, 50 * time.Second, t0.Add(10 * time.Second), time.Minute, time.Minute, false},
		{"RFC9111 4.2.3 Date in the future counts 0", http.Header{"Date": {t0.Add(time.Hour).Format(http.TimeFormat)}}, t0, t0, 0, t0, time.Minute, 0, true},
		{"bad Age ignored", http.Header{"Age": {"x"}}, t0, t0, 0, t0, time.Minute, 0, true},
		{"RFC9111 5.1 negative Age ignored", http.Header{"Age": {"-7200"}}, t0, t0, 0, t0, time.Minute, 0, true},
		{"RFC9111 5.1 fractional Age ignored", http.Header{"Age": {"7200.0"}}, t0, t0, 0, t0, time.Minute, 0, true},
		{"RFC9111 5.1 Age list uses the first member", http.Header{"Age": {"30, 7200"}}, t0, t0, 30 * time.Second, t0, time.Minute, 30 * time.Second, true},
		{"RFC9111 1.2.2 huge Age capped at 2^31 s", http.Header{"Age": {"99999999999"}}, t0, t0, 1 << 31 * time.Second, t0, time.Minute, 1 << 31 * time.Second, false},
		{"RFC9110 6.6.1 invalid Date adds no apparent age", http.Header{"Date": {"foo"}}, t0, t0, 0, t0, time.Minute, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InitialAge(tt.header, tt.req, tt.resp)
			if got != tt.wantInitial {
				t.Fatalf("InitialAge() = %v, want %v", got, tt.wantInitial)
			}
			e := &Entry{ResponseTime: tt.resp, InitialAge: got, Lifetime: tt.lifetime}
			if age := e.Age(tt.now); age != tt.wantAge {
				t.Errorf("Age() = %v, want %v", age, tt.wantAge)
			}
			if fresh := e.Fresh(tt.now); fresh != tt.wantFresh {
				t.Errorf("Fresh() = %v, want %v", fresh, tt.wantFresh)
			}
		})
	}
}

func TestStorageTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		swr    time.Duration
		sie    time.Duration
		want   time.Duration
	}{
		{"freshness only", http.Header{}, 0, 0, time.Minute},
		{"RFC5861 longest stale window", http.Header{}, 10 * time.Second, 30 * time.Second, time.Minute + 30*time.Second},
		{"validators add keep", http.Header{"Etag": {`"a"`}}, 0, 0, time.Minute + time.Hour},
		{"Last-Modified is a validator", http.Header{"Last-Modified": {now.Format(http.TimeFormat)}}, 0, 2 * time.Hour, time.Minute + 2*time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Header: tt.header, ResponseTime: now, Lifetime: time.Minute, StaleWhileRevalidate: tt.swr, StaleIfError: tt.sie}
			if got := e.StorageTTL(now, time.Hour); got != tt.want {
				t.Errorf("StorageTTL() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatusFormat(t *testing.T) {
	tests := []struct {
		name string
		s    Status
		want string
	}{
		{"RFC9211 hit", Status{Hit: true, TTL: 90 * time.Second, HasTTL: true}, "outpost/x; hit; ttl=90"},
		{"RFC9211 stored miss", Status{Fwd: FwdURIMiss, FwdStatus: 200, Stored: true, TTL: time.Hour, HasTTL: true}, "outpost/x; fwd=uri-miss; fwd-status=200; ttl=3600; stored"},
		{"RFC9211 collapsed", Status{Fwd: FwdURIMiss, FwdStatus: 200, Collapsed: true}, "outpost/x; fwd=uri-miss; fwd-status=200; collapsed"},
		{"RFC9211 negative ttl when stale", Status{Hit: true, TTL: -5 * time.Second, HasTTL: true}, "outpost/x; hit; ttl=-5"},
		{"RFC9211 detail", Status{Fwd: FwdURIMiss, FwdStatus: 200, Detail: string(ReasonNoStore)}, "outpost/x; fwd=uri-miss; fwd-status=200; detail=no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Format("outpost/x"); got != tt.want {
				t.Errorf("Format() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"RFC9110 5.6.7 IMF-fixdate", "Thu, 18 Aug 2050 02:01:18 GMT", true},
		{"RFC9110 5.6.7 names are case-insensitive", "THU, 18 AUG 2050 02:01:18 gMT", true},
		{"RFC9110 5.6.7 obsolete RFC 850 format", "Thursday, 18-Aug-50 02:01:18 GMT", true},
		{"RFC9110 5.6.7 obsolete asctime format", "Thu Aug 18 02:01:18 2050", true},
		{"RFC9110 5.6.7 zone must be GMT (UTC)", "Thu, 18 Aug 2050 02:01:18 UTC", false},
		{"RFC9110 5.6.7 zone must be GMT (AEST)", "Thu, 18 Aug 2050 02:01:18 AEST", false},
		{"RFC9110 5.6.7 two-digit year only in RFC 850", "Thu, 18 Aug 50 02:01:18 GMT", false},
		{"RFC9110 5.6.7 comma after the day name", "Thu 18 Aug 2050 02:01:18 GMT", false},
		{"RFC9110 5.6.7 single spaces", "Thu, 18  Aug  2050 02:01:18 GMT", false},
		{"RFC9110 5.6.7 no dashes in IMF-fixdate", "Thu, 18-Aug-2050 02:01:18 GMT", false},
		{"RFC9110 5.6.7 colons in the time", "Thu, 18 Aug 2050 02.01.18 GMT", false},
		{"RFC9110 5.6.7 two-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", false},
		{"RFC9111 5.3 the value 0", "0", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseHTTPDate(tt.in)
			if ok != tt.ok || (ok && !got.Equal(want)) {
				t.Errorf("ParseHTTPDate(%q) = %v, %v; want ok=%v", tt.in, got, ok, tt.ok)
			}
		})
	}
}

func TestStripTargeted(t *testing.T) {
	h := http.Header{}
	for _, name := range TargetedFields() {
		h.Set(name, "max-age=60")
	}
	h.Set("Cache-Control", "max-age=1")
	StripTargeted(h)
	if len(h) != 1 || h.Get("Cache-Control") == "" {
		t.Errorf("RFC9213 2: left %v", h)
	}
	for _, name := range []string{"Surrogate-Control", "Cdn-Cache-Control", "Outpost-Cache-Control"} {
		if !IsTargeted(name) {
			t.Errorf("IsTargeted(%q) = false", name)
		}
	}
	if IsTargeted("Cache-Control") {
		t.Error("Cache-Control is not targeted")
	}
}
