package pop

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSharedFillNeverLeaks checks issue 16 item 1: what the origin says to
// the request that caused a fetch (a cookie, a private field, a response
// private as a whole) never reaches the other requests that share the
// fetch, on revalidations (304) and full responses (200) alike.
func TestSharedFillNeverLeaks(t *testing.T) {
	type answer struct {
		status int
		header http.Header
	}
	tests := []struct {
		name string
		// first is stored before the race; nil means the racing fetch is a
		// plain miss.
		first *answer
		// racing is what the origin answers the leader's fetch with.
		racing answer
		// waitersFetch says the waiters must go to the origin themselves.
		waitersFetch bool
	}{
		{
			name:   "RFC9111 4.3.4 a 304's Set-Cookie stays with the revalidating request",
			first:  &answer{200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}},
			racing: answer{304, http.Header{"Set-Cookie": {"session=A"}, "Etag": {`"v1"`}}},
			// A cookie without public makes the response one user's (as a
			// 200 with one would be): the waiters fetch their own.
			waitersFetch: true,
		},
		{
			name:   "RFC9111 4.3.4 a public 304's Set-Cookie stays with the revalidating request",
			first:  &answer{200, http.Header{"Cache-Control": {"public, no-cache"}, "Etag": {`"v1"`}}},
			racing: answer{304, http.Header{"Set-Cookie": {"session=A"}, "Etag": {`"v1"`}}},
		},
		{
			name:   "RFC9111 5.2.2.7 a 304 that turns the response private sends the waiters to the origin",
			first:  &answer{200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}},
			racing: answer{304, http.Header{"Set-Cookie": {"session=A"}, "Cache-Control": {"private"}, "X-User": {"alice"}, "Etag": {`"v1"`}}},
			// The stored copy is dropped; each waiter fetches its own.
			waitersFetch: true,
		},
		{
			name:   "RFC9111 5.2.2.7 a 304's private=X-User field stays with the revalidating request",
			first:  &answer{200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}},
			racing: answer{304, http.Header{"Cache-Control": {`no-cache, private="X-User"`}, "X-User": {"alice"}, "Etag": {`"v1"`}}},
		},
		{
			name:   "RFC9111 7.3 a public 200's Set-Cookie stays with the leader",
			racing: answer{200, http.Header{"Cache-Control": {"public, max-age=60"}, "Set-Cookie": {"session=A"}}},
		},
		{
			name:   "RFC9111 5.2.2.7 a 200's private=X-User field stays with the leader",
			racing: answer{200, http.Header{"Cache-Control": {`max-age=60, private="X-User"`}, "X-User": {"alice"}}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/leak%d", i)
			release := make(chan struct{})
			var mu sync.Mutex
			racingSent := false
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				first := tt.first != nil && !racingSent && r.Header.Get("If-None-Match") == ""
				racing := !first && !racingSent
				if racing {
					racingSent = true
				}
				mu.Unlock()
				a := answer{200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}}
				switch {
				case first:
					a = *tt.first
				case racing:
					<-release
					a = tt.racing
				}
				for k, v := range a.header {
					w.Header()[k] = v
				}
				w.WriteHeader(a.status)
				if a.status == 200 {
					io.WriteString(w, "page")
				}
			})
			tp := startPoP(t, o.URL)
			if tt.first != nil {
				tp.get(t, path)
				waitFor(t, "first fill stored", func() bool { return tp.fills.inFlight() == 0 })
			}
			before := o.count(path)
			type got struct {
				header http.Header
				body   string
			}
			results := make([]got, 4)
			var wg sync.WaitGroup
			wg.Go(func() {
				resp, body := tp.get(t, path)
				results[0] = got{resp.Header, string(body)}
			})
			waitFor(t, "the leader's fetch at the origin", func() bool { return o.count(path) == before+1 })
			for i := 1; i < 4; i++ {
				wg.Go(func() {
					resp, body := tp.get(t, path)
					results[i] = got{resp.Header, string(body)}
				})
			}
			key := "http://demo.example" + path
			waitFor(t, "three requests to join the leader's fetch", func() bool { return tp.fills.joined(key) == 4 })
			close(release)
			wg.Wait()

			leaderCookie := tt.racing.header.Get("Set-Cookie")
			leaderUser := tt.racing.header.Get("X-User")
			if results[0].header.Get("Set-Cookie") != leaderCookie || results[0].header.Get("X-User") != leaderUser {
				t.Errorf("the leader lost its own fields: Set-Cookie %q X-User %q", results[0].header.Get("Set-Cookie"), results[0].header.Get("X-User"))
			}
			for i, r := range results[1:] {
				if c := r.header.Get("Set-Cookie"); c != "" {
					t.Errorf("waiter %d got the leader's cookie %q", i+1, c)
				}
				if u := r.header.Get("X-User"); u != "" {
					t.Errorf("waiter %d got the leader's X-User %q", i+1, u)
				}
				if r.body != "page" {
					t.Errorf("waiter %d got body %q", i+1, r.body)
				}
			}
			wantOrigin := before + 1
			if tt.waitersFetch {
				wantOrigin += 3
			}
			if n := o.count(path); n != wantOrigin {
				t.Errorf("origin requests = %d, want %d", n, wantOrigin)
			}
			// Whatever is stored now is shareable too.
			waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			resp, _ := tp.get(t, path)
			if c, u := resp.Header.Get("Set-Cookie"), resp.Header.Get("X-User"); c != "" || u != "" {
				t.Errorf("a later request got Set-Cookie %q X-User %q", c, u)
			}
		})
	}
}

