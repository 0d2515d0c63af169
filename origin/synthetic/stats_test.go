package synthetic

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStatsCountContentOnly(t *testing.T) {
	ts := start(t, Options{})
	etag := ETag("a", 1000)
	_, notFound := ts.get(t, "/other/x")
	ts.get(t, "/obj/a?size=1000")                                    // 1000 bytes
	ts.do(t, "HEAD", "/obj/a?size=1000", nil)                        // 0 bytes
	ts.do(t, "GET", "/obj/a?size=1000", h("If-None-Match", etag))    // 304: 0 bytes
	ts.do(t, "GET", "/obj/a?size=1000", h("Range", "bytes=100-199")) // 100 bytes
	ts.do(t, "GET", "/obj/a?size=1000", h("If-Match", `"no"`))       // 412: 0 bytes
	ts.get(t, "/obj/b?size=10&etag=none")                            // 10 bytes
	ts.get(t, "/_origin/health")                                     // probes: not counted
	ts.get(t, "/_origin/load")                                       //
	ts.get(t, "/_origin/nope")                                       //
	ts.stats(t, "GET", "")                                           //
	st := ts.stats(t, "GET", "")
	want := Stats{
		Requests:  RequestStats{Total: 7, ByPrefix: map[string]int64{"/obj": 6, "/other": 1}},
		BytesSent: 1000 + 100 + 10 + int64(len(notFound)),
	}
	checkStats(t, st, want)

	// A reset returns the figures it zeroes.
	checkStats(t, ts.stats(t, "GET", "?reset=1"), want)
	zero := Stats{Requests: RequestStats{ByPrefix: map[string]int64{}}}
	checkStats(t, ts.stats(t, "GET", ""), zero)
	ts.get(t, "/obj/c?size=5")
	checkStats(t, ts.stats(t, "POST", ""), Stats{Requests: RequestStats{Total: 1, ByPrefix: map[string]int64{"/obj": 1}}, BytesSent: 5})
	checkStats(t, ts.Stats(), zero)
	ts.get(t, "/")
	checkStats(t, ts.ResetStats(), Stats{Requests: RequestStats{Total: 1, ByPrefix: map[string]int64{"/": 1}}, BytesSent: int64(len(notFound))})

	if resp, _ := ts.get(t, statsPath+"?reset=maybe"); resp.StatusCode != 400 {
		t.Errorf("?reset=maybe: %d, want 400", resp.StatusCode)
	}
}

func TestStatsPrefixesAreBounded(t *testing.T) {
	ts := start(t, Options{})
	for i := range maxPrefixes + 6 {
		ts.get(t, "/p"+strconv.Itoa(i)+"/x")
	}
	ts.get(t, "/p0/again")
	st := ts.stats(t, "GET", "")
	if len(st.Requests.ByPrefix) != maxPrefixes+1 {
		t.Errorf("%d prefixes, want %d and %q", len(st.Requests.ByPrefix), maxPrefixes, OtherPrefix)
	}
	if st.Requests.ByPrefix[OtherPrefix] != 6 || st.Requests.ByPrefix["/p0"] != 2 {
		t.Errorf("by_prefix %v", st.Requests.ByPrefix)
	}
	if st.Requests.Total != maxPrefixes+7 {
		t.Errorf("total %d", st.Requests.Total)
	}
}

