package dnsgeo

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// labVariant loads the lab configuration with the fake PoPs' admin
// addresses, extra dns keys and a network map; drop names PoPs to leave
// out.
func labVariant(t *testing.T, admins []string, extraDNS, networks string, drop ...string) *config.Config {
	t.Helper()
	y := strings.Replace(labYAML, "%DNS%", extraDNS, 1)
	for i, a := range admins {
		y = strings.Replace(y, "%ADMIN"+string(rune('0'+i))+"%", a, 1)
	}
	for _, name := range drop {
		lines := strings.Split(y, "\n")
		for i, l := range lines {
			if strings.Contains(l, "{name: "+name+",") {
				lines = append(lines[:i], lines[i+1:]...)
				break
			}
		}
		y = strings.Join(lines, "\n")
	}
	return parseWithNetworks(t, y, networks)
}

// startReloadLab runs the lab with fake PoPs and returns a function that
// loads variants of its configuration.
func startReloadLab(t *testing.T, extraDNS string) (*testServer, []*fakePoP, func(extraDNS, networks string, drop ...string) *config.Config) {
	t.Helper()
	pops := make([]*fakePoP, 3)
	admins := make([]string, 3)
	for i := range pops {
		pops[i] = newFakePoP(t)
		admins[i] = pops[i].srv.Listener.Addr().String()
	}
	variant := func(extraDNS, networks string, drop ...string) *config.Config {
		return labVariant(t, admins, extraDNS, networks, drop...)
	}
	return startServer(t, variant(extraDNS, labNetworks)), pops, variant
}

// TestReloadUnderLoad reloads the configuration again and again while a
// client queries without pause: every query must get an answer, each from
// the old or the new configuration, never an error. Bad files are
// rejected and the old answers keep coming.
func TestReloadUnderLoad(t *testing.T) {
	ts, _, variant := startReloadLab(t, steady)
	// Frankfurt's subnet goes to prg (nearest by location) in the lab
	// map, to nrt by a PoP row in the other.
	toNRT := "198.51.100.0/24, nrt\n" + labNetworks[strings.Index(labNetworks, "\n")+1:]
	good := []*config.Config{variant(steady, toNRT), variant(steady, labNetworks)}
	want := []string{"127.0.0.13", "127.0.0.11"}
	bad := []struct {
		name string
		cfg  *config.Config
		err  string
	}{
		{"network map names an unknown PoP", variant(steady, "198.51.100.0/24, fra\n"), `unknown PoP "fra"`},
		{"network map does not parse", variant(steady, "198.51.100.0/33, prg\n"), "networks.csv:1"},
		{"listen address changed", func() *config.Config {
			c := variant(steady, labNetworks)
			c.DNS.Listen = []string{"127.0.0.1:1"}
			return c
		}(), "listen addresses cannot change on reload; restart"},
		{"admin address changed", func() *config.Config {
			c := variant(steady, labNetworks)
			c.DNS.Admin = "127.0.0.1:1"
			return c
		}(), "admin address cannot change on reload; restart"},
	}

	// gen is odd while a reload is under way and even while current is the
	// answer in force: a query that saw no reload must get current; one
	// that overlapped reloads may get either answer, and nothing else.
	var (
		gen     atomic.Int64
		current atomic.Value
		queries atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	current.Store("127.0.0.11")
	for range 2 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			m := query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				g0 := gen.Load()
				allowed := []string{current.Load().(string)}
				r, _, err := c.Exchange(m, ts.udp)
				if err != nil {
					t.Errorf("query %d failed during reloads: %v", queries.Load(), err)
					return
				}
				if g0%2 == 1 || gen.Load() != g0 {
					allowed = want
				}
				got := answerAddr(r)
				if r.Rcode != dns.RcodeSuccess || !slices.Contains(allowed, got) {
					t.Errorf("query %d: rcode %s answer %q, want one of %v", queries.Load(), dns.RcodeToString[r.Rcode], got, allowed)
					return
				}
				queries.Add(1)
			}
		})
	}
	waitFor(t, "queries flowing", func() bool { return queries.Load() > 10 })
	for i := range 20 {
		next := want[i%2]
		gen.Add(1)
		if err := ts.Reload(good[i%2]); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		current.Store(next)
		gen.Add(1)
		if got := answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))); got != next {
			t.Fatalf("after reload %d Frankfurt gets %s, want %s", i, got, next)
		}
		b := bad[i%len(bad)]
		before := queries.Load()
		if err := ts.Reload(b.cfg); err == nil || !strings.Contains(err.Error(), b.err) {
			t.Fatalf("bad reload %q: error %v, want one with %q", b.name, err, b.err)
		}
		waitFor(t, "queries answered after a rejected reload", func() bool { return queries.Load() > before+2 })
		if got := answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))); got != next {
			t.Fatalf("after bad reload %q Frankfurt gets %s, want %s (the old answer)", b.name, got, next)
		}
	}
	close(stop)
	wg.Wait()
	st := ts.Stats()
	if st.Reloads != 20 || st.ReloadsRejected != 20 {
		t.Errorf("stats count %d reloads, %d rejected; want 20 and 20", st.Reloads, st.ReloadsRejected)
	}
	if !strings.Contains(ts.logs.String(), "dns reloaded") {
		t.Errorf("no reload logged:\n%s", ts.logs)
	}
	t.Logf("%d queries answered during 40 reloads", queries.Load())
}

