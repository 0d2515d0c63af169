package pop

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// FuzzServeStored sends arbitrary Range and precondition fields against a
// stored object. Whatever the client sends, the PoP must answer with a
// status RFC 9110 allows for it, a Content-Length that matches the body,
// and never panic.
func FuzzServeStored(f *testing.F) {
	f.Add("bytes=0-3", `"v1"`, "", "", "")
	f.Add("bytes=-5,2-,0-0", "", "Mon, 02 Jan 2006 15:04:05 GMT", `W/"v1"`, "")
	f.Add("bytes=99-", "*", "garbage", "", `"v1"`)
	f.Add("bytes=1-0,,,", `"a", "b"`, "", `"v1"`, "Mon, 02 Jan 2006 15:04:05 GMT")
	f.Add("items=0-1", "", "", "", "")

	body := "0123456789abcdef"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		io.WriteString(w, body)
	}))
	defer srv.Close()
	cfg, err := config.Parse("fuzz.yaml", []byte(fmt.Sprintf(testConfig, srv.URL, "0s")))
	if err != nil {
		f.Fatal(err)
	}
	p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	warm := httptest.NewRequest(http.MethodGet, "http://demo.example/obj", nil)
	p.ServeHTTP(httptest.NewRecorder(), warm)
	waitStored(f, p)

	allowed := map[int]bool{200: true, 206: true, 304: true, 412: true, 416: true}
	f.Fuzz(func(t *testing.T, rng, ifNoneMatch, ifModifiedSince, ifRange, ifMatch string) {
		req := httptest.NewRequest(http.MethodGet, "http://demo.example/obj", nil)
		for name, v := range map[string]string{"Range": rng, "If-None-Match": ifNoneMatch,
			"If-Modified-Since": ifModifiedSince, "If-Range": ifRange, "If-Match": ifMatch} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d for %v", rec.Code, req.Header)
		}
		if cl := rec.Header().Get("Content-Length"); cl != "" {
			if n, err := strconv.Atoi(cl); err != nil || n != rec.Body.Len() {
				t.Fatalf("Content-Length %q but %d body bytes (status %d)", cl, rec.Body.Len(), rec.Code)
			}
		}
		if rec.Code == 200 && rec.Body.String() != body {
			t.Fatalf("200 with body %q", rec.Body.String())
		}
	})
}
