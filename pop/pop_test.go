package pop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends the PoP's logs to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// logBuffer collects a PoP's log lines for a test to read while the PoP's
// goroutines may still be writing them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// clock is a test clock that only moves when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testOrigin is a real HTTP origin that counts requests per path.
type testOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	last   map[string]*http.Request
}

func newTestOrigin(t *testing.T, handler http.HandlerFunc) *testOrigin {
	t.Helper()
	o := &testOrigin{counts: map[string]int{}, last: map[string]*http.Request{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[r.URL.Path]++
		o.last[r.URL.Path] = r.Clone(context.Background())
		o.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *testOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

func (o *testOrigin) lastRequest(path string) *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[path]
}

// testPoP is a PoP serving on real loopback listeners.
type testPoP struct {
	*PoP
	url    string // serving listener base URL
	admin  string // admin listener base URL
	clock  *clock
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

const testConfig = `
services:
  - name: demo
    hostnames: [demo.example, 127.0.0.1]
    origin:
      servers: [{url: "%s"}]
      timeouts: {connect: 2s, first_byte: 2s, idle: 1s}
    cache:
      max_object: 1MiB
      query: {sort: true, drop: [utm_source]}
pops:
  - name: test
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.2:0
    cache_size: 64MiB
    drain: %s
purge:
  token: s3cret
`

func startPoP(t *testing.T, originURL string, opts ...func(*Options)) *testPoP {
	return startPoPWithDrain(t, originURL, "0s", opts...)
}

func startPoPWithDrain(t *testing.T, originURL, drain string, opts ...func(*Options)) *testPoP {
	t.Helper()
	return startPoPConfig(t, fmt.Sprintf(testConfig, originURL, drain), opts...)
}

// bodiesIn returns an option that keeps stored bodies on the heap
// ("heap") or in blobs sent with sendfile ("blob", for bodies of any size).
func bodiesIn(where string) func(*Options) {
	return func(o *Options) {
		if where == "blob" {
			o.BlobMin = 1
		} else {
			o.BlobMin = -1
		}
	}
}

// startPoPConfig starts the single PoP of a whole configuration file on
// loopback listeners, with a test clock, and stops it when the test ends.
func startPoPConfig(t *testing.T, yaml string, opts ...func(*Options)) *testPoP {
	t.Helper()
	tp, _ := startTunedPoP(t, yaml, func(*config.POP) {}, opts...)
	return tp
}

// stop shuts the PoP down and waits for Serve to return.
func (tp *testPoP) stop(t *testing.T) {
	t.Helper()
	tp.cancel()
	tp.waitStopped(t)
	tp.client.CloseIdleConnections()
}

// waitStopped waits for Serve to return once the PoP was told to stop,
// and fails t unless it returns nil within 10 s; later calls (the
// cleanup's stop) return at once.
func (tp *testPoP) waitStopped(t *testing.T) {
	t.Helper()
	select {
	case err := <-tp.done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
		tp.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// get sends a request with the given Host and returns the response with
// its body read.
func (tp *testPoP) do(t *testing.T, method, path, host string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tp.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	return doRead(t, tp.client, req)
}

// getCut is get for an answer that may be cut short: it returns the body
// as far as it came and the error that ended it.
func (tp *testPoP) getCut(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tp.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "demo.example"
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// doRead sends req through client and returns the response with its body
// read and closed.
func doRead(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp, body
}

func (tp *testPoP) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return tp.do(t, http.MethodGet, path, "demo.example", nil)
}

// statsAfter waits until the PoP has counted n requests (a handler counts
// a request just after the client has its last byte) and returns them.
func (tp *testPoP) statsAfter(t *testing.T, n uint64) Stats {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d requests counted", n), func() bool { return tp.Stats().Requests >= n })
	return tp.Stats()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	settle(t, cond, func() string { return "timed out waiting for " + what })
}

// settle polls cond until it holds, and fails with what's message when the
// deadline passes first.
func settle(t testing.TB, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func cacheable(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}
}

func TestMissThenHit(t *testing.T) {
	o := newTestOrigin(t, cacheable("hello"))
	tp := startPoP(t, o.URL)

	// One scenario, step by step: each step depends on the ones before, so
	// the steps are not subtests (a subtest run alone would fail).
	steps := []struct {
		name       string
		advance    time.Duration
		wantStatus string
		wantAge    string
		wantOrigin int
	}{
		{"RFC9111 3 first request is a stored miss", 0, "outpost/test; fwd=uri-miss; fwd-status=200; ttl=60; stored", "", 1},
		{"RFC9111 4 fresh entry is a hit", 10 * time.Second, "outpost/test; hit; ttl=50", "10", 1},
		{"RFC9111 4.2.3 Age grows with the clock", 20 * time.Second, "outpost/test; hit; ttl=30", "30", 1},
		{"RFC9111 4.2 stale entry goes to origin", 31 * time.Second, "outpost/test; fwd=stale; fwd-status=200; ttl=60; stored", "", 2},
	}
	for _, st := range steps {
		// Each step starts from a settled PoP: the previous fill stored.
		waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
		tp.clock.Advance(st.advance)
		resp, body := tp.get(t, "/a")
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("%s: got %d %q", st.name, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Cache-Status"); got != st.wantStatus {
			t.Errorf("%s: Cache-Status = %q, want %q", st.name, got, st.wantStatus)
		}
		if got := resp.Header.Get("Age"); got != st.wantAge {
			t.Errorf("%s: Age = %q, want %q", st.name, got, st.wantAge)
		}
		if got := resp.Header.Get("Via"); got != "1.1 test (outpost)" {
			t.Errorf("%s: Via = %q", st.name, got)
		}
		if got := o.count("/a"); got != st.wantOrigin {
			t.Errorf("%s: origin requests = %d, want %d", st.name, got, st.wantOrigin)
		}
	}
	st := tp.statsAfter(t, 4)
	if st.Hits != 2 || st.Misses != 2 || st.Requests != 4 || st.HitRatio != 0.5 {
		t.Errorf("stats = %+v", st.Figures)
	}
}

func TestCacheKey(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, r.URL.RawQuery)
	})
	// Each row is a request that must (or must not) find the entry the
	// first request stored: a PoP of its own per row, primed first.
	tests := []struct {
		name, path, host string
		wantHit          bool
	}{
		{"the priming request itself", "/k?b=2&a=1", "demo.example", true},
		{"sorted query shares the entry", "/k?a=1&b=2", "demo.example", true},
		{"dropped parameter shares the entry", "/k?a=1&utm_source=mail&b=2", "demo.example", true},
		{"host case and port do not split", "/k?a=1&b=2", "DEMO.example:8080", true},
		{"other hostname of the service is its own key", "/k?a=1&b=2", "127.0.0.1", false},
		{"other value is its own key", "/k?a=2&b=2", "demo.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := startPoP(t, o.URL)
			tp.do(t, http.MethodGet, "/k?b=2&a=1", "demo.example", nil)
			waitFor(t, "priming fill stored", func() bool { return tp.fills.inFlight() == 0 && tp.store.Stats().Items > 0 })
			resp, _ := tp.do(t, http.MethodGet, tt.path, tt.host, nil)
			hit := strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
			if hit != tt.wantHit {
				t.Errorf("hit = %v, want %v (Cache-Status %q)", hit, tt.wantHit, resp.Header.Get("Cache-Status"))
			}
		})
	}
	if got := o.lastRequest("/k").URL.RawQuery; got != "a=2&b=2" {
		t.Errorf("origin saw query %q; the original query must reach the origin", got)
	}
}

func TestCollapsedMisses(t *testing.T) {
	const clients = 100
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, strings.Repeat("x", 100<<10))
	})
	tp := startPoP(t, o.URL)

	var wg sync.WaitGroup
	statuses := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			resp, body := tp.get(t, "/hot")
			if resp.StatusCode != 200 || len(body) != 100<<10 {
				t.Errorf("client %d: %d, %d bytes", i, resp.StatusCode, len(body))
			}
			statuses[i] = resp.Header.Get("Cache-Status")
		})
	}
	waitFor(t, "all clients to join the fill", func() bool { return tp.fills.joined("http://demo.example/hot") == clients })
	close(release)
	wg.Wait()

	if got := o.count("/hot"); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	var stored, collapsed int
	for _, s := range statuses {
		switch {
		case strings.Contains(s, "; collapsed"):
			collapsed++
		case strings.Contains(s, "; stored"):
			stored++
		}
	}
	if stored != 1 || collapsed != clients-1 {
		t.Errorf("stored %d, collapsed %d; want 1 and %d", stored, collapsed, clients-1)
	}
	st := tp.statsAfter(t, clients)
	if st.Misses != 1 || st.Collapsed != clients-1 || st.OriginFetches != 1 {
		t.Errorf("stats = %+v", st.Figures)
	}
	if st.OriginOffload < 0.98 {
		t.Errorf("origin offload = %v, want 0.99", st.OriginOffload)
	}
}

