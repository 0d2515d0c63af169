package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

func runPoP(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pop", "--config FILE [--pop NAME] [--check]", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file (required)")
	popName := fs.String("pop", "", "which PoP of the file to run (may be omitted when the file has one)")
	check := fs.Bool("check", false, "validate the file and the PoP choice, then exit")
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
	pc, err := cfg.POP(*popName)
	if err != nil {
		return err
	}
	if *check {
		// The PoP would refuse a placeholder purge token: so does the check
		// (systemd runs it before a start or reload).
		if err := cfg.CheckPurgeToken(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok (version %s, pop %s, %d services)\n", *configPath, cfg.Version, pc.Name, len(cfg.Services))
		return nil
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Make the garbage collector keep the heap within what the PoP is
		// allowed to hold, so garbage does not add to it.
		debug.SetMemoryLimit(pop.MemoryLimit(pc))
	}
	opts := pop.Options{Logger: logger}
	if cfg.Control.Enabled() {
		opts.Registry = newRegistry() // shared with the control agent's metrics
	}
	p, err := pop.New(cfg, pc.Name, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go reloadOnHUP(ctx, logger, *configPath, p.Reload)
	if cfg.Control.Enabled() {
		agentDone, err := startAgent(ctx, cfg, *configPath, pc.Name, p, opts.Registry, logger)
		if err != nil {
			return err
		}
		defer func() { <-agentDone }()
	}
	return p.Run(ctx)
}

// reloadOnHUP reloads the file into the running role on each SIGHUP until
// ctx is done. A file that does not load or is refused is logged and the
// running configuration stays.
func reloadOnHUP(ctx context.Context, logger *slog.Logger, path string, reload func(*config.Config) error) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := config.Load(path)
		if err == nil {
			err = reload(cfg)
		}
		if err != nil {
			logger.Error("reload rejected; the running configuration stays", "file", path, "err", err)
			continue
		}
	}
}

// newLogger makes the text logger the roles write to stderr.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
