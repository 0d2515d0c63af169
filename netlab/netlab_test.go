package netlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/netlab"
)

// probeEnv, when set, makes the test binary the probe client (probeMain)
// instead of running tests: the test runs it inside a client's namespace
// with `ip netns exec`, so no goroutine of the test changes namespace.
const probeEnv = "OUTPOST_NETLAB_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		os.Exit(probeMain(os.Args[1:], os.Stdin, os.Stdout))
	}
	goleak.VerifyTestMain(m)
}

// result is one request of the probe: a JSON line of its output.
type result struct {
	At     int64   `json:"at"`     // Unix milliseconds when it started
	Addr   string  `json:"addr"`   // the PoP address asked (from DNS, or -connect)
	PoP    string  `json:"pop"`    // the PoP that answered, from Cache-Status
	Cache  string  `json:"cache"`  // Cache-Status
	Status int     `json:"status"` // HTTP status; 0 when it failed
	MS     float64 `json:"ms"`     // the HTTP request's time, first byte to last
	Err    string  `json:"err,omitempty"`
}

// probeMain is the probe client, run inside a host: n requests (or, with
// -follow, requests until stdin closes) for -path on the PoP that DNS
// names (-dns) or on a given address (-connect), one JSON line each.
// Connections are kept alive, one per PoP address.
func probeMain(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	dnsAddr := fs.String("dns", "", "resolve the service host through this DNS server before each request")
	connect := fs.String("connect", "", "ask this PoP (host:port) instead")
	path := fs.String("path", "/obj/netlab", "request path")
	n := fs.Int("n", 1, "requests")
	follow := fs.Bool("follow", false, "request until stdin closes, instead of -n")
	every := fs.Duration("every", 50*time.Millisecond, "pause between -follow requests")
	resolveOnly := fs.Bool("resolve-only", false, "only resolve through -dns: no HTTP request")
	sweep := fs.String("sweep", "", "resolve through -dns once per /24 of this IPv4 prefix, by ECS, and print each answer (Addr) with its subnet (Cache)")
	subnets := fs.Int("subnets", 64, "how many /24s -sweep asks about")
	publish := fs.String("publish", "", "connect to the bus with this CDN file's control section (as $OUTPOST_CONTROL_USER), publish on each subject given as an argument, and print what the server said of each")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sweep != "" {
		return sweepMain(*dnsAddr, *sweep, *subnets, stdout)
	}
	if *publish != "" {
		return publishMain(*publish, fs.Args(), stdout)
	}
	stop := make(chan struct{})
	if *follow {
		go func() {
			io.Copy(io.Discard, stdin)
			close(stop)
		}()
	}
	client := &http.Client{Timeout: 3 * time.Second}
	enc := json.NewEncoder(stdout)
	for i := 0; *follow || i < *n; i++ {
		if *follow {
			select {
			case <-stop:
				return 0
			case <-time.After(*every):
			}
		}
		r := result{At: time.Now().UnixMilli(), Addr: *connect}
		if *dnsAddr != "" {
			addr, err := resolve(*dnsAddr, netlab.ServiceHost)
			if err != nil {
				r.Err = "dns: " + err.Error()
				enc.Encode(r)
				continue
			}
			r.Addr = net.JoinHostPort(addr, "80")
			if *resolveOnly {
				enc.Encode(r)
				continue
			}
		}
		req, _ := http.NewRequest("GET", "http://"+r.Addr+*path, nil)
		req.Host = netlab.ServiceHost
		start := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.Status = resp.StatusCode
			r.Cache = resp.Header.Get("Cache-Status")
			r.PoP = popOf(r.Cache)
		}
		r.MS = float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			r.Status, r.Err = 0, err.Error()
		}
		enc.Encode(r)
	}
	return 0
}