// TestClientHangsUpMidFill checks that the leader hanging up does not
// cancel the fill for a request waiting on it.
func TestClientHangsUpMidFill(t *testing.T) {
	firstHalf := make(chan struct{})
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "20")
		io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		close(firstHalf)
		<-release
		io.WriteString(w, "abcdefghij")
	})
	tp := startPoP(t, o.URL)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tp.url+"/f", nil)
	req.Host = "demo.example"
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-firstHalf
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "0123456789" {
		t.Fatalf("leader read %q, %v", buf, err)
	}
	// A second request joins the fill, then the leader hangs up.
	got := make(chan []byte)
	go func() {
		_, body := tp.get(t, "/f")
		got <- body
	}()
	waitFor(t, "second request to join", func() bool { return tp.fills.joined("http://demo.example/f") == 2 })
	cancel()
	resp.Body.Close()
	close(release)
	if body := <-got; string(body) != "0123456789abcdefghij" {
		t.Fatalf("waiter got %q", body)
	}
	waitFor(t, "fill done", func() bool { return tp.fills.inFlight() == 0 })
	resp3, body3 := tp.get(t, "/f")
	if !strings.Contains(resp3.Header.Get("Cache-Status"), "; hit") || string(body3) != "0123456789abcdefghij" {
		t.Errorf("third request: %q %q", resp3.Header.Get("Cache-Status"), body3)
	}
	if n := o.count("/f"); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
}

