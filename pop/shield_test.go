package pop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// shieldCDN is a CDN of real PoPs in this process: edges and a shield.
type shieldCDN struct {
	t      *testing.T
	cfg    *config.Config
	pops   map[string]*PoP
	urls   map[string]string // serving base URLs
	admins map[string]string
	addrs  map[string][2]string // serving and admin addresses, for a restart
	stop   map[string]func()
	client *http.Client
}

// startShieldCDN starts the PoPs named, the shield first, all serving one
// service whose shield is "mid", in front of originURL.
func startShieldCDN(t *testing.T, originURL string, names ...string) *shieldCDN {
	return startShieldCDNWith(t, originURL, shieldSetup{}, names...)
}

// shieldSetup varies the CDN of startShieldCDNWith.
type shieldSetup struct {
	health string            // the shield's health section, YAML flow style ("" for none)
	drain  map[string]string // drain delay by PoP; default 0s
}

// startShieldCDNWith is startShieldCDN with the shield's health checks
// and the PoPs' drain delays of setup.
func startShieldCDNWith(t *testing.T, originURL string, setup shieldSetup, names ...string) *shieldCDN {
	t.Helper()
	cdn := &shieldCDN{t: t, pops: map[string]*PoP{}, urls: map[string]string{}, admins: map[string]string{},
		addrs: map[string][2]string{}, stop: map[string]func(){},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}}}
	listeners := map[string]Listeners{}
	var pops strings.Builder
	for _, name := range names {
		var ls Listeners
		var err error
		if ls.Serve, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ls.Admin, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		listeners[name] = ls
		drain := setup.drain[name]
		if drain == "" {
			drain = "0s"
		}
		fmt.Fprintf(&pops, "  - {name: %s, location: {lat: 50, lon: 14}, listen: %q, admin: %q, drain: %s}\n", name, ls.Serve.Addr(), ls.Admin.Addr(), drain)
		cdn.urls[name] = "http://" + ls.Serve.Addr().String()
		cdn.admins[name] = "http://" + ls.Admin.Addr().String()
		cdn.addrs[name] = [2]string{ls.Serve.Addr().String(), ls.Admin.Addr().String()}
	}
	health := ""
	if setup.health != "" {
		health = ", health: " + setup.health
	}
	yaml := fmt.Sprintf(`
services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers: [{url: %q}]
      timeouts: {connect: 1s, first_byte: 5s, idle: 2s}
    shield: {pops: [mid]%s}
pops:
%spurge:
  token: a-test-token-0123456789
`, originURL, health, pops.String())
	cfg, err := config.Parse("shield.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cdn.cfg = cfg
	for _, name := range names {
		cdn.serve(name, listeners[name])
	}
	t.Cleanup(cdn.client.CloseIdleConnections)
	return cdn
}

// serve runs PoP name on ls until its stop function is called.
func (c *shieldCDN) serve(name string, ls Listeners) {
	t := c.t
	p, err := New(c.cfg, name, Options{Logger: testLogger(t), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	var once sync.Once
	c.pops[name] = p
	c.stop[name] = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pop %s: %v", name, err)
			}
			p.Close()
		})
	}
	t.Cleanup(c.stop[name])
}

// restart starts PoP name again on its addresses, once stopped.
func (c *shieldCDN) restart(name string) {
	t := c.t
	var ls Listeners
	var err error
	if ls.Serve, err = net.Listen("tcp", c.addrs[name][0]); err != nil {
		t.Fatalf("restarting %s: %v", name, err)
	}
	if ls.Admin, err = net.Listen("tcp", c.addrs[name][1]); err != nil {
		ls.Serve.Close()
		t.Fatalf("restarting %s: %v", name, err)
	}
	c.serve(name, ls)
}