// sweepMain resolves the service host through server once per /24 of
// prefix (the first n), each with that /24 as its ECS subnet, and prints
// one result per answer: Addr the address answered, Cache the subnet.
func sweepMain(server, prefix string, n int, stdout io.Writer) int {
	p, err := netip.ParsePrefix(prefix)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		fmt.Fprintf(os.Stderr, "probe: -sweep %q: want an IPv4 prefix of /24 or shorter\n", prefix)
		return 2
	}
	enc := json.NewEncoder(stdout)
	base := p.Masked().Addr().As4()
	for i := 0; i < n && i < 1<<(24-p.Bits()); i++ {
		a := base
		a[1] += byte(i >> 8)
		a[2] += byte(i)
		subnet := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		r := result{At: time.Now().UnixMilli(), Cache: subnet.String()}
		addr, err := resolveECS(server, netlab.ServiceHost, subnet)
		if err != nil {
			r.Err = err.Error()
		}
		r.Addr = addr
		enc.Encode(r)
	}
	return 0
}

// publishMain connects to the bus of the CDN file at path as its user,
// publishes an empty message on each subject and prints one result per
// subject: Addr the subject, Err the permissions violation the server
// reported ("" when it took the message).
func publishMain(path string, subjects []string, stdout io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 2
	}
	pw, err := os.ReadFile(cfg.Control.PasswordFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 2
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(strings.Join(cfg.Control.Servers, ","), nats.UserInfo(cfg.Control.User, strings.TrimSpace(string(pw))),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	defer nc.Close()
	enc := json.NewEncoder(stdout)
	for _, subject := range subjects {
		r := result{At: time.Now().UnixMilli(), Addr: subject}
		if err := nc.Publish(subject, []byte("{}")); err != nil {
			r.Err = err.Error()
		} else if err := nc.FlushTimeout(time.Second); err != nil {
			r.Err = err.Error()
		} else {
			select {
			case err := <-errs:
				r.Err = err.Error()
			case <-time.After(300 * time.Millisecond):
			}
		}
		enc.Encode(r)
	}
	return 0
}

// resolve asks server for the A record of host, over UDP.
func resolve(server, host string) (string, error) {
	return resolveECS(server, host, netip.Prefix{})
}

// resolveECS asks server for the A record of host, over UDP, with ecs as
// the client subnet when it is valid.
func resolveECS(server, host string, ecs netip.Prefix) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), dns.TypeA)
	if ecs.IsValid() {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ecs.Bits()), Address: ecs.Addr().AsSlice()})
		m.Extra = append(m.Extra, o)
	}
	c := &dns.Client{Timeout: time.Second}
	in, _, err := c.Exchange(m, server)
	if err != nil {
		return "", err
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("no A record (rcode %s)", dns.RcodeToString[in.Rcode])
}

// popOf is the PoP name of the last outpost member of a Cache-Status.
func popOf(cacheStatus string) string {
	members := strings.Split(cacheStatus, ",")
	name, _, _ := strings.Cut(strings.TrimSpace(members[len(members)-1]), ";")
	pop, ok := strings.CutPrefix(name, "outpost/")
	if !ok {
		return ""
	}
	return pop
}

