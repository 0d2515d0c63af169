package pop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin"
)

// adminGet returns the body of an admin endpoint.
func (tp *testPoP) adminGet(t *testing.T, path string) string {
	t.Helper()
	resp, err := tp.client.Get(tp.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(body)
}

// originServers decodes /stats and returns the origin figures of service
// demo.
func (tp *testPoP) originServers(t *testing.T) ServiceStats {
	t.Helper()
	var st Stats
	if err := json.Unmarshal([]byte(tp.adminGet(t, "/stats")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Services["demo"]
}

// TestOriginStatsSingleServer checks the per-server figures of the default
// one-server origin in /stats and /metrics, in flight and after.
func TestOriginStatsSingleServer(t *testing.T) {
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.Header().Set("Content-Length", "4")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
		}
		cacheable("body")(w, r)
	})
	tp := startPoP(t, o.URL)
	server := strings.TrimPrefix(o.URL, "http://")

	tp.get(t, "/a")
	waitFor(t, "entry stored", func() bool { return tp.store.Stats().Items == 1 })
	tp.get(t, "/a") // a hit: no origin request

	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, tp.url+"/slow", nil)
		req.Host = "demo.example"
		if resp, err := tp.client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(t, "the slow request in flight", func() bool {
		s := tp.originServers(t).OriginServers
		return len(s) == 1 && s[0].InFlight == 1
	})
	if m := tp.adminGet(t, "/metrics"); !strings.Contains(m, fmt.Sprintf(`outpost_origin_in_flight{server=%q,service="demo"} 1`, server)) {
		t.Errorf("/metrics lacks the request in flight:\n%s", grepLines(m, "outpost_origin"))
	}
	close(release)
	<-done
	waitFor(t, "the slow request done", func() bool { return tp.originServers(t).OriginServers[0].InFlight == 0 })

	// The JSON keys, as operators read them.
	var raw struct {
		Services map[string]map[string]json.RawMessage `json:"services"`
	}
	if err := json.Unmarshal([]byte(tp.adminGet(t, "/stats")), &raw); err != nil {
		t.Fatal(err)
	}
	var servers []map[string]any
	if err := json.Unmarshal(raw.Services["demo"]["origin_servers"], &servers); err != nil || len(servers) != 1 {
		t.Fatalf("services.demo.origin_servers = %s (%v)", raw.Services["demo"]["origin_servers"], err)
	}
	for _, key := range []string{"url", "name", "weight", "state", "requests", "failures", "in_flight", "responses", "response_seconds_total", "latency_ewma_ms"} {
		if _, ok := servers[0][key]; !ok {
			t.Errorf("origin_servers[0] lacks %q: %v", key, servers[0])
		}
	}
	if p := string(raw.Services["demo"]["origin_policy"]); p != `"round_robin"` {
		t.Errorf("origin_policy %s", p)
	}

	tp.statsAfter(t, 3) // a handler counts a request just after its client has the last byte
	svc := tp.originServers(t)
	s := svc.OriginServers[0]
	if s.URL != o.URL || s.Name != server || s.State != origin.StateHealthy || s.Requests != 2 || s.Failures != 0 || s.Responses != 2 || s.ResponseSeconds <= 0 {
		t.Errorf("origin server figures %+v; want 2 requests (a miss and /slow), healthy, no failures", s)
	}
	if svc.OriginNoHealthy || svc.Misses != 2 || svc.Hits != 1 {
		t.Errorf("service figures %+v", svc)
	}

	m := tp.adminGet(t, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`outpost_origin_requests_total{server=%q,service="demo"} 2`, server),
		fmt.Sprintf(`outpost_origin_failures_total{server=%q,service="demo"} 0`, server),
		fmt.Sprintf(`outpost_origin_in_flight{server=%q,service="demo"} 0`, server),
		fmt.Sprintf(`outpost_origin_healthy{server=%q,service="demo"} 1`, server),
		fmt.Sprintf(`outpost_origin_response_seconds_bucket{server=%q,service="demo",le="+Inf"} 2`, server),
		fmt.Sprintf(`outpost_origin_response_seconds_count{server=%q,service="demo"} 2`, server),
		`outpost_origin_no_healthy_server{service="demo"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(m, "outpost_origin"))
		}
	}
}

// TestOriginStatsEjectedServer runs a service over a live and a dead
// origin server: requests that meet the dead one are retried on the live
// one, and the dead one shows as ejected with its failure.
func TestOriginStatsEjectedServer(t *testing.T) {
	live := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") })
	deadAddr := refusedAddr
	tp := startPoPConfig(t, fmt.Sprintf(`
