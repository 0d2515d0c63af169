package cache

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUsable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entry := func(lifetime time.Duration, mod func(*Entry)) *Entry {
		e := &Entry{ResponseTime: t0, Lifetime: lifetime, Header: http.Header{}}
		if mod != nil {
			mod(e)
		}
		return e
	}
	tests := []struct {
		name string
		e    *Entry
		age  time.Duration
		cc   string
		want Use
	}{
		{"RFC9111 4.2 fresh", entry(time.Minute, nil), 30 * time.Second, "", UseFresh},
		{"RFC9111 4.2 stale", entry(time.Minute, nil), 2 * time.Minute, "", UseValidate},
		{"RFC9111 5.2.1.4 request no-cache", entry(time.Minute, nil), 0, "no-cache", UseValidate},
		{"RFC9111 5.2.2.4 response no-cache", entry(time.Minute, func(e *Entry) { e.NoCache = true }), 0, "", UseValidate},
		{"RFC9111 5.2.1.1 max-age older", entry(time.Minute, nil), 30 * time.Second, "max-age=10", UseValidate},
		{"RFC9111 5.2.1.1 max-age younger", entry(time.Minute, nil), 5 * time.Second, "max-age=10", UseFresh},
		{"RFC9111 5.2.1.3 min-fresh unmet", entry(time.Minute, nil), 50 * time.Second, "min-fresh=20", UseValidate},
		{"RFC9111 5.2.1.3 min-fresh met", entry(time.Minute, nil), 10 * time.Second, "min-fresh=20", UseFresh},
		{"RFC9111 5.2.1.2 max-stale within", entry(time.Minute, nil), 90 * time.Second, "max-stale=60", UseStale},
		{"RFC9111 5.2.1.2 max-stale beyond", entry(time.Minute, nil), 3 * time.Minute, "max-stale=60", UseValidate},
		{"RFC9111 5.2.1.2 max-stale without value", entry(time.Minute, nil), time.Hour, "max-stale", UseStale},
		{"RFC9111 5.2.2.2 must-revalidate forbids max-stale", entry(time.Minute, func(e *Entry) { e.MustRevalidate = true }), 90 * time.Second, "max-stale=60", UseValidate},
		{"RFC5861 3 within stale-while-revalidate", entry(time.Minute, func(e *Entry) { e.StaleWhileRevalidate = time.Minute }), 90 * time.Second, "", UseStaleRevalidate},
		{"RFC5861 3 beyond stale-while-revalidate", entry(time.Minute, func(e *Entry) { e.StaleWhileRevalidate = time.Minute }), 3 * time.Minute, "", UseValidate},
		{"RFC5861 3 must-revalidate beats swr", entry(time.Minute, func(e *Entry) { e.StaleWhileRevalidate = time.Minute; e.MustRevalidate = true }), 90 * time.Second, "", UseValidate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.cc != "" {
				h.Set("Cache-Control", tt.cc)
			}
			if got := tt.e.Usable(t0.Add(tt.age), ParseRequestDirectives(h)); got != tt.want {
				t.Errorf("Usable() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUsableOnError(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    Entry
		age  time.Duration
		want bool
	}{
		{"RFC5861 4 within stale-if-error", Entry{Lifetime: time.Minute, StaleIfError: time.Minute}, 90 * time.Second, true},
		{"RFC5861 4 beyond stale-if-error", Entry{Lifetime: time.Minute, StaleIfError: time.Minute}, 3 * time.Minute, false},
		{"RFC5861 4 no window", Entry{Lifetime: time.Minute}, 90 * time.Second, false},
		{"RFC9111 5.2.2.2 must-revalidate", Entry{Lifetime: time.Minute, StaleIfError: time.Hour, MustRevalidate: true}, 90 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			e.ResponseTime = t0
			if got := e.UsableOnError(t0.Add(tt.age)); got != tt.want {
				t.Errorf("UsableOnError() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRequestDirectives(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   RequestDirectives
	}{
		{"RFC9111 5.4 Pragma no-cache without Cache-Control", http.Header{"Pragma": {"no-cache"}}, RequestDirectives{NoCache: true}},
		{"RFC9111 5.4 Pragma ignored with Cache-Control", http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"max-age=5"}}, RequestDirectives{MaxAge: 5 * time.Second, HasMaxAge: true}},
		{"RFC9111 5.2.1.7 only-if-cached", http.Header{"Cache-Control": {"only-if-cached"}}, RequestDirectives{OnlyIfCached: true}},
		{"RFC9111 5.2.1.2 max-stale any", http.Header{"Cache-Control": {"max-stale"}}, RequestDirectives{HasMaxStale: true, AnyStale: true}},
		{"RFC9111 5.2.1.1 invalid max-age means 0", http.Header{"Cache-Control": {"max-age=x"}}, RequestDirectives{HasMaxAge: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRequestDirectives(tt.header); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVary(t *testing.T) {
	fields, star := VaryFields(http.Header{"Vary": {"accept-encoding, X-Lang", "x-lang"}})
	if star || len(fields) != 2 || fields[0] != "Accept-Encoding" || fields[1] != "X-Lang" {
		t.Fatalf("VaryFields = %v, %v", fields, star)
	}
	key := func(h http.Header) string { return VariantKey("k", "n", fields, h) }
	tests := []struct {
		name     string
		a, b     http.Header
		sameness bool
	}{
		{"RFC9111 4.1 same values", http.Header{"X-Lang": {"en"}}, http.Header{"X-Lang": {"en"}}, true},
		{"RFC9111 4.1 different values", http.Header{"X-Lang": {"en"}}, http.Header{"X-Lang": {"de"}}, false},
		{"RFC9111 4.1 whitespace normalized", http.Header{"X-Lang": {"en,  de"}}, http.Header{"X-Lang": {"en, de"}}, true},
		{"RFC9111 4.1 absent vs empty", http.Header{}, http.Header{"X-Lang": {""}}, true},
		{"RFC9111 4.1 field lines combine like one list", http.Header{"X-Lang": {"1, 2"}}, http.Header{"X-Lang": {"1", "2"}}, true},
		{"RFC9111 4.1 whitespace around members dropped", http.Header{"X-Lang": {"1,2"}}, http.Header{"X-Lang": {" 1, 2 "}}, true},
		{"RFC9111 4.1 member order still matters", http.Header{"X-Lang": {"1, 2"}}, http.Header{"X-Lang": {"2, 1"}}, false},
		{"RFC9111 4.1 case matters for unknown fields", http.Header{"X-Lang": {"en"}}, http.Header{"X-Lang": {"EN"}}, false},
		{"Accept-Encoding gzip forms agree", http.Header{"Accept-Encoding": {"gzip, deflate"}}, http.Header{"Accept-Encoding": {"deflate;q=0.5, gzip"}}, true},
		{"Accept-Encoding weights do not split variants", http.Header{"Accept-Encoding": {"gzip;q=0.2, br"}}, http.Header{"Accept-Encoding": {"br, gzip"}}, true},
		{"Accept-Encoding br alone is not gzip and br", http.Header{"Accept-Encoding": {"gzip, br"}}, http.Header{"Accept-Encoding": {"br"}}, false},
		{"Accept-Encoding Chrome and curl --compressed agree", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}, http.Header{"Accept-Encoding": {"deflate, gzip, br, zstd"}}, true},
		{"Accept-Encoding Safari lacks zstd", http.Header{"Accept-Encoding": {"gzip, deflate, br"}}, http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}, false},
		{"Accept-Encoding x-gzip is gzip", http.Header{"Accept-Encoding": {"x-gzip"}}, http.Header{"Accept-Encoding": {"gzip"}}, true},
		{"Accept-Encoding unknown codings fold to identity", http.Header{"Accept-Encoding": {"compress, exi"}}, http.Header{}, true},
		{"Accept-Encoding q=0 refuses", http.Header{"Accept-Encoding": {"gzip;q=0"}}, http.Header{}, true},
		{"Accept-Encoding gzip vs none", http.Header{"Accept-Encoding": {"gzip"}}, http.Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if same := key(tt.a) == key(tt.b); same != tt.sameness {
				t.Errorf("same variant = %v, want %v (%q vs %q)", same, tt.sameness, key(tt.a), key(tt.b))
			}
		})
	}
	if _, star := VaryFields(http.Header{"Vary": {"Accept, *"}}); !star {
		t.Error("Vary: * not detected")
	}
}

func TestAcceptsEncoding(t *testing.T) {
	tests := []struct {
		name, ae        string
		contentEncoding []string
		want            bool
	}{
		{"no coding suits a client that asked for none", "", nil, true},
		{"identity suits everyone", "", []string{"identity"}, true},
		{"RFC9110 12.5.3 zstd to a client without zstd", "gzip, deflate, br", []string{"zstd"}, false},
		{"zstd to Chrome", "gzip, deflate, br, zstd", []string{"zstd"}, true},
		{"gzip to a client with none", "", []string{"gzip"}, false},
		{"deflate to curl --compressed", "deflate, gzip, br, zstd", []string{"deflate"}, true},
		{"refused by q=0", "gzip;q=0, br", []string{"gzip"}, false},
		{"two codings are never served from a variant", "gzip, br", []string{"gzip, br"}, false},
		{"x-gzip is gzip", "gzip", []string{"x-gzip"}, true},
		{"a coding no client negotiates is opaque", "", []string{"apetixmbqfujync"}, true},
		{"an opaque coding does not cover a negotiated one", "", []string{"apetixmbqfujync, gzip"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			folded := NormalizeAcceptEncoding([]string{tt.ae})
			if got := AcceptsEncoding(folded, tt.contentEncoding); got != tt.want {
				t.Errorf("AcceptsEncoding(%q, %q) = %v, want %v", folded, tt.contentEncoding, got, tt.want)
			}
		})
	}
}

func TestShareable(t *testing.T) {
	get := func(h http.Header) Request { return RequestOf(http.MethodGet, h) }
	h := http.Header{"Set-Cookie": {"session=A"}, "X-User": {"alice"}, "Cache-Control": {`private="X-User", max-age=60`}, "Etag": {`"1"`}}
	d := Decide(get(http.Header{}), 200, h, Policy{}, time.Now(), time.Now())
	got := Shareable(h, d)
	if got.Get("Set-Cookie") != "" || got.Get("X-User") != "" || got.Get("Etag") == "" {
		t.Errorf("RFC9111 5.2.2.7: shareable header %v", got)
	}
	if h.Get("Set-Cookie") == "" || h.Get("X-User") == "" {
		t.Error("the input header was modified")
	}
	plain := http.Header{"Etag": {`"1"`}}
	if got := Shareable(plain, Decision{}); len(got) != 1 {
		t.Errorf("a header with nothing personal changed: %v", got)
	}
	if d := Decide(get(http.Header{}), 200, http.Header{"Cache-Control": {"private, max-age=60"}}, Policy{}, time.Now(), time.Now()); !d.Private || d.Storable {
		t.Errorf("RFC9111 5.2.2.7 private as a whole: %+v", d)
	}
}

func TestMergeNotModified(t *testing.T) {
	stored := http.Header{"Etag": {`"a"`}, "Content-Length": {"10"}, "Cache-Control": {"max-age=1"}, "X-Old": {"1"}}
	merged := MergeNotModified(stored, http.Header{"Cache-Control": {"max-age=60"}, "Content-Length": {"0"}, "X-New": {"2"}})
	if merged.Get("Cache-Control") != "max-age=60" || merged.Get("Content-Length") != "10" || merged.Get("X-Old") != "1" || merged.Get("X-New") != "2" {
		t.Errorf("RFC9111 3.2: merged %v", merged)
	}
	if stored.Get("Cache-Control") != "max-age=1" {
		t.Error("stored header was modified")
	}
}

func FuzzVaryAndAcceptEncoding(f *testing.F) {
	for _, s := range []string{"Accept-Encoding", "*", "a, b,,c", "x;y"} {
		f.Add(s, "gzip;q=0.5, br;q=0")
	}
	f.Fuzz(func(t *testing.T, vary, ae string) {
		fields, _ := VaryFields(http.Header{"Vary": {vary}})
		for _, fld := range fields {
			if !isToken(fld) {
				t.Fatalf("field %q is not a token", fld)
			}
		}
		folded := NormalizeAcceptEncoding([]string{ae})
		if folded != "identity" {
			for c := range strings.SplitSeq(folded, ", ") {
				if !slices.Contains(foldedCodings[:], c) {
					t.Fatalf("folded %q holds %q", folded, c)
				}
				if !AcceptsEncoding(folded, []string{c}) {
					t.Fatalf("%q does not accept its own member %q", folded, c)
				}
			}
		}
		if AcceptsEncoding(folded, []string{"compress"}) {
			t.Fatal("compress, which no folded value names, is accepted")
		}
		if NormalizeAcceptEncoding([]string{folded}) != folded {
			t.Fatalf("folding is not idempotent: %q -> %q", folded, NormalizeAcceptEncoding([]string{folded}))
		}
		VariantKey("k", "n", fields, http.Header{"Accept-Encoding": {ae}})
	})
}
