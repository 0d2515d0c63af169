package synthetic

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConditionalRequests(t *testing.T) {
	ts := start(t, Options{})
	const path = "/obj/c?size=1000"
	etag := ETag("c", 1000)
	weak := "W/" + etag
	lm := LastModified("c")
	at := func(d time.Duration) string { return lm.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		method string
		header http.Header
		status int
	}{
		{"§13.1.2 If-None-Match with the ETag → 304", "GET", h("If-None-Match", etag), 304},
		{"§13.1.2 If-None-Match compares weakly: W/ form matches → 304", "GET", h("If-None-Match", weak), 304},
		{"§13.1.2 If-None-Match list containing the ETag → 304", "GET", h("If-None-Match", `"x", `+etag+`, "y"`), 304},
		{"§13.1.2 If-None-Match * → 304", "GET", h("If-None-Match", "*"), 304},
		{"§13.1.2 If-None-Match other tags → 200", "GET", h("If-None-Match", `"x", W/"y"`), 200},
		{"§13.1.2 HEAD with If-None-Match → 304", "HEAD", h("If-None-Match", etag), 304},
		{"§13.1.3 If-Modified-Since at Last-Modified → 304", "GET", h("If-Modified-Since", at(0)), 304},
		{"§13.1.3 If-Modified-Since after Last-Modified → 304", "GET", h("If-Modified-Since", at(time.Hour)), 304},
		{"§13.1.3 If-Modified-Since before Last-Modified → 200", "GET", h("If-Modified-Since", at(-time.Second)), 200},
		{"§13.1.3 invalid If-Modified-Since is ignored → 200", "GET", h("If-Modified-Since", "yesterday"), 200},
		{"§13.1.3 If-Modified-Since ignored when If-None-Match is present → 200", "GET",
			h("If-None-Match", `"other"`, "If-Modified-Since", at(time.Hour)), 200},
		{"§13.1.1 If-Match with the ETag → 200", "GET", h("If-Match", etag), 200},
		{"§13.1.1 If-Match * → 200", "GET", h("If-Match", "*"), 200},
		{"§13.1.1 If-Match other tag → 412", "GET", h("If-Match", `"other"`), 412},
		{"§13.1.1 If-Match compares strongly: W/ form fails → 412", "GET", h("If-Match", weak), 412},
		{"§13.1.4 If-Unmodified-Since before Last-Modified → 412", "GET", h("If-Unmodified-Since", at(-time.Hour)), 412},
		{"§13.1.4 If-Unmodified-Since at Last-Modified → 200", "GET", h("If-Unmodified-Since", at(0)), 200},
		{"§13.2.2 If-Unmodified-Since ignored when If-Match is present → 200", "GET",
			h("If-Match", etag, "If-Unmodified-Since", at(-time.Hour)), 200},
		{"§13.2.2 If-Match is evaluated before If-None-Match → 412", "GET",
			h("If-Match", `"other"`, "If-None-Match", etag), 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(t, tt.method, path, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			switch tt.status {
			case 304:
				if len(body) != 0 {
					t.Errorf("304 with %d bytes of content", len(body))
				}
				// §15.4.5: a 304 carries the fields a 200 would have had
				// that guide cache updates.
				if got := resp.Header.Get("Etag"); got != etag {
					t.Errorf("304 ETag %q, want %q", got, etag)
				}
				if got := resp.Header.Get("Cache-Control"); got != DefaultCacheControl {
					t.Errorf("304 Cache-Control %q", got)
				}
			case 200:
				if tt.method == "GET" {
					if err := Verify("c", body); err != nil || len(body) != 1000 {
						t.Errorf("200 body: %d bytes, %v", len(body), err)
					}
				}
			}
		})
	}
}

func TestConditionalWithoutETag(t *testing.T) {
	ts := start(t, Options{})
	lm := LastModified("n").Format(http.TimeFormat)
	resp, _ := ts.do(t, "GET", "/obj/n?size=10&etag=none", h("If-Modified-Since", lm))
	if resp.StatusCode != 304 {
		t.Fatalf("§13.1.3 If-Modified-Since with no ETag: %d, want 304", resp.StatusCode)
	}
	if got := resp.Header.Get("Last-Modified"); got != lm {
		t.Errorf("304 without an ETag has Last-Modified %q, want %q (§15.4.5)", got, lm)
	}
	resp, _ = ts.do(t, "GET", "/obj/n?size=10&etag=v1", h("If-None-Match", `"v1"`))
	if resp.StatusCode != 304 {
		t.Fatalf("§13.1.2 If-None-Match with a custom ETag: %d, want 304", resp.StatusCode)
	}
}

