package pop

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/outpost-cdn/outpost/popapi"
)

// purge sends a purge to the test PoP's admin listener.
func (tp *testPoP) purge(t *testing.T, token string, body string) (int, popapi.PurgeResult, string) {
	t.Helper()
	resp := tp.adminRequest(t, http.MethodPost, "/purge", token, body)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var res popapi.PurgeResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatalf("purge answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, res, string(raw)
}

// cached reports whether path is a hit now (after the fills settle).
func (tp *testPoP) cached(t *testing.T, path string, header http.Header) bool {
	t.Helper()
	waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
	resp, _ := tp.do(t, http.MethodGet, path, "demo.example", header)
	return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
}

func TestPurge(t *testing.T) {
	o := &rfcOrigin{}
	origin := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tagged/a", "/tagged/b":
			w.Header().Set("Surrogate-Key", "red blue")
		case "/tagged/c":
			w.Header().Set("Cache-Tag", "green, red")
		}
		o.ServeHTTP(w, r)
	})
	tp := startPoP(t, origin.URL)
	tests := []struct {
		name       string
		warm       []string
		warmHeader http.Header
		body       string
		wantPurged int
		gone       []string
		kept       []string
	}{
		{"url purge removes one URL", []string{"/u/1", "/u/2"}, nil,
			`{"id":"p1","url":"http://demo.example/u/1"}`, 1, []string{"/u/1"}, []string{"/u/2"}},
		{"url purge covers both schemes and port-free host", []string{"/u/3"}, nil,
			`{"id":"p2","url":"https://DEMO.example:8443/u/3"}`, 1, []string{"/u/3"}, nil},
		{"url purge removes every variant", []string{"/var?vary=X-Lang"}, http.Header{"X-Lang": {"en"}},
			`{"id":"p3","url":"http://demo.example/var?vary=X-Lang"}`, 2, []string{"/var?vary=X-Lang"}, nil},
		{"prefix purge", []string{"/img/1", "/img/2", "/css/1"}, nil,
			`{"id":"p4","prefix":"http://demo.example/img/"}`, 2, []string{"/img/1", "/img/2"}, []string{"/css/1"}},
		{"tag purge (Surrogate-Key and Cache-Tag)", []string{"/tagged/a", "/tagged/b", "/tagged/c"}, nil,
			`{"id":"p5","tag":"blue"}`, 2, []string{"/tagged/a", "/tagged/b"}, []string{"/tagged/c"}},
		{"tag purge from Cache-Tag", []string{"/tagged/c"}, nil,
			`{"id":"p6","tag":"green"}`, 1, []string{"/tagged/c"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range tt.warm {
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				tp.do(t, http.MethodGet, p, "demo.example", tt.warmHeader)
			}
			for _, p := range append(append([]string{}, tt.gone...), tt.kept...) {
				if !tp.cached(t, p, tt.warmHeader) {
					t.Fatalf("%s not cached before the purge", p)
				}
			}
			code, res, raw := tp.purge(t, "s3cret", tt.body)
			if code != 200 || res.Purged != tt.wantPurged || res.PoP != "test" {
				t.Fatalf("purge: %d %+v %s; want %d purged", code, res, raw, tt.wantPurged)
			}
			for _, p := range tt.gone {
				if tp.cached(t, p, tt.warmHeader) {
					t.Errorf("%s still cached after the purge", p)
				}
			}
			for _, p := range tt.kept {
				if !tp.cached(t, p, tt.warmHeader) {
					t.Errorf("%s purged but should not be", p)
				}
			}
		})
	}
}

