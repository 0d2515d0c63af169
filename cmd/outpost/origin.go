package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

func runOrigin(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("origin", "[--listen ADDR] [--cache-control VALUE] [--error-rate F] [--latency D|MIN-MAX] [--seed N] [--shutdown-grace D] [--log-level L]", stdout, stderr)
	listen := fs.String("listen", synthetic.DefaultListen, "address to serve on")
	cacheControl := fs.String("cache-control", synthetic.DefaultCacheControl,
		`Cache-Control of /obj responses without ?cc= ("" or "none": send none)`)
	errorRate := fs.Float64("error-rate", 0, "fraction of content requests answered 503, from 0 to 1")
	var latency latencyFlag
	fs.Var(&latency, "latency", "latency added before each content response: a duration (20ms) or a range drawn uniformly (10ms-50ms)")
	seed := fs.Uint64("seed", 1, "seed of the error-rate and latency draws")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long in-flight requests may take to finish on SIGINT or SIGTERM")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
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
	cc := *cacheControl
	if cc == "" {
		cc = "none"
	}
	srv, err := synthetic.New(synthetic.Options{
		Listen:              *listen,
		DefaultCacheControl: cc,
		ErrorRate:           *errorRate,
		Latency:             latency.min,
		LatencyMax:          latency.max,
		Seed:                *seed,
		ShutdownGrace:       *grace,
		Logger:              logger,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// latencyFlag is --latency: a duration, or a range "MIN-MAX".
type latencyFlag struct{ min, max time.Duration }

func (l *latencyFlag) String() string {
	if l.max > l.min {
		return l.min.String() + "-" + l.max.String()
	}
	return l.min.String()
}

func (l *latencyFlag) Set(s string) error {
	first, last, isRange := strings.Cut(s, "-")
	lo, err := time.ParseDuration(first)
	if err != nil || lo < 0 {
		return fmt.Errorf("want a duration (20ms) or a range (10ms-50ms)")
	}
	hi := lo
	if isRange {
		if hi, err = time.ParseDuration(last); err != nil || hi < lo {
			return fmt.Errorf("want a range whose end is a duration no shorter than its start (10ms-50ms)")
		}
	}
	l.min, l.max = lo, hi
	return nil
}
