package dnsgeo

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// fastShed makes the shed share move 2 points a second, so that the
// numbers of the load tests are round (the default follows dns.ttl).
const fastShed = "  load_shedding: {change_per_second: 0.02}"

// numSubnets is how many /24s of Frankfurt's /8 the load tests ask about.
const numSubnets = 1024

// frankfurtSubnet is the i-th /24 of 81.0.0.0/8 (Frankfurt in
// frankfurtNetworks: nearest prg, then iad).
func frankfurtSubnet(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{81, byte(i >> 8), byte(i), 0}), 24)
}

// loads publishes a state of every PoP each second for the given number
// of seconds, prg at prgLoad and the others at 0.3 (or others, when not
// negative), moving the clock one second before each.
func loads(s *Server, clk *fakeClock, seconds int, prgLoad, others float64) {
	if others < 0 {
		others = 0.3
	}
	for range seconds {
		clk.Add(time.Second)
		for _, name := range popNames {
			load := others
			if name == "prg" {
				load = prgLoad
			}
			s.ObserveState(popState(name, clk.Now(), true, load))
		}
	}
}

// shed returns, for each Frankfurt subnet, the PoP it gets; it fails the
// test when a shed subnet goes anywhere but iad, or a kept one anywhere
// but prg.
func shed(t *testing.T, s *Server) []bool {
	t.Helper()
	out := make([]bool, numSubnets)
	for i := range out {
		d := s.Decide(Query{Subnet: frankfurtSubnet(i), Type: dns.TypeA})
		switch {
		case d.Shed && d.POP == "iad" && d.Shedding == "prg":
			out[i] = true
		case !d.Shed && d.POP == "prg":
		default:
			t.Fatalf("%s: %s (shed %v by %q); reasons:\n%s", frankfurtSubnet(i), d.POP, d.Shed, d.Shedding, strings.Join(d.Reasons, "\n"))
		}
	}
	return out
}

func fraction(moved []bool) float64 {
	n := 0
	for _, m := range moved {
		if m {
			n++
		}
	}
	return float64(n) / float64(len(moved))
}

