package netlab

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestNetemClassification checks the netem shaping on the lab's bridge
// (root only): a packet from a client to a far PoP lands in the far class
// of that PoP's port, one to its own region's PoP in the near class. The
// leaves are plain FIFOs here, so it runs on kernels without netem too
// (TestNetlab checks real delays, with netem where the kernel has it).
func TestNetemClassification(t *testing.T) {
	prefix := PrefixFor(os.Getpid()) + "q"
	if err := Check(prefix); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if _, err := tcPath(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	n := network{prefix: prefix, hosts: Hosts}
	t.Cleanup(func() {
		if err := n.teardown(2 * time.Second); err != nil {
			t.Error(err)
		}
	})
	if err := n.build(); err != nil {
		t.Fatal(err)
	}
	leaf := netemLeaf
	netemLeaf = func(time.Duration) []string { return []string{"pfifo", "limit", "1000"} }
	t.Cleanup(func() { netemLeaf = leaf })
	if err := n.shapeNetem(LabDelays(5*time.Millisecond, 120*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ipBin, _ := ipPath()
	// One connection attempt from client-eu to each PoP: the SYN crosses
	// the PoP's port, the reset (nothing listens) client-eu's.
	for _, pop := range []string{"pop-prg", "pop-nrt"} {
		h, _ := HostByName(pop)
		cmd := exec.Command(ipBin, "netns", "exec", n.ns("client-eu"), self, "-connect", h.Addr.String()+":80", "-n", "1")
		cmd.Env = append(os.Environ(), "OUTPOST_NETLAB_PROBE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("probe: %v: %s", err, out)
		}
	}
	tests := []struct {
		dev, class string
		want       bool
	}{
		{"v-pop-prg", "1:2", true},  // near: client-eu → prg
		{"v-pop-prg", "1:3", false}, // nothing far to prg
		{"v-pop-nrt", "1:3", true},  // far: client-eu → nrt
		{"v-pop-nrt", "1:2", false},
		{"v-client-eu", "1:2", true}, // prg's reset
		{"v-client-eu", "1:3", true}, // nrt's reset
	}
	for _, tt := range tests {
		if got := sentPackets(t, n.ns(bridgeNS), tt.dev, tt.class); (got > 0) != tt.want {
			t.Errorf("%s class %s sent %d packets; want some: %v", tt.dev, tt.class, got, tt.want)
		}
	}
}

var sentLine = regexp.MustCompile(`Sent \d+ bytes (\d+) pkt`)

// sentPackets is the packet count of one HTB class.
func sentPackets(t *testing.T, ns, dev, class string) int {
	t.Helper()
	tcBin, _ := tcPath()
	out, err := exec.Command(tcBin, "-n", ns, "-s", "class", "show", "dev", dev, "classid", class).CombinedOutput()
	if err != nil {
		t.Fatalf("tc class show: %v: %s", err, out)
	}
	m := sentLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("tc class show dev %s classid %s: no counts in %q", dev, class, out)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}
