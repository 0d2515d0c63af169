package bench

import "testing"

// TestClassify checks every Cache-Status form the PoP sends (README,
// "Cache-Status") and the forms of RFC 9211 §2 from other caches.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		want  Class
		pop   string
	}{
		{"no header: unknown", "", Unknown, ""},
		{"fresh hit (RFC 9211 §2.1)", "outpost/local; hit; ttl=298", Hit, "outpost/local"},
		{"stale hit under stale-while-revalidate", "outpost/local; hit; ttl=-4; detail=stale-while-revalidate", Hit, "outpost/local"},
		{"hit=?1 (RFC 8941 boolean)", "outpost/local; hit=?1", Hit, "outpost/local"},
		{"hit=?0 is no hit", "outpost/local; hit=?0; fwd=uri-miss", Miss, "outpost/local"},
		{"miss, stored (§2.2 fwd=uri-miss)", "outpost/local; fwd=uri-miss; fwd-status=200; ttl=300; stored", Miss, "outpost/local"},
		{"another variant (fwd=vary-miss)", "outpost/local; fwd=vary-miss; fwd-status=200; ttl=300; stored", Miss, "outpost/local"},
		{"stale entry revalidated (fwd=stale, 304)", "outpost/local; fwd=stale; fwd-status=304; ttl=300; stored", Revalidated, "outpost/local"},
		{"stale entry replaced (fwd=stale, 200)", "outpost/local; fwd=stale; fwd-status=200; ttl=300; stored", Miss, "outpost/local"},
		{"request forced validation, 304", "outpost/local; fwd=request; fwd-status=304; ttl=300; stored", Revalidated, "outpost/local"},
		{"request forced validation, 200 stored: a miss", "outpost/local; fwd=request; fwd-status=200; ttl=300; stored", Miss, "outpost/local"},
		{"request no-store: a miss", "outpost/local; fwd=request; detail=request-no-store", Miss, "outpost/local"},
		{"origin failed, stale served (RFC 5861)", "outpost/local; fwd=stale; fwd-status=503; ttl=-60; detail=stale-if-error", StaleOnError, "outpost/local"},
		{"collapsed onto a fill", "outpost/local; fwd=uri-miss; fwd-status=200; ttl=300; stored; collapsed", Collapsed, "outpost/local"},
		{"collapsed onto a revalidation", "outpost/local; fwd=stale; fwd-status=304; stored; collapsed", Collapsed, "outpost/local"},
		{"collapsed onto a fill that fell back to stale", "outpost/local; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error", StaleOnError, "outpost/local"},
		{"miss, not storable", "outpost/local; fwd=uri-miss; fwd-status=200; detail=no-store", Miss, "outpost/local"},
		{"miss after a rejected fill", "outpost/local; fwd=uri-miss; fwd-status=200; detail=rejected", Miss, "outpost/local"},
		{"only-if-cached, nothing stored (504)", "outpost/local; fwd=uri-miss; detail=only-if-cached", Error, "outpost/local"},
		{"pass by method (fwd=method)", "outpost/local; fwd=method; fwd-status=200", Pass, "outpost/local"},
		{"pass by request (Authorization)", "outpost/local; fwd=request; fwd-status=200", Pass, "outpost/local"},
		{"bypass", "outpost/local; fwd=bypass; fwd-status=200", Pass, "outpost/local"},
		{"bypass answered 304", "outpost/local; fwd=bypass; fwd-status=304", Revalidated, "outpost/local"},
		{"origin error (502)", "outpost/local; fwd=uri-miss; detail=origin-error", Error, "outpost/local"},
		{"origin timeout (504)", "outpost/local; fwd=uri-miss; detail=origin-timeout", Error, "outpost/local"},
		{"unknown host (421)", "outpost/local; fwd=bypass; detail=unknown-host", Error, "outpost/local"},
		{"last member wins (§2: nearest the client last)", "Origin; hit, outpost/fra; fwd=uri-miss; fwd-status=200", Miss, "outpost/fra"},
		{"last member wins, hit", "upstream; fwd=uri-miss, outpost/fra; hit", Hit, "outpost/fra"},
		{"quoted name and comma in a string", `"edge, one"; detail="a,b"; hit`, Hit, "edge, one"},
		{"semicolon inside a quoted detail", `cdn; detail="x;fwd=method"; fwd=uri-miss`, Miss, "cdn"},
		{"fwd=miss from another cache", "ExampleCache; fwd=miss", Miss, "ExampleCache"},
		{"fwd=partial", "ExampleCache; fwd=partial; fwd-status=206", Miss, "ExampleCache"},
		{"bare name: unknown", "ExampleCache", Unknown, "ExampleCache"},
		{"unknown fwd: unknown", "ExampleCache; fwd=elsewhere", Unknown, "ExampleCache"},
		{"spaces", "  outpost/x ;  hit  ", Hit, "outpost/x"},
		{"trailing comma", "outpost/x; hit,", Unknown, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := ParseCacheStatus([]byte(tc.value))
			if got := Classify(cs); got != tc.want {
				t.Errorf("%q: class %v, want %v", tc.value, got, tc.want)
			}
			if got := ClassifyHeader([]byte(tc.value)); got != tc.want {
				t.Errorf("ClassifyHeader(%q) = %v, want %v", tc.value, got, tc.want)
			}
			if string(cs.Name) != tc.pop {
				t.Errorf("%q: name %q, want %q", tc.value, cs.Name, tc.pop)
			}
		})
	}
}

// TestClassNames checks the names match the PoP's /stats keys.
func TestClassNames(t *testing.T) {
	want := []string{"unknown", "hit", "collapsed", "revalidated", "stale_on_error", "miss", "pass", "error"}
	for c := Class(0); c < numClasses; c++ {
		if c.String() != want[c] {
			t.Errorf("class %d is %q, want %q", c, c, want[c])
		}
	}
}

// FuzzCacheStatus checks the parser never panics and that classification
// is total.
func FuzzCacheStatus(f *testing.F) {
	for _, s := range []string{"outpost/x; hit", `"a,b"; detail="x;y"; fwd=stale; fwd-status=304`, ",,;;\"", "x; fwd-status=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if c := ClassifyHeader([]byte(v)); c >= numClasses {
			t.Fatalf("class %d", c)
		}
	})
}
