package purge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
	"github.com/outpost-cdn/outpost/popapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cdn is three real PoPs on loopback in front of one origin; the third is
// down (its admin address refuses connections) unless all are up.
type cdn struct {
	cfg    *config.Config
	pops   []*pop.PoP
	serve  []string // serving base URLs
	origin *atomic.Int32
}

func startCDN(t *testing.T, down int) *cdn {
	t.Helper()
	var originHits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "all "+strings.TrimPrefix(r.URL.Path, "/"))
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(origin.Close)

	type lns struct{ serve, admin net.Listener }
	var listeners []lns
	var pops strings.Builder
	for i := range 3 {
		s, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, lns{s, a})
		fmt.Fprintf(&pops, "  - {name: p%d, location: {lat: %d, lon: 0}, listen: %q, admin: %q, drain: 0s}\n", i, i*10, s.Addr(), a.Addr())
	}
	text := fmt.Sprintf(`services:
  - name: demo
    hostnames: [demo.example]
    origin: {servers: [{url: %q}]}
pops:
%spurge: {token: t0ken}
`, origin.URL, pops.String())
	cfg, err := config.Parse("cdn.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c := &cdn{cfg: cfg, origin: &originHits}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	running := 0
	for i, l := range listeners {
		if i == down {
			l.serve.Close()
			l.admin.Close() // this PoP is down
			c.pops = append(c.pops, nil)
			c.serve = append(c.serve, "")
			continue
		}
		p, err := pop.New(cfg, fmt.Sprintf("p%d", i), pop.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		running++
		go func() { p.Serve(ctx, l.serve, l.admin); done <- struct{}{} }()
		c.pops = append(c.pops, p)
		c.serve = append(c.serve, "http://"+l.serve.Addr().String())
	}
	t.Cleanup(func() {
		cancel()
		for range running {
			<-done
		}
		for _, p := range c.pops {
			if p != nil {
				p.Close()
			}
		}
	})
	return c
}

// get fetches path from PoP i and reports whether it was a hit.
func (c *cdn) get(t *testing.T, i int, path string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.serve[i]+path, nil)
	req.Host = "demo.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
}

// warm stores path on every running PoP.
func (c *cdn) warm(t *testing.T, path string) {
	t.Helper()
	for i, p := range c.pops {
		if p == nil {
			continue
		}
		c.get(t, i, path)
		deadline := time.Now().Add(5 * time.Second)
		for !c.get(t, i, path) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never became a hit on p%d", path, i)
			}
		}
	}
}

func TestSendToEveryPoP(t *testing.T) {
	c := startCDN(t, -1)
	c.warm(t, "/a")
	c.warm(t, "/b")
	tests := []struct {
		name   string
		req    popapi.PurgeRequest
		gone   string
		kept   string
		purged int
	}{
		{"url", popapi.PurgeRequest{URL: "http://demo.example/a"}, "/a", "/b", 1},
		{"tag", popapi.PurgeRequest{Tag: "b"}, "/b", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check(c.cfg, tt.req); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			results := Send(context.Background(), c.cfg, tt.req, Options{})
			t.Logf("purge confirmed by %d PoPs in %v", len(results), time.Since(start))
			for _, r := range results {
				if !r.OK || r.Purged != tt.purged || r.Attempts != 1 {
					t.Errorf("%s: %+v", r.PoP, r)
				}
			}
			for i := range c.pops {
				if c.get(t, i, tt.gone) {
					t.Errorf("p%d still serves %s from cache", i, tt.gone)
				}
				if tt.kept != "" && !c.get(t, i, tt.kept) {
					t.Errorf("p%d lost %s", i, tt.kept)
				}
			}
		})
	}
}

func TestSendWithOnePoPDown(t *testing.T) {
	c := startCDN(t, 2)
	c.warm(t, "/x")
	results := Send(context.Background(), c.cfg, popapi.PurgeRequest{URL: "http://demo.example/x"}, Options{Backoff: time.Millisecond})
	for i, r := range results {
		switch {
		case i == 2 && (r.OK || r.Err == nil || r.Attempts != 3):
			t.Errorf("the down PoP: %+v; want a failure after 3 attempts", r)
		case i != 2 && !r.OK:
			t.Errorf("%s: %+v", r.PoP, r)
		}
	}
}

func TestSendRefusedAndRetried(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"id":"x","pop":"f","kind":"url","purged":4}`)
	}))
	defer flaky.Close()
	host := strings.TrimPrefix(flaky.URL, "http://")
	cfg, err := config.Parse("f.yaml", []byte(fmt.Sprintf(`services: [{name: s, hostnames: [s.example], origin: {servers: [{url: "http://127.0.0.1:1"}]}}]
pops: [{name: f, location: {lat: 0, lon: 0}, listen: "127.0.0.1:0", admin: %q}]
purge: {token: good}
`, host)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		token        string
		wantOK       bool
		wantAttempts int
	}{
		{"503 is retried, then acknowledged", "", true, 2},
		{"401 is not retried", "bad", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Send(context.Background(), cfg, popapi.PurgeRequest{URL: "http://s.example/"}, Options{Token: tt.token, Backoff: time.Millisecond})[0]
			if r.OK != tt.wantOK || r.Attempts != tt.wantAttempts {
				t.Errorf("%+v", r)
			}
			if r.OK && r.Purged != 4 {
				t.Errorf("purged %d, want 4", r.Purged)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(`services: [{name: s, hostnames: [s.example], origin: {servers: [{url: "http://127.0.0.1:1"}]}}]
pops: [{name: f, location: {lat: 0, lon: 0}, listen: "127.0.0.1:0", admin: "127.0.0.1:0"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  popapi.PurgeRequest
		ok   bool
	}{
		{"url of a service", popapi.PurgeRequest{URL: "https://S.example:8443/a"}, true},
		{"prefix of a service", popapi.PurgeRequest{Prefix: "http://s.example/img/"}, true},
		{"tag", popapi.PurgeRequest{Tag: "t"}, true},
		{"unknown host", popapi.PurgeRequest{URL: "http://other.example/a"}, false},
		{"relative URL", popapi.PurgeRequest{URL: "/a"}, false},
		{"two targets", popapi.PurgeRequest{URL: "http://s.example/a", Tag: "t"}, false},
		{"nothing", popapi.PurgeRequest{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check(cfg, tt.req); (err == nil) != tt.ok {
				t.Errorf("Check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestAdminURL(t *testing.T) {
	tests := []struct{ admin, listen, want string }{
		{"127.0.0.11:9080", "127.0.0.11:8080", "http://127.0.0.11:9080"},
		{":9080", "10.1.2.3:8080", "http://10.1.2.3:9080"},
		{"0.0.0.0:9080", ":8080", "http://127.0.0.1:9080"},
		{"[::1]:9080", "[::1]:8080", "http://[::1]:9080"},
	}
	for _, tt := range tests {
		if got := AdminURL(&config.POP{Admin: tt.admin, Listen: tt.listen}); got != tt.want {
			t.Errorf("AdminURL(%q, %q) = %q, want %q", tt.admin, tt.listen, got, tt.want)
		}
	}
}
