package dnsgeo

import (
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/popapi"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// frankfurtNetworks is the lab's network map with a /8 in Frankfurt, so
// that tests have thousands of subnets whose nearest PoP is prg (then
// iad, then nrt).
const frankfurtNetworks = labNetworks + "81.0.0.0/8, 50.11, 8.68, DE\n"

// newStateServer makes (but does not run: no probes) a lab server on a
// fake clock, with extra dns settings.
func newStateServer(t testing.TB, extraDNS string) (*Server, *fakeClock, *syncBuffer) {
	t.Helper()
	clk := newFakeClock()
	logs := &syncBuffer{}
	s, err := New(labConfig(t, extraDNS, nil, frankfurtNetworks), Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Now:    clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk, logs
}

// popState is a state of PoP name made at at.
func popState(name string, at time.Time, healthy bool, load float64) popapi.State {
	return popapi.State{PoP: name, Time: at, Healthy: healthy, Load: load}
}

// feedProbes feeds a PoP's probe results to s, as if its prober got them;
// unreachable says whether failures got no HTTP answer.
func feedProbes(s *Server, name string, unreachable bool, results ...probeResult) {
	p := s.state.Load().popByName[name]
	for _, r := range results {
		s.setUnreachable(p, r == probeFail && unreachable)
		s.observe(p, r, "")
	}
}

// frankfurtA decides an A query from the Frankfurt subnet of the lab's map.
func frankfurtA(s *Server) Decision {
	return s.Decide(Query{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Type: dns.TypeA})
}

// TestStatesAndProbes checks the rule that combines a PoP's states with
// its probes (states.go): each row sets up prg's probes and states, and
// the other PoPs' states, and checks prg's health, what decided it, and
// what a client in Frankfurt (nearest prg, then iad) gets.
func TestStatesAndProbes(t *testing.T) {
	type prgState struct {
		age               time.Duration // how old prg's latest state is when the row checks
		healthy, draining bool
	}
	tests := []struct {
		name        string
		state       *prgState     // prg's latest state; nil for none
		others      string        // the states of iad and nrt, made now: "", "healthy" or "unhealthy"
		probes      []probeResult // prg's probe results, last
		unreachable bool          // prg's failed probes got no HTTP answer
		want        HealthState
		by          cause
		answer      string
		failOpen    bool
	}{
		{name: "no state: the probes decide (two failures take it out)",
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Down, by: byProbes, answer: "iad"},
		{name: "no state of prg, others' states fresh: the probes decide",
			others: "healthy", probes: []probeResult{probePass}, want: Up, by: byProbes, answer: "prg"},
		{name: "a fresh healthy state outweighs probes that get no answer",
			state: &prgState{age: time.Second, healthy: true}, others: "healthy",
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Up, by: byState, answer: "prg"},
		{name: "a fresh healthy state does not outweigh /healthz answering an error",
			state: &prgState{age: time.Second, healthy: true}, others: "healthy",
			probes: []probeResult{probeFail, probeFail}, want: Down, by: byProbeOverState, answer: "iad"},
		{name: "a fresh healthy state does not outweigh /healthz saying draining",
			state: &prgState{age: time.Second, healthy: true}, others: "healthy",
			probes: []probeResult{probeDraining}, want: Draining, by: byProbeOverState, answer: "iad"},
		{name: "a fresh unhealthy state takes it out though probes pass",
			state: &prgState{age: 0, healthy: false}, others: "healthy",
			probes: []probeResult{probePass, probePass}, want: Down, by: byState, answer: "iad"},
		{name: "a fresh unhealthy state takes it out when probes cannot reach it",
			state: &prgState{age: 0, healthy: false}, others: "healthy",
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Down, by: byState, answer: "iad"},
		{name: "a fresh draining state: draining",
			state: &prgState{age: 0, healthy: true, draining: true}, others: "healthy",
			want: Draining, by: byState, answer: "iad"},
		{name: "a state exactly max_age old still counts",
			state: &prgState{age: 2 * time.Second, healthy: true}, others: "healthy",
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Up, by: byState, answer: "prg"},
		{name: "states stopped while others arrive: out, probes unreachable",
			state: &prgState{age: 2*time.Second + time.Millisecond, healthy: true}, others: "healthy",
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Down, by: byStaleState, answer: "iad"},
		{name: "states stopped while others arrive: out, though no probe failed yet",
			state: &prgState{age: 3 * time.Second, healthy: true}, others: "healthy",
			want: Down, by: byStaleState, answer: "iad"},
		{name: "states stopped, but a probe passed since: in",
			state: &prgState{age: 3 * time.Second, healthy: true}, others: "healthy",
			probes: []probeResult{probePass}, want: Up, by: byProbeAfterStaleness, answer: "prg"},
		{name: "every state stale (the control plane is not heard): the probes decide, up",
			state: &prgState{age: 3 * time.Second, healthy: true}, want: Up, by: byProbes, answer: "prg"},
		{name: "every state stale (the control plane is not heard): the probes decide, down",
			state:  &prgState{age: 3 * time.Second, healthy: true},
			probes: []probeResult{probeFail, probeFail}, unreachable: true, want: Down, by: byProbes, answer: "iad"},
		{name: "every PoP out by its state: fail open, the nearest answers",
			state: &prgState{age: 0, healthy: false}, others: "unhealthy",
			want: Down, by: byState, answer: "prg", failOpen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clk, _ := newStateServer(t, "")
			if tt.state != nil {
				st := popState("prg", clk.Now(), tt.state.healthy, 0)
				st.Draining = tt.state.draining
				s.ObserveState(st)
				clk.Add(tt.state.age)
			}
			if tt.others != "" {
				for _, name := range []string{"iad", "nrt"} {
					s.ObserveState(popState(name, clk.Now(), tt.others == "healthy", 0))
				}
			}
			feedProbes(s, "prg", tt.unreachable, tt.probes...)

			st := s.state.Load()
			got, by := st.status(st.popByName["prg"], s.moment(st))
			if got != tt.want || by != tt.by {
				t.Errorf("prg is %s by %s, want %s by %s", got, by, tt.want, tt.by)
			}
			d := frankfurtA(s)
			if d.POP != tt.answer || d.FailOpen != tt.failOpen {
				t.Errorf("Frankfurt gets %s (fail open %v), want %s (fail open %v); reasons:\n%s",
					d.POP, d.FailOpen, tt.answer, tt.failOpen, strings.Join(d.Reasons, "\n"))
			}
			if ps := s.Stats().POPs[0]; ps.State != tt.want || ps.StateBy != tt.by.String() {
				t.Errorf("/stats: prg %s by %q, want %s by %q", ps.State, ps.StateBy, tt.want, tt.by)
			}
		})
	}
}

// TestStatesFailoverWithinMaxAge kills prg (its states stop) while iad and
// nrt keep publishing every second, on a server whose probes cannot reach
// any PoP: prg answers while its last state is at most max_age (2s) old
// and not a moment longer, the change is logged, and prg's next state
// brings it back at once.
func TestStatesFailoverWithinMaxAge(t *testing.T) {
	s, clk, logs := newStateServer(t, "")
	for _, name := range popNames {
		feedProbes(s, name, true, probeFail, probeFail)
	}
	publish := func(names ...string) {
		for _, name := range names {
			s.ObserveState(popState(name, clk.Now(), true, 0))
		}
	}
	if d := frankfurtA(s); d.POP != "prg" || !d.FailOpen {
		t.Fatalf("before any state: %s (fail open %v), want prg by fail open", d.POP, d.FailOpen)
	}
	for range 3 {
		publish("prg", "iad", "nrt")
		if d := frankfurtA(s); d.POP != "prg" || d.FailOpen {
			t.Fatalf("with states: %s (fail open %v), want prg", d.POP, d.FailOpen)
		}
		clk.Add(time.Second)
	}
	clk.Add(-time.Second)
	killed := clk.Now() // prg's last state
	for step := time.Duration(0); step <= 4*time.Second; step += 250 * time.Millisecond {
		if step > 0 {
			clk.Add(250 * time.Millisecond)
		}
		if step%time.Second == 0 && step > 0 {
			publish("iad", "nrt")
		}
		s.settleAll()
		want := "prg"
		if clk.Now().Sub(killed) > 2*time.Second {
			want = "iad"
		}
		if d := frankfurtA(s); d.POP != want {
			t.Fatalf("%s after prg's last state: %s, want %s; reasons:\n%s", step, d.POP, want, strings.Join(d.Reasons, "\n"))
		}
	}
	if n := strings.Count(logs.String(), `msg="pop down: answers go to other PoPs" pop=prg by="states stopped"`); n != 1 {
		t.Errorf("%d logs of prg going down by its states, want 1:\n%s", n, logs)
	}
	logged := len(logs.String())
	publish("prg", "iad", "nrt")
	if d := frankfurtA(s); d.POP != "prg" {
		t.Errorf("prg's state is back: %s, want prg", d.POP)
	}
	if !strings.Contains(logs.String()[logged:], `msg="pop up" pop=prg was=down by=state`) {
		t.Errorf("prg coming back not logged:\n%s", logs)
	}
}

// TestObserveStateIgnores checks which states ObserveState drops, and
// that it counts each by what was wrong with it.
func TestObserveStateIgnores(t *testing.T) {
	tests := []struct {
		name   string
		prior  bool // prg's state of one second ago arrives first
		state  func(now time.Time) popapi.State
		result stateResult
	}{
		{"a fresh state is accepted", false, func(now time.Time) popapi.State { return popState("prg", now, true, 0.5) }, stateAccepted},
		{"a newer state is accepted", true, func(now time.Time) popapi.State { return popState("prg", now, true, 0.5) }, stateAccepted},
		{"a state max_age old is accepted", false, func(now time.Time) popapi.State { return popState("prg", now.Add(-2*time.Second), true, 0) }, stateAccepted},
		{"a state within the skew from the future is accepted", false, func(now time.Time) popapi.State {
			return popState("prg", now.Add(500*time.Millisecond), true, 0)
		}, stateAccepted},
		{"a PoP the configuration lacks", false, func(now time.Time) popapi.State { return popState("fra", now, true, 0) }, stateUnknownPOP},
		{"a PoP named in another letter case is another PoP", false, func(now time.Time) popapi.State { return popState("PRG", now, true, 0) }, stateUnknownPOP},
		{"older than max_age", false, func(now time.Time) popapi.State {
			return popState("prg", now.Add(-2*time.Second-time.Nanosecond), true, 0)
		}, stateStale},
		{"without a time", false, func(time.Time) popapi.State { return popState("prg", time.Time{}, true, 0) }, stateStale},
		{"further in the future than the skew", false, func(now time.Time) popapi.State {
			return popState("prg", now.Add(500*time.Millisecond+time.Nanosecond), true, 0)
		}, stateFuture},
		{"not newer than the latest (a duplicate)", true, func(now time.Time) popapi.State { return popState("prg", now.Add(-time.Second), true, 0) }, stateReordered},
		{"older than the latest (out of order)", true, func(now time.Time) popapi.State {
			return popState("prg", now.Add(-1500*time.Millisecond), true, 0)
		}, stateReordered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clk, _ := newStateServer(t, "")
			prg := s.state.Load().popByName["prg"].report
			if tt.prior {
				s.ObserveState(popState("prg", clk.Now().Add(-time.Second), true, 0))
			}
			before := prg.at.Load()
			was := s.metrics.states[tt.result].Load()
			st := tt.state(clk.Now())
			s.ObserveState(st)
			if got := s.metrics.states[tt.result].Load() - was; got != 1 {
				t.Errorf("outpost_dns_states_total{result=%q} went up by %d, want 1", stateResultNames[tt.result], got)
			}
			total := uint64(0)
			for r := range numStateResults {
				total += s.metrics.states[r].Load()
			}
			if want := uint64(1 + b2i(tt.prior)); total != want {
				t.Errorf("%d states counted, want %d", total, want)
			}
			if changed, want := prg.at.Load() != before, tt.result == stateAccepted; changed != want {
				t.Errorf("prg's latest state changed: %v, want %v", changed, want)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStatesRouteWithoutProbes runs a server whose probes reach no PoP
// (nothing listens on the admin addresses), feeds it states, and asks it
// over UDP: the states route, the PoP whose states stop is failed over
// within max_age, and /stats and /metrics say so.
func TestStatesRouteWithoutProbes(t *testing.T) {
	clk := newFakeClock()
	ts := startServerWith(t, labConfig(t, fast, nil, labNetworks), Options{Now: clk.Now})
	for _, name := range popNames {
		waitFor(t, name+"'s probes fail", func() bool {
			return ts.state.Load().popByName[name].health.get() == Down
		})
	}
	frankfurt := func() string {
		return answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)))
	}
	publish := func(names ...string) {
		for _, name := range names {
			ts.ObserveState(popState(name, clk.Now(), true, 0))
		}
	}
	if got := frankfurt(); got != "127.0.0.11" {
		t.Fatalf("every PoP down by its probes: %s, want 127.0.0.11 (fail open)", got)
	}
	failOpen := ts.Stats().FailOpen
	publish("prg", "iad", "nrt")
	if got := frankfurt(); got != "127.0.0.11" {
		t.Fatalf("states say every PoP is healthy: %s, want prg", got)
	}
	if ts.Stats().FailOpen != failOpen {
		t.Error("an answer with fresh healthy states counted as fail open")
	}
	clk.Add(time.Second)
	publish("iad", "nrt")
	clk.Add(time.Second + time.Millisecond)
	publish("iad", "nrt")
	if got := frankfurt(); got != "127.0.0.12" {
		t.Fatalf("prg's states stopped 2s ago: %s, want iad", got)
	}

	st := ts.Stats()
	if p := st.POPs[0]; p.State != Down || p.StateBy != "states stopped" || p.Probe != Down || p.Control == nil || p.Control.Fresh {
		t.Errorf("/stats prg: %+v (control %+v)", p, p.Control)
	}
	if p := st.POPs[1]; p.State != Up || p.StateBy != "state" || p.Control == nil || !p.Control.Fresh || p.Failovers == 0 {
		t.Errorf("/stats iad: %+v (control %+v)", p, p.Control)
	}
	if st.States["accepted"] != 7 {
		t.Errorf("/stats states: %v, want 7 accepted", st.States)
	}
	resp, err := http.Get(ts.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`outpost_dns_states_total{result="accepted"} 7`,
		`outpost_dns_pop_up{pop="prg"} 0`,
		`outpost_dns_pop_up{pop="iad"} 1`,
		`outpost_dns_pop_state_age_seconds{pop="prg"} 2.001`,
		`outpost_dns_pop_load{pop="iad"} 0`,
		`outpost_dns_pop_shed_share{pop="prg"} 0`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if strings.Contains(string(body), `outpost_dns_pop_load{pop="prg"}`) {
		t.Error("/metrics has a load for prg, whose state is stale")
	}
}

// TestObserveStateConcurrent publishes states of every PoP from several
// goroutines while others answer queries, explain and read /stats: the
// race detector checks it; the answers must stay those of a PoP.
func TestObserveStateConcurrent(t *testing.T) {
	s, clk, _ := newStateServer(t, "")
	pkt := mustPack(t, query("demo.cdn.example.", dns.TypeA, "81.0.7.0/24", 0))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				clk.Add(time.Millisecond)
				name := popNames[(g+i)%len(popNames)]
				s.ObserveState(popapi.State{PoP: name, Time: clk.Now(), Healthy: i%7 != 0, Load: float64(i%10) / 5})
			}
		})
		wg.Go(func() {
			w := newUDPWorkerBench()
			for range 300 {
				if !w.serve(s, pkt) {
					t.Error("no reply")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			s.Stats()
			s.Explain(Query{Subnet: netip.MustParsePrefix("81.0.7.0/24"), Type: dns.TypeA}, true)
			s.settleAll()
		}
	})
	wg.Wait()
	if d := s.Decide(Query{Subnet: netip.MustParsePrefix("81.0.7.0/24"), Type: dns.TypeA}); d.POP == "" {
		t.Error("no PoP answers")
	}
}

// TestStatesSurviveReload checks that a reload keeps the PoPs' latest
// states and shed shares (like their health), so that a reload neither
// brings back a PoP whose states stopped nor resets load shedding.
func TestStatesSurviveReload(t *testing.T) {
	s, clk, _ := newStateServer(t, fastShed)
	loads(s, clk, 11, 0.95, -1) // prg sheds 20%
	feedProbes(s, "nrt", true, probeFail, probeFail)
	if err := s.Reload(labConfig(t, fastShed, nil, frankfurtNetworks)); err != nil {
		t.Fatal(err)
	}
	st := s.state.Load()
	if got := shareOf(s, "prg"); !near(got, 0.2) {
		t.Errorf("prg's share after the reload: %g, want 0.2", got)
	}
	if h, by := st.status(st.popByName["nrt"], s.moment(st)); h != Up || by != byState {
		t.Errorf("nrt after the reload: %s by %s, want up by its state", h, by)
	}
}
