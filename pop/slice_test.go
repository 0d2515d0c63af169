package pop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// testSlice is the slice size of the slice tests (the smallest allowed).
const testSlice = 64 << 10

// sliceConfig is a PoP with slicing on, slices of testSlice bytes.
func sliceConfig(originURL string) string {
	return fmt.Sprintf(`
services:
  - name: demo
    hostnames: [demo.example, 127.0.0.1]
    origin:
      servers: [{url: %q}]
      timeouts: {connect: 2s, first_byte: 5s, idle: 5s}
    cache:
      max_object: 1MiB
      slice: {enabled: true, probe: true, size: 64KiB}
pops:
  - name: test
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.2:0
    cache_size: 256MiB
    drain: 0s
purge:
  token: s3cret
`, originURL)
}

// rangeOrigin is an origin of objects that answers Range as RFC 9110 says
// (http.ServeContent), with a strong ETag and a Last-Modified per version,
// and counts requests and body bytes. Objects are /obj/<size>[...]; the
// body is a pattern of the version.
type rangeOrigin struct {
	*testOrigin
	version  atomic.Int32 // bumped to change every object
	bytes    atomic.Int64 // body bytes sent
	requests atomic.Int32
	ranges   sync.Map // path → []string of Range values seen
	// tweak, when set, may change the response before it is sent (for
	// bad answers); it returns true when it answered itself.
	tweak func(w http.ResponseWriter, r *http.Request, body []byte) bool
	mu    sync.Mutex
	gate  chan struct{} // when set, answers wait for it to close
}

func objectBody(size, version int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31 + i/4093 + version*101)
	}
	return b
}

func newRangeOrigin(t *testing.T) *rangeOrigin {
	o := &rangeOrigin{}
	o.testOrigin = newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		if v := r.Header.Get("Range"); v != "" {
			// Under the lock: slice fetches run concurrently (one ahead),
			// and a load-then-store lost one of them (a CI flake).
			prev, _ := o.ranges.Load(r.URL.Path)
			list, _ := prev.([]string)
			o.ranges.Store(r.URL.Path, append(list, v))
		}
		gate := o.gate
		o.mu.Unlock()
		if gate != nil {
			<-gate
		}
		size, err := strconv.Atoi(strings.Split(strings.TrimPrefix(r.URL.Path, "/obj/"), "/")[0])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		v := int(o.version.Load())
		body := objectBody(size, v)
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=600")
		h.Set("Content-Type", "video/mp4")
		h.Set("ETag", fmt.Sprintf(`"v%d-%d"`, v, size))
		h.Set("Surrogate-Key", "movies")
		cw := &countingResponse{ResponseWriter: w, n: &o.bytes}
		if o.tweak != nil && o.tweak(cw, r, body) {
			return
		}
		http.ServeContent(cw, r, "", time.Date(2026, 1, 1, 0, 0, v, 0, time.UTC), bytes.NewReader(body))
	})
	return o
}

func (o *rangeOrigin) rangesOf(path string) []string {
	v, _ := o.ranges.Load(path)
	list, _ := v.([]string)
	return list
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponse) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p))) // before the PoP can have read them
	return c.ResponseWriter.Write(p)
}

// idle waits until no fill is in flight.
func (tp *testPoP) idle(t *testing.T) {
	t.Helper()
	waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
}

func TestSliceWholeObject(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		wantOrigin int32 // origin requests of the first GET
		wantSliced bool
	}{
		{"RFC9110 14.2 one byte below a slice: one ranged request, stored whole", testSlice - 1, 1, false},
		{"RFC9110 14.2 exactly a slice: stored whole", testSlice, 1, false},
		{"RFC9110 14.2 a byte above a slice: two slices", testSlice + 1, 2, true},
		{"RFC9110 14.2 3S+7: four slices", 3*testSlice + 7, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", tt.size)
			want := objectBody(tt.size, 0)
			resp, body := tp.get(t, path)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("first GET: %d with %d bytes (equal %v); want 200 with the origin's %d", resp.StatusCode, len(body), bytes.Equal(body, want), tt.size)
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(tt.size) {
				t.Errorf("Content-Length %q, want %d", cl, tt.size)
			}
			tp.idle(t)
			if got := o.requests.Load(); got != tt.wantOrigin {
				t.Errorf("origin requests %d, want %d (ranges %q)", got, tt.wantOrigin, o.rangesOf(path))
			}
			if got := o.bytes.Load(); got != int64(tt.size) {
				t.Errorf("origin body bytes %d, want %d", got, tt.size)
			}
			resp, body = tp.get(t, path)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("second GET: %d with %d bytes; want the whole object", resp.StatusCode, len(body))
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "; hit") {
				t.Errorf("second GET Cache-Status %q, want a hit", cs)
			}
			if resp.Header.Get("ETag") != `"v0-`+strconv.Itoa(tt.size)+`"` || resp.Header.Get("Content-Range") != "" {
				t.Errorf("second GET ETag %q, Content-Range %q", resp.Header.Get("ETag"), resp.Header.Get("Content-Range"))
			}
			if got := o.requests.Load(); got != tt.wantOrigin {
				t.Errorf("origin requests after the hit %d, want %d", got, tt.wantOrigin)
			}
			if sliced := tp.findSliced(tp.storeKey(path)) != nil; sliced != tt.wantSliced {
				t.Errorf("sliced %v, want %v", sliced, tt.wantSliced)
			}
		})
	}
}

