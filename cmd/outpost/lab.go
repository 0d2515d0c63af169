package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/outpost-cdn/outpost/lab"
)

func runLab(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "[flags]", stdout, stderr)
	var opts lab.Options
	fs.StringVar(&opts.Config, "config", "", "a CDN file to run instead of the built-in deploy/examples/lab.yaml")
	fs.DurationVar(&opts.Duration, "duration", 0, "measured load window (default 8s)")
	fs.DurationVar(&opts.Warmup, "warmup", 0, "warm-up before the window, not counted (default 2s)")
	fs.IntVar(&opts.Connections, "c", 0, "virtual clients, one connection each (default 24)")
	fs.Float64Var(&opts.Rate, "rate", 0, "open loop at this many requests/s (default: closed loop)")
	fs.IntVar(&opts.Objects, "objects", 0, "number of distinct objects of the synthetic origin (default 2000)")
	fs.Float64Var(&opts.ZipfS, "zipf-s", 0, "Zipf exponent of object popularity (default 1.0)")
	fs.Uint64Var(&opts.Seed, "seed", 0, "seed of the workload (default 1)")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the CDN running after the report and print dig and curl commands to try it")
	fs.StringVar(&opts.Report, "report", "", "write an HTML report to this file, and its figures in JSON beside it (.json)")
	shield := fs.Bool("shield", true, "compare origin requests for the same workload without and with a shield PoP (-shield=false skips it)")
	fs.Int64Var(&opts.ShieldRequests, "shield-requests", 0, "requests of each phase of the shield comparison (default 6000)")
	fs.StringVar(&opts.ShieldPoP, "shield-pop", "", "the shield PoP of the comparison (default: the PoP nearest the others)")
	logLevel := fs.String("log-level", "warn", "log level of the roles: debug, info, warn or error")
	regions := fs.String("regions", "", "client regions name=CIDR:weight, comma-separated (default: fra, nyc and osa of the built-in network map)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	opts.Logger = logger
	opts.NoShield = !*shield
	if *regions != "" {
		opts.Regions = splitList(*regions)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.Run(ctx, opts, stdout)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
