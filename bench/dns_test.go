package bench

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// geoDNS is a tiny authoritative server that answers by EDNS Client
// Subnet, as Outpost's geo DNS does: each region's subnet gets its PoP.
type geoDNS struct {
	addr    string
	ttl     uint32
	answers map[netip.Prefix]netip.Addr
	queries atomic.Int64

	mu      sync.Mutex
	subnets map[string]int // ECS seen, "addr/bits"
	noECS   int
}

func (g *geoDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	g.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	var client netip.Addr
	if opt := req.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				client, _ = netip.AddrFromSlice(e.Address)
				client = client.Unmap()
				g.mu.Lock()
				g.subnets[fmt.Sprintf("%s/%d", client, e.SourceNetmask)]++
				g.mu.Unlock()
				e.SourceScope = e.SourceNetmask // echo the scope (RFC 7871 §7.2.1)
				m.SetEdns0(dns.DefaultMsgSize, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, e)
			}
		}
	}
	if !client.IsValid() {
		g.mu.Lock()
		g.noECS++
		g.mu.Unlock()
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if q.Name == "tc.cdn.test." && udp {
		m.Truncated = true // the answer is "too large": ask again over TCP
		w.WriteMsg(m)
		return
	}
	if q.Qtype == dns.TypeA {
		for p, a := range g.answers {
			if client.IsValid() && p.Contains(client) || !client.IsValid() && p.Bits() == 0 {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: g.ttl},
					A:   a.AsSlice(),
				})
			}
		}
	}
	w.WriteMsg(m)
}

// startGeoDNS serves g over UDP and TCP on one 127.0.0.1 port.
func startGeoDNS(t *testing.T, g *geoDNS) {
	t.Helper()
	g.subnets = map[string]int{}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try > 20 {
				t.Fatal(err)
			}
		}
	}
	g.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: g}, {Listener: ln, Handler: g}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
}

// popPair binds two PoP-like HTTP servers on one port, at 127.0.0.1 and
// 127.0.0.2 (Linux routes all of 127/8 to loopback), as a CDN's PoPs share
// the service's port. Each names itself in Cache-Status.
type popPair struct {
	port  int
	count [2]atomic.Int64
	mu    sync.Mutex
	hosts map[string]int
}

func startPopPair(t *testing.T) *popPair {
	t.Helper()
	p := &popPair{hosts: map[string]int{}}
	var lns [2]net.Listener
	for try := 0; lns[1] == nil; try++ {
		lns[0] = listen(t, "127.0.0.1:0")
		port := lns[0].Addr().(*net.TCPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
		if err != nil {
			lns[0].Close()
			if try > 20 {
				t.Skipf("cannot bind 127.0.0.2: %v", err)
			}
			continue
		}
		lns[1], p.port = ln, port
	}
	for i, status := range []string{"outpost/fra; hit", "outpost/nyc; fwd=uri-miss; fwd-status=200; stored"} {
		serveHTTP(t, lns[i], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.count[i].Add(1)
			p.mu.Lock()
			p.hosts[r.Host]++
			p.mu.Unlock()
			w.Header().Set("Cache-Status", status)
			w.Write([]byte("0123456789"))
		}))
	}
	return p
}