func TestSliceRangeFetchesOnlyTouched(t *testing.T) {
	const size = 16 * testSlice
	tests := []struct {
		name        string
		rng         string
		first, last int64
		wantSlices  []string // the ranges the origin is asked for
	}{
		{"RFC9110 14.1.2 a range inside one middle slice", "bytes=327700-327800", 327700, 327800, []string{"bytes=327680-393215"}},
		{"RFC9110 14.1.2 a range across two middle slices", fmt.Sprintf("bytes=%d-%d", 5*testSlice+100, 6*testSlice+5), 5*testSlice + 100, 6*testSlice + 5,
			[]string{fmt.Sprintf("bytes=%d-%d", 5*testSlice, 6*testSlice-1), fmt.Sprintf("bytes=%d-%d", 6*testSlice, 7*testSlice-1)}},
		{"RFC9110 14.1.2 a suffix range: the object's first slice, then its last", "bytes=-10", size - 10, size - 1,
			[]string{fmt.Sprintf("bytes=0-%d", testSlice-1), fmt.Sprintf("bytes=%d-%d", 15*testSlice, 16*testSlice-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", size)
			want := objectBody(size, 0)[tt.first : tt.last+1]
			for i := range 2 {
				resp, body := tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {tt.rng}})
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
					t.Fatalf("request %d: %d with %d bytes; want 206 with %d", i, resp.StatusCode, len(body), len(want))
				}
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", tt.first, tt.last, size) {
					t.Errorf("request %d: Content-Range %q", i, cr)
				}
				tp.idle(t)
			}
			if got := o.rangesOf(path); strings.Join(got, " ") != strings.Join(tt.wantSlices, " ") {
				t.Errorf("origin ranges %q, want %q", got, tt.wantSlices)
			}
			if got, want := o.bytes.Load(), int64(len(tt.wantSlices))*testSlice; got != want {
				t.Errorf("origin bytes %d, want %d (the slices touched)", got, want)
			}
		})
	}
}

func TestSliceCollapsed(t *testing.T) {
	o := newRangeOrigin(t)
	tp := startPoPConfig(t, sliceConfig(o.URL))
	const size = 4 * testSlice
	path := fmt.Sprintf("/obj/%d", size)
	tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {"bytes=0-0"}}) // the object is sliced
	tp.idle(t)
	o.mu.Lock()
	o.gate = make(chan struct{})
	gate := o.gate
	o.mu.Unlock()
	const clients = 8
	rng := fmt.Sprintf("bytes=%d-%d", 2*testSlice+10, 2*testSlice+20)
	want := objectBody(size, 0)[2*testSlice+10 : 2*testSlice+21]
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, body := tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {rng}})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
				t.Errorf("%d with %d bytes", resp.StatusCode, len(body))
			}
		})
	}
	key := tp.findSliced(tp.storeKey(path)).sliceKey(2)
	waitFor(t, "every client to join the slice's fill", func() bool { return tp.fills.joined(key) == clients })
	close(gate)
	wg.Wait()
	if got := o.rangesOf(path); len(got) != 2 {
		t.Errorf("origin ranges %q; want the probe and one request for slice 2", got)
	}
}