func TestUncacheableReleasesWaiters(t *testing.T) {
	const clients = 5
	release := make(chan struct{})
	var calls atomic.Int32
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "private for %s", r.Header.Get("X-User"))
	})
	tp := startPoP(t, o.URL)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			user := fmt.Sprint(i)
			resp, body := tp.do(t, http.MethodGet, "/me", "demo.example", http.Header{"X-User": {user}})
			if string(body) != "private for "+user {
				t.Errorf("user %s got %q", user, body)
			}
			if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "stored") || strings.Contains(cs, "collapsed") {
				t.Errorf("Cache-Status %q for an uncacheable response", cs)
			}
		})
	}
	waitFor(t, "clients to join", func() bool { return tp.fills.joined("http://demo.example/me") == clients })
	close(release)
	wg.Wait()
	if n := o.count("/me"); n != clients {
		t.Errorf("origin requests = %d, want %d (one each)", n, clients)
	}
	if st := tp.statsAfter(t, clients); st.Misses != clients {
		t.Errorf("misses = %d, want %d (%+v)", st.Misses, clients, st.Figures)
	}
}

func TestNotStored(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		case "/nofresh":
		case "/big":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", fmt.Sprint(2<<20))
			w.Write(bytes.Repeat([]byte("b"), 2<<20))
			return
		case "/bigchunked":
			w.Header().Set("Cache-Control", "max-age=60")
			for range 64 {
				w.Write(bytes.Repeat([]byte("c"), 32<<10))
				w.(http.Flusher).Flush()
			}
			return
		case "/error":
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "body")
	})
	// Slicing off: an object above max_object is passed through every
	// time (with slicing, the default, later requests fetch it in slices:
	// slice_test.go).
	tp := startPoPConfig(t, strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"), "max_object: 1MiB", "max_object: 1MiB\n      slice: {enabled: false}", 1))
	tests := []struct {
		path       string
		wantDetail string
		wantLen    int
	}{
		{"/nostore", "detail=no-store", 4},
		{"/private", "detail=private", 4},
		{"/nofresh", "detail=no-freshness", 4},
		{"/big", "detail=too-large", 2 << 20},
		{"/bigchunked", "", 2 << 20},
		{"/error", "detail=status", 4},
	}
	for _, tt := range tests {
		t.Run("RFC9111 3 "+tt.path, func(t *testing.T) {
			for i := 1; i <= 2; i++ {
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				resp, body := tp.get(t, tt.path)
				if len(body) != tt.wantLen {
					t.Fatalf("body is %d bytes, want %d", len(body), tt.wantLen)
				}
				cs := resp.Header.Get("Cache-Status")
				want := tt.wantDetail
				if i == 2 && want != "detail=status" {
					// The first answer could not be stored: the second
					// request fetches alone (hit-for-miss).
					want = "detail=hit-for-miss"
				}
				if strings.Contains(cs, "; hit;") || !strings.Contains(cs, want) {
					t.Errorf("request %d: Cache-Status %q, want a miss with %q", i, cs, want)
				}
				if n := o.count(tt.path); n != i {
					t.Errorf("origin requests = %d, want %d", n, i)
				}
			}
		})
	}
	if n := tp.store.Stats().Items; n != 0 {
		t.Errorf("store holds %d items, want 0", n)
	}
}