// caddyEncode negotiates a content coding the way Caddy's encode directive
// does: the client's most preferred coding by weight, ties broken by the
// server's order, among those the server has; identity when none fits.
func caddyEncode(acceptEncoding string) string {
	server := []string{"zstd", "br", "gzip", "deflate"}
	best, bestQ := "", 0.0
	for _, coding := range server {
		for member := range strings.SplitSeq(acceptEncoding, ",") {
			name, params, _ := strings.Cut(member, ";")
			if !strings.EqualFold(strings.TrimSpace(name), coding) && strings.TrimSpace(name) != "*" {
				continue
			}
			q := 1.0
			if _, v, ok := strings.Cut(params, "q="); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%g", &q)
			}
			if q > bestQ {
				best, bestQ = coding, q
			}
		}
	}
	return best
}

// accepts reports whether a client's Accept-Encoding allows a response
// with the given Content-Encoding ("" is identity, always allowed here).
func accepts(acceptEncoding, contentEncoding string) bool {
	if contentEncoding == "" {
		return true
	}
	for member := range strings.SplitSeq(acceptEncoding, ",") {
		name, params, _ := strings.Cut(member, ";")
		name = strings.TrimSpace(name)
		if (strings.EqualFold(name, contentEncoding) || name == "*") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// TestAcceptEncodingVariants checks issue 16 item 2: browsers, curl and
// clients without Accept-Encoding sharing one URL each get a body they can
// decode, from an origin that negotiates like Caddy (zstd, br, gzip,
// deflate), one that sends a coding without saying it varies, and one that
// answers with a coding it was not asked for.
func TestAcceptEncodingVariants(t *testing.T) {
	clients := []struct{ name, ae string }{
		{"Chrome", "gzip, deflate, br, zstd"},
		{"Safari", "gzip, deflate, br"},
		{"curl", ""},
		{"curl --compressed", "deflate, gzip, br, zstd"},
		{"Go", "gzip"},
		{"Firefox", "gzip, deflate, br, zstd"},
		{"identity only", "identity"},
	}
	origins := []struct {
		name string
		// pick is the coding the origin sends for the Accept-Encoding it
		// receives; vary says whether it sends Vary: Accept-Encoding.
		pick func(ae string) string
		vary bool
	}{
		{"Caddy encode", caddyEncode, true},
		{"coding without Vary", caddyEncode, false},
		{"zstd whatever was asked", func(string) string { return "zstd" }, true},
	}
	for _, org := range origins {
		t.Run(org.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked []string
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				ae := r.Header.Get("Accept-Encoding")
				mu.Lock()
				asked = append(asked, ae)
				mu.Unlock()
				coding := org.pick(ae)
				w.Header().Set("Cache-Control", "max-age=60")
				if org.vary {
					w.Header().Set("Vary", "Accept-Encoding")
				}
				if coding != "" {
					w.Header().Set("Content-Encoding", coding)
				}
				io.WriteString(w, "body in "+coding)
			})
			tp := startPoP(t, o.URL)
			for round := range 2 {
				for _, c := range clients {
					h := http.Header{}
					if c.ae != "" {
						h.Set("Accept-Encoding", c.ae)
					}
					waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
					resp, body := tp.do(t, http.MethodGet, "/page", "demo.example", h)
					if resp.StatusCode == http.StatusBadGateway && !accepts(c.ae, "zstd") && org.name == "zstd whatever was asked" {
						continue // the origin broke the negotiation: 502, never an undecodable body
					}
					ce := resp.Header.Get("Content-Encoding")
					if !accepts(c.ae, ce) {
						t.Errorf("round %d: %s (Accept-Encoding %q) got Content-Encoding %q, %q (Cache-Status %q)",
							round, c.name, c.ae, ce, body, resp.Header.Get("Cache-Status"))
					}
					if want := "body in " + ce; string(body) != want {
						t.Errorf("round %d: %s got body %q under Content-Encoding %q", round, c.name, body, ce)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ae := range asked {
				if ae == "" {
					t.Errorf("the origin was asked without Accept-Encoding (any coding would do): %q", asked)
				}
			}
		})
	}
}

// TestTargetedFieldsNeverReachClients checks that the cache-control fields
// aimed at this CDN (RFC 9213 and Surrogate-Control) govern the PoP and
// never reach a client, on a miss, a hit through net/http and a hit on the
// HTTP/1.1 fast path (issue 17: each path kept its own list).
func TestTargetedFieldsNeverReachClients(t *testing.T) {
	for _, field := range []string{"Surrogate-Control", "CDN-Cache-Control", "Outpost-Cache-Control"} {
		t.Run(field, func(t *testing.T) {
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(field, "max-age=60")
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "targeted")
			})
			tp := startPoP(t, o.URL)
			for i, h := range []http.Header{nil, nil, {"Range": {"bytes=0-3"}}} {
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				resp, _ := tp.do(t, http.MethodGet, "/t", "demo.example", h)
				if v := resp.Header.Values(field); len(v) > 0 {
					t.Errorf("response %d (%s) carries %s: %q", i, resp.Header.Get("Cache-Status"), field, v)
				}
			}
			if n := o.count("/t"); n != 1 {
				t.Errorf("origin requests = %d, want 1 (the field should make it cacheable)", n)
			}
		})
	}
}

