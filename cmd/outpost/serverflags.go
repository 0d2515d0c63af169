package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// serverFlags are the flags the long-running roles (pop, dns) share.
type serverFlags struct {
	configPath *string
	check      *bool
	logLevel   *string
	watchEvery *time.Duration
}

// addServerFlags defines the shared flags on fs; configHelp describes
// --config.
func addServerFlags(fs *flag.FlagSet, configHelp, checkHelp string) *serverFlags {
	return &serverFlags{
		configPath: fs.String("config", "", configHelp),
		check:      fs.Bool("check", false, checkHelp),
		logLevel:   fs.String("log-level", "info", "log level: debug, info, warn or error"),
		watchEvery: fs.Duration("watch-config", 0, "also reload when the file or a file it names changes on disk, polled this often (10s for a mounted ConfigMap); 0: only on SIGHUP"),
	}
}

// parse parses args into fs, checks the shared flags (--config is
// required, no arguments are left, --watch-config is not negative) and
// returns the logger and the loaded file.
func (s *serverFlags) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (*slog.Logger, *config.Config, error) {
	if err := parseFlags(fs, args, stdout); err != nil {
		return nil, nil, err
	}
	if err := requireFlags(fs, stderr, "config"); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, nil, errUsage
	}
	if *s.watchEvery < 0 {
		return nil, nil, fmt.Errorf("--watch-config %s: want a positive interval, or 0 for none", *s.watchEvery)
	}
	logger, err := newLogger(stderr, *s.logLevel)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*s.configPath)
	if err != nil {
		return nil, nil, err
	}
	return logger, cfg, nil
}
