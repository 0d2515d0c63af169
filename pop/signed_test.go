package pop

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

const (
	testKeyNew = "0123456789abcdef-new-key"
	testKeyOld = "0123456789abcdef-old-key"
)

// TestSignerCheck covers the signed-URL check on its own: each row signs
// a URL (or forges one) and checks it against a service's keys.
func TestSignerCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	both := newSigner(config.SignedURLs{Keys: []string{testKeyNew, testKeyOld}})
	onlyNew := newSigner(config.SignedURLs{Keys: []string{testKeyNew}})
	sign := func(raw, key string, exp time.Time, prefix string) string {
		var p netip.Prefix
		if prefix != "" {
			p = netip.MustParsePrefix(prefix)
		}
		s, err := SignURL(raw, key, exp, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	later := now.Add(time.Hour)
	client := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		name      string
		signer    *signer
		url       string
		client    netip.Addr
		want      signReason
		wantQuery string
	}{
		{name: "valid", signer: onlyNew, url: sign("http://a.example/v/1.mp4?q=1", testKeyNew, later, ""), client: client, want: signOK, wantQuery: "q=1"},
		{name: "valid without a query", signer: onlyNew, url: sign("http://a.example/v/1.mp4", testKeyNew, later, ""), client: client, want: signOK, wantQuery: ""},
		{name: "valid at its expiry second", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, now, ""), client: client, want: signOK},
		{name: "expired", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, now.Add(-time.Second), ""), client: client, want: signExpired},
		{name: "tampered path", signer: onlyNew, url: strings.Replace(sign("http://a.example/v/1.mp4", testKeyNew, later, ""), "/1.mp4", "/2.mp4", 1), client: client, want: signBad},
		{name: "tampered query", signer: onlyNew, url: strings.Replace(sign("http://a.example/x?q=1", testKeyNew, later, ""), "q=1", "q=2", 1), client: client, want: signBad},
		{name: "query added", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, later, "") + "&extra=1", client: client, want: signBad},
		{name: "expiry extended", signer: onlyNew, url: strings.Replace(sign("http://a.example/x", testKeyNew, later, ""), fmt.Sprint(later.Unix()), fmt.Sprint(later.Unix()+3600), 1), client: client, want: signBad},
		{name: "wrong key", signer: onlyNew, url: sign("http://a.example/x", "another-key-of-16-chars", later, ""), client: client, want: signBad},
		{name: "rotated: the old key still valid", signer: both, url: sign("http://a.example/x", testKeyOld, later, ""), client: client, want: signOK},
		{name: "rotated: the new key valid", signer: both, url: sign("http://a.example/x", testKeyNew, later, ""), client: client, want: signOK},
		{name: "rotated out: the old key refused", signer: onlyNew, url: sign("http://a.example/x", testKeyOld, later, ""), client: client, want: signBad},
		{name: "ip-bound, client inside", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, later, "203.0.113.0/24"), client: client, want: signOK},
		{name: "ip-bound, client outside", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, later, "198.51.100.0/24"), client: client, want: signIP},
		{name: "ip-bound, IPv6 client inside", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, later, "2001:db8::/32"), client: netip.MustParseAddr("2001:db8::1"), want: signOK},
		{name: "ip-bound, prefix widened", signer: onlyNew, url: strings.Replace(sign("http://a.example/x", testKeyNew, later, "203.0.113.0/24"), "%2F24", "%2F8", 1), client: client, want: signBad},
		{name: "ip-bound, prefix removed", signer: onlyNew, url: strings.Replace(sign("http://a.example/x", testKeyNew, later, "203.0.113.0/24"), "&outpost_ip=203.0.113.0%2F24", "", 1), client: client, want: signBad},
		{name: "missing", signer: onlyNew, url: "http://a.example/x?q=1", client: client, want: signMissing, wantQuery: "q=1"},
		{name: "no signature", signer: onlyNew, url: "http://a.example/x?outpost_exp=1900000000", client: client, want: signMalformed},
		{name: "signature not base64", signer: onlyNew, url: "http://a.example/x?outpost_exp=1900000000&outpost_sig=***", client: client, want: signMalformed},
		{name: "signature twice", signer: onlyNew, url: sign("http://a.example/x", testKeyNew, later, "") + "&outpost_sig=AAAA", client: client, want: signMalformed},
		{name: "expiry not a number", signer: onlyNew, url: "http://a.example/x?outpost_exp=soon&outpost_sig=" + strings.Repeat("A", 43), client: client, want: signMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got, query := tt.signer.check(u.EscapedPath(), u.RawQuery, tt.client, now)
			if got != tt.want {
				t.Errorf("check(%s) = %s, want %s", tt.url, got, tt.want)
			}
			if tt.want == signOK && query != tt.wantQuery {
				t.Errorf("query without the signature = %q, want %q", query, tt.wantQuery)
			}
		})
	}
}

// TestSignURLRefuses checks what `outpost sign` will not sign.
func TestSignURLRefuses(t *testing.T) {
	for _, raw := range []string{"/relative", "http://a.example/x?outpost_sig=1", "http://a.example/x#frag", "::"} {
		if s, err := SignURL(raw, testKeyNew, time.Now(), netip.Prefix{}); err == nil {
			t.Errorf("SignURL(%q) = %q, want an error", raw, s)
		}
	}
}

