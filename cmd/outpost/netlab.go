package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/outpost-cdn/outpost/netlab"
)

// netlabPrefix names the namespaces of the lab people run by hand.
const netlabPrefix = "olab-"

func runNetlab(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprint(w, `Usage: outpost netlab up|down [flags]

The CDN across hosts of its own on this machine (Linux, root): network
namespaces olab-* for the origin, three PoPs, the DNS server and a client
in each of three regions, joined by a bridge whose router delays packets
between regions. "up" builds it, starts the CDN in it and prints what to
run inside; "down" removes it. deploy/netlab wraps both.

Subcommands run inside the lab (by "up" and the tests):
  delay-line   the router's delay line, in the bridge namespace
  wait         poll health URLs until they answer 200
`)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "up":
		return runNetlabUp(args[1:], stdout, stderr)
	case "down":
		return runNetlabDown(args[1:], stdout, stderr)
	case "delay-line":
		return runNetlabDelayLine(args[1:], stdout, stderr)
	case "wait":
		return runNetlabWait(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "outpost netlab: unknown subcommand %q (want up or down)\n", args[0])
	return errUsage
}

func runNetlabUp(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("netlab up", "[--dir DIR] [--bin FILE] [--near D] [--far D] [--delay auto|netem|relay]", stdout, stderr)
	dir := fs.String("dir", filepath.Join(os.TempDir(), "outpost-netlab"), "where the lab's CDN file, network map and logs go")
	bin := fs.String("bin", "", "the outpost binary to run in the hosts (default: this one)")
	near := fs.Duration("near", 5*time.Millisecond, "one-way delay between a client and the PoP of its region")
	far := fs.Duration("far", 120*time.Millisecond, "one-way delay between a client and a PoP of another region")
	delay := fs.String("delay", netlab.DelayAuto, "how packets are delayed: netem (the kernel's qdisc), relay (a TUN delay line) or auto (netem where the kernel has it)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = exe
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	*bin = abs
	if err := netlab.Check(netlabPrefix); err != nil {
		return err
	}
	if _, err := os.Stat("/run/netns/" + netlabPrefix + "br"); err == nil {
		return errors.New("a lab is already up (namespace " + netlabPrefix + "br exists): run outpost netlab down first")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lab, err := netlab.Up(ctx, netlab.Options{
		Prefix: netlabPrefix, Binary: *bin, Dir: *dir, Near: *near, Far: *far, Delay: *delay,
		Detached: true, Log: stdout,
	})
	if err != nil {
		return err
	}
	printNetlab(stdout, lab, *bin)
	return nil
}

// printNetlab prints the lab's hosts and what to run inside it.
func printNetlab(w io.Writer, lab *netlab.Lab, bin string) {
	fmt.Fprintf(w, "\nThe lab is up. Files and logs: %s\n\n", filepath.Dir(lab.ConfigPath()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  host\tnamespace\taddress\trole")
	for _, h := range netlab.Hosts {
		role := string(h.Role)
		switch h.Role {
		case netlab.RolePoP:
			role = fmt.Sprintf("PoP %s (%s, region %s)", h.PoP, h.City, h.Region)
		case netlab.RoleClient:
			role = fmt.Sprintf("client (%s, region %s)", h.City, h.Region)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, lab.NS(h.Name), h.Addr, role)
	}
	tw.Flush()
	cfg, url := lab.ConfigPath(), "http://"+netlab.ServiceHost+"/obj/1"
	in := func(host string) string { return "ip netns exec " + lab.NS(host) + " " }
	prg, _ := netlab.PoPHost("prg")
	nrt, _ := netlab.PoPHost("nrt")
	dnsHost, _, _ := net.SplitHostPort(netlab.DNSAddr())
	fmt.Fprintf(w, `
Try it (as root; every command runs inside one host of the lab):

  # Each client is sent to the PoP of its region (eu→prg, us→iad, as→nrt):
  %[1]s%[2]s bench -dns %[3]s -n 200 -c 4 %[4]s
  %[5]s%[2]s bench -dns %[3]s -n 200 -c 4 %[4]s
  %[6]sdig @%[7]s %[8]s +short          # if dig is installed
  # The far PoP, for comparison (about 2 × 120 ms per round trip):
  %[1]s%[2]s bench -connect %[9]s -n 20 %[4]s
  %[1]s%[2]s bench -connect %[10]s:%[11]d -n 20 %[4]s   # prg, the near one
  # The CDN-wide figures, and a purge that reaches every PoP:
  %[12]s%[2]s stats --config %[13]s
  %[12]s%[2]s purge --config %[13]s %[4]s
  # Stop prg as an operator would; within a second eu's answer becomes iad:
  kill -TERM $(ip netns pids %[14]s)
  # A shell on a host:
  %[1]sbash

Tear it down: deploy/netlab down (or: %[2]s netlab down)
`, in("client-eu"), bin, netlab.DNSAddr(), url, in("client-as"), in("client-us"),
		dnsHost, netlab.ServiceHost, net.JoinHostPort(nrt.Addr.String(), strconv.Itoa(netlab.PoPPort)),
		prg.Addr, netlab.PoPPort, in("dns"), cfg, lab.NS(prg.Name))
}

func runNetlabDown(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("netlab down", "", stdout, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root")
	}
	if err := netlab.Down(netlabPrefix); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "netlab: down (namespaces "+netlabPrefix+"* removed)")
	return nil
}

func runNetlabDelayLine(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("netlab delay-line", "-dev NAME -near D -far D -region NAME=ADDR,… …", stdout, stderr)
	dev := fs.String("dev", "dl0", "the TUN device to make")
	var d netlab.Delays
	fs.DurationVar(&d.Near, "near", 5*time.Millisecond, "one-way delay within a region")
	fs.DurationVar(&d.Far, "far", 120*time.Millisecond, "one-way delay between regions")
	fs.Func("region", "a region and its addresses, NAME=ADDR,ADDR… (repeatable)", d.ParseRegion)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return netlab.RunDelayLine(ctx, *dev, d, func() { fmt.Fprintln(stdout, "delay line ready on", *dev) })
}

func runNetlabWait(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("netlab wait", "[-timeout D] URL…", stdout, stderr)
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	return netlab.WaitHTTP(context.Background(), *timeout, fs.Args(), stdout)
}
