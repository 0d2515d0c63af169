package dnsgeo

import (
	"context"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkHandler measures the handler's cost per query on one core, the
// way a UDP worker runs it: parse the packet, decide, build and pack the
// reply, reusing the worker's request, scratch and buffer. queries/s is
// per core; allocs/op is what a UDP query allocates. Compare with BenchmarkServerUDP/bare for
// what the dns package itself costs.
func BenchmarkHandler(b *testing.B) {
	s := newTestServer(b, "  health: {interval: 1h}")
	cases := []struct {
		name string
		m    *dns.Msg
	}{
		{"A-ecs-map", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)},
		{"A-ecs-fallback", query("demo.cdn.example.", dns.TypeA, "8.8.8.0/24", 0)},
		{"A-no-ecs", query("demo.cdn.example.", dns.TypeA, "", 0)},
		{"AAAA-ecs", query("demo.cdn.example.", dns.TypeAAAA, "203.0.113.0/24", 0)},
		{"NXDOMAIN", query("nope.cdn.example.", dns.TypeA, "", 1232)},
		{"REFUSED", query("example.com.", dns.TypeA, "", 0)},
	}
	// The same without the answer cache: what a query costs when it
	// misses (…-nocache), and the cache's worst case, a new subnet every
	// query among more than it has slots (…-subnets-miss), against a
	// working set that fits (…-subnets-hit, a resolver's users).
	plain, err := New(labConfig(b, "  health: {interval: 1h}", nil, labNetworks), Options{Logger: discard, AnswerCacheEntries: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	for _, c := range cases {
		pkt := mustPack(b, c.m)
		for _, v := range []struct {
			suffix string
			s      *Server
		}{{"", s}, {"-nocache", plain}} {
			b.Run(c.name+v.suffix, func(b *testing.B) {
				b.ReportAllocs()
				w := newUDPWorkerBench()
				for b.Loop() {
					if !w.serve(v.s, pkt) {
						b.Fatal("no reply")
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			})
		}
	}
	subnets := func(n int) [][]byte {
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = mustPack(b, query("demo.cdn.example.", dns.TypeA, frankfurtSubnet(i).String(), 0))
		}
		return pkts
	}
	for _, c := range []struct {
		name string
		s    *Server
		n    int
	}{
		{"A-ecs-subnets-hit", s, 4096}, {"A-ecs-subnets-hit-nocache", plain, 4096},
		{"A-ecs-subnets-miss", s, 1 << 16}, {"A-ecs-subnets-miss-nocache", plain, 1 << 16},
	} {
		pkts := subnets(c.n)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := newUDPWorkerBench()
			i := 0
			for b.Loop() {
				if !w.serve(c.s, pkts[i%len(pkts)]) {
					b.Fatal("no reply")
				}
				i += 7919 // a prime: every subnet, in no order a slot keeps
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
	// Signed answers (dns.dnssec, DO set): an ECDSA P-256 ZSK, the
	// signatures cached per answer variant after the first query.
	keys := zoneKeys(b, b.TempDir(), dns.ECDSAP256SHA256, true, false)
	signed, err := New(signedConfig(b, keys), Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    *dns.Msg
	}{
		{"signed-A-ecs-map", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0)},
		{"signed-NXDOMAIN", query("nope.cdn.example.", dns.TypeA, "", 1232)},
	} {
		c.m.IsEdns0().SetDo()
		pkt := mustPack(b, c.m)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := newUDPWorkerBench()
			for b.Loop() {
				if !w.serve(signed, pkt) {
					b.Fatal("no reply")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
	b.Run("A-ecs-map-parallel", func(b *testing.B) {
		pkt := mustPack(b, cases[0].m)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := newUDPWorkerBench()
			for pb.Next() {
				w.serve(s, pkt)
			}
		})
	})
}

// BenchmarkServerUDP measures whole queries over loopback UDP, client
// included: a bare dns.Server that answers a fixed A record, the geo
// handler under the dns package's server (as on sockets the UDP workers do
// not take), and the server as it runs (Serve, with its UDP workers). The
// ratios are what geo answering costs on top of the dns package, and what
// the workers save. All run in the same process, on the same cores, so
// compare them within one run only.
func BenchmarkServerUDP(b *testing.B) {
	bare := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A:   net.IPv4(127, 0, 0, 11),
		}}
		w.WriteMsg(m)
	})
	// dnsServer serves h with the dns package's server until the benchmark ends.
	dnsServer := func(b *testing.B, h dns.Handler) string {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		started := make(chan struct{})
		srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		<-started
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.ShutdownContext(ctx)
			<-done
		})
		return pc.LocalAddr().String()
	}
	for _, c := range []struct {
		name  string
		serve func(b *testing.B) string // returns the address
	}{
		{"bare", func(b *testing.B) string { return dnsServer(b, bare) }},
		{"outpost-dns-package", func(b *testing.B) string {
			return dnsServer(b, newTestServer(b, "  health: {interval: 1h}"))
		}},
		{"outpost", func(b *testing.B) string {
			s := newTestServer(b, "  health: {interval: 1h}")
			ctx, cancel := context.WithCancel(context.Background())
			ls, err := Listen(ctx, []string{"127.0.0.1:0"}, "")
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, ls) }()
			<-s.Ready()
			b.Cleanup(func() { cancel(); <-done })
			return ls.UDP[0].LocalAddr().String()
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			addr := c.serve(b)
			pkt := mustPack(b, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
			b.ReportAllocs()
			b.SetParallelism(2) // keep the server busy while replies travel
			b.RunParallel(func(pb *testing.PB) {
				conn, err := net.Dial("udp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				buf := make([]byte, 1500)
				for pb.Next() {
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := conn.Write(pkt); err != nil {
						b.Error(err)
						return
					}
					if _, err := conn.Read(buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// udpWorkerBench is what a UDP worker keeps between queries.
type udpWorkerBench struct {
	req *dns.Msg
	sc  *scratch
	out []byte
	src netip.Addr
}

func newUDPWorkerBench() *udpWorkerBench {
	return &udpWorkerBench{req: new(dns.Msg), sc: new(scratch), out: make([]byte, 2*udpReadSize),
		src: netip.MustParseAddr("127.0.0.1")}
}

// serve answers pkt as a worker does: from the answer cache, or parsed,
// answered and packed.
func (w *udpWorkerBench) serve(s *Server, pkt []byte) bool {
	b, err := s.answerUDP(pkt, w.src, w.req, w.sc, w.out)
	return err == nil && len(b) > 0
}

// BenchmarkObserveState measures taking one PoP state, as the control
// plane delivers them (one per PoP a second); allocs/op must stay 0.
func BenchmarkObserveState(b *testing.B) {
	s, clk, _ := newStateServer(b, "")
	st := popState("prg", clk.Now(), true, 0.9)
	b.ReportAllocs()
	for b.Loop() {
		clk.Add(time.Millisecond)
		st.Time = clk.Now()
		s.ObserveState(st)
	}
}

// BenchmarkHandlerStates is BenchmarkHandler's ECS query on a server that
// routes on PoP states: every PoP healthy by its state, then prg
// shedding 20% of its users (the query's subnet among them, or not).
// allocs/op must equal BenchmarkHandler's A-ecs-map.
func BenchmarkHandlerStates(b *testing.B) {
	s, clk, _ := newStateServer(b, "  health: {interval: 1h}")
	cases := []struct {
		name   string
		subnet string
		load   float64
	}{
		{"A-ecs-map-states", "198.51.100.0/24", 0.5},
		{"A-ecs-shed-kept", "81.0.0.0/24", 0.95},
		{"A-ecs-shed-moved", "", 0.95},
	}
	for _, c := range cases {
		for _, name := range popNames {
			load := 0.3
			if name == "prg" {
				load = c.load
			}
			clk.Add(time.Second)
			s.ObserveState(popState(name, clk.Now(), true, load))
		}
		if c.load > 0.8 {
			st := s.state.Load()
			p := st.popByName["prg"].report
			p.share.Store(math.Float64bits(0.2))
			s.bumpAnswers()
		}
		subnet := c.subnet
		if subnet == "" { // the first Frankfurt subnet prg sheds
			for i := range numSubnets {
				if d := s.Decide(Query{Subnet: frankfurtSubnet(i), Type: dns.TypeA}); d.Shed {
					subnet = frankfurtSubnet(i).String()
					break
				}
			}
		}
		pkt := mustPack(b, query("demo.cdn.example.", dns.TypeA, subnet, 0))
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := newUDPWorkerBench()
			for b.Loop() {
				if !w.serve(s, pkt) {
					b.Fatal("no reply")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}
