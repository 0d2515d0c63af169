package pop

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rfcOrigin is an origin whose answers are set by query parameters:
// cc (Cache-Control, default max-age=60), cdncc (CDN-Cache-Control),
// etag, lm=1 (a Last-Modified), vary (Vary, the body names the values),
// cookie=1 (Set-Cookie), hdr=1 (an X-User field), age (Age; "|" separates
// field lines), exp (Expires), date (Date). It answers conditionals
// with 304. The test makes it fail with fail (503) or reset.
type rfcOrigin struct {
	counts sync.Map // path -> *atomic.Int32
	fail   atomic.Value
}

const rfcLastModified = "Mon, 02 Jan 2006 15:04:05 GMT"

func (o *rfcOrigin) count(path string) int {
	c, _ := o.counts.LoadOrStore(path, new(atomic.Int32))
	return int(c.(*atomic.Int32).Load())
}

func (o *rfcOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := o.counts.LoadOrStore(r.URL.Path, new(atomic.Int32))
	n := c.(*atomic.Int32).Add(1)
	switch mode, _ := o.fail.Load().(string); mode {
	case "503":
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down")
		return
	case "reset":
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	q := r.URL.Query()
	h := w.Header()
	cc := "max-age=60"
	if v, ok := q["cc"]; ok {
		cc = v[0]
	}
	if cc != "" {
		h.Set("Cache-Control", cc)
	}
	if v := q.Get("cdncc"); v != "" {
		h.Set("CDN-Cache-Control", v)
	}
	if q.Get("cookie") == "1" {
		h.Set("Set-Cookie", "session=secret")
	}
	if q.Get("hdr") == "1" {
		h.Set("X-User", "alice")
	}
	if v := q.Get("age"); v != "" {
		h["Age"] = strings.Split(v, "|")
	}
	if v := q.Get("exp"); v != "" {
		h.Set("Expires", v)
	}
	if v := q.Get("date"); v != "" {
		h.Set("Date", v)
	}
	etag := q.Get("etag")
	if etag != "" {
		h.Set("ETag", `"`+etag+`"`)
	}
	if q.Get("lm") == "1" {
		h.Set("Last-Modified", rfcLastModified)
	}
	body := fmt.Sprintf("v%d", n)
	if v := q.Get("vary"); v != "" {
		h.Set("Vary", v)
		body += " " + r.Header.Get(v)
	}
	if (etag != "" && r.Header.Get("If-None-Match") == `"`+etag+`"`) ||
		(etag == "" && q.Get("lm") == "1" && r.Header.Get("If-Modified-Since") == rfcLastModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	io.WriteString(w, body)
}

// step is one request of a scenario and what must come of it.
// want is an expectation that is checked only when set: a zero value
// ("" or 0) is a real expectation once given with is.
type want[T any] struct {
	v   T
	set bool
}

// is makes a set expectation.
func is[T any](v T) want[T] { return want[T]{v: v, set: true} }

type step struct {
	advance    time.Duration // move the clock first
	fail       string        // make the origin fail ("503", "reset") for this step
	method     string        // default GET
	header     http.Header
	wantCode   int          // default 200
	wantBody   want[string] // exact body, when set (is(""): an empty body)
	wantStatus []string
	notStatus  []string
	wantOrigin want[int] // origin requests for the path after this step, when set (is(0): none)
	wantHeader map[string]string
	waitOrigin int // poll until the origin saw this many requests (background refresh)
}

// TestRFCBehaviour runs the table of RFC scenarios over every protocol
// the PoP speaks: HTTP/1.1 in clear and over TLS, HTTP/2 (net/http's
// server and the PoP's own) and HTTP/3, each
// against a fresh PoP and origin, with stored bodies on the heap and in
// blobs (sent with sendfile on clear HTTP/1.1). The behaviour must not
// differ.
func TestRFCBehaviour(t *testing.T) {
	for _, bodies := range []string{"heap", "blob"} {
		for _, proto := range []string{"h1", "h1-tls", "h2", "h2-outpost", "h2c-outpost", "h3"} {
			t.Run(bodies+"/"+proto, func(t *testing.T) {
				o := &rfcOrigin{}
				srv := newTestOrigin(t, o.ServeHTTP)
				var tp *testPoP
				if proto == "h1" {
					tp = startPoP(t, srv.URL, bodiesIn(bodies))
				} else {
					tp = startTLSPoP(t, srv.URL, proto, bodiesIn(bodies))
				}
				runRFCScenarios(t, tp, o)
			})
		}
	}
}

// runRFCScenarios runs the scenario table against tp, whose origin is o.
func runRFCScenarios(t *testing.T, tp *testPoP, o *rfcOrigin) {
	scenarios := []struct {
		name  string
		path  string
		steps []step
	}{
		{"RFC9111 4.3 stale entry with ETag is revalidated and freshened", "/reval?etag=a&cc=max-age=10", []step{
			{wantBody: is("v1"), wantStatus: []string{"fwd=uri-miss", "stored"}, wantOrigin: is(1)},
			{advance: 20 * time.Second, wantBody: is("v1"), wantStatus: []string{"fwd=stale", "fwd-status=304", "stored", "ttl=10"}, wantOrigin: is(2)},
			{advance: 5 * time.Second, wantBody: is("v1"), wantStatus: []string{"hit", "ttl=5"}, wantOrigin: is(2), wantHeader: map[string]string{"Age": "5"}},
		}},
		{"RFC9111 4.3 Last-Modified validator", "/revallm?lm=1&cc=max-age=10", []step{
			{wantBody: is("v1"), wantOrigin: is(1)},
			{advance: 20 * time.Second, wantBody: is("v1"), wantStatus: []string{"fwd=stale", "fwd-status=304"}, wantOrigin: is(2)},
		}},
		{"RFC9111 4.3.3 a 200 replaces the stale entry", "/replace?cc=max-age=10", []step{
			{wantBody: is("v1")},
			{advance: 20 * time.Second, wantBody: is("v2"), wantStatus: []string{"fwd=stale", "fwd-status=200"}},
			{wantBody: is("v2"), wantStatus: []string{"hit"}},
		}},
		{"RFC9110 13.1.2 If-None-Match on a stored response is answered 304", "/inm?etag=b", []step{
			{wantBody: is("v1")},
			{header: http.Header{"If-None-Match": {`"b"`}}, wantCode: 304, wantBody: is(""), wantStatus: []string{"hit"}, wantOrigin: is(1)},
			{header: http.Header{"If-None-Match": {`"zzz"`}}, wantCode: 200, wantBody: is("v1"), wantOrigin: is(1)},
			{method: http.MethodHead, header: http.Header{"If-None-Match": {`W/"b"`}}, wantCode: 304, wantOrigin: is(1)},
		}},
		{"RFC9110 13.1.3 If-Modified-Since on a stored response", "/ims?lm=1", []step{
			{wantBody: is("v1")},
			{header: http.Header{"If-Modified-Since": {rfcLastModified}}, wantCode: 304, wantOrigin: is(1)},
			{header: http.Header{"If-Modified-Since": {"Mon, 02 Jan 2006 15:04:04 GMT"}}, wantCode: 200, wantOrigin: is(1)},
		}},
		{"RFC9110 13.1.1 If-Match that fails is 412", "/im?etag=c", []step{
			{wantBody: is("v1")},
			{header: http.Header{"If-Match": {`"other"`}}, wantCode: 412, wantOrigin: is(1)},
		}},
		{"RFC9110 14.2 Range on a stored response is 206", "/range?etag=r", []step{
			{wantBody: is("v1")},
			{header: http.Header{"Range": {"bytes=1-"}}, wantCode: 206, wantBody: is("1"), wantHeader: map[string]string{"Content-Range": "bytes 1-1/2"}, wantOrigin: is(1)},
			{header: http.Header{"Range": {"bytes=5-9"}}, wantCode: 416, wantOrigin: is(1)},
			{header: http.Header{"Range": {"bytes=0-0"}, "If-Range": {`"r"`}}, wantCode: 206, wantBody: is("v"), wantOrigin: is(1)},
			{header: http.Header{"Range": {"bytes=0-0"}, "If-Range": {`"old"`}}, wantCode: 200, wantBody: is("v1"), wantOrigin: is(1)},
		}},
		{"RFC9110 14.2 Range on a miss fetches the whole object", "/rangemiss", []step{
			{header: http.Header{"Range": {"bytes=0-0"}}, wantCode: 206, wantBody: is("v"), wantOrigin: is(1)},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9111 5.2.2.4 response no-cache is revalidated every time", "/nocache?cc=no-cache&etag=n", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"fwd=stale", "fwd-status=304"}, wantOrigin: is(2)},
			{wantBody: is("v1"), wantStatus: []string{"fwd-status=304"}, wantOrigin: is(3)},
		}},
		{"RFC9111 4.2.2 heuristic freshness from Last-Modified", "/heur?lm=1&cc=", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC5861 4 stale-if-error serves the stored copy on 503", "/sie?cc=max-age=1,stale-if-error=60", []step{
			{wantBody: is("v1")},
			{advance: 5 * time.Second, fail: "503", wantBody: is("v1"), wantStatus: []string{"fwd=stale", "fwd-status=503", "detail=stale-if-error"}},
			{advance: 120 * time.Second, fail: "503", wantCode: 503},
		}},
		{"RFC5861 4 stale-if-error on a broken connection", "/sie2?cc=max-age=1,stale-if-error=60", []step{
			{wantBody: is("v1")},
			{advance: 5 * time.Second, fail: "reset", wantBody: is("v1"), wantStatus: []string{"fwd=stale", "detail=stale-if-error"}},
		}},
		{"RFC9111 5.2.2.2 must-revalidate forbids stale on error", "/mr?cc=max-age=1,must-revalidate,stale-if-error=60", []step{
			{wantBody: is("v1")},
			{advance: 5 * time.Second, fail: "503", wantCode: 503},
		}},
		{"RFC5861 3 stale-while-revalidate serves stale and refreshes once", "/swr?cc=max-age=1,stale-while-revalidate=60", []step{
			{wantBody: is("v1")},
			{advance: 5 * time.Second, wantBody: is("v1"), wantStatus: []string{"hit", "ttl=-", "detail=stale-while-revalidate"}, waitOrigin: 2},
			{wantBody: is("v2"), wantStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9111 4.1 Vary keeps one variant per header value", "/vary?vary=X-Lang", []step{
			{header: http.Header{"X-Lang": {"en"}}, wantBody: is("v1 en"), wantStatus: []string{"fwd=uri-miss"}},
			{header: http.Header{"X-Lang": {"de"}}, wantBody: is("v2 de"), wantStatus: []string{"fwd=vary-miss"}},
			{header: http.Header{"X-Lang": {"en"}}, wantBody: is("v1 en"), wantStatus: []string{"hit"}},
			{header: http.Header{"X-Lang": {"de"}}, wantBody: is("v2 de"), wantStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9111 4.1 Accept-Encoding is normalized", "/ae?vary=Accept-Encoding", []step{
			{header: http.Header{"Accept-Encoding": {"gzip, deflate"}}, wantBody: is("v1 gzip, deflate")},
			{header: http.Header{"Accept-Encoding": {"deflate, gzip;q=0.8"}}, wantBody: is("v1 gzip, deflate"), wantStatus: []string{"hit"}},
			{header: http.Header{"Accept-Encoding": {"br"}}, wantBody: is("v2 br"), wantStatus: []string{"fwd=vary-miss"}, wantOrigin: is(2)},
		}},
		{"RFC9110 12.5.5 Vary * is never reused", "/varystar?vary=*", []step{
			{wantStatus: []string{"detail=vary-star"}},
			{notStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9213 CDN-Cache-Control governs and is not forwarded", "/cdncc?cc=no-store&cdncc=max-age=60", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}, wantHeader: map[string]string{"Cdn-Cache-Control": ""}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantHeader: map[string]string{"Cdn-Cache-Control": "", "Cache-Control": "no-store"}},
		}},
		{"RFC9111 5.2.1.1 request max-age=0 revalidates", "/reqmaxage?etag=m", []step{
			{wantBody: is("v1")},
			{advance: time.Second, header: http.Header{"Cache-Control": {"max-age=0"}}, wantBody: is("v1"), wantStatus: []string{"fwd=request", "fwd-status=304"}, wantOrigin: is(2)},
		}},
		{"RFC9111 5.2.1.4 request no-cache goes to the origin", "/reqnocache", []step{
			{wantBody: is("v1")},
			{header: http.Header{"Pragma": {"no-cache"}}, wantBody: is("v2"), wantStatus: []string{"fwd=request", "stored"}, wantOrigin: is(2)},
			{wantBody: is("v2"), wantStatus: []string{"hit"}},
		}},
		{"RFC9111 5.2.1.7 only-if-cached", "/oic", []step{
			{header: http.Header{"Cache-Control": {"only-if-cached"}}, wantCode: 504, wantOrigin: is(0)},
			{wantBody: is("v1")},
			{header: http.Header{"Cache-Control": {"only-if-cached"}}, wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9111 5.2.1.5 request no-store is not stored", "/reqnostore", []step{
			{header: http.Header{"Cache-Control": {"no-store"}}, wantBody: is("v1"), notStatus: []string{"stored"}},
			{wantBody: is("v2"), wantStatus: []string{"fwd=uri-miss", "stored"}},
			{header: http.Header{"Cache-Control": {"no-store"}}, wantBody: is("v2"), wantStatus: []string{"hit"}},
		}},
		{"RFC9111 4.4 a successful POST invalidates the URL", "/inval", []step{
			{wantBody: is("v1")},
			{wantStatus: []string{"hit"}},
			{method: http.MethodPost, wantBody: is("v2"), wantOrigin: is(2)},
			{wantBody: is("v3"), wantStatus: []string{"fwd=uri-miss"}, wantOrigin: is(3)},
		}},
		{"RFC9111 5.2.2.7 qualified private: stored without the field", "/qprivate?cc=max-age=60,private=%22X-User%22&hdr=1", []step{
			{wantBody: is("v1"), wantHeader: map[string]string{"X-User": "alice"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantHeader: map[string]string{"X-User": ""}},
		}},
		{"RFC9111 3.5 Authorization: a public response is stored for others", "/authpub?cc=public,max-age=60", []step{
			{header: http.Header{"Authorization": {"Bearer t"}}, wantBody: is("v1"), wantStatus: []string{"fwd=request", "stored"}, wantOrigin: is(1)},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
			{header: http.Header{"Authorization": {"Bearer t"}}, wantBody: is("v2"), wantStatus: []string{"fwd=request"}, wantOrigin: is(2)},
		}},
		{"RFC9111 3.5 Authorization: s-maxage allows storing", "/authsmax?cc=s-maxage=60", []step{
			{header: http.Header{"Authorization": {"Bearer t"}}, wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9111 5.2.1.7 only-if-cached with Authorization is 504", "/authoic?cc=public,max-age=60", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{header: http.Header{"Authorization": {"Bearer t"}, "Cache-Control": {"only-if-cached"}}, wantCode: 504, wantStatus: []string{"detail=only-if-cached"}, wantOrigin: is(1)},
		}},
		{"RFC9111 3.5 Authorization: max-age alone is not stored", "/authpriv", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{header: http.Header{"Authorization": {"Bearer t"}}, wantBody: is("v2"), wantStatus: []string{"fwd=request", "detail=authorization"}, wantOrigin: is(2)},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9111 5.1 Age list: the first member counts", "/agelist?cc=max-age=3600&age=7200,%200", []step{
			{wantBody: is("v1"), wantStatus: []string{"detail=no-freshness"}},
			{wantBody: is("v2"), notStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9111 5.1 Age lines: the first one counts", "/agelines?cc=max-age=3600&age=0|7200", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9111 5.3 Expires with a 1-digit hour is in the past", "/badexp?cc=&exp=Thu,%2018%20Aug%202050%202:01:18%20GMT", []step{
			{wantBody: is("v1"), wantStatus: []string{"detail=no-freshness"}},
			{wantBody: is("v2"), wantOrigin: is(2)},
		}},
		{"RFC9110 6.6.1 invalid Date: Expires counts from receipt", "/baddate?cc=&date=foo&exp=Thu,%2018%20Aug%202050%2002:01:18%20GMT", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9213 2.1 CDN-Cache-Control that does not parse is ignored", "/cdnccbad?cc=no-store&cdncc=max-age=60,%20%26%26", []step{
			{wantBody: is("v1"), wantStatus: []string{"detail=no-store"}},
			{wantBody: is("v2"), wantOrigin: is(2)},
		}},
		{"RFC9111 5.2.2.3 must-understand overrides no-store for a known status", "/mustund?cc=max-age=60,no-store,must-understand", []step{
			{wantBody: is("v1"), wantStatus: []string{"stored"}},
			{wantBody: is("v1"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"RFC9111 4.1 Vary: field lines combine like one list", "/varylist?vary=X-Lang", []step{
			{header: http.Header{"X-Lang": {"1, 2"}}, wantBody: is("v1 1, 2")},
			{header: http.Header{"X-Lang": {"1", "2"}}, wantBody: is("v1 1, 2"), wantStatus: []string{"hit"}},
			{header: http.Header{"X-Lang": {" 1,2 "}}, wantBody: is("v1 1, 2"), wantStatus: []string{"hit"}, wantOrigin: is(1)},
		}},
		{"Set-Cookie without public is not shared", "/cookie?cookie=1", []step{
			{wantStatus: []string{"detail=set-cookie"}},
			{notStatus: []string{"hit"}, wantOrigin: is(2)},
		}},
		{"RFC9111 7.3 Set-Cookie with public is stored without the cookie", "/cookiepub?cookie=1&cc=public,max-age=60", []step{
			{wantBody: is("v1"), wantHeader: map[string]string{"Set-Cookie": "session=secret"}},
			{wantStatus: []string{"hit"}, wantHeader: map[string]string{"Set-Cookie": ""}},
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			path := sc.path
			bare, _, _ := strings.Cut(path, "?")
			for i, st := range sc.steps {
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				tp.clock.Advance(st.advance)
				o.fail.Store(st.fail)
				method := st.method
				if method == "" {
					method = http.MethodGet
				}
				resp, body := tp.do(t, method, path, "demo.example", st.header)
				o.fail.Store("")
				want := st.wantCode
				if want == 0 {
					want = 200
				}
				cs := resp.Header.Get("Cache-Status")
				if resp.StatusCode != want {
					t.Errorf("step %d: status %d, want %d (Cache-Status %q)", i, resp.StatusCode, want, cs)
				}
				if st.wantBody.set && string(body) != st.wantBody.v {
					t.Errorf("step %d: body %q, want %q", i, body, st.wantBody.v)
				}
				for _, s := range st.wantStatus {
					if !strings.Contains(cs, s) {
						t.Errorf("step %d: Cache-Status %q lacks %q", i, cs, s)
					}
				}
				for _, s := range st.notStatus {
					if hasStatusParam(cs, s) {
						t.Errorf("step %d: Cache-Status %q has %q", i, cs, s)
					}
				}
				for k, v := range st.wantHeader {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("step %d: %s = %q, want %q", i, k, got, v)
					}
				}
				if st.waitOrigin > 0 {
					waitFor(t, "background refresh", func() bool { return o.count(bare) >= st.waitOrigin })
				}
				if st.wantOrigin.set {
					if got := o.count(bare); got != st.wantOrigin.v {
						t.Errorf("step %d: origin requests %d, want %d", i, got, st.wantOrigin.v)
					}
				}
			}
		})
	}
}

// TestFigures checks that each way of answering counts as its result.
func TestFigures(t *testing.T) {
	o := &rfcOrigin{}
	srv := newTestOrigin(t, o.ServeHTTP)
	tp := startPoP(t, srv.URL)
	steps := []struct {
		path    string
		advance time.Duration
		fail    string
	}{
		{"/f1?etag=x&cc=max-age=1,stale-if-error=600", 0, ""},                  // miss
		{"/f1?etag=x&cc=max-age=1,stale-if-error=600", 0, ""},                  // hit
		{"/f1?etag=x&cc=max-age=1,stale-if-error=600", 5 * time.Second, ""},    // revalidated
		{"/f1?etag=x&cc=max-age=1,stale-if-error=600", 5 * time.Second, "503"}, // stale_on_error
		{"/f2?cc=no-store", 0, ""},                                             // miss, not stored
	}
	for _, st := range steps {
		waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
		tp.clock.Advance(st.advance)
		o.fail.Store(st.fail)
		tp.get(t, st.path)
		o.fail.Store("")
	}
	req, _ := http.NewRequest(http.MethodPost, tp.url+"/f3", nil)
	req.Host = "demo.example"
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f := tp.statsAfter(t, 6).Figures
	want := Figures{Requests: 6, Hits: 1, Revalidated: 1, StaleOnError: 1, Misses: 2, Passes: 1}
	if f.Requests != want.Requests || f.Hits != want.Hits || f.Revalidated != want.Revalidated ||
		f.StaleOnError != want.StaleOnError || f.Misses != want.Misses || f.Passes != want.Passes {
		t.Errorf("figures %+v, want %+v", f, want)
	}
	if f.BytesFromCache != 6 { // "v1" three times: hit, revalidated, stale
		t.Errorf("bytes from cache %d, want 6", f.BytesFromCache)
	}
}

// hasStatusParam reports whether a Cache-Status value has the parameter
// param ("hit", or "fwd" in "fwd=stale"), or exactly param=value when param
// holds one: "hit" is not found in "detail=hit-for-miss".
func hasStatusParam(cs, param string) bool {
	for part := range strings.SplitSeq(cs, ";") {
		part = strings.TrimSpace(part)
		if part == param || strings.HasPrefix(part, param+"=") {
			return true
		}
	}
	return false
}
