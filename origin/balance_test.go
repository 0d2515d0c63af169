package origin

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestDistribution sends requests to two real servers under each policy
// and checks each server's share.
func TestDistribution(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		weights []int
		n       int
		wantA   float64 // share of the first server
		tol     float64
		key     func(i int) Request // nil: plain GETs
		maxRun  int                 // if > 0, no server gets more picks in a row
	}{
		{name: "round_robin alternates", opts: Options{Policy: PolicyRoundRobin}, n: 400, wantA: 0.5, maxRun: 1},
		{name: "round_robin ignores weights", opts: Options{Policy: PolicyRoundRobin}, weights: []int{3, 1}, n: 400, wantA: 0.5},
		{name: "weighted_round_robin 3:1 is 75% and smooth", opts: Options{Policy: PolicyWeightedRoundRobin}, weights: []int{3, 1}, n: 4000, wantA: 0.75, tol: 0.03, maxRun: 3},
		{name: "least_connections ties go round robin", opts: Options{Policy: PolicyLeastConnections}, n: 400, wantA: 0.5, maxRun: 1},
		{name: "weighted_least_connections 3:1 is 75% when idle", opts: Options{Policy: PolicyWeightedLeastConnections}, weights: []int{3, 1}, n: 4000, wantA: 0.75, tol: 0.03, maxRun: 3},
		{name: "adaptive with unknown loads follows the weights", opts: Options{Policy: PolicyAdaptive, Load: LoadProbe{Interval: time.Hour}}, weights: []int{3, 1}, n: 400, wantA: 0.75, tol: 0.03},
		{
			name: "ip_hash 3:1 over distinct clients is about 75%", opts: Options{Policy: PolicyIPHash}, weights: []int{3, 1}, n: 4000, wantA: 0.75, tol: 0.03,
			key: func(i int) Request { return Request{ClientIP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)} },
		},
		{
			name: "ip_hash by cache key, equal weights", opts: Options{Policy: PolicyIPHash, HashKey: HashCacheKey}, n: 4000, wantA: 0.5, tol: 0.03,
			key: func(i int) Request { return Request{CacheKey: "https://demo.example/obj/" + strconv.Itoa(i)} },
		},
		{name: "ip_hash without a client address goes round robin", opts: Options{Policy: PolicyIPHash}, n: 400, wantA: 0.5, maxRun: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
			p := newTestPool(t, tt.opts, []string{a.URL, b.URL}, tt.weights...)
			last, run, longest := "", 0, 0
			for i := range tt.n {
				r := Request{}
				if tt.key != nil {
					r = tt.key(i)
				}
				id := mustGet(t, p, r)
				if id == last {
					run++
				} else {
					last, run = id, 1
				}
				longest = max(longest, run)
			}
			share := float64(a.hits.Load()) / float64(tt.n)
			if math.Abs(share-tt.wantA) > tt.tol {
				t.Errorf("first server got %.3f of %d requests, want %.2f ± %.2f (hits a=%d b=%d)", share, tt.n, tt.wantA, tt.tol, a.hits.Load(), b.hits.Load())
			}
			if tt.maxRun > 0 && longest > tt.maxRun {
				t.Errorf("one server got %d picks in a row, want at most %d", longest, tt.maxRun)
			}
		})
	}
}

// TestSmoothWeightedSequence pins nginx's smooth sequence.
func TestSmoothWeightedSequence(t *testing.T) {
	servers := []*server{
		newServer(Server{URL: mustURL(t, "http://a"), Weight: 5}, nil),
		newServer(Server{URL: mustURL(t, "http://b"), Weight: 1}, nil),
		newServer(Server{URL: mustURL(t, "http://c"), Weight: 1}, nil),
	}
	b := newSmoothWeighted(servers)
	got := ""
	for range 14 {
		got += b.pick(&pickContext{}).url.Host
	}
	if want := "aabacaa" + "aabacaa"; got != want {
		t.Errorf("sequence %s, want %s (nginx smooth weighted round robin)", got, want)
	}
}