func TestUnknownHost(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	tp := startPoP(t, o.URL)
	resp, body := tp.do(t, http.MethodGet, "/", "evil.example", nil)
	if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), `"evil.example"`) {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if n := o.count("/"); n != 0 {
		t.Errorf("origin contacted %d times", n)
	}
	if st := tp.statsAfter(t, 1); st.Errors != 1 || st.Requests != 1 {
		t.Errorf("stats %+v", st.Figures)
	}
}

func TestOriginFailures(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slowheader":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/reset":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		case "/stall":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	})
	tp := startPoP(t, o.URL)

	// An origin that refuses connections.
	tpDown := startPoP(t, "http://"+refusedAddr)

	tests := []struct {
		name       string
		tp         *testPoP
		path       string
		wantStatus int
		wantBroken bool // response cut short after the header
	}{
		{"RFC9110 15.6.3 unreachable origin is 502", tpDown, "/x", http.StatusBadGateway, false},
		{"RFC9110 15.6.5 first-byte timeout is 504", tp, "/slowheader", http.StatusGatewayTimeout, false},
		{"reset mid-body cuts the client short", tp, "/reset", 200, true},
		{"idle body timeout cuts the client short", tp, "/stall", 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < 2; i++ { // twice: a broken fill must not be stored
				req, _ := http.NewRequest(http.MethodGet, tt.tp.url+tt.path, nil)
				req.Host = "demo.example"
				resp, err := tt.tp.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, readErr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				if broken := readErr != nil; broken != tt.wantBroken {
					t.Errorf("body error %v, want broken=%v", readErr, tt.wantBroken)
				}
				waitFor(t, "fills done", func() bool { return tt.tp.fills.inFlight() == 0 })
			}
			if tt.tp == tp {
				if n := o.count(tt.path); n != 2 {
					t.Errorf("origin requests = %d, want 2 (nothing stored)", n)
				}
			}
		})
	}
	if st := tpDown.statsAfter(t, 2); st.Errors != 2 {
		t.Errorf("errors = %d, want 2", st.Errors)
	}
}

func TestPassAndHeaders(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %s", r.Method, body)
	})
	tp := startPoP(t, o.URL)
	tests := []struct {
		name    string
		method  string
		wantFwd string
	}{
		{"RFC9111 3 POST is passed", http.MethodPost, "fwd=method"},
		{"RFC9111 3 DELETE is passed", http.MethodDelete, "fwd=method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tp.url+"/p", strings.NewReader("payload"))
			req.Host = "demo.example"
			req.Header.Set("Connection", "X-Client-Hop")
			req.Header.Set("X-Client-Hop", "1")
			resp, err := tp.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.method == http.MethodPost && string(body) != "POST payload" {
				t.Errorf("body %q", body)
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, tt.wantFwd) {
				t.Errorf("Cache-Status %q, want %q", cs, tt.wantFwd)
			}
			if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
				t.Errorf("hop-by-hop response fields reached the client: %v", resp.Header)
			}
			seen := o.lastRequest("/p")
			if seen.Header.Get("X-Client-Hop") != "" {
				t.Errorf("hop-by-hop request field reached the origin")
			}
			if seen.Header.Get("X-Forwarded-For") != "127.0.0.1" || !strings.Contains(seen.Header.Get("Forwarded"), "for=127.0.0.1") {
				t.Errorf("origin saw X-Forwarded-For %q, Forwarded %q", seen.Header.Get("X-Forwarded-For"), seen.Header.Get("Forwarded"))
			}
			if seen.Header.Get("Via") != "1.1 test (outpost)" {
				t.Errorf("origin saw Via %q", seen.Header.Get("Via"))
			}
			if got := seen.Header.Get("Surrogate-Capability"); got != `outpost="Surrogate/1.0"` {
				t.Errorf("origin saw Surrogate-Capability %q", got)
			}
		})
	}
	if st := tp.statsAfter(t, uint64(len(tests))); st.Passes != uint64(len(tests)) || st.Hits+st.Misses != 0 {
		t.Errorf("stats %+v", st.Figures)
	}
}

