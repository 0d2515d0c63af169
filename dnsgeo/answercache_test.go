package dnsgeo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// cacheQueries is the differential tests' table: every record type of the
// test zones at names of every kind, ECS from IPv4, IPv6 and IPv4-mapped
// subnets (located, unknown, private, source prefix 0, wider and
// narrower than the map's rows), DO on and off, and EDNS payload sizes
// from none to 4096.
func cacheQueries(t testing.TB) [][]byte {
	names := []string{"demo.cdn.example.", "img.eu.cdn.example.", "other.example.", "cdn.example.",
		"ns1.cdn.example.", "api.cdn.example.", "www.cdn.example.", "alias.cdn.example.", "ext.cdn.example.",
		"ns1.sub.cdn.example.", "x.sub.cdn.example.", "sub.cdn.example.", "nope.cdn.example.", "long.cdn.example."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeSOA, dns.TypeNS, dns.TypeTXT, dns.TypeMX,
		dns.TypeCAA, dns.TypeCNAME, dns.TypeDS, dns.TypeDNSKEY}
	subnets := []string{"", "198.51.100.0/24", "192.0.0.0/16", "192.0.2.128/25", "203.0.113.0/24", "8.8.8.0/24",
		"10.9.0.0/24", "10.1.0.0/16", "0.0.0.0/0", "2001:db8:1::/48", "2001:db8:1:2::/56", "2a00:1450::/32",
		"81.0.7.0/24", "81.3.0.0/24", "81.200.9.0/24", "mapped", "mapped/96", "mapped/80"}
	var pkts [][]byte
	for _, name := range names {
		for _, qt := range types {
			for _, sub := range subnets {
				for _, size := range []uint16{0, 512, 1232, 4096} {
					for _, do := range []bool{false, true} {
						if size == 0 && (do || sub != "") {
							continue // DO and ECS need an OPT record
						}
						var m *dns.Msg
						if strings.HasPrefix(sub, "mapped") {
							bits, addr := uint8(120), "::ffff:203.0.113.0"
							switch sub {
							case "mapped/96":
								bits, addr = 96, "::ffff:0.0.0.0"
							case "mapped/80":
								bits, addr = 80, "::"
							}
							m = query(name, qt, "", size)
							m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET,
								Family: 2, SourceNetmask: bits, Address: net.ParseIP(addr)})
						} else {
							m = query(name, qt, sub, size)
						}
						if size > 0 {
							m.IsEdns0().SetUDPSize(size)
						}
						if do {
							m.IsEdns0().SetDo()
						}
						pkts = append(pkts, mustPack(t, m))
					}
				}
			}
		}
	}
	return pkts
}

// withCase returns pkt with a new ID and its question name's letters in
// random case (0x20), as resolvers send them.
func withCase(pkt []byte, rng *rand.Rand) []byte {
	p := bytes.Clone(pkt)
	p[0], p[1] = byte(rng.Uint32()), byte(rng.Uint32())
	for off := 12; off < len(p) && p[off] != 0; off += int(p[off]) + 1 {
		for i := off + 1; i <= off+int(p[off]) && i < len(p); i++ {
			if c := p[i] | 0x20; 'a' <= c && c <= 'z' && rng.IntN(2) == 0 {
				p[i] ^= 0x20
			}
		}
	}
	return p
}

// cachePair is a server with the answer cache and its twin without it,
// on one clock; the same events go to both.
type cachePair struct {
	cached, plain *Server
	clk           *fakeClock
}

