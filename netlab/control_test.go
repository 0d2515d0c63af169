package netlab_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/netlab"
)

// TestNetlabControl runs the CDN with its control plane across network
// namespaces: a three-node NATS cluster (`outpost bus`), three PoPs whose
// agents follow it, and two DNS servers on it, dns-2 placed where the
// PoPs' addresses are unreachable. It checks, in order: that a PoP
// credential can publish neither a purge nor a config; that a config
// push reaches every host within 1 s and a bad one is refused with the
// reason; that a purge is acknowledged by every PoP; that a PoP cut off
// (link down) during a purge applies it within 1 s of the link coming
// back, plus the time it was down (TCP's retransmission backoff), and its
// lag goes to 0; that a PoP loaded past its capacity with
// `outpost bench` sheds part of its region to the next-nearest PoP and
// takes it back when the load stops; that with one NATS node killed,
// purges, config and states keep working; and that when a PoP is killed
// both DNS servers stop answering with it within 2 s. It needs root;
// elsewhere it skips.
func TestNetlabControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	lab, probe, start := startLab(t, ctx, netlab.Options{
		Prefix:         netlab.PrefixFor(os.Getpid()) + "c",
		Dir:            dir,
		HealthInterval: 250 * time.Millisecond,
		Drain:          time.Second,
		Control:        true,
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := lab.ConfigPath()
	// outpost runs `outpost args…` in the DNS host as user.
	outpost := func(user string, args ...string) (string, error) {
		out, err := lab.Outpost(ctx, "dns", user, args...).CombinedOutput()
		return string(out), err
	}
	popAddr := func(pop string) string { return strings.TrimPrefix(netlab.PoPURL(pop), "http://") }
	// store asks pop for path twice, so that it holds it.
	store := func(t *testing.T, pop, path string) {
		t.Helper()
		rs := probe(t, "dns", "-connect", popAddr(pop), "-n", "2", "-path", path)
		if last := rs[len(rs)-1]; !isHit(last.Cache) {
			t.Fatalf("%s did not store %s: Cache-Status %q", pop, path, last.Cache)
		}
	}
	missed := func(t *testing.T, pop, path string) bool {
		r := probe(t, "dns", "-connect", popAddr(pop), "-n", "1", "-path", path)[0]
		return r.Status == http.StatusOK && strings.Contains(r.Cache, "fwd=uri-miss")
	}
	status := func() (string, error) {
		return outpost(netlab.OperatorUser, "config", "status", "--config", cfg, "--listen", "0s")
	}

	// The bus is up when every host reported itself and every PoP's state
	// says healthy.
	online := regexp.MustCompile(`(?m)^\s+pop\s+\S+\s+\d+\s+\S+\s+yes\s`)
	dnsHost := regexp.MustCompile(`(?m)^\s+dns\s+ns[12]\s`)
	var out string
	err = pollUntil(ctx, 30*time.Second, func() bool {
		out, _ = outpost(netlab.OperatorUser, "config", "status", "--config", cfg, "--listen", "1200ms")
		return len(online.FindAllString(out, -1)) == 3 && len(dnsHost.FindAllString(out, -1)) == 2
	})
	if err != nil {
		t.Fatalf("the control plane did not come up: %v\n%s", err, out)
	}
	t.Logf("control plane up %s after the start:\n%s", time.Since(start).Round(time.Millisecond), out)

	t.Run("pop credential", func(t *testing.T) {
		// Straight to the subjects: the server refuses prg's publish of a
		// purge and of a config revision (and of another PoP's state),
		// and takes its own state.
		cmd := lab.Command(ctx, "pop-prg", self, "-publish", cfg, "outpost.purge", "$KV.outpost_config.cdn", "outpost.state.iad", "outpost.state.prg")
		cmd.Env = append(os.Environ(), probeEnv+"=1", config.ControlUserEnv+"=prg")
		raw, err := cmd.Output()
		if err != nil {
			t.Fatalf("publishing as prg: %v: %s", err, raw)
		}
		for _, r := range parseResults(t, raw) {
			refused := strings.Contains(strings.ToLower(r.Err), "permissions violation")
			if want := r.Addr != "outpost.state.prg"; refused != want {
				t.Errorf("prg publishing on %s: %q; want refused %v", r.Addr, r.Err, want)
			} else {
				t.Logf("prg publishing on %s: %s", r.Addr, cmp.Or(r.Err, "taken"))
			}
		}
		// And the commands, as prg, fail.
		out, err := outpost("prg", "purge", "--config", cfg, "http://"+netlab.ServiceHost+"/obj/x")
		if err == nil || !strings.Contains(strings.ToLower(out), "permission") {
			t.Errorf("a purge as PoP prg: err %v, want a permissions violation:\n%s", err, out)
		}
		t.Logf("a purge as PoP prg: %s", out)
		out, err = outpost("prg", "config", "push", "--config", cfg)
		if err == nil || !strings.Contains(strings.ToLower(out), "permission") {
			t.Errorf("a config push as PoP prg: err %v, want a permissions violation:\n%s", err, out)
		}
		t.Logf("a config push as PoP prg: %s", out)
	})

	push := func(t *testing.T, rev string, within time.Duration) {
		t.Helper()
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		next := filepath.Join(dir, "cdn-"+rev+".yaml")
		if err := os.WriteFile(next, append(data, "# "+rev+"\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := outpost(netlab.OperatorUser, "config", "push", "--config", cfg, next)
		if err != nil {
			t.Fatalf("config push: %v\n%s", err, out)
		}
		pushed := time.Now()
		var st string
		var asked time.Time // when the last `config status` started
		err = pollUntil(ctx, 20*time.Second, func() bool {
			var err error
			asked = time.Now()
			st, err = status()
			return err == nil && len(regexp.MustCompile(`(?m)\scurrent\s`).FindAllString(st, -1)) == 5
		})
		took := time.Since(pushed)
		if err != nil {
			t.Fatalf("not every host runs the pushed revision: %v\n%s", err, st)
		}
		// The hosts ran it when the status that saw them all read the
		// hosts bucket, somewhere within that command's run (a process in
		// the lab that connects to the bus: a few hundred ms on a loaded
		// machine), which is the measurement's, not the push's: the bound
		// is within plus that run.
		polled := time.Since(asked)
		t.Logf("%s: %s", strings.TrimSpace(out), st)
		t.Logf("every host (3 PoPs, 2 DNS servers) runs it %s after the push returned (the push itself took %s; the `config status` that saw it took %s)",
			took.Round(time.Millisecond), pushed.Sub(start).Round(time.Millisecond), polled.Round(time.Millisecond))
		if took > within+polled {
			t.Errorf("the revision reached every host %s after the push, want within %s (+ the %s the status that saw it took)", took.Round(time.Millisecond), within, polled.Round(time.Millisecond))
		}
	}

	t.Run("config push", func(t *testing.T) {
		push(t, "two", time.Second)
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(dir, "cdn-bad.yaml")
		if err := os.WriteFile(bad, append(data, "bogus_key: 1\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := outpost(netlab.OperatorUser, "config", "push", "--config", cfg, bad)
		if err == nil || !strings.Contains(out, "is refused, nothing was published") || !strings.Contains(out, "bogus_key") {
			t.Errorf("a bad push: err %v, want it refused with the reason:\n%s", err, out)
		}
		if st, err := status(); err != nil {
			t.Errorf("after the bad push a host is behind: %v\n%s", err, st)
		}
	})

	t.Run("purge", func(t *testing.T) {
		const path = "/obj/bus-purge"
		for _, p := range []string{"prg", "iad", "nrt"} {
			store(t, p, path)
		}
		out, err := outpost(netlab.OperatorUser, "purge", "--config", cfg, "http://"+netlab.ServiceHost+path)
		if err != nil || !strings.Contains(out, "3/3 PoPs confirmed") {
			t.Fatalf("outpost purge: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		for _, p := range []string{"prg", "iad", "nrt"} {
			if !missed(t, p, path) {
				t.Errorf("%s still serves %s from its cache after the purge", p, path)
			}
		}
	})

	t.Run("partition", func(t *testing.T) {
		const path = "/obj/cut-off"
		store(t, "prg", path)
		cut := time.Now()
		if err := lab.SetLink("pop-prg", false); err != nil {
			t.Fatal(err)
		}
		out, err := outpost(netlab.OperatorUser, "purge", "--config", cfg, "--timeout", "300ms", "http://"+netlab.ServiceHost+path)
		restored := time.Now()
		if lerr := lab.SetLink("pop-prg", true); lerr != nil {
			t.Fatal(lerr)
		}
		if err == nil || !regexp.MustCompile(`prg\s+NO ACK`).MatchString(out) || !strings.Contains(out, "2/3 PoPs confirmed") {
			t.Fatalf("a purge while prg is cut off: err %v, want prg without an ack:\n%s", err, out)
		}
		var applied time.Duration
		err = pollUntil(ctx, 10*time.Second, func() bool {
			r := probe(t, "dns", "-connect", popAddr("prg"), "-n", "1", "-path", path)[0]
			if r.Status == http.StatusOK && strings.Contains(r.Cache, "fwd=uri-miss") {
				applied = time.UnixMilli(r.At).Sub(restored) // when the request that missed was sent
				return true
			}
			return false
		})
		if err != nil {
			t.Fatalf("prg did not apply the purge after the link came back: %v", err)
		}
		// The purge reaches prg over the bus connection's TCP stream, which
		// retransmits with exponential backoff while the link is down: the
		// first retransmission after the link comes back can be as far off as
		// the time the link was down. So the bound is 1 s on top of that.
		down := restored.Sub(cut)
		bound := time.Second + down
		t.Logf("prg applied the purge %s after its link came back (it was down %s)", applied.Round(time.Millisecond), down.Round(time.Millisecond))
		if applied > bound {
			t.Errorf("prg applied the purge %s after its link came back, want within %s (1 s + the %s it was down)", applied.Round(time.Millisecond), bound.Round(time.Millisecond), down.Round(time.Millisecond))
		}
		lag := regexp.MustCompile(`(?m)^\s*prg\s+true\s+\d+\s+\d+\s+0\s`)
		var st string
		err = pollUntil(ctx, 5*time.Second, func() bool {
			st, _ = outpost(netlab.OperatorUser, "stats", "--config", cfg)
			return lag.MatchString(st)
		})
		if err != nil {
			t.Errorf("outpost stats does not show prg healthy with lag 0: %v\n%s", err, st)
		}
	})

	if err := lab.Failed(); err != nil {
		t.Fatalf("a role stopped: %v", err)
	}

	t.Run("load shedding", func(t *testing.T) {
		prg, _ := netlab.PoPHost(netlab.LoadedPoP)
		iad, _ := netlab.PoPHost("iad")
		// share is the share of the ShedNetwork /24s DNS server dnsAddr
		// answers with iad, and whether every other answer was prg.
		share := func(dnsAddr string) (float64, bool) {
			rs := probe(t, "client-eu", "-dns", dnsAddr, "-sweep", netlab.ShedNetwork, "-subnets", "64")
			moved, ok := 0, true
			for _, r := range rs {
				switch r.Addr {
				case iad.Addr.String():
					moved++
				case prg.Addr.String():
				default:
					ok = false
				}
			}
			return float64(moved) / float64(len(rs)), ok
		}
		dns1, dns2 := netlab.DNSAddr(), hostAddr("dns-2")+":53"
		for _, d := range []string{dns1, dns2} {
			if s, ok := share(d); s != 0 || !ok {
				t.Fatalf("before the load, DNS %s sends %.0f%% of Frankfurt's subnets to iad (all answers prg or iad: %v), want none", d, 100*s, ok)
			}
		}
		loadCtx, stopLoad := context.WithCancel(ctx)
		defer stopLoad()
		bench := lab.Outpost(loadCtx, "client-eu", "", "bench", "-connect", popAddr(netlab.LoadedPoP), "-c", "8", "-duration", "20s", "http://"+netlab.ServiceHost+"/obj/load")
		if err := bench.Start(); err != nil {
			t.Fatal(err)
		}
		benchDone := make(chan error, 1)
		go func() { benchDone <- bench.Wait() }()
		loaded := time.Now()
		var s1, s2 float64
		err := pollUntil(ctx, 15*time.Second, func() bool {
			s1, _ = share(dns1)
			s2, _ = share(dns2)
			return s1 > 0 && s1 < 1 && s2 > 0 && s2 < 1
		})
		if err != nil {
			t.Errorf("loaded past its capacity, %s shed no part of Frankfurt (dns %.0f%%, dns-2 %.0f%% to iad): %v", netlab.LoadedPoP, 100*s1, 100*s2, err)
		} else {
			t.Logf("%s after the load started, DNS sends %.0f%% (dns) and %.0f%% (dns-2) of Frankfurt's subnets to iad", time.Since(loaded).Round(time.Millisecond), 100*s1, 100*s2)
		}
		stopLoad()
		<-benchDone
		stopped := time.Now()
		err = pollUntil(ctx, 15*time.Second, func() bool {
			s1, _ = share(dns1)
			s2, _ = share(dns2)
			return s1 == 0 && s2 == 0
		})
		if err != nil {
			t.Errorf("the load stopped, but DNS still sends %.0f%% (dns) and %.0f%% (dns-2) of Frankfurt to iad: %v", 100*s1, 100*s2, err)
		} else {
			t.Logf("%s after the load stopped, every Frankfurt subnet is back on %s", time.Since(stopped).Round(time.Millisecond), netlab.LoadedPoP)
		}
	})

	t.Run("bus node down", func(t *testing.T) {
		if err := lab.Signal("bus-1", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		// The first purge waits out the election of new JetStream leaders
		// for what bus-1 led; the clients that were on bus-1 reconnect to
		// the others.
		const path = "/obj/one-node-down"
		var out string
		tries := 0
		err := pollUntil(ctx, 20*time.Second, func() bool {
			var err error
			tries++
			out, err = outpost(netlab.OperatorUser, "purge", "--config", cfg, "--timeout", "3s", "http://"+netlab.ServiceHost+path)
			return err == nil && strings.Contains(out, "3/3 PoPs confirmed")
		})
		if err != nil {
			t.Fatalf("no purge reached every PoP within 20s of bus-1's death:\n%s", out)
		}
		t.Logf("with bus-1 killed, a purge reached every PoP %s after the kill (%d tries):\n%s", time.Since(killed).Round(time.Millisecond), tries, out)
		// The config bucket's stream may still be electing a leader (each
		// raft group elects on its own, 4 to 9 s after the kill): the push
		// tries again until one answers. A host whose config watch was
		// served by bus-1 makes a new one when it reconnects, or after two
		// missed heartbeats (1 s each) if its connection was to another
		// node.
		push(t, "three", 5*time.Second)
		var st string
		err = pollUntil(ctx, 5*time.Second, func() bool {
			st, _ = outpost(netlab.OperatorUser, "config", "status", "--config", cfg, "--listen", "1200ms")
			return len(online.FindAllString(st, -1)) == 3
		})
		if err != nil {
			t.Errorf("with bus-1 down, not every PoP's state arrives: %v\n%s", err, st)
		}
	})

	t.Run("pop killed", func(t *testing.T) {
		nrt, _ := netlab.PoPHost("nrt")
		dns1, dns2 := netlab.DNSAddr(), hostAddr("dns-2")+":53"
		for _, d := range []string{dns1, dns2} {
			if r := probe(t, "client-as", "-dns", d, "-resolve-only", "-n", "1")[0]; r.Addr != nrt.Addr.String()+":80" {
				t.Fatalf("before the kill, DNS %s sends Osaka to %s, want nrt", d, r.Addr)
			}
		}
		// One probe per DNS server resolves every 50 ms and stamps each
		// answer, so the time measured is the servers', not the probes'
		// start-up.
		type follower struct {
			lines chan result
			stop  func()
		}
		follow := func(d string) follower {
			cmd := lab.Command(ctx, "client-as", self, "-dns", d, "-resolve-only", "-follow", "-every", "50ms")
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
			f := follower{lines: make(chan result, 1024)}
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer close(f.lines)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var r result
					if json.Unmarshal(sc.Bytes(), &r) == nil {
						select {
						case f.lines <- r:
						default:
						}
					}
				}
			}()
			f.stop = func() {
				stdin.Close()
				for range f.lines {
				}
				<-done
				cmd.Wait()
			}
			return f
		}
		followers := map[string]follower{dns1: follow(dns1), dns2: follow(dns2)}
		defer func() {
			for _, f := range followers {
				f.stop()
			}
		}()
		killed := time.Now()
		if err := lab.Signal("pop-nrt", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		gone := map[string]time.Duration{}
		deadline := time.After(10 * time.Second)
		for len(gone) < 2 {
			select {
			case <-deadline:
				t.Fatalf("after nrt was killed, a DNS server still answers with it 10s later (%v)", gone)
			case r := <-followers[dns1].lines:
				if _, ok := gone[dns1]; !ok && r.At >= killed.UnixMilli() && r.Err == "" && r.Addr != nrt.Addr.String()+":80" {
					gone[dns1] = time.UnixMilli(r.At).Sub(killed)
				}
			case r := <-followers[dns2].lines:
				if _, ok := gone[dns2]; !ok && r.At >= killed.UnixMilli() && r.Err == "" && r.Addr != nrt.Addr.String()+":80" {
					gone[dns2] = time.UnixMilli(r.At).Sub(killed)
				}
			}
		}
		t.Logf("nrt killed: dns answers without it after %s, dns-2 (no route to the PoPs) after %s",
			gone[dns1].Round(time.Millisecond), gone[dns2].Round(time.Millisecond))
		for d, took := range gone {
			if took > 2*time.Second {
				t.Errorf("DNS %s answered with nrt for %s after it was killed, want within 2s", d, took.Round(time.Millisecond))
			}
		}
	})
	t.Logf("test ran %s after the lab was up", time.Since(start).Round(time.Millisecond))
}

// hostAddr is the address of the host called name.
func hostAddr(name string) string {
	h, _ := netlab.HostByName(name)
	return h.Addr.String()
}

// pollUntil calls cond every 20 ms until it holds, timeout passes or ctx
// is done.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
