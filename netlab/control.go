package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// This file is the lab's control plane (Options.Control): a three-node
// NATS cluster of `outpost bus` processes, one per ControlHosts bus host,
// every PoP's agent and both DNS servers on it as users of their roles,
// and a second DNS server, dns-2, whose routes to the PoPs are
// unreachable, so that it routes on the PoPs' states alone.

// The control plane's settings in the lab's CDN file.
const (
	// OperatorUser is the bus user of `outpost config` and `outpost
	// purge` (role operator).
	OperatorUser = "ops"
	// LoadedPoP is the PoP with a capacity (pops[].capacity), which the
	// load-shedding test loads past it; LoadedPoPCapacity is its
	// requests_per_sec.
	LoadedPoP         = "prg"
	LoadedPoPCapacity = 100
	// ShedNetwork is a network the map places in Frankfurt, whose /24s
	// the load-shedding test asks about with ECS: the share answered with
	// another PoP than LoadedPoP is the share of its users shed.
	ShedNetwork = "81.0.0.0/16"
	// StateInterval is control.state_interval: DNS servers count a PoP's
	// state stale after twice that (dns.states.max_age).
	StateInterval = "500ms"
)

// hosts are the hosts of a lab with these options.
func (o *Options) hosts() []Host {
	if !o.Control {
		return Hosts
	}
	return append(Hosts[:len(Hosts):len(Hosts)], ControlHosts...)
}

// BusUser is the bus user host h runs as ($OUTPOST_CONTROL_USER): a PoP
// its PoP's name (role pop), the DNS servers ns1 and ns2 (role dns), and
// "" for the others.
func BusUser(h Host) string {
	switch {
	case h.Role == RolePoP:
		return h.PoP
	case h.Name == "dns":
		return "ns1"
	case h.Name == "dns-2":
		return "ns2"
	}
	return ""
}

// busConfigPath is the CDN file the bus host called name runs: cdn.yaml
// with a JetStream directory of its own (the hosts share one file
// system; real ones would each use the same path).
func (l *Lab) busConfigPath(name string) string {
	return filepath.Join(l.opts.Dir, name+".yaml")
}

// BusPasswordPath is the file with the password of every bus user. The
// hosts share one file system, so they share one password file (a real
// fleet has one per host, at the same path); what the permissions tell
// apart is the user, which each host names in $OUTPOST_CONTROL_USER.
func (l *Lab) BusPasswordPath() string { return filepath.Join(l.opts.Dir, "bus.password") }

// writeControlDNS adds the DNS settings of a lab with a control plane:
// both name servers, load shedding that moves fast enough to see, and the
// network the load-shedding test asks about.
func (l *Lab) writeControlDNS(cdn, nets *strings.Builder) {
	dns1, _ := HostByName("dns")
	dns2, _ := HostByName("dns-2")
	fmt.Fprintf(cdn, `  ns:
    - {name: ns1.cdn.example, addresses: [%s]}
    - {name: ns2.cdn.example, addresses: [%s]}
  load_shedding: {threshold: 0.8, release: 0.5, change_per_second: 0.25, max_share: 0.5}
`, dns1.Addr, dns2.Addr)
	fmt.Fprintf(nets, "%s, 50.11, 8.68, DE   # Frankfurt's subnets (the load-shedding test)\n", ShedNetwork)
}

// writeControl adds the control section to cdn and writes the bus hosts'
// copies of the file and the password file.
func (l *Lab) writeControl(cdn *strings.Builder) error {
	pw := make([]byte, 18)
	rand.Read(pw)
	if err := os.WriteFile(l.BusPasswordPath(), []byte(hex.EncodeToString(pw)+"\n"), 0o600); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	var servers, routes []string
	for _, h := range ControlHosts {
		if h.Role == RoleBus {
			servers = append(servers, fmt.Sprintf("nats://%s:%d", h.Addr, BusPort))
			routes = append(routes, fmt.Sprintf("nats-route://%s:%d", h.Addr, BusRoutePort))
		}
	}
	storeDir := filepath.Join(l.opts.Dir, "nats")
	fmt.Fprintf(cdn, `control:
  servers: [%s]
  user: %s                   # each host sets its own in $OUTPOST_CONTROL_USER
  password_file: %s
  replicas: 3
  state_interval: %s
  reconnect_wait: 50ms
  reconnect_max_wait: 500ms
  purge_timeout: 3s
  server:
    listen: 0.0.0.0:%d
    store_dir: %s
    cluster: {listen: 0.0.0.0:%d, routes: [%s]}
    users:
      - {user: %s, password_file: %s, role: operator}
`, strings.Join(servers, ", "), OperatorUser, l.BusPasswordPath(), StateInterval, BusPort, storeDir, BusRoutePort, strings.Join(routes, ", "),
		OperatorUser, l.BusPasswordPath())
	for _, h := range Hosts {
		if h.Role == RolePoP {
			fmt.Fprintf(cdn, "      - {user: %s, password_file: %s, role: pop}\n", BusUser(h), l.BusPasswordPath())
		}
	}
	for _, h := range append(Hosts[:len(Hosts):len(Hosts)], ControlHosts...) {
		if h.Role == RoleDNS {
			fmt.Fprintf(cdn, "      - {user: %s, password_file: %s, role: dns}\n", BusUser(h), l.BusPasswordPath())
		}
	}
	for _, h := range ControlHosts {
		if h.Role != RoleBus {
			continue
		}
		own := strings.Replace(cdn.String(), "store_dir: "+storeDir+"\n", "store_dir: "+storeDir+"-"+h.Name+"\n", 1)
		if err := os.WriteFile(l.busConfigPath(h.Name), []byte(own), 0o644); err != nil {
			return fmt.Errorf("netlab: %w", err)
		}
	}
	return nil
}

