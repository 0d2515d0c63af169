package bus_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/popapi"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	goleak.VerifyTestMain(m)
}

// childEnv makes the test binary a bus node of its own (TestCluster's
// node that is killed with SIGKILL): "NAME|LISTEN|CLUSTER|ROUTES|DIR",
// ROUTES comma-separated. It prints "ready" when it serves and exits
// when its stdin closes.
const childEnv = "OUTPOST_TEST_BUS_NODE"

func runChild(spec string) {
	f := strings.Split(spec, "|")
	s, err := bus.Start(context.Background(), bus.Options{
		Name: f[0], Listen: f[1], StoreDir: f[4],
		Cluster: config.ControlCluster{Name: "outpost", Listen: f[2], Routes: strings.Split(f[3], ",")},
		Control: &config.Control{Timeout: 2 * time.Second, Replicas: 3, PurgeHistory: time.Hour, MaxPending: 1024},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	os.Exit(0)
}

// startChild starts a bus node in a process of its own and returns it
// once it serves; the test kills it (or it exits when the test ends).
func startChild(t *testing.T, spec string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		return nil, fmt.Errorf("bus node %s: %q %v", spec, line, err)
	}
	go io.Copy(io.Discard, out)
	return cmd, nil
}

// freePort returns a loopback port nothing listens on now. The cluster's
// servers must know each other's ports before they start, so the port is
// closed again before a server binds it. It is taken below Linux's
// ephemeral range (32768-60999 by default), from which the kernel hands
// ports to other tests' 127.0.0.1:0 listeners and to outgoing
// connections, so none of those can take it in between.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000)))
		if err == nil {
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCluster starts three servers as a cluster with the stream and
// buckets replicated three times and two PoP agents, one connected to
// the server it then kills, one to another, and checks that a purge and
// a config push reach both agents within a bound, and that purges and
// config keep going through the other two.
//
// The bound: 3 s when the dead server led nothing the purge or the push
// needs (the agent that was on it reconnects at once and makes a new
// config watch; a watch or a pull that was on the dead server is made
// again after two missed heartbeats of 1 s). When it led the JetStream
// meta group, the purge stream, the config bucket or an agent's
// consumer, that raft group first elects a new leader, which takes
// nats-server's election timeout, 4 to 9 s (not configurable): then the
// bound is 9 s + 3 s.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node JetStream cluster takes a few seconds")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cc := &config.Control{
		Timeout: 2 * time.Second, PurgeTimeout: 2 * time.Second, Replicas: 3, PurgeHistory: time.Hour,
		MaxPending: 1024, StateInterval: 100 * time.Millisecond, StatsTimeout: time.Second, StatsMaxReplies: 10,
		ReconnectWait: 20 * time.Millisecond, ReconnectMaxWait: 200 * time.Millisecond,
	}
	var routes []string
	var clusterPorts []int
	for range 3 {
		p := freePort(t)
		clusterPorts = append(clusterPorts, p)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	// n2 runs in a process of its own, so that it can be killed: an
	// in-process Shutdown hands its leaderships over, a SIGKILL does not.
	servers := make([]*bus.Server, 3)
	urls := make([]string, 3)
	errs := make(chan error, 3)
	var n2 *exec.Cmd
	for i := range 3 {
		go func() {
			if i == 1 {
				urls[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
				var err error
				n2, err = startChild(t, strings.Join([]string{"n2", urls[i], fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]), strings.Join(routes, ","), t.TempDir()}, "|"))
				urls[i] = "nats://" + urls[i]
				errs <- err
				return
			}
			s, err := bus.Start(context.Background(), bus.Options{
				Name: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
				Cluster: config.ControlCluster{Name: "outpost", Listen: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]), Routes: routes},
				Control: cc, Logger: quiet,
			})
			if err == nil {
				servers[i], urls[i] = s, s.ClientURL()
				t.Cleanup(s.Shutdown)
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cc.Servers = urls
	ctx := context.Background()
	// The operator is on n1 and n3: what is timed is the fleet's side.
	occ := *cc
	occ.Servers = []string{urls[0], urls[2]}
	ops, err := control.Dial(ctx, &occ, control.Identity{Role: config.RoleOperator}, control.DialOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()

	// PoP a is on n2, the server that dies; b on n1. Both learn the
	// other servers from the cluster.
	dir := t.TempDir()
	file := func(comment string) []byte {
		return fmt.Appendf(nil, "services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\n"+
			"pops:\n  - {name: a, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:20000\", admin: \"127.0.0.1:21000\"}\n"+
			"  - {name: b, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:20001\", admin: \"127.0.0.1:21001\"}\n"+
			"control:\n  servers: [%s]\n# %s\n", strings.Join(cc.Servers, ", "), comment)
	}
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, file("start"), 0o644); err != nil {
		t.Fatal(err)
	}
	started, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	agents := map[string]*control.Agent{}
	for name, url := range map[string]string{"a": urls[1], "b": urls[0]} {
		acc := *cc
		acc.Servers = []string{url}
		conn, err := control.Dial(ctx, &acc, control.Identity{Role: config.RolePoP, Name: name}, control.DialOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		a, err := control.NewAgent(conn, &fakePoP{name: name}, control.AgentOptions{Name: name, Path: path, Config: started, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		agents[name] = a
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); a.Run(actx) }()
		t.Cleanup(func() { cancel(); <-done; conn.Close() })
	}
	both := []string{"a", "b"}
	// pushed pushes a revision and returns once both agents run it.
	pushed := func(t *testing.T, comment string, within time.Duration) error {
		rev, err := ops.PushConfig(ctx, file(comment))
		if err != nil {
			return err
		}
		deadline := time.Now().Add(within)
		for agents["a"].Config().Revision != rev || agents["b"].Config().Revision != rev {
			if time.Now().After(deadline) {
				return fmt.Errorf("revision %d not applied by both within %s (a %d, b %d)", rev, within, agents["a"].Config().Revision, agents["b"].Config().Revision)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	purged := func(id string, timeout time.Duration) error {
		r, err := ops.Purge(ctx, popapi.PurgeRequest{ID: id, Tag: "t"}, both, timeout)
		if err == nil && len(r.Missing) > 0 {
			err = fmt.Errorf("no ack from %v", r.Missing)
		}
		return err
	}
	waitFor(t, 10*time.Second, "both agents healthy", func() bool { return agents["a"].State().Healthy && agents["b"].State().Healthy })
	if err := purged("before", 5*time.Second); err != nil {
		t.Fatalf("purge before the kill: %v", err)
	}
	if err := pushed(t, "before", 5*time.Second); err != nil {
		t.Fatalf("push before the kill: %v", err)
	}

	// What n2 leads: what neither of the other two does.
	consumers := []string{control.PurgeConsumer("a"), control.PurgeConsumer("b")}
	led := notLed(append(servers[0].Leads(consumers...), servers[2].Leads(consumers...)...), consumers...)
	bound := 3 * time.Second
	if len(led) > 0 {
		bound = 12 * time.Second
	}
	if err := n2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// As an operator would: retry a purge (a new ID each time: a retried
	// ID is stored once) and a push until they go through.
	var purgeTook, pushTook time.Duration
	var g sync.WaitGroup
	purgeTries := 0
	g.Go(func() {
		// As `outpost purge` does: Ensure, then Purge, which publishes
		// again while the stream elects a leader. One call is enough
		// unless the meta leader died too or the acks take longer than
		// the bound.
		for i := 0; time.Since(killed) < 20*time.Second; i++ {
			purgeTries++
			if err := ops.Ensure(ctx); err != nil {
				t.Logf("Ensure %s after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
				continue
			}
			if purged(fmt.Sprintf("k%d", i), bound) == nil {
				purgeTook = time.Since(killed)
				return
			}
		}
	})
	g.Go(func() {
		// One push waits out the config bucket's election (PushConfig
		// publishes again while its stream does not answer); then both
		// agents run it (or a later one).
		rev, err := ops.PushConfig(ctx, file("after the kill"))
		if err != nil {
			t.Errorf("a push %s after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
			return
		}
		for time.Since(killed) < 20*time.Second {
			if agents["a"].Config().Revision >= rev && agents["b"].Config().Revision >= rev {
				pushTook = time.Since(killed)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	g.Wait()
	t.Logf("n2 (which led %v) killed: a purge acked by both PoPs after %s (%d calls), a push applied by both after %s (bound %s)",
		led, purgeTook.Round(time.Millisecond), purgeTries, pushTook.Round(time.Millisecond), bound)
	if purgeTook == 0 || purgeTook > bound {
		t.Errorf("the purge went through %s after the kill (0: not within 20s), want within %s", purgeTook.Round(time.Millisecond), bound)
	}
	// A push publishes once and waits for the bucket's ack up to the
	// control timeout (2 s here) before it publishes again: an ack lost
	// to the kill (the publish went out as the cluster noticed) costs
	// that wait, which a purge, retried on its own schedule, does not show.
	if pushBound := bound + 2*time.Second; pushTook == 0 || pushTook > pushBound {
		t.Errorf("the push reached both PoPs %s after the kill (0: not within 20s), want within %s", pushTook.Round(time.Millisecond), pushBound)
	}
	// Once through, they keep going through at once.
	for i := range 3 {
		if err := purged(fmt.Sprintf("c%d", i), 2*time.Second); err != nil {
			t.Fatalf("purge %d with a node down: %v", i, err)
		}
		if err := pushed(t, fmt.Sprintf("revision %d", i), 2*time.Second); err != nil {
			t.Fatalf("push %d with a node down: %v", i, err)
		}
	}
	cur, err := ops.CurrentConfig(ctx)
	if err != nil || !strings.HasSuffix(string(cur.Data), "# revision 2\n") {
		t.Errorf("latest revision %q, %v", cur.Data, err)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakePoP applies purges and configs by recording them.
type fakePoP struct {
	name   string
	mu     sync.Mutex
	purges map[string]bool
}

func (f *fakePoP) Purge(req popapi.PurgeRequest) (popapi.PurgeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.purges == nil {
		f.purges = map[string]bool{}
	}
	dup := f.purges[req.ID]
	f.purges[req.ID] = true
	return popapi.PurgeResult{ID: req.ID, PoP: f.name, Kind: "tag", Duplicate: dup}, nil
}

func (f *fakePoP) Stats() popapi.Stats { return popapi.Stats{PoP: f.name} }

func (f *fakePoP) Reload(*config.Config) error { return nil }

// notLed returns what is not in leads of the meta group, the purge
// stream, the config bucket and the purge stream's consumers.
func notLed(leads []string, consumers ...string) []string {
	all := []string{"meta", control.PurgeStream, "KV_" + control.ConfigBucket}
	for _, c := range consumers {
		all = append(all, control.PurgeStream+"/"+c)
	}
	var out []string
	for _, x := range all {
		if !slices.Contains(leads, x) {
			out = append(out, x)
		}
	}
	return out
}
