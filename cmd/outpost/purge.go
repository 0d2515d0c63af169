package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
	"github.com/outpost-cdn/outpost/purge"
)

func runPurge(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("purge", "--config FILE [--prefix | --tag] [--soft] TARGET", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file (required): every PoP in it is purged")
	prefix := fs.Bool("prefix", false, "TARGET is a URL prefix: purge every URL that starts with it")
	tag := fs.Bool("tag", false, "TARGET is a surrogate key (Surrogate-Key / Cache-Tag): purge every object tagged with it")
	soft := fs.Bool("soft", false, "mark stale instead of deleting: the next request revalidates, stale-if-error still works")
	token := fs.String("token", "", "bearer token (default: $OUTPOST_PURGE_TOKEN, else the file's purge.token_file or purge.token)")
	timeout := fs.Duration("timeout", 5*time.Second, "per-attempt timeout (over the bus: how long to wait for the acks; default control.purge_timeout)")
	attempts := fs.Int("attempts", 3, "attempts per PoP for transient failures")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := requireFlags(fs, stderr, "config"); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*prefix && *tag) {
		if fs.NArg() == 0 {
			fmt.Fprintln(stderr, "outpost purge: TARGET (a URL, a prefix or a tag) is required")
		}
		fs.Usage()
		return errUsage
	}
	if err := positiveFlags(fs, "timeout", "attempts"); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	target := fs.Arg(0)
	req := popapi.PurgeRequest{ID: purge.NewID(), Soft: *soft}
	kind := "url"
	switch {
	case *prefix:
		req.Prefix, kind = target, "prefix"
	case *tag:
		req.Tag, kind = target, "tag"
	default:
		req.URL = target
	}
	if err := purge.Check(cfg, req); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode := "hard"
	if *soft {
		mode = "soft"
	}
	if cfg.Control.Enabled() {
		// Over the bus: durable, and acknowledged by each PoP.
		wait := cfg.Control.PurgeTimeout
		if timeoutSet(fs) {
			wait = *timeout
		}
		return purgeOverBus(ctx, cfg, req, wait, fmt.Sprintf("purge %s: %s %s (%s) over the bus", req.ID, kind, target, mode), stdout)
	}
	start := time.Now()
	results := purge.Send(ctx, cfg, req, purge.Options{Token: *token, Timeout: *timeout, Attempts: *attempts})
	total := time.Since(start)

	fmt.Fprintf(stdout, "purge %s: %s %s (%s)\n", req.ID, kind, target, mode)
	confirmed := 0
	for _, r := range results {
		if r.OK {
			confirmed++
			note := ""
			if r.Duplicate {
				note = " (already applied)"
			}
			fmt.Fprintf(stdout, "  %-12s ok      %6d objects  %8s%s\n", r.PoP, r.Purged, r.Latency.Round(10*time.Microsecond), note)
			continue
		}
		fmt.Fprintf(stdout, "  %-12s FAILED  %v (%d attempts, %s)\n", r.PoP, r.Err, r.Attempts, r.Latency.Round(10*time.Microsecond))
	}
	fmt.Fprintf(stdout, "%d/%d PoPs confirmed in %s\n", confirmed, len(results), total.Round(10*time.Microsecond))
	if confirmed != len(results) {
		return errors.New("not every PoP confirmed the purge")
	}
	return nil
}

// timeoutSet reports whether --timeout was given.
func timeoutSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	return set
}
