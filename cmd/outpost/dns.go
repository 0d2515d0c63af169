package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

func runDNS(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "explain" {
		return runDNSExplain(args[1:], stdout, stderr)
	}
	fs := newFlagSet("dns", "--config FILE [--name NAME] [--check] [--log-level L]\n       outpost dns explain --config FILE [--type A|AAAA] IP|PREFIX", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file, with a dns section (required)")
	check := fs.Bool("check", false, "validate the file and its network map, then exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	name := fs.String("name", "", "this server's name on the control bus (default: the host name)")
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
	if cfg.Control.Enabled() {
		followerDone, err := startDNSFollower(ctx, cfg, *configPath, *name, srv, logger)
		if err != nil {
			return err
		}
		defer func() { <-followerDone }()
	}
	return srv.Run(ctx)
}

// startDNSFollower connects the DNS server to the bus as a dns user
// (retrying in the background while the bus is away: the server routes
// on its probes meanwhile) and feeds it the PoPs' states and the config
// revisions until ctx is done; the channel closes when it has stopped.
func startDNSFollower(ctx context.Context, cfg *config.Config, path, name string, srv *dnsgeo.Server, logger *slog.Logger) (<-chan struct{}, error) {
	if name == "" {
		name = defaultHostName()
	}
	conn, err := control.Dial(ctx, &cfg.Control, control.Identity{Role: config.RoleDNS, Name: name}, control.DialOptions{Logger: logger, Wait: true})
	if err != nil {
		return nil, err
	}
	f, err := control.NewDNSFollower(conn, srv, control.DNSOptions{Name: name, Path: path, Config: cfg, Logger: logger})
	if err != nil {
		conn.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		if err := f.Run(ctx); err != nil {
			logger.Error("control: the DNS server stopped following the bus; it routes on its probes", "err", err)
		}
	}()
	return done, nil
}

// defaultHostName is the machine's host name up to its first dot, with
// what cannot stand in a bus subject replaced by '-'.
func defaultHostName() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "dns"
	}
	return string(b[:min(len(b), 64)])
}