// shareOf returns prg's shed share now.
func shareOf(s *Server, name string) float64 {
	st := s.state.Load()
	share, _ := st.shedShare(st.popByName[name], s.moment(st))
	return share
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestLoadShedding checks load-aware routing with the default settings
// but a faster change (threshold 0.8, release 0.7, 0.02 a second, at most
// half): each row
// drives prg's load over time and checks its shed share and which
// Frankfurt subnets move to iad, the next nearest.
func TestLoadShedding(t *testing.T) {
	t.Run("the share grows by change_per_second while load stays above the threshold", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 1, 0.95, -1) // the first state starts the clock: no share yet
		if got := shareOf(s, "prg"); got != 0 {
			t.Fatalf("share after the first state: %g, want 0", got)
		}
		for i := 1; i <= 10; i++ {
			loads(s, clk, 1, 0.95, -1)
			if got, want := shareOf(s, "prg"), 0.02*float64(i); !near(got, want) {
				t.Fatalf("after %ds above the threshold: share %g, want %g", i, got, want)
			}
		}
		if f := fraction(shed(t, s)); math.Abs(f-0.2) > 0.04 {
			t.Errorf("%.3f of the subnets moved, want about 0.2", f)
		}
	})
	t.Run("the share stops at max_share", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 60, 3, -1)
		if got := shareOf(s, "prg"); got != 0.5 {
			t.Errorf("share %g, want 0.5", got)
		}
	})
	t.Run("a growing share only adds subnets, and each keeps its answer while it holds", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 6, 0.95, -1)
		at10 := shed(t, s)
		if again := shed(t, s); fmt.Sprint(again) != fmt.Sprint(at10) {
			t.Error("the same subnets asked again got other answers")
		}
		loads(s, clk, 5, 0.95, -1)
		at20 := shed(t, s)
		for i := range at10 {
			if at10[i] && !at20[i] {
				t.Fatalf("%s was shed at 10%% but not at 20%%", frankfurtSubnet(i))
			}
		}
		if f10, f20 := fraction(at10), fraction(at20); f10 >= f20 || f10 == 0 {
			t.Errorf("shed %.3f at 10%%, %.3f at 20%%: want a growing share", f10, f20)
		}
	})
	t.Run("shed users come back as load stays below release", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 11, 0.95, -1) // 20%
		at20 := shed(t, s)
		loads(s, clk, 5, 0.5, -1)
		if got := shareOf(s, "prg"); !near(got, 0.1) {
			t.Fatalf("after 5s below release: share %g, want 0.1", got)
		}
		at10 := shed(t, s)
		for i := range at10 {
			if at10[i] && !at20[i] {
				t.Fatalf("%s was shed at 10%% on the way down but not at 20%%", frankfurtSubnet(i))
			}
		}
		loads(s, clk, 5, 0.5, -1)
		if got := shareOf(s, "prg"); got != 0 {
			t.Fatalf("after 10s below release: share %g, want 0", got)
		}
		if f := fraction(shed(t, s)); f != 0 {
			t.Errorf("%.3f of the subnets still shed", f)
		}
	})
	t.Run("load between release and threshold holds the share", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 11, 0.95, -1)
		before := shed(t, s)
		for _, load := range []float64{0.79, 0.71, 0.8, 0.75, 0.7} {
			loads(s, clk, 3, load, -1)
			if got := shareOf(s, "prg"); !near(got, 0.2) {
				t.Fatalf("at load %g: share %g, want 0.2 held", load, got)
			}
		}
		if after := shed(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Error("answers changed while the share held")
		}
	})
	t.Run("load oscillating around the threshold moves each subnet at most once", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		changes := make([]int, numSubnets)
		last := shed(t, s)
		prev := 0.0
		for i := range 40 {
			load := 0.75
			if i%2 == 0 {
				load = 0.85
			}
			loads(s, clk, 1, load, -1)
			share := shareOf(s, "prg")
			if share < prev {
				t.Fatalf("second %d: the share fell from %g to %g at load %g", i, prev, share, load)
			}
			prev = share
			now := shed(t, s)
			for j := range now {
				if now[j] != last[j] {
					changes[j]++
				}
			}
			last = now
		}
		moved := 0
		for j, c := range changes {
			if c > 1 {
				t.Fatalf("%s changed PoP %d times", frankfurtSubnet(j), c)
			}
			moved += c
		}
		if moved == 0 {
			t.Error("no subnet moved: the load above the threshold shed nothing")
		}
	})
	t.Run("no other PoP with room: the client keeps its PoP", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 11, 0.95, 0.95) // every PoP sheds
		for i := range 256 {
			d := s.Decide(Query{Subnet: frankfurtSubnet(i), Type: dns.TypeA})
			if d.POP != "prg" || d.Shed || d.Shedding != "prg" {
				t.Fatalf("%s: %s (shed %v, shedding %q), want prg kept", frankfurtSubnet(i), d.POP, d.Shed, d.Shedding)
			}
		}
	})
	t.Run("states that stopped everywhere shed nothing", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 11, 0.95, -1)
		clk.Add(2*time.Second + time.Millisecond)
		if f := fraction(shed(t, s)); f != 0 {
			t.Errorf("%.3f of the subnets shed on stale states", f)
		}
		if d := s.Decide(Query{Subnet: frankfurtSubnet(1), Type: dns.TypeA}); d.Shedding != "" {
			t.Errorf("shedding %q on stale states", d.Shedding)
		}
	})
	t.Run("a pause in the states longer than max_age starts the share afresh", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 11, 0.95, -1)
		clk.Add(10 * time.Second)
		loads(s, clk, 1, 0.95, -1)
		if got := shareOf(s, "prg"); got != 0 {
			t.Errorf("share after a 10s pause: %g, want 0", got)
		}
	})
	t.Run("max_share 0 turns shedding off", func(t *testing.T) {
		s, clk, _ := newStateServer(t, "  load_shedding: {max_share: 0}")
		loads(s, clk, 30, 2, -1)
		if got := shareOf(s, "prg"); got != 0 {
			t.Errorf("share %g, want 0", got)
		}
		if f := fraction(shed(t, s)); f != 0 {
			t.Errorf("%.3f shed", f)
		}
	})
	t.Run("settings: a faster change and a lower cap", func(t *testing.T) {
		s, clk, _ := newStateServer(t, "  load_shedding: {threshold: 0.5, change_per_second: 0.1, max_share: 0.25}")
		loads(s, clk, 2, 0.6, -1)
		if got := shareOf(s, "prg"); !near(got, 0.1) {
			t.Errorf("share after 1s at 0.6: %g, want 0.1", got)
		}
		loads(s, clk, 5, 0.6, -1)
		if got := shareOf(s, "prg"); got != 0.25 {
			t.Errorf("share after 6s: %g, want 0.25", got)
		}
	})
}

