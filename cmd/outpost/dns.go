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
	fs := newFlagSet("dns", "--config FILE [--name NAME] [--check] [--watch-config DURATION] [--log-level L]\n       outpost dns explain --config FILE [--type A|AAAA] IP|PREFIX", stdout, stderr)
	sf := addServerFlags(fs, "the CDN's YAML file, with a dns section (required)", "validate the file and its network map, then exit")
	name := fs.String("name", "", "this server's name on the control bus (default: the host name)")
	logger, cfg, err := sf.parse(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	srv, err := newDNSServer(cfg, logger)
	if err != nil {
		return err
	}
	if *sf.check {
		defer srv.Close()
		st := srv.Stats()
		networks := "no network map"
		if st.NetworkMapEntries >= 0 {
			networks = fmt.Sprintf("%d networks", st.NetworkMapEntries)
		}
		fmt.Fprintf(stdout, "%s: ok (version %s, zone %s, %d PoPs, %s)\n", *sf.configPath, st.ConfigVersion, cfg.Zone, len(cfg.POPs), networks)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP, and with --watch-config a change on disk, reload the file,
	// the network map and the databases; a file that does not load is
	// logged and the running configuration stays.
	go reloadOnHUP(ctx, logger, *sf.configPath, srv.Reload)
	go watchConfig(ctx, logger, *sf.configPath, *sf.watchEvery, srv.Reload)
	if cfg.Control.Enabled() {
		followerDone, err := startDNSFollower(ctx, cfg, *sf.configPath, *name, srv, logger)
		if err != nil {
			return err
		}
		defer func() { <-followerDone }()
	}
	return srv.Run(ctx)
}

// dnsServer is the DNS server as `outpost dns` runs it: every
// configuration it is given, at start, on SIGHUP, from --watch-config or
// from the control plane, runs with its content version
// (contentVersioned), so /stats and the logs change their config_version
// when the network map or a geo database changes, as a PoP's do.
type dnsServer struct {
	*dnsgeo.Server
	log *slog.Logger
}

// newDNSServer makes the DNS server of cfg (see dnsServer).
func newDNSServer(cfg *config.Config, logger *slog.Logger) (*dnsServer, error) {
	srv, err := dnsgeo.New(contentVersioned(cfg, logger), dnsgeo.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	return &dnsServer{Server: srv, log: logger}, nil
}

// Reload applies cfg with its content version; an error keeps the running
// configuration (dnsgeo.Server.Reload).
func (s *dnsServer) Reload(cfg *config.Config) error {
	return s.Server.Reload(contentVersioned(cfg, s.log))
}

// contentVersioned returns cfg with Version replaced by its content
// version (config.ContentVersion: the file and the files it names), which
// is what dnsgeo reports as config_version. It is a shallow copy: cfg, and
// its Version, stay as loaded, for the control plane, which compares the
// files' own versions. When a named file cannot be read it logs a warning
// and returns cfg itself; the server then refuses a network map or
// database it cannot open.
func contentVersioned(cfg *config.Config, logger *slog.Logger) *config.Config {
	v, err := cfg.ContentVersion()
	if err != nil {
		logger.Warn("config version: a named file does not read; reporting the file's own version", "err", err)
		return cfg
	}
	c := *cfg
	c.Version = v
	return &c
}

// startDNSFollower connects the DNS server to the bus as a dns user
// (retrying in the background while the bus is away: the server routes
// on its probes meanwhile) and feeds it the PoPs' states and the config
// revisions until ctx is done; the channel closes when it has stopped.
func startDNSFollower(ctx context.Context, cfg *config.Config, path, name string, srv *dnsServer, logger *slog.Logger) (<-chan struct{}, error) {
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
	return runOnBus(ctx, conn, f.Run, logger, "control: the DNS server stopped following the bus; it routes on its probes"), nil
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