func TestSliceValidatorChange(t *testing.T) {
	const size = 6 * testSlice
	o := newRangeOrigin(t)
	tp := startPoPConfig(t, sliceConfig(o.URL))
	path := fmt.Sprintf("/obj/%d", size)
	// Slices 0 and 1 of version 0 are stored; then the object changes.
	tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {fmt.Sprintf("bytes=0-%d", testSlice+10)}})
	tp.idle(t)
	o.version.Store(1)

	// A whole GET mid-object meets version 1 at slice 2: the connection is
	// cut, never a body of two versions.
	body, err := tp.getCut(t, path)
	if err == nil {
		t.Fatalf("a whole GET across a change read %d bytes without an error", len(body))
	}
	if v0 := objectBody(size, 0); !bytes.Equal(body, v0[:len(body)]) {
		t.Errorf("the cut body is not a prefix of version 0")
	}
	tp.idle(t)
	if got := tp.sliceCounters().validatorChanges.Load(); got != 1 {
		t.Errorf("validator changes %d, want 1", got)
	}
	// The next GET is version 1 throughout.
	resp, body := tp.get(t, path)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, objectBody(size, 1)) {
		t.Fatalf("after the change: %d with %d bytes; want version 1 whole", resp.StatusCode, len(body))
	}
	if etag := resp.Header.Get("ETag"); etag != fmt.Sprintf(`"v1-%d"`, size) {
		t.Errorf("ETag %q after the change", etag)
	}
	// A range request that meets the change before its header goes out is
	// answered from the new version.
	tp.idle(t)
	o.version.Store(2)
	resp, body = tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {"bytes=0-9"}, "Cache-Control": {"no-cache"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, objectBody(size, 2)[:10]) {
		t.Errorf("revalidated range: %d %q", resp.StatusCode, body)
	}
}

// sliceCounters returns the demo service's slice figures.
func (tp *testPoP) sliceCounters() *sliceCounters {
	return tp.routes.Load().byHost["demo.example"].slices
}

func TestSliceClientDisconnects(t *testing.T) {
	const size = 64 * testSlice
	o := newRangeOrigin(t)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	o.tweak = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if first, _, ok := singleRange(r.Header["Range"], int64(len(body))); ok && first >= 2*testSlice {
			<-release // slices from 2 on wait until the client has left
		}
		return false
	}
	tp := startPoPConfig(t, sliceConfig(o.URL))
	path := fmt.Sprintf("/obj/%d", size)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tp.url+path, nil)
	req.Host = "demo.example"
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the PoP to wait on slice 2", func() bool { return len(o.rangesOf(path)) >= 3 })
	cancel()
	resp.Body.Close()
	tp.statsAfter(t, 1) // the request is over
	once.Do(func() { close(release) })
	tp.idle(t)
	// Slices 0 and 1, the one the PoP waited on and the one ahead of it:
	// never the rest of the object.
	if got := len(o.rangesOf(path)); got > 4 {
		t.Errorf("origin asked for %d slices (%q) of a client that left; want at most 4", got, o.rangesOf(path))
	}
	if got := o.bytes.Load(); got > 4*testSlice {
		t.Errorf("origin sent %d bytes; want at most %d", got, 4*testSlice)
	}
}