// TestLeastConnectionsAvoidsBusyServer holds one server busy with a
// request blocked in its handler; every other request must go to the idle
// server.
func TestLeastConnectionsAvoidsBusyServer(t *testing.T) {
	for _, policy := range []Policy{PolicyLeastConnections, PolicyWeightedLeastConnections, PolicyRequestBased} {
		t.Run(string(policy), func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan string, 2)
			h := func(id string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/block" {
						entered <- id
						<-release
					}
					io.WriteString(w, id)
				}
			}
			a, b := newBackend(t, "a", h("a")), newBackend(t, "b", h("b"))
			p := newTestPool(t, Options{Policy: policy}, []string{a.URL, b.URL})
			done := make(chan error, 1)
			go func() {
				_, _, err := get(t, p, Request{Target: "/block"})
				done <- err
			}()
			busy := <-entered
			for i := range 50 {
				if id := mustGet(t, p, Request{Target: "/fast"}); id == busy {
					t.Fatalf("request %d went to the busy server %s", i, busy)
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAdaptiveFollowsLoad changes the load figure the servers report and
// checks that most requests follow the less loaded server.
func TestAdaptiveFollowsLoad(t *testing.T) {
	var loads [2]atomic.Int64 // per mille
	h := func(i int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/_origin/load" {
				fmt.Fprintf(w, "%.3f\n", float64(loads[i].Load())/1000)
				return
			}
			io.WriteString(w, "ok")
		}
	}
	a, b := newBackend(t, "a", h(0)), newBackend(t, "b", h(1))
	p := newTestPool(t, Options{Policy: PolicyAdaptive, Load: LoadProbe{Interval: 5 * time.Millisecond}}, []string{a.URL, b.URL})
	aName, bName := a.Listener.Addr().String(), b.Listener.Addr().String()

	tests := []struct {
		name       string
		loadA      int64
		loadB      int64
		wantMostly *backend
	}{
		{"a idle, b busy", 100, 900, a},
		{"a busy, b idle", 900, 100, b},
		{"b overloaded", 200, 5000, a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loads[0].Store(tt.loadA)
			loads[1].Store(tt.loadB)
			waitFor(t, "the polls to see the new loads", func() bool {
				sa, sb := serverStats(t, p, aName), serverStats(t, p, bName)
				return sa.Load != nil && sb.Load != nil &&
					*sa.Load == float64(tt.loadA)/1000 && *sb.Load == float64(tt.loadB)/1000
			})
			ha, hb := a.hits.Load(), b.hits.Load()
			const n = 400
			for range n {
				mustGet(t, p, Request{})
			}
			got := map[*backend]int64{a: a.hits.Load() - ha, b: b.hits.Load() - hb}
			if share := float64(got[tt.wantMostly]) / n; share < 0.7 {
				t.Errorf("the less loaded server got %.2f of the requests, want >= 0.7 (a=%d b=%d)", share, got[a], got[b])
			}
			other := a
			if tt.wantMostly == a {
				other = b
			}
			if got[other] == 0 {
				t.Errorf("the loaded server got nothing; it must not be starved")
			}
		})
	}
}

// TestAdaptiveLoadPollFailure checks that a server whose load cannot be
// read counts as average and that the failures are counted.
func TestAdaptiveLoadPollFailure(t *testing.T) {
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_origin/load" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
	})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_origin/load" {
			io.WriteString(w, "not a number")
		}
	})
	p := newTestPool(t, Options{Policy: PolicyAdaptive, Load: LoadProbe{Interval: 5 * time.Millisecond}}, []string{a.URL, b.URL})
	waitFor(t, "failed polls", func() bool {
		st := p.Stats()
		return st.Servers[0].LoadErrors > 0 && st.Servers[1].LoadErrors > 0
	})
	for range 100 {
		mustGet(t, p, Request{})
	}
	if a.hits.Load() != 50 {
		t.Errorf("unknown loads split %d:%d, want 50:50", a.hits.Load(), b.hits.Load())
	}
	if st := p.Stats().Servers[0]; st.Load != nil {
		t.Errorf("load %v after failed polls, want unknown", *st.Load)
	}
}

