// Package netlab runs the CDN across hosts of its own on one Linux
// machine: each host is a network namespace with one address, joined by a
// veth link to a bridge in a namespace of its own, which also routes every
// packet between hosts. Packets are delayed by the pair of hosts: a short
// one-way delay between a client and the PoP of its region, a long one
// between a client and a PoP of another region, none to and from the
// origin and DNS hosts. Where the kernel has the netem qdisc, netem on the
// bridge ports makes the delay; elsewhere (the kernels the lab was written
// on) the router sends every packet through a delay line, a TUN device
// read by a small Go program (`outpost netlab delay-line`) that holds each
// packet for its pair's delay. The origin, the PoPs and the DNS server run
// as real `outpost` processes inside their hosts, with a CDN file written
// for the lab. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` from
// iproute2 and /dev/net/tun.
//
// Nothing leaves the machine: the bridge namespace has no link to the
// host's own network.
package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Role is what a host runs.
type Role string

// The roles of the lab's hosts.
const (
	RoleOrigin Role = "origin"
	RoleDNS    Role = "dns"
	RolePoP    Role = "pop"
	RoleClient Role = "client"
	RoleBus    Role = "bus" // a NATS server of the control plane (`outpost bus`)
)

// Host is one machine of the lab: a network namespace with one address.
type Host struct {
	Name   string // the namespace's name without the lab's prefix: "pop-prg"
	Role   Role
	Region string // "eu", "us" or "as" for PoPs and clients; "" for the core hosts
	PoP    string // the PoP's name in the CDN file, for RolePoP
	City   string
	Addr   netip.Addr
	// Lat and Lon place PoPs (the CDN file) and clients (the network map).
	Lat, Lon float64
}

// Hosts are the lab's hosts, on Subnet. Each region has a PoP and a
// client near it; the origin and the DNS server are "core" hosts, with no
// delay to anyone.
var Hosts = []Host{
	{Name: "origin", Role: RoleOrigin, City: "core", Addr: netip.MustParseAddr("10.77.0.2")},
	{Name: "dns", Role: RoleDNS, City: "core", Addr: netip.MustParseAddr("10.77.0.53")},
	{Name: "pop-prg", Role: RolePoP, Region: "eu", PoP: "prg", City: "Prague", Addr: netip.MustParseAddr("10.77.0.11"), Lat: 50.08, Lon: 14.43},
	{Name: "pop-iad", Role: RolePoP, Region: "us", PoP: "iad", City: "Ashburn", Addr: netip.MustParseAddr("10.77.0.12"), Lat: 39.04, Lon: -77.49},
	{Name: "pop-nrt", Role: RolePoP, Region: "as", PoP: "nrt", City: "Tokyo", Addr: netip.MustParseAddr("10.77.0.13"), Lat: 35.68, Lon: 139.69},
	{Name: "client-eu", Role: RoleClient, Region: "eu", City: "Frankfurt", Addr: netip.MustParseAddr("10.77.0.101"), Lat: 50.11, Lon: 8.68},
	{Name: "client-us", Role: RoleClient, Region: "us", City: "New York", Addr: netip.MustParseAddr("10.77.0.102"), Lat: 40.71, Lon: -74.01},
	{Name: "client-as", Role: RoleClient, Region: "as", City: "Osaka", Addr: netip.MustParseAddr("10.77.0.103"), Lat: 34.69, Lon: 135.50},
}

// ControlHosts are the hosts a lab with a control plane (Options.Control)
// adds: a three-node NATS cluster, and a second DNS server placed where it
// cannot reach the PoPs (its routes to them are unreachable), which learns
// their health from the bus alone. They are core hosts: no delay.
var ControlHosts = []Host{
	{Name: "bus-1", Role: RoleBus, City: "core", Addr: netip.MustParseAddr("10.77.0.61")},
	{Name: "bus-2", Role: RoleBus, City: "core", Addr: netip.MustParseAddr("10.77.0.62")},
	{Name: "bus-3", Role: RoleBus, City: "core", Addr: netip.MustParseAddr("10.77.0.63")},
	{Name: "dns-2", Role: RoleDNS, City: "core", Addr: netip.MustParseAddr("10.77.0.54")},
}

// The lab's network: every host has its address as a /32 and a default
// route via the router, the bridge namespace's address on the bridge.
var (
	Subnet = netip.MustParsePrefix("10.77.0.0/24")
	Router = netip.MustParseAddr("10.77.0.254")
)

// Ports of the roles on their hosts.
const (
	OriginPort   = 8000
	PoPPort      = 80
	PoPAdminPort = 9080
	DNSPort      = 53
	DNSAdminPort = 9053
)

// Names in the bridge namespace.
const (
	bridgeNS   = "br" // the namespace, after the prefix
	bridgeDev  = "br0"
	delayDev   = "dl0"
	delayTable = "77" // the routing table that sends forwarded packets to the delay line
)

