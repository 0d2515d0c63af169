package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

func runDNS(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "explain" {
		return runDNSExplain(args[1:], stdout, stderr)
	}
	fs := newFlagSet("dns", "--config FILE [--check] [--log-level L]\n       outpost dns explain --config FILE [--type A|AAAA] IP|PREFIX", stdout, stderr)
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
		defer srv.Close()
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
	// SIGHUP reloads the file, the network map and the databases; a file
	// that does not load is logged and the running configuration stays.
	go reloadOnHUP(ctx, logger, *configPath, srv.Reload)
	return srv.Run(ctx)
}
