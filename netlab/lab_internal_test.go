package netlab

import (
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

func TestDelaysOf(t *testing.T) {
	d := LabDelays(5*time.Millisecond, 120*time.Millisecond)
	addr := func(name string) netip.Addr {
		h, ok := HostByName(name)
		if !ok {
			t.Fatalf("no host %s", name)
		}
		return h.Addr
	}
	tests := []struct {
		name     string
		src, dst string
		want     time.Duration
	}{
		{"client to the PoP of its region", "client-eu", "pop-prg", 5 * time.Millisecond},
		{"and back", "pop-prg", "client-eu", 5 * time.Millisecond},
		{"client to a PoP of another region", "client-eu", "pop-nrt", 120 * time.Millisecond},
		{"PoP to a client of another region", "pop-iad", "client-as", 120 * time.Millisecond},
		{"client to DNS", "client-us", "dns", 0},
		{"PoP to origin", "pop-nrt", "origin", 0},
		{"DNS health probe of a PoP", "dns", "pop-iad", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.Of(addr(tt.src), addr(tt.dst)); got != tt.want {
				t.Errorf("Of(%s, %s) = %s, want %s", tt.src, tt.dst, got, tt.want)
			}
		})
	}
	if got := d.Of(netip.MustParseAddr("10.77.0.200"), addr("pop-prg")); got != 0 {
		t.Errorf("an address of no region: %s, want no delay", got)
	}
}

// TestDelaysArgs checks that the delay line's arguments give back the
// same matrix, as `outpost netlab delay-line` parses them.
func TestDelaysArgs(t *testing.T) {
	want := LabDelays(7*time.Millisecond, 90*time.Millisecond)
	var got Delays
	fs := flag.NewFlagSet("delay-line", flag.ContinueOnError)
	fs.DurationVar(&got.Near, "near", 0, "")
	fs.DurationVar(&got.Far, "far", 0, "")
	fs.Func("region", "", got.ParseRegion)
	if err := fs.Parse(want.Args()); err != nil {
		t.Fatal(err)
	}
	if got.Near != want.Near || got.Far != want.Far || len(got.Region) != len(want.Region) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for a, r := range want.Region {
		if got.Region[a] != r {
			t.Errorf("%s: region %q, want %q", a, got.Region[a], r)
		}
	}
	for _, bad := range []string{"eu", "=10.0.0.1", "eu=", "eu=nope", "eu=2001:db8::1"} {
		var d Delays
		if err := d.ParseRegion(bad); err == nil {
			t.Errorf("ParseRegion(%q) accepted", bad)
		}
	}
}

// TestCDNFile checks the CDN file the lab writes with the real parser:
// every PoP on its host, DNS on its host with the network map, the health
// interval and drain the options ask for.
func TestCDNFile(t *testing.T) {
	opts := Options{Binary: "/nonexistent/outpost", Dir: t.TempDir(), HealthInterval: 300 * time.Millisecond, Drain: 2 * time.Second}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{opts: opts}
	if err := l.writeCDN(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(l.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.POPs) != 3 {
		t.Fatalf("%d PoPs, want 3", len(cfg.POPs))
	}
	for _, p := range cfg.POPs {
		h, ok := PoPHost(p.Name)
		if !ok {
			t.Errorf("PoP %s has no host", p.Name)
			continue
		}
		if !strings.HasPrefix(p.Listen, h.Addr.String()+":") || !strings.HasPrefix(p.Admin, h.Addr.String()+":") {
			t.Errorf("PoP %s listens on %s, admin %s; want its host's address %s", p.Name, p.Listen, p.Admin, h.Addr)
		}
		if p.Drain != 2*time.Second {
			t.Errorf("PoP %s drains %s, want 2s", p.Name, p.Drain)
		}
	}
	dc, err := cfg.DNSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if dc.Health.Interval != 300*time.Millisecond || dc.Health.Timeout > dc.Health.Interval {
		t.Errorf("health %+v, want interval 300ms", dc.Health)
	}
	nets, err := os.ReadFile(l.opts.Dir + "/networks.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range Hosts {
		if h.Role == RoleClient && !strings.Contains(string(nets), h.Addr.String()+"/32") {
			t.Errorf("the network map does not place %s (%s)", h.Name, h.Addr)
		}
	}
}

// TestCheckWithoutRoot checks that a user who is not root is told why the
// lab cannot run (TestNetlab skips with that message).
func TestCheckWithoutRoot(t *testing.T) {
	for _, tt := range []struct {
		euid    int
		wantErr bool
	}{{0, false}, {1000, true}, {65534, true}} {
		err := checkUser(tt.euid)
		if (err != nil) != tt.wantErr || (err != nil && !strings.Contains(err.Error(), "root")) {
			t.Errorf("checkUser(%d) = %v, want an error saying it needs root: %v", tt.euid, err, tt.wantErr)
		}
	}
	if os.Geteuid() != 0 {
		if err := Check(PrefixFor(os.Getpid())); err == nil || !strings.Contains(err.Error(), "root") {
			t.Errorf("Check as uid %d = %v, want an error saying it needs root", os.Geteuid(), err)
		}
	}
}

// TestControlCDNFile checks the files of a lab with a control plane with
// the real parser: the control section with the three bus nodes, a user
// per role, each bus node's file with a JetStream directory of its own,
// prg's capacity, both name servers and the load-shedding network.
func TestControlCDNFile(t *testing.T) {
	opts := Options{Binary: "/nonexistent/outpost", Dir: t.TempDir(), Control: true}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{opts: opts}
	if err := l.writeCDN(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(l.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Control.Servers); n != 3 || cfg.Control.Replicas != 3 {
		t.Errorf("control: %d servers, %d replicas; want 3 and 3", n, cfg.Control.Replicas)
	}
	roles := map[string]string{}
	for _, u := range cfg.Control.Server.Users {
		roles[u.User] = u.Role
	}
	for user, role := range map[string]string{OperatorUser: "operator", "prg": "pop", "iad": "pop", "nrt": "pop", "ns1": "dns", "ns2": "dns"} {
		if roles[user] != role {
			t.Errorf("bus user %s has role %q, want %s", user, roles[user], role)
		}
	}
	if pc, err := cfg.POP(LoadedPoP); err != nil || pc.Capacity.RequestsPerSec != LoadedPoPCapacity {
		t.Errorf("%s's capacity: %+v, %v", LoadedPoP, pc.Capacity, err)
	}
	if len(cfg.DNS.NS) != 2 {
		t.Errorf("name servers %+v, want ns1 and ns2", cfg.DNS.NS)
	}
	dirs := map[string]bool{}
	for _, h := range ControlHosts {
		if h.Role != RoleBus {
			continue
		}
		bc, err := config.Load(l.busConfigPath(h.Name))
		if err != nil {
			t.Fatal(err)
		}
		dirs[bc.Control.Server.StoreDir] = true
	}
	if len(dirs) != 3 || dirs[cfg.Control.Server.StoreDir] {
		t.Errorf("the bus nodes' JetStream directories %v: want three of their own", dirs)
	}
	nets, err := os.ReadFile(l.opts.Dir + "/networks.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(nets), ShedNetwork) {
		t.Errorf("the network map lacks %s", ShedNetwork)
	}
}