// HostByName returns the host called name ("pop-prg", "bus-1"), or false.
func HostByName(name string) (Host, bool) {
	for _, h := range append(Hosts[:len(Hosts):len(Hosts)], ControlHosts...) {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// PoPHost returns the host of the PoP called pop ("prg"), or false.
func PoPHost(pop string) (Host, bool) {
	for _, h := range Hosts {
		if h.Role == RolePoP && h.PoP == pop {
			return h, true
		}
	}
	return Host{}, false
}

// ipPath is the ip command: from $PATH, else where iproute2 puts it.
func ipPath() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("netlab: the ip command (iproute2) is not installed")
}

// ip runs the ip command with args and returns its error with its output.
func ip(args ...string) error {
	_, err := ipOutput(args...)
	return err
}

// ipOutput runs the ip command with args and returns its standard output.
func ipOutput(args ...string) (string, error) {
	path, err := ipPath()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("netlab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Check reports why the lab cannot run here, or nil: it needs root, ip
// and /dev/net/tun, and the right to make a network namespace (a
// container without CAP_SYS_ADMIN has none). It makes and removes one
// namespace, named with prefix.
func Check(prefix string) error {
	if err := checkUser(os.Geteuid()); err != nil {
		return err
	}
	if _, err := ipPath(); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("netlab: no TUN device for the delay line: %w", err)
	}
	name := prefix + "check"
	_ = ip("netns", "del", name) // a leftover of an earlier check
	if err := ip("netns", "add", name); err != nil {
		return fmt.Errorf("netlab: cannot make a network namespace here: %w", err)
	}
	defer ip("netns", "del", name)
	if err := ip("-n", name, "link", "add", "olab-check", "type", "bridge"); err != nil {
		return fmt.Errorf("netlab: cannot make a bridge in a network namespace: %w", err)
	}
	return nil
}

// checkUser refuses a user other than root (euid 0).
func checkUser(euid int) error {
	if euid != 0 {
		return errors.New("netlab: needs root (network namespaces, veth links, a TUN device)")
	}
	return nil
}

// network is the namespaces and links of one lab, named with a prefix.
type network struct {
	prefix string
	hosts  []Host // the hosts build makes: Hosts, and ControlHosts with a control plane
}

// ns is the namespace name of the host called name.
func (n network) ns(name string) string { return n.prefix + name }

// namespaces are every namespace a lab may have, the bridge's first
// (teardown removes those that exist).
func (n network) namespaces() []string {
	out := []string{n.ns(bridgeNS)}
	for _, h := range append(Hosts[:len(Hosts):len(Hosts)], ControlHosts...) {
		out = append(out, n.ns(h.Name))
	}
	return out
}

// hostNamespaces are the namespaces of the hosts build makes.
func (n network) hostNamespaces() []string {
	var out []string
	for _, h := range n.hosts {
		out = append(out, n.ns(h.Name))
	}
	return out
}

// build makes the namespaces, the bridge and the hosts' links and
// addresses. The delay line and its routes come after (routeDelay). On
// error, what was made is left for teardown.
func (n network) build() error {
	for _, ns := range append([]string{n.ns(bridgeNS)}, n.hostNamespaces()...) {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	br := n.ns(bridgeNS)
	cmds := [][]string{
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", bridgeDev, "type", "bridge"},
		{"-n", br, "addr", "add", netip.PrefixFrom(Router, Subnet.Bits()).String(), "dev", bridgeDev},
		{"-n", br, "link", "set", bridgeDev, "up"},
	}
	for _, h := range n.hosts {
		hns, veth := n.ns(h.Name), "v-"+h.Name
		cmds = append(cmds,
			[]string{"-n", br, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", hns},
			[]string{"-n", br, "link", "set", veth, "master", bridgeDev, "up"},
			[]string{"-n", hns, "link", "set", "lo", "up"},
			[]string{"-n", hns, "addr", "add", h.Addr.String() + "/32", "dev", "eth0"},
			[]string{"-n", hns, "link", "set", "eth0", "up"},
			[]string{"-n", hns, "route", "add", "default", "via", Router.String(), "dev", "eth0", "onlink"},
		)
	}
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// routeDelay sends every packet the router forwards from the bridge
// through the delay line's device, which the running delay line made.
func (n network) routeDelay() error {
	br := n.ns(bridgeNS)
	for _, c := range [][]string{
		{"-n", br, "link", "set", delayDev, "up"},
		{"-n", br, "route", "add", "default", "dev", delayDev, "table", delayTable},
		{"-n", br, "rule", "add", "iif", bridgeDev, "lookup", delayTable, "pref", "1000"},
	} {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// teardown ends every process left in the lab's namespaces (SIGTERM, then
// SIGKILL after grace) and deletes the namespaces, which removes their
// links. It reports the first error but always tries everything.
func (n network) teardown(grace time.Duration) error {
	return removeNamespaces(n.namespaces(), grace)
}

// removeNamespaces ends the processes in the named namespaces that exist
// and deletes the namespaces.
func removeNamespaces(names []string, grace time.Duration) error {
	existing := map[string]bool{}
	for _, ns := range listNamespaces() {
		existing[ns] = true
	}
	var live []string
	for _, ns := range names {
		if existing[ns] {
			live = append(live, ns)
		}
	}
	killIn(live, grace)
	var errs []error
	for _, ns := range live {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listNamespaces returns the names of the named network namespaces.
func listNamespaces() []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