// metric returns the line of PoP name's /metrics that starts with prefix,
// or "".
func (c *shieldCDN) metric(name, prefix string) string {
	r, err := c.client.Get(c.admins[name] + "/metrics")
	if err != nil {
		c.t.Errorf("metrics of %s: %v", name, err)
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// get asks PoP name for path, with extra header fields.
func (c *shieldCDN) get(t *testing.T, name, path string, header ...string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, c.urls[name]+path, nil)
	req.Host = "demo.example"
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Errorf("GET %s from %s: %v", path, name, err)
		return nil, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestShieldStampede sends a stampede from three edges at once: every
// edge's fill goes to the one shield, which fills once, so the origin
// gets one request per object; Cache-Status has the shield's member, then
// the edge's (RFC 9211 §2).
func TestShieldStampede(t *testing.T) {
	// The origin holds every answer until the test opens the gate: once
	// the shield has asked for every key, so the stampede piles up on
	// the fills in flight (no sleep decides it).
	gate := make(chan struct{})
	var open sync.Once
	openGate := func() { open.Do(func() { close(gate) }) }
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-gate
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "object %s via %s", r.URL.Path, r.Header.Get("Cdn-Loop"))
	})
	t.Cleanup(openGate) // before the origin closes (cleanups run last first)
	cdn := startShieldCDN(t, o.URL, "mid", "e1", "e2", "e3")
	const keys, perEdge = 4, 8
	var wg sync.WaitGroup
	for k := range keys {
		for _, edge := range []string{"e1", "e2", "e3"} {
			for range perEdge {
				wg.Go(func() {
					resp, body := cdn.get(t, edge, fmt.Sprintf("/obj/%d", k))
					if resp == nil {
						return
					}
					if resp.StatusCode != 200 || !strings.HasPrefix(body, fmt.Sprintf("object /obj/%d via ", k)) {
						t.Errorf("%s /obj/%d: %d %q", edge, k, resp.StatusCode, body)
					}
					members := resp.Header.Values("Cache-Status")
					if len(members) != 2 || !strings.HasPrefix(members[0], "outpost/mid;") || !strings.HasPrefix(members[1], "outpost/"+edge+";") {
						t.Errorf("%s /obj/%d: Cache-Status %q, want the shield's member then the edge's", edge, k, members)
					}
				})
			}
		}
	}
	waitFor(t, "the shield's fill of every key", func() bool {
		for k := range keys {
			if o.count(fmt.Sprintf("/obj/%d", k)) == 0 {
				return false
			}
		}
		return true
	})
	openGate()
	wg.Wait()
	for k := range keys {
		if n := o.count(fmt.Sprintf("/obj/%d", k)); n != 1 {
			t.Errorf("/obj/%d: the origin got %d requests, want 1", k, n)
		}
	}
	// The origin saw both PoPs in CDN-Loop (RFC 8586): the edge's and the shield's.
	if got := strings.Join(o.lastRequest("/obj/0").Header.Values("Cdn-Loop"), ", "); !strings.Contains(got, "pop=mid") || !strings.Contains(got, "pop=e") {
		t.Errorf("the origin's CDN-Loop %q lacks the edge or the shield", got)
	}
}

