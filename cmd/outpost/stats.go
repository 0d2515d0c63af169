package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/stats"
)

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", "--config FILE [--json] [--watch]", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file (required): every PoP in it is polled")
	asJSON := fs.Bool("json", false, `print {"pops": {NAME: /stats}, "total": {...}, "services": {...}}`)
	watch := fs.Bool("watch", false, "refresh in place until Ctrl-C")
	every := fs.Duration("interval", 2*time.Second, "refresh interval with --watch")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := requireFlags(fs, stderr, "config"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if err := positiveFlags(fs, "interval"); err != nil {
		return err
	}
	// Screen codes only for a terminal: piped or logged, each report
	// follows the last under a timestamp line.
	clear := false
	if f, ok := stdout.(*os.File); ok && isTerminal(f) {
		clear = true
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var conn *control.Conn
	if cfg.Control.Enabled() {
		if conn, err = operatorConn(ctx, cfg); err != nil {
			return err
		}
		defer conn.Close()
	}
	for {
		var r *stats.Report
		if conn != nil {
			// Over the bus: one request every PoP agent answers.
			if r, err = conn.StatsReport(ctx, cfg); err != nil {
				return err
			}
		} else {
			r = stats.Collect(ctx, cfg, nil)
		}
		if *watch && !*asJSON {
			if clear {
				fmt.Fprint(stdout, "\033[H\033[2J") // clear the screen, cursor home
			}
			fmt.Fprintf(stdout, "%s  %s  (every %s; Ctrl-C stops)\n\n", r.At.Format(time.TimeOnly), cfg.Path, *every)
		}
		if *asJSON {
			out, err := r.JSON()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(out))
		} else if err := r.WriteTable(stdout); err != nil {
			return err
		} else if conn != nil {
			if err := writeBusStates(ctx, conn, stdout); err != nil {
				return err
			}
		}
		if *watch && !*asJSON && !clear {
			fmt.Fprintln(stdout)
		}
		if !*watch {
			if down := r.Down(); len(down) > 0 {
				return errors.New("unreachable: " + strings.Join(down, ", "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

// writeBusStates adds the PoPs' control-plane figures (health, config
// revision, purge lag) from one state interval of their states.
func writeBusStates(ctx context.Context, conn *control.Conn, stdout io.Writer) error {
	states, err := conn.States(ctx, conn.StateInterval()+conn.StateInterval()/2)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nControl plane (the PoPs' states):")
	return control.WriteStates(stdout, states)
}
