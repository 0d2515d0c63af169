package dnsgeo

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// TestRRLSlip runs sequences of replies through a rate-limit table on a
// fake clock: each step is a reply (from a client, at a time after the
// start) and what the table must say.
func TestRRLSlip(t *testing.T) {
	type step struct {
		at   time.Duration
		src  string
		want rrlAction
	}
	const S, D, T = rrlSend, rrlDrop, rrlSlip
	burst := func(n int, at time.Duration, src string, want rrlAction) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = step{at, src, want}
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	a := "192.0.2.1"
	tests := []struct {
		name  string
		cfg   config.RateLimit
		steps []step
	}{
		{"burst then drop, slip 0 drops all", config.RateLimit{ResponsesPerSecond: 10, Burst: 3, Slip: 0},
			cat(burst(3, 0, a, S), burst(4, 0, a, D))},
		{"slip 1 truncates every limited reply", config.RateLimit{ResponsesPerSecond: 10, Burst: 3, Slip: 1},
			cat(burst(3, 0, a, S), burst(4, 0, a, T))},
		{"slip 2 truncates every other limited reply (BIND's default)", config.RateLimit{ResponsesPerSecond: 10, Burst: 2, Slip: 2},
			cat(burst(2, 0, a, S), []step{{0, a, D}, {0, a, T}, {0, a, D}, {0, a, T}})},
		{"slip 3", config.RateLimit{ResponsesPerSecond: 10, Burst: 1, Slip: 3},
			[]step{{0, a, S}, {0, a, D}, {0, a, D}, {0, a, T}, {0, a, D}, {0, a, D}, {0, a, T}}},
		{"refill at the rate: one reply per 100ms at 10/s", config.RateLimit{ResponsesPerSecond: 10, Burst: 2, Slip: 0},
			[]step{{0, a, S}, {0, a, S}, {0, a, D}, {50 * time.Millisecond, a, D}, {100 * time.Millisecond, a, S},
				{100 * time.Millisecond, a, D}, {time.Second, a, S}, {time.Second, a, S}, {time.Second, a, D}}},
		{"an idle account refills only up to the burst", config.RateLimit{ResponsesPerSecond: 10, Burst: 2, Slip: 0},
			cat(burst(2, 0, a, S), burst(2, time.Hour, a, S), []step{{time.Hour, a, D}})},
		{"the same /24 shares one account", config.RateLimit{ResponsesPerSecond: 1, Burst: 2, Slip: 0},
			[]step{{0, "192.0.2.1", S}, {0, "192.0.2.200", S}, {0, "192.0.2.99", D}}},
		{"different /24s are independent", config.RateLimit{ResponsesPerSecond: 1, Burst: 1, Slip: 0},
			[]step{{0, "192.0.2.1", S}, {0, "192.0.2.2", D}, {0, "192.0.3.1", S}, {0, "198.51.100.1", S}, {0, "192.0.3.9", D}}},
		{"ipv4_prefix 32: each address alone", config.RateLimit{ResponsesPerSecond: 1, Burst: 1, Slip: 0, IPv4Prefix: 32},
			[]step{{0, "192.0.2.1", S}, {0, "192.0.2.2", S}, {0, "192.0.2.1", D}}},
		{"IPv6: one /56 shares, the next /56 is apart", config.RateLimit{ResponsesPerSecond: 1, Burst: 1, Slip: 0},
			[]step{{0, "2001:db8:0:1::1", S}, {0, "2001:db8:0:ff:1::9", D}, {0, "2001:db8:0:100::1", S}, {0, "2001:db8:1::1", S}}},
		{"IPv4-mapped IPv6 counts as IPv4", config.RateLimit{ResponsesPerSecond: 1, Burst: 1, Slip: 0},
			[]step{{0, "192.0.2.1", S}, {0, "::ffff:192.0.2.7", D}}},
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.IPv4Prefix = cmp(cfg.IPv4Prefix, 24)
			cfg.IPv6Prefix = cmp(cfg.IPv6Prefix, 56)
			cfg.TableSize = 1024
			r := newRRL(cfg)
			for i, s := range tt.steps {
				k := r.key(netip.MustParseAddr(s.src), rrlAnswer, "demo.cdn.example.", dns.TypeA)
				if got := r.check(k, start+int64(s.at)); got != s.want {
					t.Fatalf("step %d (%s at +%s): %s, want %s", i, s.src, s.at, actionName(got), actionName(s.want))
				}
			}
		})
	}
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func actionName(a rrlAction) string {
	return [...]string{"send", "drop", "slip"}[a]
}

// TestRRLAccounts checks what counts as one account: one name and type,
// NXDOMAIN for the whole zone (random names are one flood), letter case
// ignored.
func TestRRLAccounts(t *testing.T) {
	r := newRRL(config.RateLimit{ResponsesPerSecond: 1, Burst: 1, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 1024})
	src := netip.MustParseAddr("192.0.2.1")
	keys := map[string]uint64{
		"A demo":    r.key(src, rrlAnswer, "demo.cdn.example.", dns.TypeA),
		"AAAA demo": r.key(src, rrlAnswer, "demo.cdn.example.", dns.TypeAAAA),
		"A img":     r.key(src, rrlAnswer, "img.eu.cdn.example.", dns.TypeA),
		"NXDOMAIN":  r.key(src, rrlNXDomain, "cdn.example.", 0),
		"NODATA":    r.key(src, rrlNoData, "cdn.example.", 0),
		"error":     r.key(src, rrlError, "", 0),
	}
	seen := map[uint64]string{}
	for name, k := range keys {
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share an account", name, other)
		}
		seen[k] = name
	}
	if r.key(src, rrlAnswer, "DEMO.Cdn.Example.", dns.TypeA) != keys["A demo"] {
		t.Error("letter case makes a different account")
	}
}

