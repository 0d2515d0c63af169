package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// How the lab delays packets (Options.Delay).
const (
	// DelayAuto uses netem where the kernel has it, else the relay.
	DelayAuto = "auto"
	// DelayNetem shapes each bridge port's egress with HTB classes whose
	// leaves are netem qdiscs, one per delay, chosen by source address.
	DelayNetem = "netem"
	// DelayRelay routes every packet through the delay line (a TUN device
	// read by `outpost netlab delay-line`).
	DelayRelay = "relay"
)

// tcPath is the tc command, from $PATH or where iproute2 puts it.
func tcPath() (string, error) {
	if p, err := exec.LookPath("tc"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("netlab: the tc command (iproute2) is not installed")
}

// tc runs the tc command with args.
func tc(args ...string) error {
	path, err := tcPath()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netlab: tc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// netemAvailable reports whether a netem qdisc can be made in the bridge
// namespace (the kernels the lab was written on have none: "Specified
// qdisc kind is unknown").
func (n network) netemAvailable() bool {
	br := n.ns(bridgeNS)
	if err := tc("-n", br, "qdisc", "add", "dev", "lo", "root", "handle", "9:", "netem", "delay", "1ms"); err != nil {
		return false
	}
	_ = tc("-n", br, "qdisc", "del", "dev", "lo", "root")
	return true
}

// netemLeaf is the leaf qdisc of a delay class (a variable so that a test
// can check the classification on a kernel without netem).
var netemLeaf = func(delay time.Duration) []string {
	return []string{"netem", "delay", delay.String(), "limit", "100000"}
}

// shapeNetem delays packets with netem on the egress of each bridge port
// (towards its host): an HTB root whose default class has no delay, a
// class per other delay with a netem leaf, and a u32 filter per source
// address, so a packet from S to H waits d.Of(S, H) on H's port. Packets
// still go through the router, which forwards without the delay line.
func (n network) shapeNetem(d Delays) error {
	br := n.ns(bridgeNS)
	if err := n.routerSysctls(); err != nil {
		return err
	}
	for _, h := range Hosts {
		if d.Region[h.Addr] == "" {
			continue // no delay to a host of no region
		}
		dev := "v-" + h.Name
		cmds := [][]string{
			{"qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"},
			{"class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit", "burst", "1m", "cburst", "1m", "quantum", "60000"},
		}
		classOf := map[time.Duration]string{}
		for i, delay := range []time.Duration{d.Near, d.Far} {
			if _, ok := classOf[delay]; ok || delay <= 0 {
				continue
			}
			class := fmt.Sprintf("1:%d", i+2)
			classOf[delay] = class
			cmds = append(cmds,
				[]string{"class", "add", "dev", dev, "parent", "1:", "classid", class, "htb", "rate", "10gbit", "burst", "1m", "cburst", "1m", "quantum", "60000"},
				append([]string{"qdisc", "add", "dev", dev, "parent", class, "handle", fmt.Sprintf("%d:", i+2)}, netemLeaf(delay)...),
			)
		}
		for _, src := range Hosts {
			if class, ok := classOf[d.Of(src.Addr, h.Addr)]; ok {
				cmds = append(cmds, []string{"filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1",
					"u32", "match", "ip", "src", src.Addr.String() + "/32", "flowid", class})
			}
		}
		for _, c := range cmds {
			if err := tc(append([]string{"-n", br}, c...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// routerSysctls makes the bridge namespace a router that keeps the hosts
// sending through it (the delay line sets the same for itself).
func (n network) routerSysctls() error {
	ipBin, err := ipPath()
	if err != nil {
		return err
	}
	var script strings.Builder
	for _, s := range [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/" + bridgeDev + "/send_redirects", "0"},
	} {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s && ", s[1], s[0])
	}
	script.WriteString("true")
	out, err := exec.Command(ipBin, "netns", "exec", n.ns(bridgeNS), "sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: router sysctls: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
