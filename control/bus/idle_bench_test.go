package bus_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
// agents, each on its own authenticated connection to an embedded server,
// publishing a state every second and holding their purge pull and config
// watch (a JetStream heartbeat each per second), their pull renewed every
// 10 s, and a ping every 5 s. The server runs in the benchmark's process;
// the agents, and a loopback proxy in front of the server that counts the
// bytes on the wire, run in a child process (the test binary running
// TestIdleAgents), so the two CPU figures are apart. Each iteration is one
// second of that. With dns=2, two more connections (in the child)
// subscribe to every PoP's state, as two DNS servers on the bus do. The
// figures are per PoP per second:
//
//   - wire-in-B/s/pop, wire-out-B/s/pop: TCP payload bytes into and out
//     of the server on the clients' connections (protocol lines included,
//     counted by the proxy);
//   - payload-in-B/s/pop, payload-out-B/s/pop, msgs-in/s/pop,
//     msgs-out/s/pop: the server's own counters (varz in_bytes, out_bytes,
//     in_msgs, out_msgs: message payloads only);
//   - bus-cpu-ms/s/pop: user+system CPU of the benchmark's process
//     (getrusage(RUSAGE_SELF)) over the window: the server alone;
//   - agent-cpu-ms/s/pop: the same for the child: the agents and the
//     proxy.
//
// go test ./control/bus -run '^$' -bench IdleBus -benchtime 20x
func BenchmarkIdleBus(b *testing.B) {
	for _, n := range []int{10, 50, 100} {
		for _, dns := range []int{0, 2} {
			b.Run(fmt.Sprintf("pops=%d/dns=%d", n, dns), func(b *testing.B) { idleBus(b, n, dns) })
		}
	}
}

// idleAgentsEnv makes TestIdleAgents run the agents of BenchmarkIdleBus:
// "URL|N|DNS|DIR".
const idleAgentsEnv = "OUTPOST_TEST_IDLE_AGENTS"

// idleUsers are the bus's users for n PoPs: an operator ("ops", password
// "ops-pw") and p000, p001, … with password "<name>-pw".
func idleUsers(n int) ([]string, []bus.User) {
	names := make([]string, n)
	us := []bus.User{{Name: "ops", Password: "ops-pw", Role: config.RoleOperator}}
	for i := range names {
		names[i] = fmt.Sprintf("p%03d", i)
		us = append(us, bus.User{Name: names[i], Password: names[i] + "-pw", Role: config.RolePoP, PoP: names[i]})
	}
	return names, us
}

// idleBus runs the server, and n agents and dns state subscribers in a
// child, for b.N seconds.
func idleBus(b *testing.B, n, dns int) {
	_, us := idleUsers(n)
	s, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: b.TempDir(), Users: us, Logger: idleQuiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleAgents$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%d|%s", idleAgentsEnv, s.ClientURL(), n, dns, b.TempDir()))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	out := bufio.NewReader(stdout)
	// mark asks the child for its wire counters and its CPU.
	mark := func() (in, outb int64, cpu time.Duration) {
		if _, err := fmt.Fprintln(stdin, "mark"); err != nil {
			b.Fatal(err)
		}
		line, err := out.ReadString('\n')
		if _, serr := fmt.Sscanf(line, "mark %d %d %d", &in, &outb, &cpu); err != nil || serr != nil {
			b.Fatalf("the agents' process answered %q (%v)", line, err)
		}
		return in, outb, cpu
	}
	if line, err := out.ReadString('\n'); strings.TrimSpace(line) != "ready" {
		b.Fatalf("the agents' process: %q %v", line, err)
	}

	v0, err := s.Varz()
	if err != nil {
		b.Fatal(err)
	}
	in0, out0, acpu0 := mark()
	cpu0 := cpuTime(b)
	start := time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	secs := time.Since(start).Seconds()
	cpu := cpuTime(b) - cpu0
	in1, out1, acpu1 := mark()
	in, outw, acpu := in1-in0, out1-out0, acpu1-acpu0
	v1, err := s.Varz()
	if err != nil {
		b.Fatal(err)
	}
	per := func(x int64) float64 { return float64(x) / secs / float64(n) }
	b.ReportMetric(per(in), "wire-in-B/s/pop")
	b.ReportMetric(per(outw), "wire-out-B/s/pop")
	b.ReportMetric(per(v1.InBytes-v0.InBytes), "payload-in-B/s/pop")
	b.ReportMetric(per(v1.OutBytes-v0.OutBytes), "payload-out-B/s/pop")
	b.ReportMetric(per(v1.InMsgs-v0.InMsgs), "msgs-in/s/pop")
	b.ReportMetric(per(v1.OutMsgs-v0.OutMsgs), "msgs-out/s/pop")
	b.ReportMetric(float64(cpu.Microseconds())/1000/secs/float64(n), "bus-cpu-ms/s/pop")
	b.ReportMetric(float64(acpu.Microseconds())/1000/secs/float64(n), "agent-cpu-ms/s/pop")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d PoPs, %d state subscribers for %.1f s: wire in %d B out %d B, varz in %d msgs %d B out %d msgs %d B, CPU: bus %s, agents and proxy %s",
		n, dns, secs, in, outw, v1.InMsgs-v0.InMsgs, v1.InBytes-v0.InBytes, v1.OutMsgs-v0.OutMsgs, v1.OutBytes-v0.OutBytes, cpu, acpu)
}

