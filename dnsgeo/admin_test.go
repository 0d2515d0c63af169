package dnsgeo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAdmin(t *testing.T) {
	ts, _ := startLab(t, steady)
	defer http.DefaultClient.CloseIdleConnections()
	ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	ts.exchange(t, "tcp", query("nope.cdn.example.", dns.TypeA, "", 0))

	if code, body := get(t, ts.admin+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	_, metrics := get(t, ts.admin+"/metrics")
	for _, want := range []string{
		`outpost_dns_queries_total{ecs="true",pop="prg",rcode="NOERROR",type="A"} 1`,
		`outpost_dns_queries_total{ecs="false",pop="none",rcode="NXDOMAIN",type="A"} 1`,
		`outpost_dns_decisions_total{by="networks"} 1`,
		`outpost_dns_pop_up{pop="iad"} 1`,
		`outpost_dns_network_map_entries 5`,
		`outpost_dns_health_checks_total{pop="prg",result="pass"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "outpost_") && !strings.HasPrefix(line, "outpost_dns_") {
			t.Errorf("metric outside outpost_dns_: %s", line)
		}
	}
	_, body := get(t, ts.admin+"/stats")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/stats: %v\n%s", err, body)
	}
	if st.Zone != "cdn.example" || st.Queries["NOERROR"] != 1 || st.Queries["NXDOMAIN"] != 1 || len(st.POPs) != 3 ||
		st.POPs[0].Name != "prg" || st.POPs[0].Answers != 1 || st.POPs[2].Address6 != "2001:db8::13" {
		t.Errorf("/stats: %+v", st)
	}
	if !strings.Contains(body, `"state": "up"`) || !strings.Contains(body, `"interval": "1h0m0s"`) {
		t.Errorf("/stats: %s", body)
	}
}

// TestShutdown checks that Serve returns nil when its context is done,
// having said "draining", and leaves nothing running (goleak in TestMain).
func TestShutdown(t *testing.T) {
	cfg := labConfig(t, "  health: {interval: 20ms, timeout: 20ms}", nil, labNetworks)
	s, err := New(cfg, Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was done")
	}
	if !s.Stats().Draining {
		t.Error("not draining after shutdown")
	}
}
