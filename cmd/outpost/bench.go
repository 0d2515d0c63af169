package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/outpost-cdn/outpost/bench"
	"github.com/outpost-cdn/outpost/origin/synthetic"
)

const benchExitCodes = `
Exit status: 0 when the run completed (request errors, if any, are in the
results); 1 when it failed: a bad file, an unreachable -origin-stats, or no
request answered at all (the results are still printed); 2 for bad flags.
Ctrl-C ends the run early and prints what it measured.
`

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags] URL", stdout, stderr)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(fs.Output(), benchExitCodes)
	}
	var (
		connections  = fs.Int("c", bench.DefaultConnections, "connections (virtual clients), each with one keep-alive connection")
		rate         = fs.Float64("rate", 0, "open loop at this many requests/s in all (0: closed loop, as fast as answers come)")
		duration     = fs.Duration("duration", 0, "measured duration (default 10s, unless -n or -trace)")
		requests     = fs.Int64("n", 0, "measured requests (instead of or as well as -duration)")
		warmup       = fs.Duration("warmup", 0, "warm-up before the measured window, left out of the results")
		timeout      = fs.Duration("timeout", bench.DefaultTimeout, "time limit of each request, from sending to its last byte")
		connect      = fs.String("connect", "", "send every request to this PoP address (host:port), with the URL's Host")
		dnsServer    = fs.String("dns", "", "resolve the URL's host through this DNS server (host:port), per virtual client")
		urls         = fs.String("urls", "", "file of URLs or paths, one a line, requested in turn")
		trace        = fs.String("trace", "", "trace file to replay once: [timestamp] URL [size] a line; timestamps replay at their pace (or -rate)")
		zipfN        = fs.Uint64("zipf", 0, "Zipf popularity over this many objects of the synthetic origin")
		zipfS        = fs.Float64("zipf-s", 1.0, "Zipf exponent s: P(rank k) ∝ 1/k^s")
		pathTemplate = fs.String("path-template", "", `request path of -zipf and -one-hit objects, with {id} and optionally {size} (default "`+bench.DefaultPathTemplate+`")`)
		sizeFlag     = fs.String("size", "", "fixed object size for -zipf and -one-hit (512, 1k, 10KiB, 1m); default: the synthetic origin's own per id")
		shiftEvery   = fs.Uint64("shift-every", 0, "redraw the Zipf rank→object mapping every this many requests")
		shiftPeriod  = fs.Duration("shift-period", 0, "redraw the Zipf rank→object mapping every this long")
		oneHit       = fs.Float64("one-hit", 0, "fraction (0..1) of requests to objects never requested again")
		seed         = fs.Uint64("seed", 1, "seed of the workload and of the clients' regions and addresses")
		method       = fs.String("method", "GET", "GET or HEAD")
		verify       = fs.Bool("verify", false, "check every 200 body from /obj/{id} against the synthetic origin's content")
		originStats  = fs.String("origin-stats", "", "the synthetic origin's stats URL (http://host:port/_origin/stats), for the origin offload")
		insecure     = fs.Bool("k", false, "accept any TLS certificate")
		proto        = fs.String("proto", "h1", "protocol: h1 (HTTP/1.1), h2 (HTTP/2 by ALPN on https, h2c with prior knowledge on http) or h3 (HTTP/3 over QUIC, https only); one connection per virtual client")
		jsonOut      = fs.Bool("json", false, "print the result as one JSON object")
		report       = fs.String("report", "", "write a self-contained HTML report to this file")
		logLevel     = fs.String("log-level", "warn", "log level: debug, info, warn or error")
		regions      regionsFlag
		headers      headersFlag
	)
	fs.Var(&regions, "region", "client region for -dns, name=CIDR[:weight] (repeatable): e.g. fra=198.51.100.0/24:3")
	fs.Var(&headers, "H", `extra request header "Name: value" (repeatable)`)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	// Flags may follow the URL too.
	rest := fs.Args()
	if len(rest) > 1 {
		if err := fs.Parse(rest[1:]); err != nil {
			return errUsage
		}
		rest = append(rest[:1], fs.Args()...)
	}
	if len(rest) > 1 {
		fs.Usage()
		return errUsage
	}
	if err := positiveFlags(fs, "c", "timeout", "duration", "n", "zipf", "shift-every", "shift-period"); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}

	var size int64
	if *sizeFlag != "" {
		if size, err = synthetic.ParseSize(*sizeFlag); err != nil {
			return err
		}
	}
	sources := 0
	for _, set := range []bool{*urls != "", *trace != "", *zipfN > 0} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		fmt.Fprintln(stderr, "outpost bench: -urls, -trace and -zipf are exclusive")
		return errUsage
	}
	cfg := bench.Config{
		Connect: *connect, DNS: *dnsServer, Regions: regions,
		Connections: *connections, Rate: *rate, Duration: *duration, Requests: *requests,
		Warmup: *warmup, Timeout: *timeout, Method: *method, Header: headers, Seed: *seed,
		Verify: *verify, OriginStats: *originStats, InsecureTLS: *insecure, Logger: logger,
	}
	switch *proto {
	case "h1", "http/1.1":
		cfg.Protocol = bench.ProtocolHTTP1
	case "h2", "h3":
		cfg.Protocol = *proto
	default:
		fmt.Fprintf(stderr, "outpost bench: -proto %q: want h1, h2 or h3\n", *proto)
		return errUsage
	}
	if len(rest) == 1 {
		cfg.URL = rest[0]
	}
	switch {
	case *urls != "", *trace != "":
		name := *urls + *trace
		t, err := readTrace(name)
		if err != nil {
			return err
		}
		cfg.Workload = t
		if *urls != "" {
			cfg.Workload = t.Loop()
		}
		if cfg.URL == "" {
			cfg.URL = t.Base()
		}
	case *zipfN > 0:
		if cfg.Workload, err = bench.NewZipf(bench.ZipfOptions{
			Objects: *zipfN, S: *zipfS, PathTemplate: *pathTemplate, Size: size, Seed: *seed,
			ShiftEvery: *shiftEvery, ShiftPeriod: *shiftPeriod,
		}); err != nil {
			return err
		}
	}
	if cfg.URL == "" {
		fmt.Fprintln(stderr, "outpost bench: no URL (give one, or use a -urls/-trace file of absolute URLs)")
		fs.Usage()
		return errUsage
	}
	if *oneHit > 0 {
		inner := cfg.Workload
		if inner == nil {
			inner, err = fixedWorkload(cfg.URL)
			if err != nil {
				return err
			}
		}
		if cfg.Workload, err = bench.WithOneHitWonders(inner, bench.OneHitOptions{
			Fraction: *oneHit, PathTemplate: *pathTemplate, Size: size, Seed: *seed,
		}); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var progress io.Writer
	if f, ok := stdout.(*os.File); ok && isTerminal(f) {
		progress = f
	}
	res, runErr := bench.Run(ctx, cfg, progress)
	if res == nil {
		return runErr
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("writing the result: %w", err)
		}
	} else if err := res.WriteTable(stdout); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	if *report != "" {
		if err := writeReport(*report, res); err != nil {
			return err
		}
	}
	return runErr
}

// readTrace parses a -urls or -trace file.
func readTrace(name string) (*bench.Trace, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := bench.ParseTrace(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// fixedWorkload is the URL's own path, for -one-hit without another
// workload.
func fixedWorkload(rawURL string) (bench.Workload, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return bench.Fixed(u.RequestURI()), nil
}

func writeReport(name string, res *bench.Result) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := res.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// isTerminal reports whether f is a terminal, where the progress line goes.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// regionsFlag is -region, repeatable.
type regionsFlag []bench.Region

func (r *regionsFlag) String() string {
	var parts []string
	for _, x := range *r {
		parts = append(parts, x.String())
	}
	return strings.Join(parts, " ")
}

func (r *regionsFlag) Set(s string) error {
	reg, err := bench.ParseRegion(s)
	if err != nil {
		return err
	}
	*r = append(*r, reg)
	return nil
}

// headersFlag is -H, repeatable.
type headersFlag []string

func (h *headersFlag) String() string { return strings.Join(*h, "; ") }

func (h *headersFlag) Set(s string) error {
	*h = append(*h, s)
	return nil
}