func TestSliceBadOrigin(t *testing.T) {
	const size = 3 * testSlice
	type answer func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// onSlice answers slice 1 (the second) with bad, the rest as they are.
	onSlice := func(bad func(w http.ResponseWriter, first int64, body []byte)) answer {
		return func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			first, _, ok := singleRange(r.Header["Range"], int64(len(body)))
			if !ok || first != testSlice {
				return false
			}
			bad(w, first, body)
			return true
		}
	}
	partial := func(w http.ResponseWriter, cr string, part []byte) {
		if cr != "" {
			w.Header().Set("Content-Range", cr)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(part)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(part)
	}
	tests := []struct {
		name        string
		tweak       answer
		wantWhole   bool // the first GET is answered whole
		wantSliced  bool // and the object is sliced afterwards
		wantErrors  uint64
		wantChanges uint64
	}{
		{"RFC9110 14.2 origin ignores Range: as before slicing", func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			w.Write(body)
			return true
		}, true, false, 0, 0},
		{"RFC9110 14.4 missing Content-Range: the slice is refused", onSlice(func(w http.ResponseWriter, first int64, body []byte) {
			partial(w, "", body[first:first+testSlice])
		}), false, true, 1, 0},
		{"RFC9110 14.4 wrong offset: the slice is refused", onSlice(func(w http.ResponseWriter, first int64, body []byte) {
			partial(w, fmt.Sprintf("bytes %d-%d/%d", first+1, first+testSlice, len(body)), body[first+1:first+1+testSlice])
		}), false, true, 1, 0},
		{"RFC9110 14.4 short body: the slice is refused", onSlice(func(w http.ResponseWriter, first int64, body []byte) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, first+testSlice-1, len(body)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body[first : first+100])
		}), false, true, 1, 0},
		{"RFC9110 14.4 complete length changes: the object is dropped", onSlice(func(w http.ResponseWriter, first int64, body []byte) {
			partial(w, fmt.Sprintf("bytes %d-%d/%d", first, first+testSlice-1, len(body)+1), body[first:first+testSlice])
		}), false, false, 0, 1},
		{"RFC9110 14.2 200 to a slice: the object is dropped", onSlice(func(w http.ResponseWriter, first int64, body []byte) {
			w.Write(body)
		}), false, false, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			o.tweak = tt.tweak
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", size)
			want := objectBody(size, 0)
			body, err := tp.getCut(t, path)
			if whole := err == nil && bytes.Equal(body, want); whole != tt.wantWhole {
				t.Errorf("whole %v (%d bytes, err %v), want %v", whole, len(body), err, tt.wantWhole)
			}
			if !bytes.Equal(body, want[:len(body)]) {
				t.Errorf("the body is not a prefix of the object: served wrong")
			}
			tp.idle(t)
			obj := tp.findSliced(tp.storeKey(path))
			if (obj != nil) != tt.wantSliced {
				t.Errorf("sliced %v, want %v", obj != nil, tt.wantSliced)
			}
			if obj != nil {
				if _, ok := tp.store.Get(obj.sliceKey(1)); ok {
					t.Error("the bad slice was stored")
				}
			}
			c := tp.sliceCounters()
			if c.errors.Load() != tt.wantErrors || c.validatorChanges.Load() != tt.wantChanges {
				t.Errorf("errors %d, validator changes %d; want %d, %d", c.errors.Load(), c.validatorChanges.Load(), tt.wantErrors, tt.wantChanges)
			}
		})
	}
}

// TestSliceProbeFallback: a 206 the PoP cannot slice makes the fill ask
// again without Range, and the object is served as before slicing.
func TestSliceProbeFallback(t *testing.T) {
	const size = 3 * testSlice
	tests := []struct {
		name  string
		tweak func(h http.Header)
	}{
		{"RFC9110 8.8 no validator", func(h http.Header) { h.Del("ETag") }},
		{"RFC9110 12.5.5 Vary", func(h http.Header) { h.Set("Vary", "Accept-Language") }},
		{"RFC9111 5.2.2.6 private", func(h http.Header) { h.Set("Cache-Control", "private") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			o.tweak = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				tt.tweak(w.Header())
				if tt.name == "RFC9110 8.8 no validator" {
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
					return true
				}
				return false
			}
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", size)
			for i := range 2 {
				resp, body := tp.get(t, path)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, objectBody(size, 0)) {
					t.Fatalf("GET %d: %d with %d bytes", i, resp.StatusCode, len(body))
				}
				tp.idle(t)
			}
			if tp.findSliced(tp.storeKey(path)) != nil {
				t.Error("sliced")
			}
			if got := len(o.rangesOf(path)); got != 1 {
				t.Errorf("origin saw %d ranged requests (%q); want 1: the URL is then fetched without Range", got, o.rangesOf(path))
			}
		})
	}
}

