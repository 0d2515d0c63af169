package bus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
)

// BenchmarkIdleBus measures what an idle fleet costs the bus: N PoP
// agents, each on its own authenticated connection to an embedded server
// (through a loopback proxy that counts the bytes on the wire), publishing
// a state every second and holding their purge pull and config watch
// (a JetStream heartbeat each per second) and a ping every 5 s. Each
// iteration is one second of that. With dns=2, two more connections
// subscribe to every PoP's state, as two DNS servers on the bus do. The
// figures are per PoP per second:
//
//   - wire-in-B/s/pop, wire-out-B/s/pop: TCP payload bytes into and out
//     of the server on the agents' connections (protocol lines included,
//     counted by the proxy);
//   - payload-in-B/s/pop, payload-out-B/s/pop, msgs-in/s/pop,
//     msgs-out/s/pop: the server's own counters (varz in_bytes, out_bytes,
//     in_msgs, out_msgs: message payloads only, every connection);
//   - cpu-ms/s/pop: user+system CPU of the whole test process
//     (getrusage(RUSAGE_SELF)) over the window: the server and the N
//     agents together, so an upper bound on the server's share.
//
// go test ./control/bus -run '^$' -bench IdleBus -benchtime 20x
func BenchmarkIdleBus(b *testing.B) {
	for _, n := range []int{10, 50, 100} {
		for _, dns := range []int{0, 2} {
			b.Run(fmt.Sprintf("pops=%d/dns=%d", n, dns), func(b *testing.B) { idleBus(b, n, dns) })
		}
	}
}

// idleBus runs n agents and dns subscribers to every state (what a DNS
// server on the bus listens to) for b.N seconds.
func idleBus(b *testing.B, n, dns int) {
	names := make([]string, n)
	us := []bus.User{{Name: "ops", Password: "ops-pw", Role: config.RoleOperator}}
	for i := range names {
		names[i] = fmt.Sprintf("p%03d", i)
		us = append(us, bus.User{Name: names[i], Password: names[i] + "-pw", Role: config.RolePoP, PoP: names[i]})
	}
	s, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: b.TempDir(), Users: us, Logger: idleQuiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown()
	px := newCountingProxy(b, strings.TrimPrefix(s.ClientURL(), "nats://"))
	defer px.close()

	dir := b.TempDir()
	var f strings.Builder
	f.WriteString("services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\npops:\n")
	for i, p := range names {
		fmt.Fprintf(&f, "  - {name: %s, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:%d\", admin: \"127.0.0.1:%d\"}\n", p, 20000+i, 22000+i)
	}
	fmt.Fprintf(&f, "control:\n  servers: [nats://%s]\n", px.addr())
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(f.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	agents := make([]*control.Agent, n)
	for i, name := range names {
		cc := cfg.Control
		pw := filepath.Join(dir, name+".pw")
		if err := os.WriteFile(pw, []byte(name+"-pw"), 0o600); err != nil {
			b.Fatal(err)
		}
		cc.User, cc.PasswordFile = name, pw
		conn, err := control.Dial(ctx, &cc, control.Identity{Role: config.RolePoP, Name: name}, control.DialOptions{Logger: idleQuiet})
		if err != nil {
			b.Fatal(err)
		}
		a, err := control.NewAgent(conn, &fakePoP{name: name}, control.AgentOptions{Name: name, Path: path, Config: cfg, Logger: idleQuiet})
		if err != nil {
			conn.Close()
			b.Fatal(err)
		}
		agents[i] = a
		wg.Go(func() { defer conn.Close(); a.Run(ctx) })
	}
	for range dns {
		cc := cfg.Control
		pw := filepath.Join(dir, "ops.pw")
		if err := os.WriteFile(pw, []byte("ops-pw"), 0o600); err != nil {
			b.Fatal(err)
		}
		cc.User, cc.PasswordFile = "ops", pw
		conn, err := control.Dial(ctx, &cc, control.Identity{Role: config.RoleOperator}, control.DialOptions{Logger: idleQuiet})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.NATS().Subscribe(control.StateSubject+".>", func(*nats.Msg) {}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, a := range agents {
		for !a.State().Healthy {
			if time.Now().After(deadline) {
				b.Fatal("the agents are not all healthy after a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // past the joins: the first states, the host records

	v0, err := s.Varz()
	if err != nil {
		b.Fatal(err)
	}
	in0, out0 := px.in.Load(), px.out.Load()
	cpu0 := cpuTime(b)
	start := time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	secs := time.Since(start).Seconds()
	cpu := cpuTime(b) - cpu0
	in, out := px.in.Load()-in0, px.out.Load()-out0
	v1, err := s.Varz()
	if err != nil {
		b.Fatal(err)
	}
	per := func(x int64) float64 { return float64(x) / secs / float64(n) }
	b.ReportMetric(per(in), "wire-in-B/s/pop")
	b.ReportMetric(per(out), "wire-out-B/s/pop")
	b.ReportMetric(per(v1.InBytes-v0.InBytes), "payload-in-B/s/pop")
	b.ReportMetric(per(v1.OutBytes-v0.OutBytes), "payload-out-B/s/pop")
	b.ReportMetric(per(v1.InMsgs-v0.InMsgs), "msgs-in/s/pop")
	b.ReportMetric(per(v1.OutMsgs-v0.OutMsgs), "msgs-out/s/pop")
	b.ReportMetric(float64(cpu.Microseconds())/1000/secs/float64(n), "cpu-ms/s/pop")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d PoPs, %d state subscribers for %.1f s: wire in %d B out %d B, varz in %d msgs %d B out %d msgs %d B, process CPU %s",
		n, dns, secs, in, out, v1.InMsgs-v0.InMsgs, v1.InBytes-v0.InBytes, v1.OutMsgs-v0.OutMsgs, v1.OutBytes-v0.OutBytes, cpu)
}

// cpuTime is the user and system CPU the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingProxy forwards loopback TCP connections to target and counts
// the bytes each way: in is toward the server, out from it.
type countingProxy struct {
	ln      net.Listener
	target  string
	in, out atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newCountingProxy(b *testing.B, target string) *countingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	return p
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { p.copy(u, c, &p.in) })
		p.wg.Go(func() { p.copy(c, u, &p.out) })
	}
}

func (p *countingProxy) copy(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *countingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// idleQuiet drops the logs of the benchmark's server and agents.
var idleQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))