services:
  - name: demo
    hostnames: [demo.example]
    origin:
      policy: least_connections
      servers: [{url: "http://%s"}, {url: "%s", max_conns: 10}]
      ejection: {failures: 1, cooldown: 1h}
      host_header: www.demo.example
pops:
  - {name: test, location: {lat: 50, lon: 14}, listen: "127.0.0.1:0", admin: "127.0.0.2:0", drain: 0s}
`, deadAddr, live.URL))
	liveAddr := strings.TrimPrefix(live.URL, "http://")

	for i := range 4 {
		resp, body := tp.get(t, fmt.Sprintf("/p%d", i))
		if resp.StatusCode != 200 || string(body) != "live" {
			t.Fatalf("request %d: %d %q; want the live server's answer", i, resp.StatusCode, body)
		}
	}
	if h := live.lastRequest("/p3").Host; h != "www.demo.example" {
		t.Errorf("origin saw Host %q, want the host_header", h)
	}
	svc := tp.originServers(t)
	if len(svc.OriginServers) != 2 || svc.OriginPolicy != origin.PolicyLeastConnections {
		t.Fatalf("origin figures %+v", svc)
	}
	d, l := svc.OriginServers[0], svc.OriginServers[1]
	if d.Name != deadAddr || d.State != origin.StateEjected || d.Requests != 1 || d.Failures != 1 || !strings.Contains(d.LastError, "refused") {
		t.Errorf("dead server %+v; want ejected after 1 failed request, connection refused", d)
	}
	if l.Name != liveAddr || l.State != origin.StateHealthy || l.Requests != 4 || l.Failures != 0 {
		t.Errorf("live server %+v; want healthy with all 4 requests", l)
	}
	m := tp.adminGet(t, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`outpost_origin_healthy{server=%q,service="demo"} 0`, deadAddr),
		fmt.Sprintf(`outpost_origin_failures_total{server=%q,service="demo"} 1`, deadAddr),
		fmt.Sprintf(`outpost_origin_healthy{server=%q,service="demo"} 1`, liveAddr),
		fmt.Sprintf(`outpost_origin_requests_total{server=%q,service="demo"} 4`, liveAddr),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(m, "outpost_origin"))
		}
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestConfigPoliciesReachThePool checks that every policy and hash key the
// config accepts is one the origin pool knows.
func TestConfigPoliciesReachThePool(t *testing.T) {
	u, err := url.Parse("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{
		config.PolicyRoundRobin, config.PolicyWeightedRoundRobin, config.PolicyLeastConnections,
		config.PolicyWeightedLeastConnections, config.PolicyAdaptive, config.PolicyIPHash, config.PolicyRequestBased,
	} {
		for _, key := range []string{config.HashKeyClientIP, config.HashKeyCacheKey} {
			p, err := origin.NewPool([]origin.Server{{URL: u}}, origin.Options{
				Policy: origin.Policy(policy), HashKey: origin.HashKey(key),
				Load: origin.LoadProbe{Interval: time.Hour}, Logger: testLogger(t),
			})
			if err != nil {
				t.Errorf("policy %s, hash key %s: %v", policy, key, err)
				continue
			}
			p.Close()
		}
	}
}
