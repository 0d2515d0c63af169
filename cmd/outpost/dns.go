package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

func runDNS(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dns", "--config FILE [--check] [--log-level L]", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file, with a dns section (required)")
	check := fs.Bool("check", false, "validate the file and its network map, then exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	srv, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: logger})
	if err != nil {
		return err
	}
	if *check {
		st := srv.Stats()
		networks := "no network map"
		if st.NetworkMapEntries >= 0 {
			networks = fmt.Sprintf("%d networks", st.NetworkMapEntries)
		}
		fmt.Fprintf(stdout, "%s: ok (version %s, zone %s, %d PoPs, %s)\n", *configPath, cfg.Version, cfg.Zone, len(cfg.POPs), networks)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP checks the file and says it needs a restart, rather than
	// ending the server (the default for SIGHUP).
	go reloadOnHUP(ctx, logger, *configPath, func(*config.Config) error {
		return errors.New("the DNS server cannot reload its configuration yet: restart it to apply the file (it is valid)")
	})
	return srv.Run(ctx)
}