// TestShieldDownAndLoops checks that an edge whose shield does not answer
// fetches from the origin itself, and that a request that comes back to a
// PoP is a 508 (RFC 8586 §3).
func TestShieldDownAndLoops(t *testing.T) {
	o := newTestOrigin(t, cacheable("hello"))
	cdn := startShieldCDN(t, o.URL, "mid", "e1")

	t.Run("RFC 8586 §3: CDN-Loop names this PoP", func(t *testing.T) {
		resp, _ := cdn.get(t, "mid", "/loop", "CDN-Loop", "outpost; pop=e1, outpost; pop=mid")
		if resp.StatusCode != http.StatusLoopDetected {
			t.Errorf("got %d, want 508", resp.StatusCode)
		}
	})
	t.Run("RFC 9110 §7.6.3: Via names this PoP", func(t *testing.T) {
		resp, _ := cdn.get(t, "e1", "/loop", "Via", "1.1 e1 (outpost)")
		if resp.StatusCode != http.StatusLoopDetected {
			t.Errorf("got %d, want 508", resp.StatusCode)
		}
	})
	t.Run("a request from another PoP never goes on to a shield", func(t *testing.T) {
		// e1 is asked as if by another PoP: it goes to the origin itself.
		resp, _ := cdn.get(t, "e1", "/from-a-pop", "CDN-Loop", "outpost; pop=e9")
		if members := resp.Header.Values("Cache-Status"); resp.StatusCode != 200 || len(members) != 1 {
			t.Errorf("got %d with Cache-Status %q, want 200 from e1 alone", resp.StatusCode, members)
		}
	})
	t.Run("the shield down: the edge goes to the origin", func(t *testing.T) {
		cdn.stop["mid"]()
		resp, body := cdn.get(t, "e1", "/after")
		if resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("got %d %q, want 200 from the origin", resp.StatusCode, body)
		}
		if n := o.count("/after"); n != 1 {
			t.Errorf("the origin got %d requests, want 1", n)
		}
		r, err := cdn.client.Get(cdn.admins["e1"] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `outpost_pop_shield_requests_total{result="fell_back",service="demo"} 1`) {
			t.Errorf("/metrics does not count the fall-back")
		}
	})
}

// TestShieldHealth checks the edges' active health checks of a shield: a
// shield that drains (its admin /healthz answers 503 "draining" while it
// still serves) gets no more misses before its listener closes; with no
// shield in rotation the edge goes to the origin; a shield that comes
// back is used again after rise passes.
func TestShieldHealth(t *testing.T) {
	o := newTestOrigin(t, cacheable("hello"))
	cdn := startShieldCDNWith(t, o.URL, shieldSetup{
		health: "{interval: 50ms, rise: 2, fall: 2}",
		drain:  map[string]string{"mid": "1500ms"},
	}, "mid", "e1")
	const up = `outpost_pop_shield_up{service="demo",shield="mid"} `
	viaShield := func(path string) bool {
		resp, body := cdn.get(t, "e1", path)
		if resp == nil || resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("%s: got %v %q, want 200 hello", path, resp, body)
		}
		return len(resp.Header.Values("Cache-Status")) == 2
	}
	if got := cdn.metric("e1", up); got != up+"1" {
		t.Errorf("before: %q, want %q", got, up+"1")
	}
	if !viaShield("/before") {
		t.Error("/before did not go through the shield")
	}

	// The shield drains: the edge takes it out on its first 503
	// "draining", while its listener still serves.
	stopped := make(chan struct{})
	go func() { cdn.stop["mid"](); close(stopped) }()
	waitFor(t, "the edge to take the draining shield out", func() bool { return cdn.metric("e1", up) == up+"0" })
	if viaShield("/while-draining") {
		t.Error("/while-draining went to the draining shield")
	}
	if resp, _ := cdn.get(t, "mid", "/before"); resp == nil || resp.StatusCode != 200 {
		t.Fatal("the shield's listener closed before the edge stopped sending to it: the test proves nothing")
	}
	select {
	case <-stopped:
		t.Fatal("the shield stopped before the checks were done: lengthen its drain")
	default:
	}
	if n := o.count("/while-draining"); n != 1 {
		t.Errorf("the origin got /while-draining %d times, want 1 (from the edge)", n)
	}

	// Gone: the edge goes to the origin.
	<-stopped
	if viaShield("/while-down") {
		t.Error("/while-down has a shield member")
	}
	if got := cdn.metric("e1", `outpost_pop_shield_requests_total{result="fell_back",service="demo"} `); got == "" || strings.HasSuffix(got, " 0") {
		t.Errorf("fell_back: %q, want the misses counted", got)
	}

	// Back: after rise passes, misses go to the shield again.
	cdn.restart("mid")
	waitFor(t, "the edge to take the shield back", func() bool { return cdn.metric("e1", up) == up+"1" })
	if !viaShield("/after") {
		t.Error("/after did not go through the shield that came back")
	}
}
