package bench

import (
	"math"
	"testing"
	"time"
)

// TestResultMath feeds known requests to the recorders and checks the
// percentiles, the ratios (README "figures") and the groupings.
func TestResultMath(t *testing.T) {
	shards := []*shard{newShard(2), newShard(2)}
	type row struct {
		n      int
		class  Class
		bytes  int64
		status int
		pop    string
		region int
	}
	rows := []row{
		{60, Hit, 1000, 200, "outpost/fra", 0},
		{10, Collapsed, 1000, 200, "outpost/fra", 0},
		{5, Revalidated, 2000, 200, "outpost/nyc", 1},
		{5, StaleOnError, 2000, 200, "outpost/nyc", 1},
		{13, Miss, 4000, 200, "outpost/nyc", 1},
		{2, Miss, 4000, 503, "outpost/nyc", 1},
		{5, Pass, 500, 200, "", 1},
	}
	lat := 0
	for _, r := range rows {
		for range r.n {
			lat++ // latencies 1 ms … 100 ms, one each
			s := sample{
				measured: true, interval: lat / 60, latency: time.Duration(lat) * time.Millisecond,
				answered: true, class: r.class, status: r.status, bytes: r.bytes,
				pop: []byte(r.pop), addr: "10.0.0.1:80", region: r.region,
			}
			if r.status >= 500 {
				s.kind = errStatus5xx
			}
			shards[lat%2].record(&s)
		}
	}
	for range 3 { // never reached the CDN
		shards[0].record(&sample{measured: true, interval: 0, latency: time.Millisecond, kind: errConnect, region: 0})
	}
	shards[1].record(&sample{measured: false, interval: -1, answered: true, class: Hit, bytes: 1 << 20, region: 0}) // warm-up

	var r Result
	r.fill(mergeShards(shards, 2), []Region{{Name: "fra"}, {Name: "nyc"}}, 2*time.Second, time.Second)

	near := func(name string, got, want, rel float64) {
		t.Helper()
		if math.Abs(got-want) > rel*math.Abs(want)+1e-12 {
			t.Errorf("%s = %v, want %v (±%g%%)", name, got, want, 100*rel)
		}
	}
	if r.Requests != 103 || r.Responses != 100 || r.Errors != 5 {
		t.Errorf("requests %d, responses %d, errors %d; want 103, 100, 5", r.Requests, r.Responses, r.Errors)
	}
	if r.ErrorsByKind["connect"] != 3 || r.ErrorsByKind["status_5xx"] != 2 || len(r.ErrorsByKind) != 2 {
		t.Errorf("errors by kind %v", r.ErrorsByKind)
	}
	if r.StatusCodes["200"] != 98 || r.StatusCodes["503"] != 2 {
		t.Errorf("status codes %v", r.StatusCodes)
	}
	const bytes = 60*1000 + 10*1000 + 5*2000 + 5*2000 + 15*4000 + 5*500
	if r.Bytes != bytes {
		t.Errorf("bytes %d, want %d", r.Bytes, bytes)
	}
	near("rps", r.RPS, 103/2.0, 0)
	near("bytes/s", r.BytesPerSec, bytes/2.0, 0)
	near("hit ratio", r.HitRatio, 70.0/100, 0)
	near("byte hit ratio", r.ByteHitRatio, (60*1000+10*1000+5*2000+5*2000)/float64(bytes), 0)
	want := Results{Hit: 60, Collapsed: 10, Revalidated: 5, StaleOnError: 5, Miss: 15, Pass: 5}
	if r.Results != want {
		t.Errorf("results %+v, want %+v", r.Results, want)
	}
	// Three connect errors are not latencies (only timeouts are); the 100
	// responses took 1..100 ms. HDR keeps three significant digits.
	near("p50", r.Latency.P50, 50, 0.001)
	near("p90", r.Latency.P90, 90, 0.001)
	near("p99", r.Latency.P99, 99, 0.001)
	near("p99.9", r.Latency.P999, 100, 0.001)
	near("max", r.Latency.Max, 100, 0.001)
	near("mean", r.Latency.Mean, 50.5, 0.001)
	var binned int64
	for _, b := range r.LatencyHistogram {
		binned += b.Count
	}
	if binned != 100 {
		t.Errorf("histogram holds %d requests, want 100", binned)
	}

	pops := map[string]Group{}
	for _, g := range r.PerPoP {
		pops[g.Name] = g
	}
	if g := pops["outpost/fra"]; g.Responses != 70 || g.HitRatio != 1 || g.ByteHitRatio != 1 {
		t.Errorf("fra: %+v", g)
	}
	if g := pops["outpost/nyc"]; g.Responses != 25 || g.HitRatio != 0 || g.Errors != 2 {
		t.Errorf("nyc: %+v", g)
	}
	if g := pops["10.0.0.1:80"]; g.Responses != 5 || g.Results.Pass != 5 || g.Addresses["10.0.0.1:80"] != 5 {
		t.Errorf("the PoP without Cache-Status, by address: %+v", g)
	}
	if len(r.PerRegion) != 2 || r.PerRegion[0].Name != "fra" || r.PerRegion[0].Requests != 73 || r.PerRegion[0].Responses != 70 || r.PerRegion[1].Requests != 30 {
		t.Errorf("regions %+v", r.PerRegion)
	}
	if len(r.Series) != 2 || r.Series[0].Requests != 59+3 || r.Series[1].Requests != 41 {
		t.Fatalf("series %+v", r.Series)
	}
	near("series hit ratio 0", r.Series[0].HitRatio, 59.0/59, 0)
	near("series hit ratio 1", r.Series[1].HitRatio, 11.0/41, 0)
}

// TestRatioOfNothing checks that ratios with nothing to divide by are 0.
func TestRatioOfNothing(t *testing.T) {
	var r Result
	r.fill(mergeShards([]*shard{newShard(0)}, 0), nil, 0, time.Second)
	if r.HitRatio != 0 || r.ByteHitRatio != 0 || r.RPS != 0 || r.Latency != (Latency{}) || r.LatencyHistogram != nil {
		t.Errorf("%+v", r)
	}
}