func TestPrefixOf(t *testing.T) {
	for in, want := range map[string]string{
		"/obj/a/b": "/obj", "/obj": "/obj", "/": "/", "//x": "/", "/a/": "/a", "*": OtherPrefix, "": OtherPrefix,
	} {
		if got := prefixOf(in); got != want {
			t.Errorf("prefixOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func checkStats(t *testing.T, got, want Stats) {
	t.Helper()
	if got.Requests.Total != want.Requests.Total || got.BytesSent != want.BytesSent ||
		len(got.Requests.ByPrefix) != len(want.Requests.ByPrefix) {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	for k, v := range want.Requests.ByPrefix {
		if got.Requests.ByPrefix[k] != v {
			t.Fatalf("stats %+v, want %+v", got, want)
		}
	}
}

func TestLoadFigure(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ts := start(t, Options{}, func(s *Server) {
		s.onContent = func(r *http.Request) {
			if r.URL.Path == "/obj/hold" {
				close(started)
				<-release
			}
		}
	})
	load := func(method, q string) (int, string) {
		t.Helper()
		resp, body := ts.do(t, method, loadPath+q, nil)
		if resp.StatusCode == 200 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		method, query string
		status        int
		body          string // "" to skip
	}{
		{"GET", "", 200, "0"},
		{"PUT", "?value=0.7", 200, "0.7"},
		{"GET", "", 200, "0.7"},
		{"PUT", "?value=12", 200, "12"},
		{"PUT", "?value=abc", 400, ""},
		{"PUT", "?value=-1", 400, ""},
		{"PUT", "?value=NaN", 400, ""},
		{"PUT", "?value=Inf", 400, ""},
		{"GET", "", 200, "12"},
		{"DELETE", "", 200, "0"},
		{"PUT", "?value=3", 200, "3"},
		{"PUT", "", 200, "0"},
		{"POST", "", 405, ""},
	}
	for _, tt := range tests {
		status, body := load(tt.method, tt.query)
		if status != tt.status || (tt.body != "" && body != tt.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.query, status, body, tt.status, tt.body)
		}
	}

	got := make(chan []byte, 1)
	go func() {
		resp, err := ts.client.Get(ts.url + "/obj/hold?size=10")
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- b
	}()
	<-started
	if _, body := load("GET", ""); body != "1" {
		t.Errorf("with one request in flight: %q, want 1", body)
	}
	if err := ts.SetLoad(0.25); err != nil {
		t.Fatal(err)
	}
	if err := ts.SetLoad(-1); err == nil {
		t.Error("SetLoad(-1) accepted")
	}
	if _, body := load("GET", ""); body != "0.25" {
		t.Errorf("after SetLoad: %q", body)
	}
	ts.ClearLoad()
	close(release)
	if b := <-got; len(b) != 10 {
		t.Errorf("held request got %d bytes", len(b))
	}
}

func TestHealth(t *testing.T) {
	ts := start(t, Options{ErrorRate: 1, Latency: time.Hour}) // probes are not content
	for _, m := range []string{"GET", "HEAD"} {
		resp, body := ts.do(t, m, healthPath, nil)
		if resp.StatusCode != 200 || (m == "GET" && string(body) != "ok\n") {
			t.Errorf("%s health: %d %q", m, resp.StatusCode, body)
		}
	}
	if st := ts.Stats(); st.Requests.Total != 0 {
		t.Errorf("health probes counted: %+v", st)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ts := start(t, Options{}, func(s *Server) {
		s.onContent = func(*http.Request) {
			close(started)
			<-release
		}
	})
	type result struct {
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := ts.client.Get(ts.url + "/obj/inflight?size=100k")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{b, err}
	}()
	<-started
	ts.cancel() // SIGTERM
	if ts.stopped() {
		close(release)
		t.Fatalf("Serve returned %v with a request in flight", ts.wait())
	}
	close(release)
	r := <-got
	if r.err != nil || len(r.body) != 100<<10 || Verify("inflight", r.body) != nil {
		t.Fatalf("in-flight request: %d bytes, %v", len(r.body), r.err)
	}
	if err := ts.wait(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://")); err == nil {
		t.Error("still accepting connections after Serve returned")
	}
}

func TestShutdownGraceRunsOut(t *testing.T) {
	started := make(chan struct{})
	ts := start(t, Options{ShutdownGrace: 50 * time.Millisecond}, func(s *Server) {
		s.onContent = func(*http.Request) { close(started) }
	})
	ts.wantServeErr = true
	got := make(chan error, 1)
	go func() {
		resp, err := ts.client.Get(ts.url + "/obj/late?size=10&delay=5m")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-started
	ts.cancel()
	if err := ts.wait(); err == nil {
		t.Error("Serve returned nil although a request outlived the grace period")
	}
	if err := <-got; err == nil {
		t.Error("the request cut at shutdown succeeded")
	}
}

func TestServeAndRunErrors(t *testing.T) {
	s, err := New(Options{Logger: testLogger(t), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run on a bad address returned nil")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(context.Background(), ln); err == nil {
		t.Error("Serve on a closed listener returned nil")
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string // every one must be in the error
	}{
		{"error rate above 1", Options{ErrorRate: 1.5}, []string{"error rate 1.5"}},
		{"negative error rate", Options{ErrorRate: -0.1}, []string{"error rate -0.1"}},
		{"negative latency", Options{Latency: -time.Second}, []string{"latency -1s"}},
		{"latency range backwards", Options{Latency: time.Second, LatencyMax: time.Millisecond}, []string{"latency range"}},
		{"bad Cache-Control", Options{DefaultCacheControl: "a\nb"}, []string{"Cache-Control"}},
		{"every problem at once", Options{ErrorRate: 2, Latency: -1, ShutdownGrace: -1},
			[]string{"error rate", "latency", "shutdown grace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil {
				t.Fatal("New accepted bad options")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New(Options{}); err != nil {
		t.Errorf("zero Options: %v", err)
	}
}