// TestIPHashConsistency checks that a key stays on its server and that a
// fourth server takes about a quarter of the keys and leaves the rest in
// place.
func TestIPHashConsistency(t *testing.T) {
	backends := make([]*backend, 4)
	urls := make([]string, 4)
	for i := range backends {
		backends[i] = newBackend(t, string(rune('a'+i)), nil)
		urls[i] = backends[i].URL
	}
	const keys = 1000
	key := func(i int) Request { return Request{ClientIP: fmt.Sprintf("198.51.%d.%d", i/256, i%256)} }
	three := newTestPool(t, Options{Policy: PolicyIPHash}, urls[:3])
	before := make([]string, keys)
	for i := range keys {
		before[i] = mustGet(t, three, key(i))
		if again := mustGet(t, three, key(i)); again != before[i] {
			t.Fatalf("key %d went to %s, then to %s", i, before[i], again)
		}
	}
	four := newTestPool(t, Options{Policy: PolicyIPHash}, urls)
	stayed := 0
	for i := range keys {
		after := mustGet(t, four, key(i))
		switch after {
		case before[i]:
			stayed++
		case "d":
		default:
			t.Errorf("key %d moved from %s to %s; keys may only move to the new server", i, before[i], after)
		}
	}
	if share := float64(stayed) / keys; share < 0.70 {
		t.Errorf("%.2f of the keys stayed in place, want >= 0.70 (about 0.75)", share)
	}

	// A server leaving (ejected) moves only its own keys.
	s := four.servers[3]
	s.mu.Lock()
	s.down = true
	s.setUpLocked()
	s.mu.Unlock()
	for i := range keys {
		if after := mustGet(t, four, key(i)); after != before[i] {
			t.Fatalf("with the fourth server out, key %d went to %s, want %s", i, after, before[i])
		}
	}
}

// TestRequestBasedAvoidsSlowServer sends requests one at a time to a fast
// and a ten times slower server under request_based. Response times are
// read from the pool's clock, which each server's handler moves by its
// service time, so every pick sees the same costs on every run, however
// loaded the machine: the slow server gets the one request that gives it
// a sample (a server without one costs nothing), then its 20ms estimate,
// which decays with a 10s time constant, stays above the fast server's
// 2ms for far longer than the run.
func TestRequestBasedAvoidsSlowServer(t *testing.T) {
	clk := newClock()
	serve := func(d time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			clk.Advance(d) // the server's service time, on the pool's clock
			io.WriteString(w, "ok")
		}
	}
	fast, slow := newBackend(t, "fast", serve(2*time.Millisecond)), newBackend(t, "slow", serve(20*time.Millisecond))
	p := newTestPool(t, Options{Policy: PolicyRequestBased, Now: clk.Now}, []string{fast.URL, slow.URL})
	const n = 400
	for range n {
		if _, _, err := get(t, p, Request{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := slow.hits.Load(); got != 1 {
		t.Errorf("the 10x slower server got %d of %d requests, want 1 (round robin would give %d)", got, n, n/2)
	}
	for _, want := range []struct {
		b      *backend
		millis float64
	}{{fast, 2}, {slow, 20}} {
		if st := serverStats(t, p, want.b.Listener.Addr().String()); st.LatencyEWMAMillis != want.millis {
			t.Errorf("%s server's latency EWMA %vms, want %vms", want.b.id, st.LatencyEWMAMillis, want.millis)
		}
	}
}

// TestLeastCostPick checks each term of request_based's cost (peak
// response time, times the requests in flight plus one, over the weight,
// the peak decaying with time) on two servers, where the two random
// choices are always both.
func TestLeastCostPick(t *testing.T) {
	t0 := newClock().Now()
	type srv struct {
		weight   int
		rtt      time.Duration // the one response-time sample; 0 for none
		ago      time.Duration // how long before the pick it was taken
		inFlight int64
		down     bool
	}
	tests := []struct {
		name string
		a, b srv
		want string // "a" or "b"
	}{
		{"the faster of two idle servers", srv{weight: 1, rtt: 20 * time.Millisecond}, srv{weight: 1, rtt: 2 * time.Millisecond}, "b"},
		{"requests in flight make the faster dearer", srv{weight: 1, rtt: 20 * time.Millisecond}, srv{weight: 1, rtt: 2 * time.Millisecond, inFlight: 10}, "a"},
		{"weight divides the cost", srv{weight: 20, rtt: 20 * time.Millisecond}, srv{weight: 1, rtt: 2 * time.Millisecond}, "a"},
		{"an old slow sample decays", srv{weight: 1, rtt: 20 * time.Millisecond, ago: 30 * time.Second}, srv{weight: 1, rtt: 2 * time.Millisecond}, "a"},
		{"a server without a sample but with requests in flight waits", srv{weight: 1, inFlight: 1}, srv{weight: 1, rtt: time.Second}, "b"},
		{"an idle server without a sample costs nothing", srv{weight: 1}, srv{weight: 1, rtt: time.Millisecond}, "a"},
		{"a server out of rotation is never chosen", srv{weight: 1, rtt: time.Millisecond, down: true}, srv{weight: 1, rtt: time.Second}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := make([]*server, 2)
			for i, sp := range []srv{tt.a, tt.b} {
				s := newServer(Server{URL: mustURL(t, fmt.Sprintf("http://%c.example", 'a'+i)), Weight: sp.weight}, nil)
				if sp.rtt > 0 {
					s.observe(sp.rtt, t0.Add(-sp.ago))
				}
				s.inFlight.Store(sp.inFlight)
				s.up.Store(!sp.down)
				servers[i] = s
			}
			b := &leastCost{servers: servers, now: func() time.Time { return t0 }}
			for range 20 { // the two choices come in either order
				if got := b.pick(&pickContext{}); got != servers[tt.want[0]-'a'] {
					t.Fatalf("picked %s, want %s.example", got.name, tt.want)
				}
			}
		})
	}
}

// TestUnknownPolicy checks the error lists the policies.
func TestUnknownPolicy(t *testing.T) {
	_, err := NewPool([]Server{{URL: mustURL(t, "http://o")}}, Options{Policy: "fastest"})
	if err == nil || err.Error() != `origin: unknown policy "fastest" (want one of round_robin, weighted_round_robin, least_connections, weighted_least_connections, adaptive, ip_hash, request_based)` {
		t.Errorf("NewPool = %v", err)
	}
}

// BenchmarkPick measures one pick per policy over 16 servers.
func BenchmarkPick(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("203.0.%d.%d", i/256, i%256)
	}
	for _, policy := range Policies() {
		b.Run(string(policy), func(b *testing.B) {
			servers := make([]Server, 16)
			for i := range servers {
				servers[i] = Server{URL: mustURL(b, fmt.Sprintf("http://10.0.0.%d:8080", i+1)), Weight: 1 + i%4}
			}
			p, err := NewPool(servers, Options{Policy: policy})
			if err != nil {
				b.Fatal(err)
			}
			p.Close() // stops the load polls; picking needs no network
			// As if the load polls had answered and requests had been timed:
			for i, s := range p.servers {
				s.loadBits.Store(math.Float64bits(float64(i)))
				s.observe(time.Duration(i+1)*time.Millisecond, time.Now())
			}
			p.loadGen.Add(1)
			c := pickContext{}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.key = keys[i&1023]
				i++
				if s, _ := p.pick(&c); s == nil {
					b.Fatal("no server")
				}
			}
		})
	}
}