func newCachePair(t *testing.T, extraDNS string) cachePair {
	t.Helper()
	clk := newFakeClock()
	p := cachePair{clk: clk}
	cfg := labConfig(t, extraDNS, nil, frankfurtNetworks)
	for _, dst := range []**Server{&p.cached, &p.plain} {
		entries := 0
		if dst == &p.plain {
			entries = -1
		}
		s, err := New(cfg, Options{Logger: discard, Now: clk.Now, AnswerCacheEntries: entries, Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		*dst = s
	}
	if r := p.cached.state.Load().rrl; r != nil {
		p.plain.state.Load().rrl.seed = r.seed // the same accounts in the same buckets
	}
	return p
}

func (p cachePair) each(f func(s *Server)) { f(p.cached); f(p.plain) }

// TestAnswerCacheMatchesUncached sends the same queries, and the same PoP
// health and state events, to a server with the answer cache and one
// without: every reply must be byte for byte the same, whether it came
// from the cache or not, as states change between the rounds (and time
// passes, so that states go stale with no event), with the rate limit
// dropping and slipping replies.
func TestAnswerCacheMatchesUncached(t *testing.T) {
	const shedding = "\n  spread: 2000\n  load_shedding: {threshold: 0.8, release: 0.5, change_per_second: 0.2, max_share: 0.5}"
	for _, c := range []struct {
		name  string
		extra string
	}{
		{"static-records", staticRecords + shedding},
		{"rate-limit", staticRecords + "\n  rate_limit: {responses_per_second: 50, burst: 20, slip: 2}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newCachePair(t, c.extra)
			all := cacheQueries(t)
			rng := rand.New(rand.NewPCG(1, 2))
			sources := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.77"),
				netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("2001:db8:1::9")}
			w1, w2 := newUDPWorkerBench(), newUDPWorkerBench()
			state := func(pop string, healthy bool, load float64, draining bool) func(s *Server) {
				return func(s *Server) {
					ps := popState(pop, p.clk.Now(), healthy, load)
					ps.Draining = draining
					s.ObserveState(ps)
				}
			}
			allStates := func(load map[string]float64, draining string) {
				for _, n := range popNames {
					p.each(state(n, true, load[n], n == draining))
				}
			}
			phases := []struct {
				name  string
				apply func()
			}{
				{"no states, probes unknown", func() {}},
				{"probes: all up", func() {
					for _, n := range popNames {
						p.each(func(s *Server) { feedProbes(s, n, false, probePass, probePass) })
					}
				}},
				{"probes: prg down", func() {
					p.each(func(s *Server) { feedProbes(s, "prg", false, probeFail, probeFail, probeFail) })
				}},
				{"states: all healthy", func() { p.clk.Add(time.Second); allStates(nil, "") }},
				{"states: iad draining", func() { p.clk.Add(time.Second); allStates(nil, "iad") }},
				{"states: prg loaded, shedding", func() {
					for range 3 {
						p.clk.Add(time.Second)
						allStates(map[string]float64{"prg": 0.95}, "")
					}
				}},
				{"states: nrt unhealthy", func() {
					p.clk.Add(500 * time.Millisecond)
					p.each(state("nrt", false, 0.2, false))
				}},
				{"states gone stale", func() { p.clk.Add(10 * time.Second) }},
				{"probes: prg up again", func() {
					p.each(func(s *Server) { feedProbes(s, "prg", false, probePass, probePass) })
				}},
				{"states: back, one aging", func() {
					p.clk.Add(time.Second)
					allStates(nil, "")
					p.clk.Add(1500 * time.Millisecond)
					p.each(state("prg", true, 0.1, false))
				}},
				{"the aging state goes stale", func() { p.clk.Add(700 * time.Millisecond) }},
			}
			for _, ph := range phases {
				ph.apply()
				// A sample of the table, each query three times with its
				// own ID and letter case: a key is stored on its second
				// miss, so the third is a hit when it was kept.
				for _, i := range rng.Perm(len(all))[:1500] {
					src := sources[rng.IntN(len(sources))]
					for range 3 {
						pkt := withCase(all[i], rng)
						got, err1 := p.cached.answerUDP(pkt, src, w1.req, w1.sc, w1.out)
						want, err2 := p.plain.answerUDP(pkt, src, w2.req, w2.sc, w2.out)
						if (err1 == nil) != (err2 == nil) || !bytes.Equal(got, want) {
							r := new(dns.Msg)
							r.Unpack(pkt)
							t.Fatalf("%s: query %v from %s:\ncached %x (%v)\nplain  %x (%v)\ndropped %d/%d slipped %d/%d hits %d", ph.name, r, src, got, err1, want, err2,
								p.cached.metrics.rrlDropped.Load(), p.plain.metrics.rrlDropped.Load(), p.cached.metrics.rrlSlipped.Load(), p.plain.metrics.rrlSlipped.Load(), p.cached.metrics.answerHits.Load())
						}
					}
				}
			}
			m := p.cached.metrics
			if m.answerHits.Load() == 0 || m.answerMisses.Load() == 0 {
				t.Fatalf("hits %d, misses %d: the cache was not exercised", m.answerHits.Load(), m.answerMisses.Load())
			}
			if c.name == "rate-limit" && p.cached.metrics.rrlSlipped.Load() == 0 {
				t.Fatal("the rate limit never slipped a reply")
			}
			t.Logf("hits %d, misses %d, entries %d", m.answerHits.Load(), m.answerMisses.Load(), p.cached.state.Load().answers.entries.Load())
		})
	}
}

