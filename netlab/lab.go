package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// Options configure a lab. Binary and Dir are required.
type Options struct {
	// Prefix starts the name of every namespace of the lab; default
	// "olab-". Tests use PrefixFor(os.Getpid()), so that runs do not
	// clash and SweepStale can remove what a killed run left.
	Prefix string
	// Binary is the outpost binary run in the hosts (an absolute path).
	Binary string
	// Dir receives the CDN file (cdn.yaml), the network map and the
	// processes' logs (NAME.log).
	Dir string
	// Near and Far are the one-way delays between a client and a PoP of
	// its own region (default 5ms) and of another region (default 120ms).
	Near, Far time.Duration
	// Delay is how packets are delayed: DelayNetem, DelayRelay or
	// DelayAuto (the default: netem where the kernel has it).
	Delay string
	// HealthInterval is the DNS server's health-check interval of the
	// PoPs (dns.health.interval; the timeout is the same, rise and fall
	// 2). Default 250ms, so a stopped PoP is out within a second.
	HealthInterval time.Duration
	// Drain is how long a stopped PoP keeps serving while it reports
	// draining (default 3s).
	Drain time.Duration
	// Detached starts the processes in sessions of their own and does not
	// wait for them, so they outlive this program; Down(Prefix) ends them.
	Detached bool
	// Log receives a line per step; nil discards them.
	Log io.Writer
	// Control adds the control plane: a three-node NATS cluster (`outpost
	// bus` on the ControlHosts bus-1..3) that every PoP and both DNS
	// servers reach, and a second DNS server (dns-2) that cannot reach the
	// PoPs. See ControlCDN for what the CDN file then holds.
	Control bool
}