// TestNetlab runs the CDN across network namespaces: an origin, three PoPs
// (Prague, Ashburn, Tokyo), the DNS server and a client in each region,
// each a host with its own address, with 5 ms one way between a client
// and the PoP of its region and 120 ms to the others. It checks that each
// region is routed to its PoP, that the routed latency beats a far PoP's,
// that a purge reaches every PoP, and that stopping a PoP moves its
// clients to the next nearest within the health-check window with no
// failed request. It needs root; elsewhere it skips.
func TestNetlab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := netlab.Options{
		Prefix:         netlab.PrefixFor(os.Getpid()),
		Near:           5 * time.Millisecond,
		Far:            120 * time.Millisecond,
		HealthInterval: 250 * time.Millisecond,
		Drain:          4 * time.Second,
	}
	lab, probe, start := startLab(t, ctx, opts)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	// Routing: each region's client is sent to the PoP of its region.
	nearest := map[string]string{"client-eu": "prg", "client-us": "iad", "client-as": "nrt"}
	t.Run("routing", func(t *testing.T) {
		for _, client := range []string{"client-eu", "client-us", "client-as"} {
			for _, r := range probe(t, client, "-dns", netlab.DNSAddr(), "-n", "3") {
				want, _ := netlab.PoPHost(nearest[client])
				if r.Err != "" || r.Status != http.StatusOK {
					t.Errorf("%s: request failed: %+v", client, r)
				} else if r.PoP != nearest[client] || r.Addr != net.JoinHostPort(want.Addr.String(), "80") {
					t.Errorf("%s was sent to %s (%s, Cache-Status %q), want %s (%s)", client, r.PoP, r.Addr, r.Cache, nearest[client], want.Addr)
				}
			}
		}
	})

	// Latency: from Frankfurt, the routed PoP (Prague) against Tokyo's,
	// on warm connections to a stored object.
	t.Run("latency", func(t *testing.T) {
		const n = "8"
		routed := probe(t, "client-eu", "-dns", netlab.DNSAddr(), "-n", n, "-path", "/obj/lat?size=1k")
		far := probe(t, "client-eu", "-connect", strings.TrimPrefix(netlab.PoPURL("nrt"), "http://"), "-n", n, "-path", "/obj/lat?size=1k")
		nearMS, farMS := warmMedian(t, routed), warmMedian(t, far)
		t.Logf("median request time from client-eu: routed (%s) %.1f ms, far (nrt) %.1f ms", routed[0].PoP, nearMS, farMS)
		// One round trip each: 2 × 5 ms against 2 × 120 ms. The bounds
		// leave a wide margin for a loaded machine.
		if farMS < float64(2*opts.Far/time.Millisecond)*0.9 {
			t.Errorf("the far PoP answered in %.1f ms: the delay line does not delay (want ≥ %s)", farMS, 2*opts.Far)
		}
		if nearMS*3 > farMS {
			t.Errorf("routed %.1f ms is not well under the far PoP's %.1f ms", nearMS, farMS)
		}
	})

	// Purge: an object stored on every PoP is gone from all of them after
	// one outpost purge.
	t.Run("purge", func(t *testing.T) {
		const path = "/obj/purge-me"
		pops := []string{"prg", "iad", "nrt"}
		for _, p := range pops {
			rs := probe(t, "dns", "-connect", strings.TrimPrefix(netlab.PoPURL(p), "http://"), "-n", "2", "-path", path)
			if last := rs[len(rs)-1]; !isHit(last.Cache) {
				t.Fatalf("%s did not store %s: Cache-Status %q", p, path, last.Cache)
			}
		}
		out, err := lab.Outpost(ctx, "dns", "", "purge", "--config", lab.ConfigPath(), "http://"+netlab.ServiceHost+path).CombinedOutput()
		if err != nil {
			t.Fatalf("outpost purge: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "3/3 PoPs confirmed") {
			t.Errorf("outpost purge did not confirm every PoP:\n%s", out)
		}
		for _, p := range pops {
			r := probe(t, "dns", "-connect", strings.TrimPrefix(netlab.PoPURL(p), "http://"), "-n", "1", "-path", path)[0]
			if r.Status != http.StatusOK || isHit(r.Cache) || !strings.Contains(r.Cache, "fwd=uri-miss") {
				t.Errorf("%s after the purge: status %d, Cache-Status %q; want a miss", p, r.Status, r.Cache)
			}
		}
	})

	if err := lab.Failed(); err != nil {
		t.Fatalf("a role stopped: %v", err)
	}

	// Failover: stop Prague as an operator would (it drains); Frankfurt's
	// client moves to Ashburn, the next nearest, within the health-check
	// window, and no request fails. Then Tokyo crashes; Osaka's client
	// moves to Ashburn (Prague is gone) within the window, and no request
	// fails after the move.
	t.Run("failover", func(t *testing.T) {
		failover(t, ctx, lab, opts, self, failoverCase{client: "client-eu", pop: "prg", next: "iad", sig: syscall.SIGTERM})
	})
	t.Run("crash", func(t *testing.T) {
		failover(t, ctx, lab, opts, self, failoverCase{client: "client-as", pop: "nrt", next: "iad", sig: syscall.SIGKILL})
	})
	t.Logf("test ran %s after the lab was up", time.Since(start).Round(time.Millisecond))
}