// TestAnswerCacheSigned checks a signed zone's replies through the cache
// against the uncached path of the same server (signatures are random,
// so a twin would sign differently; the signer caches them per RRset).
func TestAnswerCacheSigned(t *testing.T) {
	s := fuzzServer(t)
	all := cacheQueries(t)
	rng := rand.New(rand.NewPCG(3, 4))
	w := newUDPWorkerBench()
	src := netip.MustParseAddr("192.0.2.77")
	for _, i := range rng.Perm(len(all))[:3000] {
		for range 3 {
			pkt := withCase(all[i], rng)
			got, err := s.answerUDP(pkt, src, w.req, w.sc, w.out)
			got = bytes.Clone(got)
			var want []byte
			if resp := s.serveUDP(pkt, src, new(dns.Msg), new(scratch)); resp != nil {
				want, _ = packReply(resp, make([]byte, 2*udpReadSize))
			}
			if err != nil || !bytes.Equal(got, want) {
				r := new(dns.Msg)
				r.Unpack(pkt)
				t.Fatalf("query %v:\ncached %x (%v)\nplain  %x", r, got, err, want)
			}
		}
	}
	if s.metrics.answerHits.Load() == 0 {
		t.Fatal("no hits")
	}
}

// TestAnswerCacheBounded checks what a hostile client can do to the
// cache: random names (NXDOMAIN) store nothing, subnets seen once store
// nothing (the doorkeeper), and subnets seen twice only replace entries,
// within the slots and bytes.
func TestAnswerCacheBounded(t *testing.T) {
	s, err := New(labConfig(t, "  health: {interval: 1h}", nil, frankfurtNetworks), Options{Logger: discard, AnswerCacheEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newUDPWorkerBench()
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		pkt := mustPack(t, query(fmt.Sprintf("r%d.cdn.example.", rng.Uint64()), dns.TypeA, "", 0))
		if b, _ := s.answerUDP(pkt, w.src, w.req, w.sc, w.out); b == nil {
			t.Fatalf("query %d: no reply", i)
		}
	}
	c := s.state.Load().answers
	if n := c.entries.Load(); n != 0 {
		t.Fatalf("random names left %d entries", n)
	}
	for range 5000 {
		sub := fmt.Sprintf("81.%d.%d.%d/32", rng.IntN(256), rng.IntN(256), rng.IntN(256))
		s.answerUDP(mustPack(t, query("demo.cdn.example.", dns.TypeA, sub, 0)), w.src, w.req, w.sc, w.out)
	}
	if n := c.entries.Load(); n > 5000/100 {
		t.Fatalf("5000 subnets seen once left %d entries", n) // the doorkeeper passes under 0.4% of them
	}
	for range 5000 {
		pkt := mustPack(t, query("demo.cdn.example.", dns.TypeA, fmt.Sprintf("81.%d.%d.0/24", rng.IntN(256), rng.IntN(256)), 0))
		for range 2 {
			s.answerUDP(pkt, w.src, w.req, w.sc, w.out)
		}
	}
	if n := c.entries.Load(); n > 64 || n < 32 {
		t.Fatalf("%d entries in 64 slots", n)
	}
	if b := c.bytes.Load(); b > 64*int64(answerKeyMax+16+dns.MinMsgSize+answerEntryOverhead) || b <= 0 {
		t.Fatalf("%d bytes", b)
	}
	if s.metrics.answerEvictions.Load() == 0 {
		t.Fatal("no evictions")
	}
}

// TestAnswerCacheMetrics checks the cache's series: a query three times
// is two misses (stored on the second) and a hit, and the running
// state's cache holds one entry.
func TestAnswerCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(labConfig(t, "  health: {interval: 1h}", nil, labNetworks), Options{Logger: discard, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newUDPWorkerBench()
	pkt := mustPack(t, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	for range 3 { // stored on the second miss, a hit the third time
		s.answerUDP(pkt, w.src, w.req, w.sc, w.out)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, v := range map[string]float64{
		"outpost_dns_answer_cache_lookups_total,hit": 1, "outpost_dns_answer_cache_lookups_total,miss": 2,
		"outpost_dns_answer_cache_entries": 1, "outpost_dns_answer_cache_evictions_total": 0,
	} {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["outpost_dns_answer_cache_bytes"] <= 0 {
		t.Errorf("outpost_dns_answer_cache_bytes = %v", got["outpost_dns_answer_cache_bytes"])
	}
}

// TestAnswerCacheConfig checks dns.answer_cache: 0 turns the cache off,
// a size is rounded up to a power of two, and a reload applies a new one.
func TestAnswerCacheConfig(t *testing.T) {
	s, err := New(labConfig(t, "  health: {interval: 1h}\n  answer_cache: 0", nil, labNetworks), Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.state.Load().answers != nil {
		t.Fatal("answer_cache: 0 left a cache")
	}
	w := newUDPWorkerBench()
	if b, _ := s.answerUDP(mustPack(t, query("demo.cdn.example.", dns.TypeA, "", 0)), w.src, w.req, w.sc, w.out); b == nil {
		t.Fatal("no reply without the cache")
	}
	if err := s.Reload(labConfig(t, "  health: {interval: 1h}\n  answer_cache: 100", nil, labNetworks)); err != nil {
		t.Fatal(err)
	}
	if c := s.state.Load().answers; c == nil || len(c.slots) != 128 {
		t.Fatalf("answer_cache: 100 after a reload: %v", c)
	}
}

// TestAnswerCacheConcurrent runs workers answering through the cache
// while PoP states and probes change and the configuration reloads, for
// the race detector; then, with everything still, every reply must match
// the uncached path again.
func TestAnswerCacheConcurrent(t *testing.T) {
	s, clk, _ := newStateServer(t, staticRecords)
	all := cacheQueries(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			w := newUDPWorkerBench()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.answerUDP(withCase(all[rng.IntN(len(all))], rng), w.src, w.req, w.sc, w.out)
			}
		})
	}
	cfg := labConfig(t, staticRecords, nil, frankfurtNetworks)
	for i := range 200 {
		clk.Add(300 * time.Millisecond)
		s.ObserveState(popState(popNames[i%3], clk.Now(), i%5 != 0, float64(i%10)/10))
		feedProbes(s, popNames[(i+1)%3], i%2 == 0, probeResult(i%3))
		if i%50 == 49 {
			if err := s.Reload(cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	w := newUDPWorkerBench()
	for _, pkt := range all[:2000] {
		for range 3 {
			got, _ := s.answerUDP(pkt, w.src, w.req, w.sc, w.out)
			got = bytes.Clone(got)
			var want []byte
			if resp := s.serveUDP(pkt, w.src, new(dns.Msg), new(scratch)); resp != nil {
				want, _ = packReply(resp, make([]byte, 2*udpReadSize))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("after the churn: cached %x\nplain  %x", got, want)
			}
		}
	}
}

// TestAnswerCacheOverUDP checks the running server's UDP workers answer
// from the cache: the third of three queries in different letter case
// is a hit, and its reply carries the query's ID and spelling (RFC 1035
// §4.1.1 and §7.3: the question as asked) and its ECS scope (RFC 7871
// §7.2.1), as the first did.
func TestAnswerCacheOverUDP(t *testing.T) {
	ts := startServer(t, labConfig(t, "  health: {interval: 1h}", nil, labNetworks))
	// The first health probes may land between two queries and bump the
	// answer generation (every entry turns a miss): then the round is
	// tried again, on a subnet of its own, until one runs within a single
	// generation.
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatal("the answer generation changed during each of 20 rounds")
		}
		gen := ts.answerGen.Load()
		hits, misses := ts.metrics.answerHits.Load(), ts.metrics.answerMisses.Load()
		subnet := fmt.Sprintf("198.51.100.%d/32", round)
		var first *dns.Msg
		for i, name := range []string{"demo.cdn.example.", "DEMO.cdn.example.", "dEmO.CdN.eXaMpLe."} {
			q := query(name, dns.TypeA, subnet, 0)
			r := ts.exchange(t, "udp", q)
			if r.Id != q.Id || len(r.Question) != 1 || r.Question[0].Name != name || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
				t.Fatalf("query %d: reply %v", i, r)
			}
			if first == nil {
				first = r
			}
			if answerAddr(r) != answerAddr(first) || replyECS(r).SourceScope != replyECS(first).SourceScope {
				t.Fatalf("query %d: %s scope %d, first %s scope %d", i, answerAddr(r), replyECS(r).SourceScope, answerAddr(first), replyECS(first).SourceScope)
			}
		}
		if ts.answerGen.Load() != gen {
			continue
		}
		if h, m := ts.metrics.answerHits.Load()-hits, ts.metrics.answerMisses.Load()-misses; h != 1 || m != 2 {
			t.Fatalf("hits %d, misses %d; want 1 and 2", h, m)
		}
		return
	}
}