func TestRangeRequests(t *testing.T) {
	ts := start(t, Options{})
	const size = 10_000
	const path = "/obj/r?size=10000"
	etag := ETag("r", size)
	lmDate := LastModified("r").Format(http.TimeFormat)
	tests := []struct {
		name   string
		method string
		header http.Header
		status int
		parts  []span // the ranges a 206 must carry
	}{
		{"§14.1.2 single range", "GET", h("Range", "bytes=0-99"), 206, []span{{0, 99}}},
		{"§14.1.2 range across a block boundary", "GET", h("Range", "bytes=4000-5000"), 206, []span{{4000, 5000}}},
		{"§14.1.2 open-ended range", "GET", h("Range", "bytes=9990-"), 206, []span{{9990, 9999}}},
		{"§14.1.2 suffix range", "GET", h("Range", "bytes=-100"), 206, []span{{9900, 9999}}},
		{"§14.1.2 range past the end is cut", "GET", h("Range", "bytes=9000-20000"), 206, []span{{9000, 9999}}},
		{"§14.6 multiple ranges → multipart/byteranges", "GET", h("Range", "bytes=0-9,5000-5099,-10"), 206,
			[]span{{0, 9}, {5000, 5099}, {9990, 9999}}},
		{"§14.1.1 unsatisfiable range → 416", "GET", h("Range", "bytes=10000-10100"), 416, nil},
		{"§14.1.1 unsatisfiable ranges are skipped when another is satisfiable", "GET",
			h("Range", "bytes=20000-,0-4"), 206, []span{{0, 4}}},
		{"§14.1 range unit is case-insensitive", "GET", h("Range", "Bytes=0-9"), 206, []span{{0, 9}}},
		{"§14.2 unknown range unit is ignored → 200", "GET", h("Range", "items=0-9"), 200, nil},
		{"§14.2 Range is ignored for HEAD → 200", "HEAD", h("Range", "bytes=0-9"), 200, nil},
		{"§13.1.5 If-Range with the ETag → 206", "GET", h("Range", "bytes=0-9", "If-Range", etag), 206, []span{{0, 9}}},
		{"§13.1.5 If-Range with another ETag → 200", "GET", h("Range", "bytes=0-9", "If-Range", `"old"`), 200, nil},
		{"§13.1.5 If-Range with a weak ETag never matches → 200", "GET",
			h("Range", "bytes=0-9", "If-Range", "W/"+etag), 200, nil},
		{"§13.1.5 If-Range with the Last-Modified date → 206", "GET",
			h("Range", "bytes=0-9", "If-Range", lmDate), 206, []span{{0, 9}}},
		{"§13.1.5 If-Range with another date → 200", "GET",
			h("Range", "bytes=0-9", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT"), 200, nil},
		{"§13.2.2 If-None-Match is evaluated before Range → 304", "GET",
			h("Range", "bytes=0-9", "If-None-Match", etag), 304, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(t, tt.method, path, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.200q", resp.StatusCode, tt.status, body)
			}
			switch tt.status {
			case 200:
				if resp.ContentLength != size {
					t.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
				}
				if tt.method == "GET" && (len(body) != size || Verify("r", body) != nil) {
					t.Errorf("200 body is not the whole object")
				}
			case 416:
				if got := resp.Header.Get("Content-Range"); got != "bytes */10000" {
					t.Errorf("416 Content-Range %q, want bytes */10000 (§15.5.17)", got)
				}
			case 206:
				checkParts(t, resp, body, size, tt.parts)
			}
		})
	}
}

// span is the first and last byte of a range.
type span struct{ first, last int64 }

// checkParts checks a 206's ranges, single or multipart, and their bytes.
func checkParts(t *testing.T, resp *http.Response, body []byte, size int64, want []span) {
	t.Helper()
	check := func(contentRange string, b []byte, w span) {
		t.Helper()
		if cr := fmt.Sprintf("bytes %d-%d/%d", w.first, w.last, size); contentRange != cr {
			t.Errorf("Content-Range %q, want %q", contentRange, cr)
		}
		if int64(len(b)) != w.last-w.first+1 {
			t.Errorf("part has %d bytes, want %d", len(b), w.last-w.first+1)
		}
		if _, err := NewVerifier("r", w.first).Write(b); err != nil {
			t.Errorf("part %d-%d: %v", w.first, w.last, err)
		}
	}
	mt, mp, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 1 {
		if mt != "application/octet-stream" {
			t.Fatalf("single range with Content-Type %q (§14.6: no multipart for one range)", mt)
		}
		check(resp.Header.Get("Content-Range"), body, want[0])
		return
	}
	if mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q, want multipart/byteranges", mt)
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), mp["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d parts, want %d", i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(want) {
			t.Fatalf("more than %d parts", len(want))
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if ct := p.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("part Content-Type %q", ct)
		}
		check(p.Header.Get("Content-Range"), b, want[i])
	}
}