func TestPurgeRefused(t *testing.T) {
	o := &rfcOrigin{}
	srv := newTestOrigin(t, o.ServeHTTP)
	tp := startPoP(t, srv.URL)
	tp.get(t, "/keep")
	tests := []struct {
		name     string
		token    string
		body     string
		wantCode int
	}{
		{"no token: 401", "", `{"url":"http://demo.example/keep"}`, 401},
		{"wrong token: 401", "guess", `{"url":"http://demo.example/keep"}`, 401},
		{"bad JSON: 400", "s3cret", `{"url":`, 400},
		{"unknown field: 400", "s3cret", `{"url":"http://demo.example/keep","hard":true}`, 400},
		{"two targets: 400", "s3cret", `{"url":"http://demo.example/keep","tag":"x"}`, 400},
		{"nothing named: 400", "s3cret", `{}`, 400},
		{"unknown host: 404", "s3cret", `{"url":"http://other.example/keep"}`, 404},
		{"no host: 400", "s3cret", `{"url":"/keep"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, raw := tp.purge(t, tt.token, tt.body)
			if code != tt.wantCode {
				t.Errorf("status %d (%s), want %d", code, raw, tt.wantCode)
			}
			if !tp.cached(t, "/keep", nil) {
				t.Error("a refused purge removed the object")
			}
		})
	}
	body, _ := io.ReadAll(mustGet(t, tp.client, tp.admin+"/metrics").Body)
	if !bytes.Contains(body, []byte("outpost_pop_purges_denied_total 2")) {
		t.Errorf("denied purges not counted:\n%s", body)
	}
}

func mustGet(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestPurgeIDAppliedOnce(t *testing.T) {
	o := &rfcOrigin{}
	srv := newTestOrigin(t, o.ServeHTTP)
	tp := startPoP(t, srv.URL)
	tp.get(t, "/once")
	waitStored(t, tp.PoP) // a fill is stored just after its response is sent
	_, first, _ := tp.purge(t, "s3cret", `{"id":"same","url":"http://demo.example/once"}`)
	tp.get(t, "/once") // stored again
	waitStored(t, tp.PoP)
	_, second, _ := tp.purge(t, "s3cret", `{"id":"same","url":"http://demo.example/once"}`)
	if first.Purged != 1 || first.Duplicate || !second.Duplicate || second.Purged != 1 {
		t.Errorf("first %+v, second %+v", first, second)
	}
	if !tp.cached(t, "/once", nil) {
		t.Error("the retried purge was applied again")
	}
}

// TestSoftPurge checks that a soft purge makes the next request
// revalidate, and that stale-if-error can still serve the object.
func TestSoftPurge(t *testing.T) {
	o := &rfcOrigin{}
	srv := newTestOrigin(t, o.ServeHTTP)
	tp := startPoP(t, srv.URL)
	const path = "/soft?etag=s&cc=max-age=600,stale-if-error=600"
	tp.get(t, path)
	waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
	if _, res, _ := tp.purge(t, "s3cret", `{"id":"s1","url":"http://demo.example/soft?etag=s&cc=max-age=600,stale-if-error=600","soft":true}`); res.Purged != 1 || !res.Soft {
		t.Fatalf("soft purge: %+v", res)
	}
	o.fail.Store("503")
	resp, body := tp.get(t, path)
	o.fail.Store("")
	if cs := resp.Header.Get("Cache-Status"); string(body) != "v1" || !strings.Contains(cs, "detail=stale-if-error") {
		t.Errorf("origin down after soft purge: %q %q", cs, body)
	}
	waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
	resp, body = tp.get(t, path)
	if cs := resp.Header.Get("Cache-Status"); string(body) != "v1" || !strings.Contains(cs, "fwd=stale; fwd-status=304") {
		t.Errorf("after soft purge: %q %q, want a revalidation", cs, body)
	}
}

// TestPurgeDuringFill checks that a fill in flight when a purge lands does
// not put the old object back.
func TestPurgeDuringFill(t *testing.T) {
	headerSent := make(chan struct{})
	release := make(chan struct{})
	var first sync.Once
	origin := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "3")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		first.Do(func() {
			close(headerSent)
			<-release
		})
		io.WriteString(w, "old")
	})
	tp := startPoP(t, origin.URL)
	got := make(chan string)
	go func() {
		_, body := tp.get(t, "/race?slow=1")
		got <- string(body)
	}()
	<-headerSent
	if code, res, raw := tp.purge(t, "s3cret", `{"id":"r1","url":"http://demo.example/race?slow=1"}`); code != 200 {
		t.Fatalf("purge: %d %+v %s", code, res, raw)
	}
	close(release)
	if body := <-got; body != "old" {
		t.Fatalf("in-flight client got %q", body)
	}
	waitFor(t, "fill done", func() bool { return tp.fills.inFlight() == 0 })
	if tp.cached(t, "/race?slow=1", nil) {
		t.Error("the purged object was stored by the fill that was in flight")
	}
}