// Ports of the bus hosts.
const (
	BusPort      = 4222
	BusRoutePort = 6222
)

// startBus starts the NATS cluster and waits until every node says it is
// ready (its JetStream has a leader and the stream and buckets exist), so
// that the roles find the bus complete when they start.
func (l *Lab) startBus(ctx context.Context) error {
	var nodes []string
	for _, h := range ControlHosts {
		if h.Role != RoleBus {
			continue
		}
		if err := l.startRole(h.Name, "bus", "--config", l.busConfigPath(h.Name), "--name", h.Name, "--log-level", "info"); err != nil {
			return err
		}
		nodes = append(nodes, h.Name)
	}
	for _, name := range nodes {
		err := poll(ctx, 30*time.Second, func() error {
			if p := l.procs[name]; p.exited() {
				return fmt.Errorf("netlab: %s exited: %v", name, p.err)
			}
			if b, _ := os.ReadFile(l.LogPath(name)); !bytes.Contains(b, []byte(`msg="bus ready"`)) {
				return errNotYet
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("netlab: the NATS cluster: %w%s", err, logTail(l.LogPath(name)))
		}
	}
	fmt.Fprintf(l.opts.Log, "netlab: NATS cluster ready (%s)\n", strings.Join(nodes, ", "))
	return nil
}

// RTOMin is the smallest TCP retransmission timeout on the hosts' routes
// in a lab with a control plane (the kernel's default is 200 ms). A link
// that was down delivers what waited at the next retransmission, and the
// timeout doubles with each try: 50 ms, as data-centre networks set it,
// keeps the wait after a half-second cut well under a second.
const RTOMin = "50ms"

// quickRetransmit sets RTOMin on every host's default route.
func (l *Lab) quickRetransmit() error {
	for _, h := range l.net.hosts {
		if err := ip("-n", l.net.ns(h.Name), "route", "change", "default", "via", Router.String(), "dev", "eth0", "onlink", "rto_min", RTOMin); err != nil {
			return err
		}
	}
	return nil
}

// isolateDNS2 makes the PoPs unreachable from dns-2: its probes get no
// answer, as for a name server in another network.
func (l *Lab) isolateDNS2() error {
	for _, h := range Hosts {
		if h.Role == RolePoP {
			if err := ip("-n", l.net.ns("dns-2"), "route", "add", "unreachable", h.Addr.String()+"/32"); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetLink takes the link of the host called name down (cut off from every
// other host, its connections stalled, not closed) or up again.
func (l *Lab) SetLink(name string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", l.net.ns(bridgeNS), "link", "set", "v-"+name, state)
}

// Signal sends sig to the process of the host called name (a PoP, a bus
// node, a DNS server).
func (l *Lab) Signal(name string, sig syscall.Signal) error {
	p := l.procs[name]
	if p == nil || p.exited() {
		return fmt.Errorf("netlab: %s is not running", name)
	}
	return p.cmd.Process.Signal(sig)
}

// Outpost is a command that runs `outpost args…` in the host called name
// as the bus user ($OUTPOST_CONTROL_USER; "" leaves the file's).
func (l *Lab) Outpost(ctx context.Context, name, user string, args ...string) *exec.Cmd {
	cmd := l.Command(ctx, name, l.opts.Binary, args...)
	if user != "" {
		cmd.Env = append(os.Environ(), config.ControlUserEnv+"="+user)
	}
	return cmd
}
