package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/dnsgeo"
	"github.com/outpost-cdn/outpost/popapi"
)

// runBus is `outpost bus`: the embedded NATS server of the control
// section's server part.
func runBus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bus", "--config FILE [--name NAME]", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file, with a control.server section (required)")
	name := fs.String("name", "", "this server's name, unique in the cluster (default: the host name and port)")
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
	opts, err := bus.FromConfig(&cfg.Control, *name)
	if err != nil {
		return err
	}
	opts.Logger = logger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := bus.Start(ctx, opts)
	if err != nil {
		return err
	}
	logger.Info("bus ready", "url", s.ClientURL(), "users", len(opts.Users))
	return s.Run(ctx)
}

// runConfig is `outpost config push|status`.
func runConfig(args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stdout, "Usage: outpost config push --config FILE [PUSHED]   validate PUSHED (default FILE) and publish it as the next revision")
		fmt.Fprintln(stdout, "       outpost config status --config FILE          every host's revision, what waits for a restart, who is behind")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := args[0]
	fs := newFlagSet("config "+sub, "--config FILE", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file with the control section to reach the bus (required)")
	listen := fs.Duration("listen", 1500*time.Millisecond, "status: how long to listen to the PoPs' states")
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() > 1 || (sub == "status" && fs.NArg() > 0) {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch sub {
	case "push":
		pushed := *configPath
		if fs.NArg() == 1 {
			pushed = fs.Arg(0)
		}
		data, next, err := control.ValidateFile(pushed, checkDNSFiles)
		if err != nil {
			return fmt.Errorf("%s is refused, nothing was published:\n%w", pushed, err)
		}
		conn, err := operatorConn(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		rev, err := conn.PushConfig(ctx, data)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: revision %d (version %s, %d PoPs, %d services)\n", pushed, rev, next.Version, len(next.POPs), len(next.Services))
		return nil
	case "status":
		conn, err := operatorConn(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		st, err := conn.FleetStatus(ctx, *listen)
		if err != nil {
			return err
		}
		if err := st.WriteTable(stdout, time.Now()); err != nil {
			return err
		}
		if b := st.Behind(); len(b) > 0 {
			return errors.New("hosts behind: " + strings.Join(b, ", "))
		}
		return nil
	}
	usage()
	return errUsage
}

// checkDNSFiles loads what the DNS server loads beside the file (network
// map, geo databases), so a push refuses a file whose DNS part would not
// start.
func checkDNSFiles(cfg *config.Config) error {
	if !cfg.DNS.Enabled() {
		return nil
	}
	srv, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	srv.Close()
	return nil
}

// operatorConn dials the bus as the operator and makes sure the stream
// and buckets exist.
func operatorConn(ctx context.Context, cfg *config.Config) (*control.Conn, error) {
	conn, err := control.Dial(ctx, &cfg.Control, control.Identity{Role: config.RoleOperator}, control.DialOptions{})
	if err != nil {
		return nil, err
	}
	if err := conn.Ensure(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// purgeOverBus is `outpost purge` for a file with a control section.
func purgeOverBus(ctx context.Context, cfg *config.Config, req popapi.PurgeRequest, timeout time.Duration, header string, stdout io.Writer) error {
	conn, err := operatorConn(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	pops := make([]string, len(cfg.POPs))
	for i, p := range cfg.POPs {
		pops[i] = p.Name
	}
	start := time.Now()
	r, err := conn.Purge(ctx, req, pops, timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s, stream sequence %d\n", header, r.Seq)
	r.WriteTable(stdout)
	fmt.Fprintf(stdout, "%d/%d PoPs confirmed in %s\n", len(r.Acks), len(pops), time.Since(start).Round(10*time.Microsecond))
	if r.Failed() {
		return errors.New("not every PoP confirmed the purge")
	}
	return nil
}

// newRegistry is a metrics registry with the Go runtime and process
// collectors, as the PoP makes when given none.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startAgent connects PoP name to the bus (retrying in the background
// while the bus is away) and runs its control agent until ctx is done;
// the channel closes when it has stopped.
func startAgent(ctx context.Context, cfg *config.Config, path, name string, p control.PoP, reg prometheus.Registerer, logger *slog.Logger) (<-chan struct{}, error) {
	conn, err := control.Dial(ctx, &cfg.Control, control.Identity{Role: config.RolePoP, Name: name}, control.DialOptions{Logger: logger, Wait: true})
	if err != nil {
		return nil, err
	}
	a, err := control.NewAgent(conn, p, control.AgentOptions{Name: name, Path: path, Config: cfg, Logger: logger, Registry: reg})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return runOnBus(ctx, conn, a.Run, logger, "control agent stopped"), nil
}

// runOnBus runs run (an agent's or a follower's loop) until ctx is done,
// then closes conn; the channel closes when it has stopped. A run that
// ends in an error is logged as msg.
func runOnBus(ctx context.Context, conn *control.Conn, run func(context.Context) error, logger *slog.Logger, msg string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		if err := run(ctx); err != nil {
			logger.Error(msg, "err", err)
		}
	}()
	return done
}