// TestIfModifiedSinceWithoutLastModified checks RFC 9111 §4.3.2: a stored
// response without Last-Modified is compared by its Date (cache-tests
// conditional-lm-fresh-no-lm).
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	o := newTestOrigin(t, cacheable("dated"))
	tp := startPoP(t, o.URL)
	resp, _ := tp.get(t, "/d")
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
	}
	waitFor(t, "fill done", func() bool { return tp.fills.inFlight() == 0 })
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"RFC9111 4.3.2 If-Modified-Since after Date", http.Header{"If-Modified-Since": {date.Add(time.Hour).Format(http.TimeFormat)}}, http.StatusNotModified},
		{"RFC9111 4.3.2 If-Modified-Since equal to Date", http.Header{"If-Modified-Since": {date.Format(http.TimeFormat)}}, http.StatusNotModified},
		{"RFC9111 4.3.2 If-Modified-Since before Date", http.Header{"If-Modified-Since": {date.Add(-time.Hour).Format(http.TimeFormat)}}, http.StatusOK},
		{"RFC9110 13.2.2 If-None-Match takes precedence", http.Header{"If-None-Match": {`"x"`}, "If-Modified-Since": {date.Add(time.Hour).Format(http.TimeFormat)}}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tp.do(t, http.MethodGet, "/d", "demo.example", tt.header)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tt.want, body)
			}
		})
	}
}
