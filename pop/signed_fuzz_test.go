package pop

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzSignedURL feeds the signed-URL check paths and queries from
// clients (untrusted): it must never panic nor accept a URL no key
// signed; and every URL SignURL makes of the same path and query is
// accepted, with the query it was given back (round trip).
func FuzzSignedURL(f *testing.F) {
	for _, seed := range []struct{ path, query string }{
		{"/a", ""},
		{"/video/x.mp4", "a=1&b=2"},
		{"/", "outpost_exp=1&outpost_sig=AAAA"},
		{"/%2F", "outpost_exp=99999999999&outpost_ip=10.0.0.0%2F8&outpost_sig=" + strings.Repeat("A", 43)},
		{"/x", "outpost_exp=1&outpost_exp=2&outpost_sig=x"},
		{"/x", "&&=&outpost_sig="},
	} {
		f.Add(seed.path, seed.query)
	}
	const key = "0123456789abcdef0123"
	s := &signer{keys: [][]byte{[]byte(key)}}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	client := netip.MustParseAddr("192.0.2.7")
	f.Fuzz(func(t *testing.T, path, query string) {
		if len(path) > 4096 || len(query) > 4096 {
			return
		}
		// Whatever a client sends: no panic, and no acceptance without a
		// MAC made with the key (a fuzzer cannot forge HMAC-SHA256).
		if reason, _ := s.check(path, query, client, now); reason == signOK && !strings.Contains(query, SignatureParam+"=") {
			t.Fatalf("accepted %q?%q without a signature", path, query)
		}
		// Round trip: a URL SignURL made is accepted by check with its
		// own query given back.
		u := &url.URL{Scheme: "https", Host: "demo.example", Path: "/"}
		if p, err := url.PathUnescape(path); err == nil && strings.HasPrefix(p, "/") {
			u.Path = p
		}
		if strings.Contains(query, "outpost_") || strings.ContainsAny(query, "#") {
			return
		}
		u.RawQuery = query
		signed, err := SignURL(u.String(), key, now.Add(time.Hour), netip.MustParsePrefix("192.0.2.0/24"))
		if err != nil {
			return
		}
		req, err := http.NewRequest(http.MethodGet, signed, nil)
		if err != nil {
			return
		}
		reason, rest := s.check(req.URL.EscapedPath(), req.URL.RawQuery, client, now)
		if reason != signOK {
			t.Fatalf("SignURL(%q) = %q, refused: %v", u.String(), signed, reason)
		}
		var want []string
		for m := range strings.SplitSeq(query, "&") {
			if m != "" {
				want = append(want, m)
			}
		}
		if rest != strings.Join(want, "&") {
			t.Fatalf("query given back %q, want %q", rest, strings.Join(want, "&"))
		}
	})
}

// FuzzCDNLoop feeds CDN-Loop fields from requests (untrusted) to the
// loop check's parser: no panic, and no more members than the field has
// comma-separated parts.
func FuzzCDNLoop(f *testing.F) {
	for _, seed := range []string{"", "outpost; pop=prg", "outpost; pop=\"a\", cloudflare", ";;;,,,", "OUTPOST;POP=x;pop=y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, field string) {
		h := http.Header{"Cdn-Loop": {field}}
		if n, max := len(cdnLoopMembers(h)), strings.Count(field, ",")+1; n > max {
			t.Fatalf("%d members from %q, at most %d parts", n, field, max)
		}
		viaOutpost(h, "prg")
	})
}
