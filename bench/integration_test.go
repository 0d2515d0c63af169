package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

const popConfig = `
services:
  - name: demo
    hostnames: [demo.example, 127.0.0.1]
    origin:
      servers: [{url: "%s"}]
    cache:
      max_object: 1MiB
pops:
  - name: bench
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.1:0
    cache_size: 64MiB
    drain: 0s
`

// testPoP is a real PoP on loopback listeners.
type testPoP struct {
	url, admin string
	client     *http.Client
}

func startPoP(t *testing.T, originURL string) *testPoP {
	t.Helper()
	cfg, err := config.Parse("bench-test.yaml", fmt.Appendf(nil, popConfig, originURL))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pop.New(cfg, "", pop.Options{Logger: testLogger(t), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	serveLn, adminLn := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, serveLn, adminLn) }()
	tp := &testPoP{
		url:    "http://" + serveLn.Addr().String(),
		admin:  "http://" + adminLn.Addr().String(),
		client: &http.Client{Timeout: 5 * time.Second},
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PoP: %v", err)
		}
		p.Close()
		tp.client.CloseIdleConnections()
	})
	return tp
}

// popStats is the part of the PoP's /stats the test compares.
type popStats struct {
	Requests      int64 `json:"requests"`
	Hits          int64 `json:"hits"`
	Collapsed     int64 `json:"collapsed"`
	Revalidated   int64 `json:"revalidated"`
	StaleOnError  int64 `json:"stale_on_error"`
	Misses        int64 `json:"misses"`
	Passes        int64 `json:"passes"`
	Errors        int64 `json:"errors"`
	BytesServed   int64 `json:"bytes_served"`
	BytesCache    int64 `json:"bytes_from_cache"`
	OriginBytes   int64 `json:"origin_bytes"`
	OriginFetches int64 `json:"origin_fetches"`
	Cache         struct {
		Fills int `json:"fills_in_flight"`
	} `json:"cache"`
}

func (tp *testPoP) stats(t *testing.T) popStats {
	t.Helper()
	resp, err := tp.client.Get(tp.admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/stats: %d %v", resp.StatusCode, err)
	}
	var st popStats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAgainstPoP benchmarks a real PoP in front of the synthetic origin
// and checks that the figures bench reports from Cache-Status are the
// PoP's own: the change in its /stats over the run (only bench talks to
// it), and the origin offload against the origin's own counters.
func TestAgainstPoP(t *testing.T) {
	origin := startOrigin(t)
	tp := startPoP(t, origin)
	zipf, err := NewZipf(ZipfOptions{Objects: 400, S: 0.9, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	w, err := WithOneHitWonders(zipf, OneHitOptions{Fraction: 0.05, Seed: 11, Size: 3000})
	if err != nil {
		t.Fatal(err)
	}
	before := tp.stats(t)
	res := mustRun(t, Config{
		URL: tp.url + "/", Workload: w, Connections: 16, Requests: 3000, Verify: true,
		OriginStats: origin + "/_origin/stats",
	})
	// The PoP counts a request when its handler returns, which may be just
	// after the client has the last byte, and its bytes just after its
	// result: wait for the counts to settle, every request counted, no
	// fill running and two snapshots in a row the same.
	var after popStats
	for deadline, last := time.Now().Add(10*time.Second), (popStats{}); ; {
		after = tp.stats(t)
		if after.Requests-before.Requests >= res.Responses && after.Cache.Fills == 0 && after == last {
			break
		}
		last = after
		if time.Now().After(deadline) {
			t.Fatalf("the PoP counted %d requests, bench %d", after.Requests-before.Requests, res.Responses)
		}
	}
	if res.Errors != 0 || res.Responses != 3000 {
		t.Fatalf("%d responses, errors %v", res.Responses, res.ErrorsByKind)
	}
	d := func(a, b int64) int64 { return a - b }
	want := Results{
		Hit: d(after.Hits, before.Hits), Collapsed: d(after.Collapsed, before.Collapsed),
		Revalidated: d(after.Revalidated, before.Revalidated), StaleOnError: d(after.StaleOnError, before.StaleOnError),
		Miss: d(after.Misses, before.Misses), Pass: d(after.Passes, before.Passes), Error: d(after.Errors, before.Errors),
	}
	if res.Results != want {
		t.Errorf("bench counted %+v, the PoP %+v", res.Results, want)
	}
	requests := d(after.Requests, before.Requests)
	if hits := want.Hit + want.Collapsed; res.Responses != requests || res.HitRatio != float64(hits)/float64(requests) {
		t.Errorf("hit ratio %v over %d, the PoP %d/%d", res.HitRatio, res.Responses, hits, requests)
	}
	served, fromCache := d(after.BytesServed, before.BytesServed), d(after.BytesCache, before.BytesCache)
	if res.Bytes != served || res.ByteHitRatio != float64(fromCache)/float64(served) {
		t.Errorf("bytes %d, byte hit ratio %v; the PoP %d, %v", res.Bytes, res.ByteHitRatio, served, float64(fromCache)/float64(served))
	}
	if res.HitRatio < 0.5 || res.Results.Miss == 0 {
		t.Errorf("hit ratio %v with %d misses: the workload should both hit and miss", res.HitRatio, res.Results.Miss)
	}
	if res.Origin == nil || res.OriginOffload == nil {
		t.Fatal("no origin offload")
	}
	originBytes := d(after.OriginBytes, before.OriginBytes)
	if res.Origin.BytesSent != originBytes || res.Origin.Requests != d(after.OriginFetches, before.OriginFetches) {
		t.Errorf("the origin sent %d bytes in %d responses, the PoP got %d in %d", res.Origin.BytesSent, res.Origin.Requests,
			originBytes, d(after.OriginFetches, before.OriginFetches))
	}
	if wantOff := 1 - float64(originBytes)/float64(served); math.Abs(*res.OriginOffload-wantOff) > 1e-12 {
		t.Errorf("origin offload %v, the PoP's %v", *res.OriginOffload, wantOff)
	}
	if len(res.PerPoP) != 1 || res.PerPoP[0].Name != "outpost/bench" || res.PerPoP[0].Responses != 3000 {
		t.Errorf("per PoP %+v", res.PerPoP)
	}
}
