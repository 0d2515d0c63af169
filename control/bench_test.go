package control_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/popapi"
)

// BenchmarkPurgeAck10 measures a purge acknowledged by 10 PoP agents in
// one process, each on its own authenticated connection to an embedded
// server: from the publish to the tenth ack. It reports the p50 and p99
// of that time:
//
//	go test ./control -run '^$' -bench PurgeAck10 -benchtime 200x
func BenchmarkPurgeAck10(b *testing.B) {
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("pop%d", i))
	}
	s := startBus(b, users(names...))
	path := cdnFile(b, b.TempDir(), s.ClientURL(), names, "")
	cfg := loadCDN(b, path)
	ops := dial(b, cfg.Control, operator, "ops", "ops-pw")
	var ags []interface{ State() popapi.State }
	for _, n := range names {
		_, a := startAgent(b, cfg.Control, path, cfg, n, n, n+"-pw")
		ags = append(ags, a)
	}
	for _, a := range ags {
		waitFor(b, 5*time.Second, "agents healthy", func() bool { return a.State().Healthy })
	}
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		r, err := ops.Purge(ctx, popapi.PurgeRequest{ID: fmt.Sprintf("bench%d", i), URL: "http://demo.example/obj/x"}, names, 2*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Missing) > 0 {
			b.Fatalf("purge %d: no ack from %v", i, r.Missing)
		}
		lat = append(lat, r.Acks[len(r.Acks)-1].Latency)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