// TestReloadPOPs checks that a reload keeps the health of the PoPs that
// stay, stops probing and exporting removed PoPs, and starts probing
// added ones.
func TestReloadPOPs(t *testing.T) {
	ts, pops, variant := startReloadLab(t, fast)
	prg := pops[0]
	health := func(name string) *health {
		if p := ts.state.Load().popByName[name]; p != nil {
			return p.health
		}
		return nil
	}
	frankfurt := func() string {
		return answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)))
	}
	prg.set("draining")
	waitFor(t, "prg draining", func() bool { return health("prg").get() == Draining })
	checks := health("prg").checks[probeDraining].Load()

	// The same file again: prg stays out, with its figures, at once.
	if err := ts.Reload(variant(fast, labNetworks)); err != nil {
		t.Fatal(err)
	}
	if got := health("prg").get(); got != Draining {
		t.Fatalf("after reload prg is %s, want draining (health carries over)", got)
	}
	if got := frankfurt(); got != "127.0.0.12" {
		t.Errorf("after reload Frankfurt gets %s, want iad (prg is still draining)", got)
	}
	if got := health("prg").checks[probeDraining].Load(); got < checks {
		t.Errorf("prg's probe count went from %d to %d", checks, got)
	}

	// nrt leaves: its series go, and its prober stops.
	nrtHealth := health("nrt")
	if err := ts.Reload(variant(fast, "198.51.100.0/24, 50.11, 8.68, DE\n", "nrt")); err != nil {
		t.Fatal(err)
	}
	if health("nrt") != nil || len(ts.Stats().POPs) != 2 {
		t.Fatalf("nrt still in the state: %+v", ts.Stats().POPs)
	}
	_, metrics := get(t, ts.admin+"/metrics")
	if strings.Contains(metrics, `pop="nrt"`) {
		t.Errorf("/metrics still has nrt's series after it was removed")
	}
	if !strings.Contains(metrics, `outpost_dns_pop_up{pop="iad"} 1`) {
		t.Errorf("/metrics lacks iad's state:\n%s", metrics)
	}
	n := nrtHealth.checks[probePass].Load()
	waitFor(t, "prg probed again", func() bool { return health("prg").checks[probeDraining].Load() > checks+2 })
	if got := nrtHealth.checks[probePass].Load(); got > n+1 {
		t.Errorf("nrt is still probed after its removal: %d probes, then %d", n, got)
	}

	// nrt is back: a new PoP, healthy until probes say otherwise, probed.
	pops[2].set("error")
	if err := ts.Reload(variant(fast, labNetworks)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nrt probed and down", func() bool { return health("nrt").get() == Down })
	_, metrics = get(t, ts.admin+"/metrics")
	if !strings.Contains(metrics, `outpost_dns_pop_up{pop="nrt"} 0`) {
		t.Errorf("/metrics lacks the re-added nrt:\n%s", metrics)
	}
	if !strings.Contains(ts.logs.String(), "pops_added=1") || !strings.Contains(ts.logs.String(), "pops_removed=1") {
		t.Errorf("reload log lines lack the counts:\n%s", ts.logs)
	}
}

// TestReloadNotServing reloads a server that was never served and
// closes it.
func TestReloadNotServing(t *testing.T) {
	s := newTestServer(t, steady)
	cfg := labConfig(t, steady+"\n  rate_limit: {responses_per_second: 5}", nil, labNetworks)
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !s.Stats().RateLimit.Enabled {
		t.Error("rate limiting not on after the reload turned it on")
	}
	s.Close()
}