// TestRRLTableBounded floods the table from many sources: its memory is
// fixed, and an account over its limit is not reset by the flood.
func TestRRLTableBounded(t *testing.T) {
	r := newRRL(config.RateLimit{ResponsesPerSecond: 1, Burst: 1, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 1024})
	victim := r.key(netip.MustParseAddr("192.0.2.1"), rrlAnswer, "demo.cdn.example.", dns.TypeA)
	now := int64(1e18)
	r.check(victim, now)
	for range 10 {
		r.check(victim, now) // deep in debt
	}
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1}) // a /24 each
		r.check(r.key(a, rrlAnswer, "demo.cdn.example.", dns.TypeA), now)
	}
	if len(r.buckets) != 512 {
		t.Errorf("%d buckets, want 512 (1024 slots)", len(r.buckets))
	}
	if got := r.check(victim, now); got == rrlSend {
		t.Error("the flood reset the limited account")
	}
}

// TestRRLServe runs rate limiting through the handler: UDP replies over
// the limit are dropped or sent empty with TC, TCP is never limited, and
// the figures count them.
func TestRRLServe(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := labConfig(t, steady+"\n  rate_limit: {responses_per_second: 1, burst: 2, slip: 2}", nil, labNetworks)
	s, err := New(cfg, Options{Logger: discard, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pkt := mustPack(t, query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	from := func(tcp bool, ip string) *recorder {
		w := newRecorder(tcp)
		if tcp {
			w.remote = &net.TCPAddr{IP: net.ParseIP(ip), Port: 5300}
		} else {
			w.remote = &net.UDPAddr{IP: net.ParseIP(ip), Port: 5300}
		}
		return w
	}
	const (
		full = "full"
		none = "none"
		tc   = "truncated"
	)
	tests := []struct {
		name string
		tcp  bool
		src  string
		want string
	}{
		{"burst 1", false, "192.0.2.1", full},
		{"burst 2", false, "192.0.2.1", full},
		{"over: dropped", false, "192.0.2.1", none},
		{"over: slip 2, the second is truncated", false, "192.0.2.1", tc},
		{"over: dropped again", false, "192.0.2.1", none},
		{"TCP is never limited", true, "192.0.2.1", full},
		{"TCP is never limited, again", true, "192.0.2.1", full},
		{"another /24 has its own account", false, "192.0.3.1", full},
		{"the same /24", false, "192.0.2.77", tc},
	}
	for _, tt := range tests {
		q := new(dns.Msg)
		if err := q.Unpack(pkt); err != nil {
			t.Fatal(err)
		}
		w := from(tt.tcp, tt.src)
		s.ServeDNS(w, q)
		got := none
		switch {
		case w.msg == nil:
		case w.msg.Truncated && len(w.msg.Answer) == 0 && len(w.msg.Question) == 1:
			got = tc
		case len(w.msg.Answer) == 1 && !w.msg.Truncated:
			got = full
		default:
			got = w.msg.String()
		}
		if got != tt.want {
			t.Errorf("%s: reply %s, want %s", tt.name, got, tt.want)
		}
	}
	now = now.Add(time.Second) // one more reply's worth
	w := from(false, "192.0.2.1")
	q := new(dns.Msg)
	q.Unpack(pkt)
	if s.ServeDNS(w, q); w.msg == nil || len(w.msg.Answer) != 1 {
		t.Errorf("a second later: reply %v, want a full answer", w.msg)
	}
	st := s.Stats().RateLimit
	if st.Dropped != 2 || st.Slipped != 2 || !st.Enabled || st.ResponsesPerSecond != 1 || st.Burst != 2 || st.Slip != 2 {
		t.Errorf("stats: %+v, want 2 dropped and 2 slipped", st)
	}
}

// BenchmarkRRL measures what rate limiting adds to a UDP reply: the
// account's key and one check, from one client network and, in parallel,
// from many.
func BenchmarkRRL(b *testing.B) {
	r := newRRL(config.RateLimit{ResponsesPerSecond: 1_000_000, Burst: 1_000_000, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 65536})
	b.Run("one-network", func(b *testing.B) {
		src := netip.MustParseAddr("192.0.2.1")
		b.ReportAllocs()
		now := time.Now().UnixNano()
		for b.Loop() {
			now += 1000
			r.check(r.key(src, rrlAnswer, "demo.cdn.example.", dns.TypeA), now)
		}
	})
	b.Run("many-networks-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := uint32(0)
			for pb.Next() {
				i++
				src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), 1})
				r.check(r.key(src, rrlAnswer, "demo.cdn.example.", dns.TypeA), time.Now().UnixNano())
			}
		})
	})
}