func TestSlicePurge(t *testing.T) {
	const size = 4 * testSlice
	tests := []struct {
		name string
		body string
	}{
		{"URL", `{"url":"http://demo.example/obj/262144"}`},
		{"prefix", `{"prefix":"http://demo.example/obj/"}`},
		{"tag", `{"tag":"movies"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", size)
			tp.get(t, path)
			tp.idle(t)
			obj := tp.findSliced(tp.storeKey(path))
			if obj == nil {
				t.Fatal("not sliced")
			}
			if code, _, raw := tp.purge(t, "s3cret", tt.body); code != http.StatusOK {
				t.Fatalf("purge: %d %s", code, raw)
			}
			if tp.findSliced(tp.storeKey(path)) != nil {
				t.Error("the object's meta survived the purge")
			}
			for i := range obj.count() {
				if _, ok := tp.store.Get(obj.sliceKey(i)); ok {
					t.Errorf("slice %d survived the purge", i)
				}
			}
			before := o.requests.Load()
			resp, body := tp.get(t, path)
			if !bytes.Equal(body, objectBody(size, 0)) || strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
				t.Errorf("after the purge: %d bytes, Cache-Status %q; want a miss of the whole object", len(body), resp.Header.Get("Cache-Status"))
			}
			if o.requests.Load() == before {
				t.Error("the origin was not asked again")
			}
		})
	}
}

func TestSliceHeadAndConditionals(t *testing.T) {
	const size = 4 * testSlice
	etag := fmt.Sprintf(`"v0-%d"`, size)
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	body := objectBody(size, 0)
	tests := []struct {
		name      string
		method    string
		header    http.Header
		wantCode  int
		wantBody  []byte
		wantRange string
	}{
		{"RFC9110 9.3.2 HEAD", http.MethodHead, nil, 200, nil, ""},
		{"RFC9110 13.1.2 If-None-Match → 304", http.MethodGet, http.Header{"If-None-Match": {etag}}, 304, nil, ""},
		{"RFC9110 13.1.3 If-Modified-Since → 304", http.MethodGet, http.Header{"If-Modified-Since": {lm}}, 304, nil, ""},
		{"RFC9110 13.1.1 If-Match another → 412", http.MethodGet, http.Header{"If-Match": {`"other"`}}, 412, nil, ""},
		{"RFC9110 13.1.5 If-Range matching → 206", http.MethodGet, http.Header{"Range": {"bytes=100-199"}, "If-Range": {etag}}, 206, body[100:200], fmt.Sprintf("bytes 100-199/%d", size)},
		{"RFC9110 13.1.5 If-Range another → 200 whole", http.MethodGet, http.Header{"Range": {"bytes=100-199"}, "If-Range": {`"old"`}}, 200, body, ""},
		{"RFC9110 14.1.1 unsatisfiable → 416", http.MethodGet, http.Header{"Range": {fmt.Sprintf("bytes=%d-", size)}}, 416, nil, fmt.Sprintf("bytes */%d", size)},
		{"RFC9110 14.2 several ranges → 200 whole", http.MethodGet, http.Header{"Range": {"bytes=0-9,200000-200009"}}, 200, body, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRangeOrigin(t)
			tp := startPoPConfig(t, sliceConfig(o.URL))
			path := fmt.Sprintf("/obj/%d", size)
			tp.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {"bytes=0-0"}})
			tp.idle(t)
			before := o.requests.Load()
			resp, got := tp.do(t, tt.method, path, "demo.example", tt.header)
			withBody := tt.method == http.MethodGet && (tt.wantCode == 200 || tt.wantCode == 206)
			if resp.StatusCode != tt.wantCode || withBody && !bytes.Equal(got, tt.wantBody) || tt.method == http.MethodHead && len(got) > 0 {
				t.Errorf("%d with %d bytes; want %d with %d", resp.StatusCode, len(got), tt.wantCode, len(tt.wantBody))
			}
			if cr := resp.Header.Get("Content-Range"); cr != tt.wantRange {
				t.Errorf("Content-Range %q, want %q", cr, tt.wantRange)
			}
			if tt.method == http.MethodHead && resp.Header.Get("Content-Length") != strconv.Itoa(size) {
				t.Errorf("HEAD Content-Length %q, want %d", resp.Header.Get("Content-Length"), size)
			}
			if resp.StatusCode < 300 && resp.Header.Get("ETag") != etag {
				t.Errorf("ETag %q", resp.Header.Get("ETag"))
			}
			if resp.StatusCode == http.StatusNotModified && resp.Header.Get("ETag") != etag {
				t.Errorf("304 ETag %q", resp.Header.Get("ETag"))
			}
			if tt.method == http.MethodHead || tt.wantCode == 304 || tt.wantCode == 412 {
				if o.requests.Load() != before {
					t.Errorf("the origin was asked %d times for an answer from storage", o.requests.Load()-before)
				}
			}
		})
	}
}

// seekReplay replays reads single-range GETs of 64 KiB to 2 MiB at random
// offsets over objects of the synthetic origin (which holds nothing in
// memory) through a PoP with slices of sliceSize, and returns the origin's
// body bytes over the bytes of the slices the reads touched.
func seekReplay(tb *testing.T, objects int, objectSize, sliceSize int64, reads int) (ratio float64, originBytes, touched int64) {
	tb.Helper()
	srv, err := synthetic.New(synthetic.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	cfg := strings.Replace(sliceConfig("http://"+ln.Addr().String()), "max_object: 1MiB", "max_object: 64MiB", 1)
	cfg = strings.Replace(cfg, "size: 64KiB", "size: "+strconv.FormatInt(sliceSize>>10, 10)+"KiB", 1)
	cfg = strings.Replace(cfg, "cache_size: 256MiB", "cache_size: 4GiB", 1)
	tp := startPoPConfig(tb, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	slices := map[string]bool{}
	buf := make([]byte, 2<<20)
	for range reads {
		id := rng.IntN(objects)
		n := 64<<10 + rng.Int64N(2<<20-64<<10+1)
		first := rng.Int64N(objectSize - n + 1)
		last := first + n - 1
		path := fmt.Sprintf("/obj/seek%d?size=%d", id, objectSize)
		req, _ := http.NewRequest(http.MethodGet, tp.url+path, nil)
		req.Host = "demo.example"
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
		resp, err := tp.client.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		got, err := io.ReadFull(resp.Body, buf[:n])
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusPartialContent {
			tb.Fatalf("%s bytes %d-%d: %d, %d bytes, %v", path, first, last, resp.StatusCode, got, err)
		}
		want := make([]byte, n)
		synthetic.Content(fmt.Sprintf("seek%d", id), objectSize).ReadAt(want, first)
		if !bytes.Equal(buf[:n], want) {
			tb.Fatalf("%s bytes %d-%d: wrong bytes", path, first, last)
		}
		for i := first / sliceSize; i <= last/sliceSize; i++ {
			slices[fmt.Sprint(id, "/", i)] = true
		}
	}
	tp.idle(tb)
	touched = int64(len(slices)) * sliceSize
	originBytes = srv.Stats().BytesSent
	return float64(originBytes) / float64(touched), originBytes, touched
}

// TestSliceSeekReplay is issue 18's figure at CI size: 200 random reads
// over four 64 MiB objects with 4 MiB slices; the origin sends at most
// 1.1× the bytes of the slices the reads touched. The full-size run (1 GiB
// objects) is by hand: OUTPOST_SEEK_REPLAY_SIZE=1GiB go test ./pop -run
// TestSliceSeekReplay -v.
func TestSliceSeekReplay(t *testing.T) {
	size := int64(64 << 20)
	if v := os.Getenv("OUTPOST_SEEK_REPLAY_SIZE"); v != "" {
		n, err := config.ParseSize(v)
		if err != nil {
			t.Fatal(err)
		}
		size = n
	}
	ratio, origin, touched := seekReplay(t, 4, size, 4<<20, 200)
	t.Logf("origin bytes %d, slices touched %d bytes: ratio %.3f", origin, touched, ratio)
	if ratio > 1.1 {
		t.Errorf("origin bytes are %.3f× the slices touched; want at most 1.1", ratio)
	}
}

// TestSliceFoundLarge checks the default mode (cache.slice on, no probe):
// small objects are fetched without Range; an object above max_object is
// streamed through once, then fetched in slices, then served from them.
func TestSliceFoundLarge(t *testing.T) {
	o := newRangeOrigin(t)
	cfg := strings.Replace(sliceConfig(o.URL), "slice: {enabled: true, probe: true, size: 64KiB}", "slice: {size: 64KiB}", 1)
	tp := startPoPConfig(t, cfg)
	const small, large = "/obj/1000", "/obj/1500000" // max_object is 1 MiB
	for i := range 2 {
		tp.idle(t)
		if resp, body := tp.get(t, small); resp.StatusCode != 200 || len(body) != 1000 {
			t.Fatalf("small, request %d: %d, %d bytes", i+1, resp.StatusCode, len(body))
		}
	}
	if r := o.rangesOf(small); len(r) != 0 {
		t.Errorf("a small object was fetched with Range: %q", r)
	}
	want := objectBody(1500000, 0)
	for i := 1; i <= 3; i++ {
		tp.idle(t)
		before := o.requests.Load()
		resp, body := tp.get(t, large)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("large, request %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
		asked := o.requests.Load() - before
		cs := resp.Header.Get("Cache-Status")
		switch i {
		case 1: // found too large: streamed through, not stored
			if asked != 1 || len(o.rangesOf(large)) != 0 || !strings.Contains(cs, "too-large") {
				t.Errorf("request 1: %d origin requests, ranges %q, Cache-Status %q; want one whole fetch, too-large", asked, o.rangesOf(large), cs)
			}
		case 2: // fetched in slices
			if n := len(o.rangesOf(large)); n != (1500000+testSlice-1)/testSlice {
				t.Errorf("request 2: %d ranged requests, want one per slice (%d)", n, (1500000+testSlice-1)/testSlice)
			}
		case 3: // served from the slices
			if asked != 0 || !strings.Contains(cs, "hit") {
				t.Errorf("request 3: %d origin requests, Cache-Status %q; want a hit from the slices", asked, cs)
			}
		}
	}
}