// TestIdleAgents is BenchmarkIdleBus's child: it runs when idleAgentsEnv
// is set (and skips otherwise). It starts the counting proxy, the agents
// and the state subscribers, prints "ready" once every agent is healthy,
// answers each "mark" line on stdin with "mark IN OUT CPU_NS", and stops
// when stdin closes.
func TestIdleAgents(t *testing.T) {
	spec := os.Getenv(idleAgentsEnv)
	if spec == "" {
		t.Skip("the child process of BenchmarkIdleBus")
	}
	f := strings.Split(spec, "|")
	n, _ := strconv.Atoi(f[1])
	dns, _ := strconv.Atoi(f[2])
	dir := f[3]
	names, _ := idleUsers(n)
	px := newCountingProxy(t, strings.TrimPrefix(f[0], "nats://"))
	defer px.close()

	var file strings.Builder
	file.WriteString("services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\npops:\n")
	for i, p := range names {
		fmt.Fprintf(&file, "  - {name: %s, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:%d\", admin: \"127.0.0.1:%d\"}\n", p, 20000+i, 22000+i)
	}
	fmt.Fprintf(&file, "control:\n  servers: [nats://%s]\n", px.addr())
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	dial := func(user string, id control.Identity) *control.Conn {
		cc := cfg.Control
		pw := filepath.Join(dir, user+".pw")
		if err := os.WriteFile(pw, []byte(user+"-pw"), 0o600); err != nil {
			t.Fatal(err)
		}
		cc.User, cc.PasswordFile = user, pw
		conn, err := control.Dial(ctx, &cc, id, control.DialOptions{Logger: idleQuiet})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	agents := make([]*control.Agent, n)
	for i, name := range names {
		conn := dial(name, control.Identity{Role: config.RolePoP, Name: name})
		a, err := control.NewAgent(conn, &fakePoP{name: name}, control.AgentOptions{Name: name, Path: path, Config: cfg, Logger: idleQuiet})
		if err != nil {
			conn.Close()
			t.Fatal(err)
		}
		agents[i] = a
		wg.Go(func() { defer conn.Close(); a.Run(ctx) })
	}
	for range dns {
		conn := dial("ops", control.Identity{Role: config.RoleOperator})
		defer conn.Close()
		if _, err := conn.NATS().Subscribe(control.StateSubject+".>", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, a := range agents {
		for !a.State().Healthy {
			if time.Now().After(deadline) {
				t.Fatal("the agents are not all healthy after a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Past the joins: every host has recorded itself (the first states
	// came with Healthy above), so the window measures the idle bus alone.
	ops := dial("ops", control.Identity{Role: config.RoleOperator})
	defer ops.Close()
	for {
		hosts, err := ops.Hosts(ctx)
		if err == nil && len(hosts) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hosts recorded after a minute (%v)", len(hosts), n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Printf("mark %d %d %d\n", px.in.Load(), px.out.Load(), int64(cpuTime(t)))
	}
}

// cpuTime is the user and system CPU the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
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

func newCountingProxy(tb testing.TB, target string) *countingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
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