const signedConfig = `
services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers: [{url: "%s"}]
    signed_urls:
      keys: [%s, %s]
pops:
  - name: test
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.2:0
    drain: 0s
    access_log: {mode: full, path: %s}
`

// TestSignedURLs checks a signed service end to end on both serving paths
// (the HTTP/1.1 fast path answers fresh hits): refusals are 403 with a
// body and header that say nothing of why, checked before the cache; the
// signature is not in the cache key and never reaches the origin; the
// reason is in /metrics.
func TestSignedURLs(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "video "+r.URL.RawQuery)
	})
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast path %v", fast), func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			tp := startPoPConfig(t, fmt.Sprintf(signedConfig, o.URL, testKeyNew, testKeyOld, logPath), func(opts *Options) { opts.NoFastPath = !fast })
			now := tp.clock.Now()
			path := fmt.Sprintf("/v/%v.mp4", fast)
			sign := func(key string, exp time.Time, prefix string) string {
				var p netip.Prefix
				if prefix != "" {
					p = netip.MustParsePrefix(prefix)
				}
				s, err := SignURL("http://demo.example"+path+"?q=1", key, exp, p)
				if err != nil {
					t.Fatal(err)
				}
				u, _ := url.Parse(s)
				return u.RequestURI()
			}
			steps := []struct {
				target      string
				wantStatus  int
				wantBody    string
				wantHit     bool
				wantOrigins int
			}{
				{sign(testKeyNew, now.Add(time.Hour), ""), 200, "video q=1", false, 1},
				{sign(testKeyOld, now.Add(2*time.Hour), "127.0.0.0/8"), 200, "video q=1", true, 1}, // another signature, the same object
				{path + "?q=1", 403, "outpost: Forbidden\n", false, 1},
				{sign(testKeyNew, now.Add(-time.Minute), ""), 403, "outpost: Forbidden\n", false, 1},
				{strings.Replace(sign(testKeyNew, now.Add(time.Hour), ""), "q=1", "q=2", 1), 403, "outpost: Forbidden\n", false, 1},
				{sign(testKeyNew, now.Add(time.Hour), "192.0.2.0/24"), 403, "outpost: Forbidden\n", false, 1},
				{sign("not-a-key-of-this-service", now.Add(time.Hour), ""), 403, "outpost: Forbidden\n", false, 1},
			}
			for i, s := range steps {
				resp, body := tp.get(t, s.target)
				if resp.StatusCode != s.wantStatus || string(body) != s.wantBody {
					t.Fatalf("step %d: GET %s = %d %q, want %d %q", i, s.target, resp.StatusCode, body, s.wantStatus, s.wantBody)
				}
				cs := resp.Header.Get("Cache-Status")
				if hit := strings.Contains(cs, "; hit"); hit != s.wantHit {
					t.Errorf("step %d: Cache-Status %q, want hit %v", i, cs, s.wantHit)
				}
				if s.wantStatus == 403 && !strings.HasSuffix(cs, "detail=forbidden") {
					t.Errorf("step %d: Cache-Status %q names more than forbidden", i, cs)
				}
				if got := o.count(path); got != s.wantOrigins {
					t.Errorf("step %d: origin requests %d, want %d", i, got, s.wantOrigins)
				}
			}
			if q := o.lastRequest(path).URL.RawQuery; q != "q=1" {
				t.Errorf("the origin got query %q, want q=1 (no signature parameters)", q)
			}
			if fast {
				waitFor(t, "the signed hit counted", func() bool { return tp.fastHits.Load() >= 1 })
			}
			if fast && tp.fastHits.Load() != 1 {
				t.Errorf("the fast path answered %d requests, want 1 (the signed hit)", tp.fastHits.Load())
			}
			waitFor(t, "the access log's lines", func() bool {
				b, _ := os.ReadFile(logPath)
				return strings.Count(string(b), "\n") >= len(steps)
			})
			logged, _ := os.ReadFile(logPath)
			for _, reason := range []string{"missing", "expired", "signature", "ip"} {
				if !strings.Contains(string(logged), "detail=signature-"+reason) {
					t.Errorf("the access log does not say signature-%s:\n%s", reason, logged)
				}
			}
			for line := range strings.Lines(string(logged)) {
				if strings.Contains(line, `"status":200`) && strings.Contains(line, SignatureParam) {
					t.Errorf("the access log has the signature of a URL that was let through: %s", line)
				}
			}
			metrics := scrape(t, tp)
			for _, reason := range []string{"missing", "expired", "signature", "ip"} {
				want := 1
				if reason == "signature" {
					want = 2
				}
				line := fmt.Sprintf(`outpost_pop_signed_url_denied_total{reason=%q,service="demo"} %d`, reason, want)
				if !strings.Contains(metrics, line) {
					t.Errorf("/metrics lacks %s", line)
				}
			}
		})
	}
}

// scrape returns the PoP's /metrics text.
func scrape(t *testing.T, tp *testPoP) string {
	t.Helper()
	resp, err := tp.client.Get(tp.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
