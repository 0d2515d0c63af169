package dnsgeo

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fast probes often, so that tests of health see changes in milliseconds.
const fast = "  health: {interval: 25ms, timeout: 25ms, rise: 2, fall: 2}"

// TestHealthFailover drives real HTTP health endpoints down, draining and
// up, and watches the answer for a client in Frankfurt move from prg (the
// nearest) to iad (the next nearest) and back.
func TestHealthFailover(t *testing.T) {
	ts, pops := startLab(t, fast)
	prg, iad, nrt := pops[0], pops[1], pops[2]
	frankfurt := func() string {
		return answerAddr(ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)))
	}
	answers := func(want string) func() bool { return func() bool { return frankfurt() == want } }
	state := func(name string) HealthState { return ts.state.Load().popByName[name].health.get() }
	const prgAddr, iadAddr = "127.0.0.11", "127.0.0.12"

	steps := []struct {
		name   string
		change func()
		want   string
		state  HealthState // prg's state after the change
	}{
		{"every PoP starts healthy", func() {}, prgAddr, Up},
		{"prg fails its probes: the next nearest answers", func() { prg.set("error") }, iadAddr, Down},
		{"prg passes again: back after rise passes", func() { prg.set("ok") }, prgAddr, Up},
		{"prg drains (503 draining): out at once", func() { prg.set("draining") }, iadAddr, Draining},
		{"prg is back from draining", func() { prg.set("ok") }, prgAddr, Up},
		{"prg's admin listener is gone (connection refused)", func() { prg.srv.Close() }, iadAddr, Down},
	}
	for _, st := range steps {
		st.change()
		waitFor(t, st.name, answers(st.want))
		waitFor(t, st.name+": state "+st.state.String(), func() bool { return state("prg") == st.state })
	}
	if ts.Stats().POPs[1].Failovers == 0 {
		t.Error("no failover answers counted for iad")
	}

	// Every PoP down: fail open, the nearest answers, and it is logged.
	iad.set("error")
	nrt.set("error")
	waitFor(t, "every PoP down", func() bool { return state("iad") == Down && state("nrt") == Down })
	if got := frankfurt(); got != prgAddr {
		t.Errorf("with every PoP down Frankfurt gets %s, want %s (fail open: the nearest)", got, prgAddr)
	}
	if ts.Stats().FailOpen == 0 {
		t.Error("no fail-open answers counted")
	}
	if !strings.Contains(ts.logs.String(), "fail open") {
		t.Errorf("fail open not logged:\n%s", ts.logs)
	}
	// One PoP back: it answers everyone.
	nrt.set("ok")
	waitFor(t, "nrt back", answers("127.0.0.13"))
	if !strings.Contains(ts.logs.String(), "fail open over") {
		t.Errorf("end of fail open not logged:\n%s", ts.logs)
	}
}

// TestHealthStateMachine checks rise and fall counts without a network.
func TestHealthStateMachine(t *testing.T) {
	s := newTestServer(t, "  health: {interval: 1h, rise: 3, fall: 2}")
	p := s.state.Load().popByName["iad"]
	seq := []struct {
		res  probeResult
		want HealthState
	}{
		{probeFail, Up}, // one failure is not enough (fall 2)
		{probePass, Up},
		{probeFail, Up},
		{probeFail, Down}, // two in a row
		{probePass, Down},
		{probePass, Down},
		{probeFail, Down}, // the run of passes is broken
		{probePass, Down},
		{probePass, Down},
		{probePass, Up}, // three in a row (rise 3)
		{probeDraining, Draining},
		{probePass, Draining},
		{probeFail, Draining}, // one failure: still out, now as draining
		{probeFail, Down},
		{probePass, Down},
		{probePass, Down},
		{probePass, Up},
	}
	for i, st := range seq {
		s.observe(p, st.res, "")
		if got := p.health.get(); got != st.want {
			t.Fatalf("after probe %d (%s): %s, want %s", i, probeResultNames[st.res], got, st.want)
		}
	}
}