// TestLoadSheddingAnswers checks what shedding does to answers beyond the
// PoP: the ECS scope, the fallback order, the counters, and answers over
// the query path.
func TestLoadSheddingAnswers(t *testing.T) {
	t.Run("the ECS scope narrows to the hashed /24 while the PoP sheds", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		q := Query{Subnet: frankfurtSubnet(5), Type: dns.TypeA}
		if d := s.Decide(q); d.Scope != 8 {
			t.Fatalf("scope before shedding: /%d, want /8 (the map's network)", d.Scope)
		}
		loads(s, clk, 3, 0.95, -1)
		if d := s.Decide(q); d.Scope != 24 || d.Shedding != "prg" {
			t.Errorf("scope while prg sheds: /%d (shedding %q), want /24", d.Scope, d.Shedding)
		}
	})
	t.Run("clients no locator places are shed in the fallback order", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed+"\n  fallback: [prg, nrt, iad]")
		loads(s, clk, 26, 2, -1) // 50%
		moved := 0
		for i := range 512 {
			sub := netip.PrefixFrom(netip.AddrFrom4([4]byte{8, 8, byte(i >> 8), byte(i)}), 24).Masked()
			d := s.Decide(Query{Subnet: sub, Type: dns.TypeA})
			switch {
			case d.By != byFallback:
				t.Fatalf("%s placed by %s", sub, d.By)
			case d.Shed && d.POP == "nrt":
				moved++
			case d.Shed || d.POP != "prg":
				t.Fatalf("%s: %s (shed %v), want prg or nrt, the next in the fallback order", sub, d.POP, d.Shed)
			}
		}
		if moved < 200 || moved > 312 {
			t.Errorf("%d of 512 unplaced subnets shed, want about half", moved)
		}
	})
	t.Run("answers count shed answers under the PoP that shed them", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 26, 2, -1)
		w := newUDPWorkerBench()
		for i := range 64 {
			m := query("demo.cdn.example.", dns.TypeA, frankfurtSubnet(i).String(), 0)
			if !w.serve(s, mustPack(t, m)) {
				t.Fatal("no reply")
			}
		}
		st := s.Stats()
		if st.POPs[0].ShedAnswers == 0 || st.POPs[0].ShedAnswers != st.POPs[1].Answers {
			t.Errorf("prg shed %d answers, iad gave %d: want the same, above 0", st.POPs[0].ShedAnswers, st.POPs[1].Answers)
		}
		if c := st.POPs[0].Control; c == nil || c.Load != 2 || c.ShedShare != 0.5 {
			t.Errorf("/stats prg control: %+v", c)
		}
	})
}

