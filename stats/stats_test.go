package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCollect runs two real PoPs (a third is down), sends them traffic and
// checks that the report sums their own figures and recomputes the ratios.
func TestCollect(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, strings.Repeat("b", 1000))
	}))
	defer origin.Close()
	var lns [][2]net.Listener
	var popsYAML strings.Builder
	for i := range 3 {
		s, _ := net.Listen("tcp", "127.0.0.1:0")
		a, _ := net.Listen("tcp", "127.0.0.1:0")
		lns = append(lns, [2]net.Listener{s, a})
		fmt.Fprintf(&popsYAML, "  - {name: p%d, location: {lat: 0, lon: 0}, listen: %q, admin: %q, drain: 0s}\n", i, s.Addr(), a.Addr())
	}
	cfg, err := config.Parse("s.yaml", []byte(fmt.Sprintf("services:\n  - name: web\n    hostnames: [web.example]\n    origin: {servers: [{url: %q}]}\npops:\n%s", origin.URL, popsYAML.String())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	var pops []*pop.PoP
	for i := range 2 {
		p, err := pop.New(cfg, fmt.Sprintf("p%d", i), pop.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		pops = append(pops, p)
		go func() { p.Serve(ctx, lns[i][0], lns[i][1]); done <- struct{}{} }()
	}
	lns[2][0].Close()
	lns[2][1].Close() // p2 is down
	defer func() {
		cancel()
		<-done
		<-done
		for _, p := range pops {
			p.Close()
		}
	}()

	// p0: 1 miss + 3 hits of one object; p1: 2 misses.
	get := func(i int, path string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+lns[i][0].Addr().String()+path, nil)
		req.Host = "web.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(0, "/a")
	waitFor(t, func() bool { return pops[0].Stats().Requests == 1 && pops[0].Stats().Cache.Items == 1 })
	for range 3 {
		get(0, "/a")
	}
	get(1, "/x")
	get(1, "/y")
	waitFor(t, func() bool { return pops[0].Stats().Requests == 4 && pops[1].Stats().Requests == 2 })

	r := Collect(context.Background(), cfg, nil)
	if down := r.Down(); len(down) != 1 || down[0] != "p2" {
		t.Errorf("down = %v, want [p2]", down)
	}
	want := Figures{Requests: 6, Hits: 3, Misses: 3, OriginFetches: 3, BytesServed: 6000, BytesFromCache: 3000, OriginBytes: 3000}
	want.Derive()
	if r.Total != want {
		t.Errorf("total %+v\nwant  %+v", r.Total, want)
	}
	if r.Total.HitRatio != 0.5 || r.Services["web"].Requests != 6 {
		t.Errorf("hit ratio %v, service %+v", r.Total.HitRatio, r.Services["web"])
	}
	var doc struct {
		PoPs  map[string]json.RawMessage `json:"pops"`
		Total Figures                    `json:"total"`
	}
	raw, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.PoPs) != 3 || !strings.Contains(string(doc.PoPs["p2"]), "error") || doc.Total != want {
		t.Errorf("JSON: %s", raw)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"p0", "p1", "p2", "down", "total", "2/3 up", "50.0%", "web", "unreachable"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
}

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}