// TestRendezvousByWeightClass checks that taking one logarithm per
// distinct weight chooses as scoring every server does.
func TestRendezvousByWeightClass(t *testing.T) {
	servers := make([]*server, 12)
	for i := range servers {
		servers[i] = newServer(Server{URL: mustURL(t, fmt.Sprintf("http://o%d", i)), Weight: 1 + i%3*2}, nil)
	}
	b := newRendezvous(servers)
	for i := range 5000 {
		c := &pickContext{key: strconv.Itoa(i)}
		if got, want := b.pick(c), b.pickEach(c, hashString(c.key)); got != want {
			t.Fatalf("key %d: %s, want %s", i, got.name, want.name)
		}
	}
}

// BenchmarkPickParallel measures picks from many goroutines at once: the
// policies that take a lock pay for contention here.
func BenchmarkPickParallel(b *testing.B) {
	for _, policy := range Policies() {
		b.Run(string(policy), func(b *testing.B) {
			servers := make([]Server, 16)
			for i := range servers {
				servers[i] = Server{URL: mustURL(b, fmt.Sprintf("http://10.0.0.%d:8080", i+1)), Weight: 1 + i%4}
			}
			p, err := NewPool(servers, Options{Policy: policy})
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = fmt.Sprintf("203.0.%d.%d", i/256, i%256)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c := pickContext{}
				i := 0
				for pb.Next() {
					c.key = keys[i&1023]
					i++
					if s, _ := p.pick(&c); s == nil {
						b.Error("no server")
						return
					}
				}
			})
		})
	}
}