func (o *Options) defaults() error {
	if o.Prefix == "" {
		o.Prefix = "olab-"
	}
	if o.Binary == "" || o.Dir == "" {
		return errors.New("netlab: Options.Binary and Options.Dir are required")
	}
	// The roles read the CDN file by its path, wherever they run from.
	for _, p := range []*string{&o.Binary, &o.Dir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("netlab: %w", err)
		}
		*p = abs
	}
	if o.Near <= 0 {
		o.Near = 5 * time.Millisecond
	}
	if o.Far <= 0 {
		o.Far = 120 * time.Millisecond
	}
	switch o.Delay {
	case "":
		o.Delay = DelayAuto
	case DelayAuto, DelayNetem, DelayRelay:
	default:
		return fmt.Errorf("netlab: Delay %q: want %s, %s or %s", o.Delay, DelayAuto, DelayNetem, DelayRelay)
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 250 * time.Millisecond
	}
	if o.Drain <= 0 {
		o.Drain = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Lab is a running lab: the network and the CDN's processes.
type Lab struct {
	opts  Options
	net   network
	procs map[string]*process // by host name, and "delay-line"
	delay string              // DelayNetem or DelayRelay
}

// Up builds the network, starts the delay line, the origin, the PoPs and
// the DNS server in their hosts, and returns when every one answers on its
// health endpoint (or ctx is done). On error everything it made is
// removed again.
func Up(ctx context.Context, opts Options) (_ *Lab, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, net: network{prefix: opts.Prefix, hosts: opts.hosts()}, procs: map[string]*process{}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	if err := l.writeCDN(); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "netlab: network %s* (%d hosts on %s, router %s)\n", opts.Prefix, len(l.net.hosts), Subnet, Router)
	if err := l.net.build(); err != nil {
		return nil, err
	}
	l.delay = opts.Delay
	if l.delay == DelayAuto {
		l.delay = DelayRelay
		if l.net.netemAvailable() {
			l.delay = DelayNetem
		}
	}
	fmt.Fprintf(opts.Log, "netlab: delay (%s): %s within a region, %s between regions (one way)\n", l.delay, opts.Near, opts.Far)
	switch l.delay {
	case DelayNetem:
		if err := l.net.shapeNetem(LabDelays(opts.Near, opts.Far)); err != nil {
			return nil, err
		}
	default:
		if err := l.startDelayLine(ctx); err != nil {
			return nil, err
		}
		if err := l.net.routeDelay(); err != nil {
			return nil, err
		}
	}
	if opts.Control {
		if err := l.isolateDNS2(); err != nil {
			return nil, err
		}
		if err := l.quickRetransmit(); err != nil {
			return nil, err
		}
	}
	if opts.Control {
		if err := l.startBus(ctx); err != nil {
			return nil, err
		}
	}
	cfg := l.ConfigPath()
	for _, h := range l.net.hosts {
		var args []string
		switch h.Role {
		case RoleOrigin:
			args = []string{"origin", "--listen", hostPort(h, OriginPort), "--log-level", "warn"}
		case RolePoP:
			args = []string{"pop", "--config", cfg, "--pop", h.PoP, "--log-level", "warn"}
		case RoleDNS:
			args = []string{"dns", "--config", cfg, "--log-level", "warn"}
			if opts.Control {
				args = append(args, "--name", BusUser(h))
			}
		default:
			continue
		}
		if err := l.startRole(h.Name, args...); err != nil {
			return nil, err
		}
	}
	what := "origin, 3 PoPs and DNS"
	if opts.Control {
		what = "NATS cluster (3 nodes), origin, 3 PoPs and 2 DNS servers"
	}
	fmt.Fprintf(opts.Log, "netlab: %s started; waiting for them to answer\n", what)
	if err := l.waitReady(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// startRole starts the outpost binary with args in the host called name;
// with a control plane, as the host's bus user ($OUTPOST_CONTROL_USER).
func (l *Lab) startRole(name string, args ...string) error {
	var env []string
	if h, ok := HostByName(name); ok && l.opts.Control && BusUser(h) != "" {
		env = []string{config.ControlUserEnv + "=" + BusUser(h)}
	}
	return l.startIn(l.net.ns(name), name, env, args...)
}

// startIn starts the outpost binary with args (and env added to this
// process's environment) in the namespace ns, as the process called name.
func (l *Lab) startIn(ns, name string, env []string, args ...string) error {
	p, err := start(name, ns, l.LogPath(name), l.opts.Detached, env, l.opts.Binary, args...)
	if err != nil {
		return err
	}
	l.procs[name] = p
	return nil
}

// startDelayLine runs `outpost netlab delay-line` in the bridge namespace
// and waits for it to say it is ready (its device exists).
func (l *Lab) startDelayLine(ctx context.Context) error {
	const name = "delay-line"
	args := append([]string{"netlab", "delay-line", "-dev", delayDev}, LabDelays(l.opts.Near, l.opts.Far).Args()...)
	if err := l.startIn(l.net.ns(bridgeNS), name, nil, args...); err != nil {
		return err
	}
	// The device appears when the delay line has made it.
	err := poll(ctx, 10*time.Second, func() error {
		if p := l.procs[name]; p.exited() {
			return fmt.Errorf("netlab: the delay line exited: %v", p.err)
		}
		if err := ip("-n", l.net.ns(bridgeNS), "link", "show", delayDev); err != nil {
			return errNotYet
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("netlab: delay line: %w%s", err, logTail(l.LogPath(name)))
	}
	return nil
}

// errNotYet tells poll to try again.
var errNotYet = errors.New("not yet")

// poll calls f until it returns anything but errNotYet, or until timeout.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if !errors.Is(err, errNotYet) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: gave up after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReady runs `outpost netlab wait` in the DNS host for the health
// URLs of every role, and checks that none of them exited meanwhile.
func (l *Lab) waitReady(ctx context.Context) error {
	urls := []string{fmt.Sprintf("http://%s/_origin/health", hostPortOf("origin", OriginPort))}
	for _, h := range Hosts {
		if h.Role == RolePoP {
			urls = append(urls, "http://"+hostPort(h, PoPAdminPort)+"/healthz")
		}
	}
	urls = append(urls, "http://"+hostPortOf("dns", DNSAdminPort)+"/healthz")
	if l.opts.Control {
		urls = append(urls, "http://"+hostPortOf("dns-2", DNSAdminPort)+"/healthz")
	}
	// Then the DNS server's own view: its probes may have counted a PoP
	// down while it started, and it takes rise probes to count it up.
	urls = append(urls, "http://"+hostPortOf("dns", DNSAdminPort)+"/stats")
	args := append([]string{"netlab", "wait", "-timeout", "20s"}, urls...)
	out, err := l.Command(ctx, "dns", l.opts.Binary, args...).CombinedOutput()
	for name, p := range l.procs {
		if p.exited() {
			return fmt.Errorf("netlab: %s exited: %v%s", name, p.err, logTail(p.log))
		}
	}
	if err != nil {
		return fmt.Errorf("netlab: the CDN did not come up: %v: %s%s", err, strings.TrimSpace(string(out)), l.Logs())
	}
	return nil
}

// Close stops every process of the lab and removes its namespaces (with
// anything still running in them). It is safe to call more than once.
func (l *Lab) Close() error {
	var errs []error
	for _, p := range l.procs {
		if p.done != nil {
			p.stop(syscall.SIGKILL, 5*time.Second)
		}
	}
	if err := l.net.teardown(3 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Down removes the lab whose namespaces start with prefix: it ends the
// processes in them (detached ones included) and deletes them.
func Down(prefix string) error {
	return network{prefix: prefix}.teardown(5 * time.Second)
}

// DelayMode is how the lab delays packets: DelayNetem or DelayRelay.
func (l *Lab) DelayMode() string { return l.delay }

// NS is the namespace of the host called name.
func (l *Lab) NS(name string) string { return l.net.ns(name) }

// ConfigPath is the lab's CDN file.
func (l *Lab) ConfigPath() string { return filepath.Join(l.opts.Dir, "cdn.yaml") }

// LogPath is the log file of the process called name (a host, or
// "delay-line").
func (l *Lab) LogPath(name string) string { return filepath.Join(l.opts.Dir, name+".log") }

// Command is a command that runs bin with args in the host called name.
func (l *Lab) Command(ctx context.Context, name, bin string, args ...string) *exec.Cmd {
	ipBin, err := ipPath()
	if err != nil {
		ipBin = "ip"
	}
	return exec.CommandContext(ctx, ipBin, append([]string{"netns", "exec", l.net.ns(name), bin}, args...)...)
}

// StopPoP sends sig to the PoP called pop: SIGTERM stops it as an
// operator would (it reports draining for its drain time, then finishes
// and exits), SIGKILL crashes it. It returns at once; Exited tells when it
// is gone.
func (l *Lab) StopPoP(pop string, sig syscall.Signal) error {
	h, ok := PoPHost(pop)
	if !ok {
		return fmt.Errorf("netlab: no PoP %q", pop)
	}
	p := l.procs[h.Name]
	if p == nil || p.exited() {
		return fmt.Errorf("netlab: PoP %s is not running", pop)
	}
	return p.cmd.Process.Signal(sig)
}

// Exited returns a channel closed when the process of the host called
// name has ended, and its exit error then. Detached processes have none.
func (l *Lab) Exited(name string) (<-chan struct{}, func() error) {
	p := l.procs[name]
	if p == nil || p.done == nil {
		return nil, func() error { return nil }
	}
	return p.done, func() error { return p.err }
}

// Failed returns an error naming the processes that exited, with the end
// of their logs, or nil when all are running.
func (l *Lab) Failed() error {
	var errs []error
	for _, h := range l.net.hosts {
		if p := l.procs[h.Name]; p != nil && p.exited() {
			errs = append(errs, fmt.Errorf("%s exited: %v%s", h.Name, p.err, logTail(p.log)))
		}
	}
	return errors.Join(errs...)
}

// Logs returns the end of every process's log, for errors.
func (l *Lab) Logs() string {
	var b strings.Builder
	for _, name := range append([]string{"delay-line"}, l.hostNames()...) {
		if p := l.procs[name]; p != nil {
			if t := logTail(p.log); t != "" {
				b.WriteString("\n" + name + ":" + t)
			}
		}
	}
	return b.String()
}

func (l *Lab) hostNames() []string {
	var out []string
	for _, h := range l.net.hosts {
		out = append(out, h.Name)
	}
	return out
}

// logTail is the last lines of a log file, indented, or "".
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// hostPort is host h's address with port.
func hostPort(h Host, port int) string { return h.Addr.String() + ":" + strconv.Itoa(port) }

// hostPortOf is hostPort of the host called name.
func hostPortOf(name string, port int) string {
	h, _ := HostByName(name)
	return hostPort(h, port)
}

// OriginURL is the origin's URL.
func OriginURL() string { return "http://" + hostPortOf("origin", OriginPort) }

// PoPURL is the HTTP address of the PoP called pop.
func PoPURL(pop string) string {
	h, _ := PoPHost(pop)
	return "http://" + hostPort(h, PoPPort)
}

// PoPAdminURL is the admin address of the PoP called pop.
func PoPAdminURL(pop string) string {
	h, _ := PoPHost(pop)
	return "http://" + hostPort(h, PoPAdminPort)
}

// DNSAddr is the DNS server's address (UDP and TCP).
func DNSAddr() string { return hostPortOf("dns", DNSPort) }

// DNSAdminURL is the DNS server's admin address.
func DNSAdminURL() string { return "http://" + hostPortOf("dns", DNSAdminPort) }

// ServiceHost is the lab's service hostname, answered by the geo DNS.
const ServiceHost = "demo.cdn.example"

// PurgeToken is the purge token of the lab's CDN file.
const PurgeToken = "netlab"

// writeCDN writes the lab's CDN file and network map into Dir.
func (l *Lab) writeCDN() error {
	var cdn, nets strings.Builder
	fmt.Fprintf(&cdn, `# The CDN of the network-namespace lab (netlab), written by it.
zone: cdn.example
services:
  - name: demo
    hostnames: [%s]
    origin:
      servers:
        - url: %s
pops:
`, ServiceHost, OriginURL())
	nets.WriteString("# Where the lab's clients are (netlab): one row per client host.\n")
	for _, h := range Hosts {
		switch h.Role {
		case RolePoP:
			fmt.Fprintf(&cdn, "  - name: %s   # %s, region %s\n    location: {lat: %g, lon: %g}\n    listen: %s\n    admin: %s\n    drain: %s\n",
				h.PoP, h.City, h.Region, h.Lat, h.Lon, hostPort(h, PoPPort), hostPort(h, PoPAdminPort), l.opts.Drain)
			if l.opts.Control && h.PoP == LoadedPoP {
				fmt.Fprintf(&cdn, "    capacity: {requests_per_sec: %d}\n", LoadedPoPCapacity)
			}
		case RoleClient:
			fmt.Fprintf(&nets, "%s/32, %g, %g   # %s (%s)\n", h.Addr, h.Lat, h.Lon, h.Name, h.City)
		}
	}
	dnsListen, dnsAdmin := DNSAddr(), hostPortOf("dns", DNSAdminPort)
	if l.opts.Control {
		// Both DNS servers run this file, each in its own host.
		dnsListen, dnsAdmin = fmt.Sprintf("0.0.0.0:%d", DNSPort), fmt.Sprintf("0.0.0.0:%d", DNSAdminPort)
	}
	fmt.Fprintf(&cdn, `dns:
  listen: [%s]
  admin: %s
  ttl: 1s
  networks: networks.csv
  health: {interval: %s, timeout: %s, rise: 2, fall: 2}
`, dnsListen, dnsAdmin, l.opts.HealthInterval, l.opts.HealthInterval)
	if l.opts.Control {
		l.writeControlDNS(&cdn, &nets)
	}
	fmt.Fprintf(&cdn, "purge: {token: %s}\n", PurgeToken)
	if l.opts.Control {
		if err := l.writeControl(&cdn); err != nil {
			return err
		}
	}
	if err := os.WriteFile(l.ConfigPath(), []byte(cdn.String()), 0o644); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.opts.Dir, "networks.csv"), []byte(nets.String()), 0o644); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	return nil
}

// WaitHTTP polls each URL with GET until it answers 200, all within
// timeout; it is `outpost netlab wait`, run inside a host. A URL whose
// path is /stats is a DNS server's: it must also list every PoP up.
func WaitHTTP(ctx context.Context, timeout time.Duration, urls []string, out io.Writer) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for _, u := range urls {
		var last error
		err := poll(ctx, time.Until(deadline), func() error {
			resp, err := client.Get(u)
			if err != nil {
				last = err
				return errNotYet
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				last = fmt.Errorf("status %s", resp.Status)
				return errNotYet
			}
			if strings.HasSuffix(u, "/stats") {
				if down := popsNotUp(body); down != "" {
					last = fmt.Errorf("the DNS server counts %s not up", down)
					return errNotYet
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w (last: %v)", u, err, last)
		}
		fmt.Fprintf(out, "ok %s\n", u)
	}
	return nil
}

// popsNotUp names the first PoP a DNS server's /stats document does not
// count up, or returns "" when every one is.
func popsNotUp(stats []byte) string {
	var doc struct {
		POPs []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"pops"`
	}
	if err := json.Unmarshal(stats, &doc); err != nil {
		return "(unreadable /stats: " + err.Error() + ")"
	}
	for _, p := range doc.POPs {
		if p.State != "up" {
			return p.Name
		}
	}
	return ""
}