// failoverCase is one PoP stopped while a client keeps asking.
type failoverCase struct {
	client    string         // the client host that keeps resolving and asking
	pop, next string         // the PoP stopped, and the one the client must move to
	sig       syscall.Signal // SIGTERM: the PoP drains; SIGKILL: it crashes
}

// failover runs a probe in the client that resolves and asks every 50 ms,
// stops the PoP with the signal once the probe is answered by it, and
// checks that the client moves to the next PoP within the health-check
// window and that no request fails after the move (nor before it, when
// the PoP drains).
func failover(t *testing.T, ctx context.Context, lab *netlab.Lab, opts netlab.Options, self string, fc failoverCase) {
	cmd := lab.Command(ctx, fc.client, self, "-dns", netlab.DNSAddr(), "-follow", "-every", "50ms")
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan result)
	readDone := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				readDone <- fmt.Errorf("probe output %q: %v", sc.Text(), err)
				return
			}
			lines <- r
		}
		readDone <- sc.Err()
	}()
	defer func() {
		stdin.Close()
		for range lines {
		}
		if err := <-readDone; err != nil {
			t.Error(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("probe: %v", err)
		}
	}()
	next := func(deadline time.Time) (result, bool) {
		select {
		case r, ok := <-lines:
			return r, ok
		case <-time.After(time.Until(deadline)):
			return result{}, false
		}
	}
	// Three answers from the PoP first.
	for seen, deadline := 0, time.Now().Add(10*time.Second); seen < 3; seen++ {
		r, ok := next(deadline)
		if !ok {
			t.Fatalf("the probe in %s did not reach %s", fc.client, fc.pop)
		}
		if r.PoP != fc.pop || r.Err != "" {
			t.Fatalf("before the stop: %+v, want an answer from %s", r, fc.pop)
		}
	}
	host, _ := netlab.PoPHost(fc.pop)
	done, exitErr := lab.Exited(host.Name)
	stopped := time.Now()
	if err := lab.StopPoP(fc.pop, fc.sig); err != nil {
		t.Fatal(err)
	}
	// A draining PoP is out at the next probe; a dead one after fall (2)
	// failed probes, each up to the timeout (the interval) late.
	window := 3 * opts.HealthInterval
	var moved, gone time.Time
	var after, failedBefore, failedAfter int
	deadline := stopped.Add(opts.Drain + 5*time.Second)
	for {
		r, ok := next(deadline)
		if !ok {
			break
		}
		if gone.IsZero() {
			select {
			case <-done:
				gone = time.Now()
			default:
			}
		}
		if r.At < stopped.UnixMilli() {
			continue // sent before the stop
		}
		since := time.UnixMilli(r.At).Sub(stopped).Round(time.Millisecond)
		switch {
		case r.Err != "" || r.Status != http.StatusOK:
			if moved.IsZero() && fc.sig == syscall.SIGKILL {
				failedBefore++ // the PoP is dead and DNS does not know yet
				break
			}
			failedAfter++
			t.Errorf("request %s after the stop failed: %+v", since, r)
		case r.PoP == fc.pop:
			if !moved.IsZero() {
				t.Errorf("answered by %s again %s after the stop, after the move to %s", fc.pop, since, fc.next)
			}
		case r.PoP == fc.next:
			if moved.IsZero() {
				moved = time.UnixMilli(r.At)
			}
			after++
		default:
			t.Errorf("%s was sent to %q (%s), want %s, the next nearest", fc.client, r.PoP, r.Addr, fc.next)
		}
		// Enough seen: moved, the PoP gone, and a second of answers since.
		if !moved.IsZero() && !gone.IsZero() && time.Since(moved) > time.Second && time.Since(gone) > time.Second {
			break
		}
	}
	if gone.IsZero() {
		t.Errorf("%s still runs %s after %s (drain %s)", fc.pop, time.Since(stopped).Round(time.Millisecond), fc.sig, opts.Drain)
	} else if err := exitErr(); err != nil && fc.sig == syscall.SIGTERM {
		t.Errorf("%s did not stop cleanly: %v", fc.pop, err)
	}
	if moved.IsZero() {
		t.Fatalf("%s never moved from %s to %s", fc.client, fc.pop, fc.next)
	}
	took := moved.Sub(stopped)
	t.Logf("%s: %s moved from %s to %s %s after the stop (health window %s); %d requests failed before the move, %d after; %d answered by %s; %s exited %s after the stop",
		fc.sig, fc.client, fc.pop, fc.next, took.Round(time.Millisecond), window, failedBefore, failedAfter, after, fc.next, fc.pop, gone.Sub(stopped).Round(time.Millisecond))
	if took > window+time.Second {
		t.Errorf("the move took %s, longer than the health-check window %s (+1s)", took.Round(time.Millisecond), window)
	}
}

