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
	"github.com/outpost-cdn/outpost/popapi"
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
	// A PoP adds a request's bytes just after its result: the figures
	// have settled when every request is counted and two reads in a row
	// agree.
	var last [2]popapi.Figures
	waitFor(t, func() bool {
		a, b := pops[0].Stats().Figures, pops[1].Stats().Figures
		settled := a.Requests == 4 && b.Requests == 2 && a == last[0] && b == last[1]
		last = [2]popapi.Figures{a, b}
		return settled
	})

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

// TestTableTiers checks the table of a CDN with a PoP on a disk tier: the
// memory and disk hit ratio columns, "-" where a PoP or service has no
// tier figures, and a row per cache directory; a CDN without one keeps the
// table it had.
func TestTableTiers(t *testing.T) {
	disk := Figures{Requests: 10, Hits: 8, Misses: 2, MemoryHits: 6, DiskHits: 2}
	disk.Derive()
	plain := Figures{Requests: 10, Hits: 5, Misses: 5}
	plain.Derive()
	r := &Report{
		PoPs: []PoP{
			{Name: "prg", Figures: disk, Disks: []popapi.DiskStats{{Path: "/var/cache/outpost", Healthy: true, Items: 3, Bytes: 3 << 20, MaxBytes: 12 << 20,
				BytesWritten: 5 << 20, Load: popapi.LoadStats{Scanned: 3, Loaded: 3, Done: true, Seconds: 1.25}}}},
			{Name: "fra", Figures: plain},
		},
		Services: map[string]Figures{"web": plain},
	}
	r.Total = Figures{Requests: 20, Hits: 13, Misses: 7, MemoryHits: 11, DiskHits: 2} // as Collect sums them
	r.Total.Derive()
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	lines := strings.Split(table, "\n")
	tests := []struct {
		name, line string
		want       []string
	}{
		{"header", lines[0], []string{"hit ratio", "memory hits", "disk hits", "byte hit ratio"}},
		{"the PoP with a disk: 80% = 60% + 20%", lines[1], []string{"prg", "80.0%", "60.0%", "20.0%"}},
		{"a PoP without one", lines[2], []string{"fra", "50.0%", "-  "}},
		{"total: 13 hits of 20, fra's 5 in memory", lines[3], []string{"total", "65.0%", "55.0%", "10.0%"}},
		{"the directory", table[strings.Index(table, "disk  state"):], []string{"/var/cache/outpost", "ok", "3.0MiB", "12.0MiB", "25.0%", "5.0MiB", "done 1.2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.want {
				if !strings.Contains(tt.line, s) {
					t.Errorf("%q lacks %q\n%s", tt.line, s, table)
				}
			}
		})
	}

	plainOnly := &Report{PoPs: []PoP{{Name: "fra", Figures: plain}}, Services: map[string]Figures{}, Total: plain}
	b.Reset()
	if err := plainOnly.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "disk") || strings.Contains(b.String(), "memory hits") {
		t.Errorf("a CDN without a disk tier shows tier columns:\n%s", b.String())
	}
}
