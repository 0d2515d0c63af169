package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Delays is the delay matrix of the lab: the one-way delay of a packet
// between two hosts.
type Delays struct {
	// Near is the one-way delay between a client and a PoP of the same
	// region; Far, between a client and a PoP of another region (and
	// between two PoPs or two clients of different regions).
	Near, Far time.Duration
	// Region maps addresses to their region. Packets to or from an
	// address without a region (the origin, DNS) are not delayed.
	Region map[netip.Addr]string
}

// LabDelays returns the delay matrix of Hosts.
func LabDelays(near, far time.Duration) Delays {
	d := Delays{Near: near, Far: far, Region: map[netip.Addr]string{}}
	for _, h := range Hosts {
		if h.Region != "" {
			d.Region[h.Addr] = h.Region
		}
	}
	return d
}

// Of returns the one-way delay of a packet from src to dst.
func (d Delays) Of(src, dst netip.Addr) time.Duration {
	rs, rd := d.Region[src], d.Region[dst]
	switch {
	case rs == "" || rd == "":
		return 0
	case rs == rd:
		return d.Near
	default:
		return d.Far
	}
}

// Args is d as the arguments of `outpost netlab delay-line` (see
// ParseDelays).
func (d Delays) Args() []string {
	args := []string{"-near", d.Near.String(), "-far", d.Far.String()}
	byRegion := map[string][]string{}
	var regions []string
	for _, h := range Hosts { // Hosts' order, so the arguments are stable
		if r, ok := d.Region[h.Addr]; ok {
			if byRegion[r] == nil {
				regions = append(regions, r)
			}
			byRegion[r] = append(byRegion[r], h.Addr.String())
		}
	}
	for _, r := range regions {
		args = append(args, "-region", r+"="+strings.Join(byRegion[r], ","))
	}
	return args
}

// ParseRegion adds one "-region NAME=ADDR,ADDR…" value to d.
func (d *Delays) ParseRegion(s string) error {
	name, list, ok := strings.Cut(s, "=")
	if !ok || name == "" || list == "" {
		return fmt.Errorf("want NAME=ADDR[,ADDR…], got %q", s)
	}
	if d.Region == nil {
		d.Region = map[netip.Addr]string{}
	}
	for _, a := range strings.Split(list, ",") {
		addr, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil || !addr.Is4() {
			return fmt.Errorf("region %s: %q is not an IPv4 address", name, a)
		}
		d.Region[addr] = name
	}
	return nil
}

// Linux's TUN interface (linux/if_tun.h).
const (
	tunSetIff = 0x400454ca // TUNSETIFF
	iffTun    = 0x0001
	iffNoPI   = 0x1000
)

// openTUN makes the TUN device dev in the calling process's network
// namespace; it lives as long as the returned file is open.
func openTUN(dev string) (*os.File, error) {
	if len(dev) >= 16 {
		return nil, fmt.Errorf("netlab: device name %q is too long", dev)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netlab: open /dev/net/tun: %w", err)
	}
	var ifr [40]byte // struct ifreq: the name, then the flags
	copy(ifr[:16], dev)
	*(*uint16)(unsafe.Pointer(&ifr[16])) = iffTun | iffNoPI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlab: TUNSETIFF %s: %w", dev, e)
	}
	// Non-blocking, so reads go through the runtime poller and Close ends
	// a blocked Read.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlab: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+dev), nil
}

// writeSysctl sets a sysctl of the calling process's network namespace.
func writeSysctl(name, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("netlab: sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// RunDelayLine is the lab's router, run in the bridge namespace (as
// `outpost netlab delay-line`): it makes ip forwarding and the TUN device
// dev, calls ready, then reads every IPv4 packet the kernel routes to dev,
// holds it for d.Of(source, destination) and writes it back, so the kernel
// forwards it on to its destination. Packets of one pair of hosts keep
// their order (one queue per delay). Other packets (IPv6) are dropped. It
// returns when ctx is done.
func RunDelayLine(ctx context.Context, dev string, d Delays, ready func()) error {
	tun, err := openTUN(dev)
	if err != nil {
		return err
	}
	defer tun.Close()
	// Forward between the bridge and dev in both directions: no reverse
	// path filter (a packet from a host comes back in on dev) and no
	// redirects (the hosts must keep sending through the router).
	for _, s := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv4.conf." + bridgeDev + ".rp_filter", "0"},
		{"net.ipv4.conf." + dev + ".rp_filter", "0"},
		{"net.ipv4.conf.all.send_redirects", "0"},
		{"net.ipv4.conf." + bridgeDev + ".send_redirects", "0"},
	} {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var writers sync.WaitGroup
	defer writers.Wait()
	defer cancel()
	queues := map[time.Duration]chan packet{}
	for _, delay := range []time.Duration{0, d.Near, d.Far} {
		if _, ok := queues[delay]; ok {
			continue
		}
		q := make(chan packet, 8192)
		queues[delay] = q
		writers.Go(func() { writeDelayed(ctx, tun, q) })
	}
	writers.Go(func() {
		<-ctx.Done()
		tun.Close() // ends the Read below
	})
	if ready != nil {
		ready()
	}
	buf := make([]byte, 65536)
	for {
		n, err := tun.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netlab: delay line: %w", err)
		}
		if n < 20 || buf[0]>>4 != 4 {
			continue
		}
		src := netip.AddrFrom4([4]byte(buf[12:16]))
		dst := netip.AddrFrom4([4]byte(buf[16:20]))
		delay := d.Of(src, dst)
		select {
		case queues[delay] <- packet{due: time.Now().Add(delay), data: append([]byte(nil), buf[:n]...)}:
		default: // the queue is full: drop, as a router would
		}
	}
}

// packet is one packet in the delay line, and when it is due out.
type packet struct {
	due  time.Time
	data []byte
}

// writeDelayed writes the packets of q, in order, each when it is due,
// until ctx is done.
func writeDelayed(ctx context.Context, tun *os.File, q <-chan packet) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var p packet
		select {
		case <-ctx.Done():
			return
		case p = <-q:
		}
		if wait := time.Until(p.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		// A packet the kernel refuses (say, no route) is lost, as on a
		// real link; after Close, every write fails until ctx is seen.
		tun.Write(p.data)
	}
}