// TestDNSTargeting checks the CDN mode: each virtual client sends its
// region's subnet as ECS (RFC 7871), connects to the PoP the answer names
// on the URL's port with the URL's Host, and resolves again when the TTL
// runs out; results are split per region and per PoP.
func TestDNSTargeting(t *testing.T) {
	fra := netip.MustParsePrefix("198.51.100.0/24")
	nyc := netip.MustParsePrefix("192.0.2.0/25")
	regions := []Region{{Name: "fra", Prefix: fra, Weight: 3}, {Name: "nyc", Prefix: nyc, Weight: 1}}
	const clients = 8
	perRegion := [2]int{}
	for i := range clients {
		perRegion[pickRegion(regions, 1, i)]++
	}
	if perRegion[0] == 0 || perRegion[1] == 0 {
		t.Fatalf("seed 1 puts clients %v in the regions: pick another", perRegion)
	}
	for _, tc := range []struct {
		name       string
		host       string
		ttl        uint32
		tcpRetries bool
	}{
		{"one resolution per client while the TTL lasts", "svc.cdn.test", 300, false},
		{"TTL 0: a resolution per request", "svc.cdn.test", 0, false},
		{"truncated over UDP: again over TCP (RFC 7766)", "tc.cdn.test", 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pops := startPopPair(t)
			g := &geoDNS{ttl: tc.ttl, answers: map[netip.Prefix]netip.Addr{
				fra: netip.MustParseAddr("127.0.0.1"),
				nyc: netip.MustParseAddr("127.0.0.2"),
			}}
			startGeoDNS(t, g)
			host := net.JoinHostPort(tc.host, strconv.Itoa(pops.port))
			res := mustRun(t, Config{
				URL: "http://" + host + "/obj/1", DNS: g.addr, Regions: regions,
				Connections: clients, Requests: 400, Seed: 1,
			})
			if res.Requests != 400 || res.Errors != 0 {
				t.Fatalf("%d requests, errors %v", res.Requests, res.ErrorsByKind)
			}
			// ECS: the region's address, cut to /24 (or the region's /25).
			g.mu.Lock()
			for subnet := range g.subnets {
				p := netip.MustParsePrefix(subnet)
				if !(p.Bits() == 24 && fra.Contains(p.Addr())) && !(p.Bits() == 25 && nyc.Contains(p.Addr())) {
					t.Errorf("ECS %s is in no region's subnet at the right length", subnet)
				}
			}
			if g.noECS != 0 || len(g.subnets) == 0 {
				t.Errorf("%d queries without ECS, %d subnets", g.noECS, len(g.subnets))
			}
			g.mu.Unlock()
			// Traffic went where DNS said, with the service's Host.
			want := map[string]string{"fra": "127.0.0.1", "nyc": "127.0.0.2"}
			for i, r := range res.PerRegion {
				addr := net.JoinHostPort(want[r.Name], strconv.Itoa(pops.port))
				if r.Responses == 0 && perRegion[i] > 0 {
					t.Errorf("region %s: no responses", r.Name)
				}
				if len(r.Addresses) != 1 || r.Addresses[addr] != r.Responses {
					t.Errorf("region %s went to %v, want all %d to %s", r.Name, r.Addresses, r.Responses, addr)
				}
			}
			if got := pops.count[0].Load() + pops.count[1].Load(); got != 400 {
				t.Errorf("the PoPs saw %d requests, want 400", got)
			}
			pops.mu.Lock()
			if pops.hosts[host] != 400 {
				t.Errorf("Host headers %v, want %s on every request", pops.hosts, host)
			}
			pops.mu.Unlock()
			byPoP := map[string]Group{}
			for _, p := range res.PerPoP {
				byPoP[p.Name] = p
			}
			if f, n := byPoP["outpost/fra"], byPoP["outpost/nyc"]; f.Responses != pops.count[0].Load() || n.Responses != pops.count[1].Load() || f.HitRatio != 1 || n.HitRatio != 0 {
				t.Errorf("per PoP %+v", res.PerPoP)
			}
			d := res.DNSFigures
			if d == nil || d.Failures != 0 {
				t.Fatalf("DNS figures %+v", d)
			}
			switch {
			case tc.ttl > 0 && d.Queries != clients:
				t.Errorf("%d DNS queries with TTL %d, want one per client", d.Queries, tc.ttl)
			case tc.ttl == 0 && d.Queries != 400:
				t.Errorf("%d DNS queries with TTL 0, want one per request", d.Queries)
			case tc.tcpRetries && d.TCPRetries != clients:
				t.Errorf("%d TCP retries, want %d", d.TCPRetries, clients)
			}
		})
	}
}

// TestDNSFailure checks that a name without records is a DNS error, and
// that a run where nothing resolves fails with ErrNoResponses.
func TestDNSFailure(t *testing.T) {
	g := &geoDNS{answers: map[netip.Prefix]netip.Addr{}}
	startGeoDNS(t, g)
	res, err := Run(t.Context(), Config{URL: "http://none.cdn.test/x", DNS: g.addr, Requests: 5, Connections: 1, Logger: testLogger(t)}, nil)
	if !errors.Is(err, ErrNoResponses) || res == nil || res.ErrorsByKind["dns"] != 5 || res.DNSFigures.Failures != 5 {
		t.Fatalf("err %v, result %+v", err, res)
	}
}
