// Command outpost is the one binary of the Outpost CDN. Each role is a
// subcommand; this package only parses flags and wires packages together.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/outpost-cdn/outpost/buildinfo"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"lab", "run a whole CDN on this machine, load it and report hit ratios", runLab},
		{"pop", "run a Point-of-Presence: the caching reverse proxy", runPoP},
		{"dns", "run the authoritative geo DNS: each user to the nearest healthy PoP", runDNS},
		{"geodb", "build a MaxMind-format geo or ASN database from a CSV, for dns.geoip and dns.asn", runGeoDB},
		{"dnssec", "make DNSSEC keys for dns.dnssec and print their DS records", runDNSSEC},
		{"origin", "run the synthetic origin for benchmarks, the lab and tests", runOrigin},
		{"bench", "load-test a CDN, a PoP or a URL: latency, throughput, hit ratios", runBench},
		{"purge", "remove content from every PoP, confirmed", runPurge},
		{"sign", "make a signed URL for a service with signed_urls", runSign},
		{"stats", "the CDN-wide hit-ratio report: every PoP's figures and the totals", runStats},
		{"tail", "follow a PoP's requests as they finish, those matching a filter", runTail},
		{"config", "push the CDN file to every host over the control plane; which host runs what", runConfig},
		{"bus", "run an embedded NATS server for the control plane (control.server)", runBus},
		{"cert", "make a local CA and certificates for TLS and QUIC", runCert},
		{"netlab", "the CDN across network namespaces with near and far PoPs (Linux, root)", runNetlab},
		{"version", "print the version", runVersion},
		{"help", "show help for a command", runHelp},
	}
}

func main() {
	if version != "" {
		buildinfo.Version = version // -ldflags "-X main.version=..."
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(args[1:], stdout, stderr)
			switch {
			case err == nil, errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				// A package's own prefix after the command's would stutter
				// ("outpost purge: purge: ...").
				msg := strings.TrimPrefix(err.Error(), name+": ")
				fmt.Fprintf(stderr, "outpost %s: %s\n", name, msg)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "outpost: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// errUsage reports bad flags or arguments, after the usage was printed.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "Outpost is an edge CDN: geo DNS, caching PoPs, an origin and a load tool in one binary.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: outpost <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "outpost <command> -h" for a command's flags.`)
}

// newFlagSet makes a flag set whose -h prints usage to stdout and whose
// errors print to stderr.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("outpost "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: outpost %s %s\n\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, printing usage to stdout for -h and to stderr for
// bad flags.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
		if a == "--" {
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
}

// requireFlags names the required flags that were not given, prints the
// usage, and returns errUsage; nil when every one was given.
func requireFlags(fs *flag.FlagSet, stderr io.Writer, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() != "" })
	var missing []string
	for _, n := range names {
		if !set[n] {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	verb := "is"
	if len(missing) > 1 {
		verb = "are"
	}
	fmt.Fprintf(fs.Output(), "%s: %s %s required\n", fs.Name(), strings.Join(missing, " and "), verb)
	fs.Usage()
	return errUsage
}

// positiveFlags refuses the named flags when they were given as zero or
// less: zero is not a way to ask for the default.
func positiveFlags(fs *flag.FlagSet, names ...string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		for _, n := range names {
			if f.Name == n && err == nil {
				if v := f.Value.String(); v == "0" || v == "0s" || strings.HasPrefix(v, "-") {
					err = fmt.Errorf("-%s %s: want more than zero (leave it out for the default, %s)", n, v, f.DefValue)
				}
			}
		}
	})
	return err
}

func runHelp(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			return c.run([]string{"-h"}, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "outpost help: unknown command %q\n", args[0])
	return errUsage
}