// TestExplainLoadShedding checks that explanations say when load changed
// an answer, and when it did not.
func TestExplainLoadShedding(t *testing.T) {
	s, clk, _ := newStateServer(t, fastShed)
	loads(s, clk, 11, 0.95, -1) // prg sheds 20%
	moved := shed(t, s)
	first := func(want bool) netip.Prefix {
		for i, m := range moved {
			if m == want {
				return frankfurtSubnet(i)
			}
		}
		t.Fatalf("no subnet with shed %v", want)
		return netip.Prefix{}
	}
	tests := []struct {
		name   string
		client netip.Prefix
		pop    string
		moved  bool
		lines  []string // substrings of the text, in order
	}{
		{"a shed client: the next nearest answers", first(true), "iad", true, []string{
			"answer: iad\n", "health: probes and PoP states from the control plane",
			"load: prg is at 95% of capacity (threshold 80%) and sheds 20% of its users; this client is among them: iad answers",
			"prg", "(by state, load 0.95, sheds 20%)", "iad", "(by state, load 0.30)  <- answer",
			"reasons:", "prg sheds 20% of its users (load 0.95, threshold 0.80); subnet 81.", "is among them", "iad, the next nearest healthy PoP with room, answers"}},
		{"a client that keeps its PoP", first(false), "prg", false, []string{
			"answer: prg\n", "load: prg is at 95% of capacity (threshold 80%) and sheds 20% of its users; this client is not among them",
			"prg sheds 20% of its users", "is not among them"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.Explain(Query{Subnet: tt.client}, true)
			if e.POP != tt.pop || e.LoadShedding == nil || e.LoadShedding.Moved != tt.moved || e.LoadShedding.POP != "prg" ||
				e.LoadShedding.Load != 0.95 || e.LoadShedding.Share != 0.2 || e.LoadShedding.Threshold != 0.8 || !e.States {
				t.Errorf("explanation: pop %s, states %v, load shedding %+v", e.POP, e.States, e.LoadShedding)
			}
			var b bytes.Buffer
			if err := e.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			text, at := b.String(), 0
			for _, l := range tt.lines {
				i := strings.Index(text[at:], l)
				if i < 0 {
					t.Fatalf("text lacks %q (in order):\n%s", l, text)
				}
				at += i + len(l)
			}
		})
	}
	t.Run("no shedding: no load line", func(t *testing.T) {
		s, clk, _ := newStateServer(t, fastShed)
		loads(s, clk, 3, 0.5, -1)
		e := s.Explain(Query{Subnet: frankfurtSubnet(0)}, true)
		var b bytes.Buffer
		e.WriteText(&b)
		if e.LoadShedding != nil || strings.Contains(b.String(), "load: ") {
			t.Errorf("load shedding explained without any:\n%s", b.String())
		}
	})
}

// TestLoadSheddingSettles runs the shedding rule against a model of the
// world it steers: each second the PoP's load is its unshed load times
// the share of users not shed, where resolvers hold answers for up to
// lag seconds (the shed share users see is the average over that window),
// and states arrive delay seconds late. With the default change per
// second the loop settles inside the band; 0.02 a second against a 30s
// TTL swings between release and threshold for ever, which is why the
// default follows dns.ttl.
func TestLoadSheddingSettles(t *testing.T) {
	tests := []struct {
		name   string
		ttl    time.Duration
		change float64 // 0: the default for ttl
		lag    float64 // how long resolvers hold answers, in TTLs
		load   float64 // unshed
		steady bool
	}{
		{"default, 30s TTL, 10% over capacity", 30 * time.Second, 0, 1, 0.9, true},
		{"default, 30s TTL, resolvers holding answers twice as long", 30 * time.Second, 0, 2, 1.2, true},
		{"default, 5s TTL, 30% over", 5 * time.Second, 0, 1.5, 1.3, true},
		{"default, 1s TTL", time.Second, 0, 2, 1.1, true},
		{"default, 5m TTL", 5 * time.Minute, 0, 1, 1.1, true},
		{"0.02 a second with a 30s TTL swings", 30 * time.Second, 0.02, 1, 0.9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			change := tt.change
			if change == 0 {
				change = config.DefaultShedChange(tt.ttl)
			}
			sh := newShedding(config.LoadShedding{Threshold: 0.8, Release: 0.7, ChangePerSecond: change, MaxShare: 0.5})
			const delay = 2 // seconds between a load and the state that carries it
			window := max(int(tt.ttl.Seconds()*tt.lag), 1)
			shares := make([]float64, window) // the share of each of the last window seconds
			var loads []float64
			share := 0.0
			steps := max(4000, 60*window)
			lo, hi := math.Inf(1), math.Inf(-1)
			for i := range steps {
				seen := 0.0
				for _, s := range shares[len(shares)-window:] {
					seen += s
				}
				loads = append(loads, tt.load*(1-seen/float64(window)))
				if i >= delay {
					share = sh.next(share, loads[i-delay], int64(time.Second))
				}
				shares = append(shares, share)
				if i > steps/2 {
					lo, hi = min(lo, loads[i]), max(hi, loads[i])
				}
			}
			steady := hi-lo < 0.02 && hi <= 0.8+1e-9 && lo >= 0.7-0.05
			if steady != tt.steady {
				t.Errorf("change %g a second: load %.3f..%.3f in the second half, steady %v, want %v", change, lo, hi, steady, tt.steady)
			}
		})
	}
}