func TestHeadFillsForGet(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("origin got %s, want GET", r.Method)
		}
		cacheable("full body")(w, r)
	})
	tp := startPoP(t, o.URL)
	resp, body := tp.do(t, http.MethodHead, "/h", "demo.example", nil)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d, %q", resp.StatusCode, body)
	}
	waitFor(t, "fill done", func() bool { return tp.fills.inFlight() == 0 })
	resp, body = tp.get(t, "/h")
	if !strings.Contains(resp.Header.Get("Cache-Status"), "; hit") || string(body) != "full body" {
		t.Errorf("GET after HEAD: %q %q", resp.Header.Get("Cache-Status"), body)
	}
	resp, _ = tp.do(t, http.MethodHead, "/h", "demo.example", nil)
	if resp.Header.Get("Content-Length") != "9" {
		t.Errorf("HEAD hit Content-Length %q, want 9", resp.Header.Get("Content-Length"))
	}
}

func TestAdmin(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	tp := startPoP(t, o.URL)
	tp.get(t, "/a")
	waitFor(t, "entry stored", func() bool { return tp.store.Stats().Items == 1 })
	tp.get(t, "/a")
	tp.statsAfter(t, 2)

	tests := []struct {
		path, wantType string
		want           []string
	}{
		{"/healthz", "text/plain", []string{"ok"}},
		{"/stats", "application/json", []string{`"hits": 1`, `"misses": 1`, `"hit_ratio": 0.5`, `"services"`, `"demo"`, `"items": 1`}},
		{"/metrics", "text/plain", []string{
			`outpost_pop_requests_total{method="GET",result="hit",service="demo",status_class="2xx"} 1`,
			`outpost_pop_requests_total{method="GET",result="miss",service="demo",status_class="2xx"} 1`,
			`outpost_cache_items 1`,
			`outpost_pop_origin_requests_total{service="demo"} 1`,
			`outpost_pop_request_duration_seconds_count{service="demo"} 2`,
			`outpost_pop_origin_duration_seconds_count{service="demo"} 1`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := tp.client.Get(tp.admin + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.wantType) {
				t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			for _, w := range tt.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("missing %q in\n%s", w, body)
				}
			}
		})
	}
	// Admin requests are not counted as requests.
	var st Stats
	resp, err := tp.client.Get(tp.admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 2 {
		t.Errorf("requests = %d, want 2", st.Requests)
	}
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	tp := startPoPWithDrain(t, o.URL, "3s")

	got := make(chan string, 1)
	go func() {
		_, body := tp.get(t, "/inflight")
		got <- string(body)
	}()
	<-started
	tp.cancel() // SIGTERM
	waitFor(t, "draining", func() bool {
		resp, err := tp.client.Get(tp.admin + "/healthz")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.TrimSpace(string(body)) == "draining"
	})
	// Still serving while draining.
	if resp, _ := tp.do(t, http.MethodGet, "/", "nobody.example", nil); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("while draining: %d", resp.StatusCode)
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("in-flight request got %q", body)
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	p, _, _ := newTestPoP(t, fmt.Sprintf(testConfig, o.URL, "0s"), func(*config.POP) {})
	defer p.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close() // Serve fails at once
	err := p.Serve(context.Background(), ln, adminLn)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve on a closed listener returned %v", err)
	}
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// refusedAddr refuses connections: nothing listens on TCP port 1
// (tcpmux), and binding port 0 never hands it out, so no listener a test
// opens meanwhile can take it (a port just closed can be).
const refusedAddr = "127.0.0.1:1"

// TestRequestMetricLabels checks the labels of outpost_pop_requests_total
// after a known sequence of requests.
func TestRequestMetricLabels(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		cacheable("x")(w, r)
	})
	tp := startPoP(t, o.URL)
	tp.get(t, "/a") // miss, 2xx
	waitFor(t, "entry stored", func() bool { return tp.store.Stats().Items == 1 })
	tp.do(t, http.MethodHead, "/a", "demo.example", nil)      // hit, 2xx
	tp.do(t, http.MethodPost, "/a", "demo.example", nil)      // pass, 2xx
	tp.do(t, http.MethodGet, "/missing", "demo.example", nil) // miss, 4xx
	tp.do(t, http.MethodGet, "/", "unknown.example", nil)     // error, 4xx (421)
	tp.statsAfter(t, 5)
	body, _ := io.ReadAll(mustGet(t, tp.client, tp.admin+"/metrics").Body)
	for _, want := range []string{
		`outpost_pop_requests_total{method="GET",result="miss",service="demo",status_class="2xx"} 1`,
		`outpost_pop_requests_total{method="HEAD",result="hit",service="demo",status_class="2xx"} 1`,
		`outpost_pop_requests_total{method="POST",result="pass",service="demo",status_class="2xx"} 1`,
		`outpost_pop_requests_total{method="GET",result="miss",service="demo",status_class="4xx"} 1`,
		`outpost_pop_requests_total{method="GET",result="error",service="_unknown_host",status_class="4xx"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