// buildOutpost builds ./cmd/outpost into a temporary directory.
func buildOutpost(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build outpost with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "outpost")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/outpost")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/outpost: %v\n%s", err, out)
	}
	t.Logf("built outpost in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// parseResults reads the probe's JSON lines.
func parseResults(t *testing.T, out []byte) []result {
	t.Helper()
	var rs []result
	for line := range strings.Lines(string(out)) {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("probe output %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		t.Fatal("the probe printed nothing")
	}
	return rs
}

// warmMedian is the median request time of rs without the first (which
// opened the connection and may have filled the cache); every request must
// have succeeded.
func warmMedian(t *testing.T, rs []result) float64 {
	t.Helper()
	var ms []float64
	for i, r := range rs {
		if r.Err != "" || r.Status != http.StatusOK {
			t.Fatalf("request %d failed: %+v", i, r)
		}
		if i > 0 {
			ms = append(ms, r.MS)
		}
	}
	slices.Sort(ms)
	return ms[len(ms)/2]
}

// isHit reports whether a Cache-Status says the PoP served a stored
// response.
func isHit(cacheStatus string) bool {
	for _, p := range strings.Split(cacheStatus, ";") {
		if strings.TrimSpace(p) == "hit" {
			return true
		}
	}
	return false
}

// listNetns returns the named network namespaces.
func listNetns() []string {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// prober runs this test binary as a client in a lab host and returns what
// it measured.
type prober func(t *testing.T, host string, args ...string) []result

// startLab brings up the lab of opts (its Binary and Dir filled in here)
// for t, or skips t where network namespaces cannot be made. The lab is
// torn down when t ends (and no namespace of its prefix may be left), its
// logs are printed when t fails, and it returns the lab, a prober and
// when the lab started coming up.
func startLab(t *testing.T, ctx context.Context, opts netlab.Options) (*netlab.Lab, prober, time.Time) {
	t.Helper()
	if err := netlab.Check(opts.Prefix); err != nil {
		t.Skipf("skipping the network-namespace lab: %v", err)
	}
	if err := netlab.SweepStale(); err != nil {
		t.Logf("removing the namespaces of earlier runs: %v", err)
	}
	opts.Binary = buildOutpost(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	start := time.Now()
	lab, err := netlab.Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("tearing the lab down: %v", err)
		}
		for _, ns := range listNetns() {
			if strings.HasPrefix(ns, opts.Prefix) {
				t.Errorf("namespace %s is left after Close", ns)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the lab's logs:%s", lab.Logs())
		}
	})
	t.Logf("lab up in %s; packets delayed by %s", time.Since(start).Round(time.Millisecond), lab.DelayMode())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := func(t *testing.T, host string, args ...string) []result {
		t.Helper()
		cmd := lab.Command(ctx, host, self, args...)
		cmd.Env = append(os.Environ(), probeEnv+"=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe in %s %v: %v: %s", host, args, err, out)
		}
		return parseResults(t, out)
	}
	return lab, probe, start
}
