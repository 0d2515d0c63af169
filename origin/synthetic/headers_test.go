package synthetic

import (
	"net/http"
	"testing"
)

// absent marks a header that must not be sent.
const absent = "<absent>"

func TestObjectHeaders(t *testing.T) {
	lm := LastModified("o").Format(http.TimeFormat)
	tests := []struct {
		name  string
		opts  Options
		query string
		want  map[string]string // header → value, or absent
	}{
		{"defaults", Options{}, "?size=100", map[string]string{
			"Etag":           ETag("o", 100),
			"Last-Modified":  lm,
			"Content-Type":   "application/octet-stream",
			"Cache-Control":  "public, max-age=3600",
			"Content-Length": "100",
			"Accept-Ranges":  "bytes",
			"Vary":           absent,
			"Surrogate-Key":  absent,
		}},
		{"ETag follows the size", Options{}, "?size=101", map[string]string{"Etag": ETag("o", 101)}},
		{"default size", Options{}, "", map[string]string{"Etag": ETag("o", SizeOf("o"))}},
		{"server-wide Cache-Control", Options{DefaultCacheControl: "public, s-maxage=60"}, "?size=1",
			map[string]string{"Cache-Control": "public, s-maxage=60"}},
		{"server-wide none", Options{DefaultCacheControl: "none"}, "?size=1",
			map[string]string{"Cache-Control": absent}},
		{"cc overrides", Options{}, "?size=1&cc=private,%20no-cache",
			map[string]string{"Cache-Control": "private, no-cache"}},
		{"cc overrides the server-wide value", Options{DefaultCacheControl: "max-age=5"}, "?size=1&cc=no-store",
			map[string]string{"Cache-Control": "no-store"}},
		{"empty cc sends none", Options{}, "?size=1&cc=",
			map[string]string{"Cache-Control": absent}},
		{"quoted etag", Options{}, "?size=1&etag=%22v7%22", map[string]string{"Etag": `"v7"`}},
		{"bare etag is quoted", Options{}, "?size=1&etag=v7", map[string]string{"Etag": `"v7"`}},
		{"weak etag", Options{}, "?size=1&etag=W/%22v7%22", map[string]string{"Etag": `W/"v7"`}},
		{"etag none", Options{}, "?size=1&etag=none", map[string]string{"Etag": absent, "Last-Modified": lm}},
		{"vary", Options{}, "?size=1&vary=Accept-Encoding", map[string]string{"Vary": "Accept-Encoding"}},
		{"tags repeated and space-separated", Options{}, "?size=1&tag=a&tag=b%20c", map[string]string{"Surrogate-Key": "a b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, tt.opts)
			resp, body := ts.get(t, "/obj/o"+tt.query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for k, want := range tt.want {
				got, ok := resp.Header[k]
				switch {
				case want == absent && ok:
					t.Errorf("%s: %q, want none", k, got)
				case want != absent && (len(got) != 1 || got[0] != want):
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestBadHeaderParameters(t *testing.T) {
	ts := start(t, Options{})
	for _, q := range []string{
		"cc=a%0d%0aX-Injected:%201",
		"vary=a%00b",
		"tag=a%7fb",
		"etag=a%20b",
		"etag=W/v7",
		"etag=%22a%22b%22",
		"etag=%22",
		"reset=maybe",
		"slow=fast",
	} {
		t.Run(q, func(t *testing.T) {
			resp, body := ts.get(t, "/obj/o?"+q)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Injected") != "" {
				t.Fatal("a header was injected")
			}
		})
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	ts := start(t, Options{})
	tests := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"other path", "GET", "/other/x", 404, ""},
		{"root", "GET", "/", 404, ""},
		{"empty id", "GET", "/obj/", 404, ""},
		{"obj without slash", "GET", "/obj", 404, ""},
		{"unknown admin endpoint", "GET", "/_origin/nope", 404, ""},
		{"id with slashes", "GET", "/obj/a/b/c.jpg?size=3", 200, ""},
		{"POST to an object", "POST", "/obj/x", 405, "GET, HEAD"},
		{"DELETE stats", "DELETE", "/_origin/stats", 405, "GET, HEAD, POST"},
		{"POST health", "POST", "/_origin/health", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(t, tt.method, tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if tt.status == 404 && len(body) == 0 {
				t.Error("404 without a body")
			}
		})
	}
}
