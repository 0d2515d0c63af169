package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
	"github.com/outpost-cdn/outpost/sdnotify"
)

func runPoP(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pop", "--config FILE [--pop NAME] [--check] [--watch-config DURATION]", stdout, stderr)
	sf := addServerFlags(fs, "the CDN's YAML file (required)", "validate the file and the PoP choice, then exit")
	popName := fs.String("pop", "", "which PoP of the file to run (may be omitted when the file has one)")
	logger, cfg, err := sf.parse(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	pc, err := cfg.POP(*popName)
	if err != nil {
		return err
	}
	if *sf.check {
		// The PoP would refuse a placeholder purge token: so does the check
		// (systemd runs it before a start or reload).
		if err := cfg.CheckPurgeToken(); err != nil {
			return err
		}
		version, err := cfg.ContentVersion()
		if err != nil {
			return err
		}
		if mem, ok := hostMemory(); ok && pop.MemoryLimit(pc) > mem {
			fmt.Fprintf(stderr, "warning: pop %s: cache_size %s + limits.inflight_bytes %s + 64MiB is more than this host's memory (%s): the kernel would kill the PoP before the cache is full\n",
				pc.Name, mib(pc.CacheSize), mib(pc.Limits.InflightBytes), mib(mem))
		}
		fmt.Fprintf(stdout, "%s: ok (version %s, pop %s, %d services)\n", *sf.configPath, version, pc.Name, len(cfg.Services))
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
	go reloadOnHUP(ctx, logger, *sf.configPath, p.Reload)
	go reopenOnUSR1(ctx, logger, p.ReopenLogs)
	go watchConfig(ctx, logger, *sf.configPath, *sf.watchEvery, p.Reload)
	if cfg.Control.Enabled() {
		agentDone, err := startAgent(ctx, cfg, *sf.configPath, pc.Name, p, opts.Registry, logger)
		if err != nil {
			return err
		}
		defer func() { <-agentDone }()
	}
	ls, err := p.Listen(ctx)
	if err != nil {
		return err
	}
	// Bound: connections queue in the kernel until the servers take them,
	// so a unit of Type=notify is started now (sdnotify does nothing
	// outside systemd).
	notifyReady(ctx, logger, "http://"+ls.Admin.Addr().String()+"/healthz")
	return p.ServeListeners(ctx, ls)
}

// notifyReady tells systemd the service is ready, and that it is
// stopping once ctx is done, and keeps its watchdog fed while healthURL
// answers at all (503 "draining" included): a process whose admin server
// hangs stops feeding it, and systemd restarts it after WatchdogSec.
func notifyReady(ctx context.Context, logger *slog.Logger, healthURL string) {
	if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		logger.Warn("sd_notify READY failed", "err", err)
	}
	go func() {
		<-ctx.Done()
		sdnotify.Notify(sdnotify.Stopping)
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	go sdnotify.RunWatchdog(ctx, func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			logger.Warn("watchdog: the admin listener does not answer; not feeding systemd's watchdog", "err", err)
			return false
		}
		resp.Body.Close()
		return true
	})
}

// reopenOnUSR1 reopens the log files on each SIGUSR1 until ctx is done,
// as nginx does: logrotate moves the file, then signals.
func reopenOnUSR1(ctx context.Context, logger *slog.Logger, reopen func() error) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
		}
		if err := reopen(); err != nil {
			logger.Error("reopening the access log failed; still writing to the old file", "err", err)
		}
	}
}

// watchConfig reloads the file into the running role whenever it or a
// file it names changes on disk (config.Watch), polled every interval; 0
// means never. A file that does not load is logged and the running
// configuration stays, as with SIGHUP.
func watchConfig(ctx context.Context, logger *slog.Logger, path string, every time.Duration, reload func(*config.Config) error) {
	if every <= 0 {
		return
	}
	var mu sync.Mutex
	named := namedFiles(path)
	files := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string{path}, named...)
	}
	config.Watch(ctx, every, files, func() {
		cfg, err := config.Load(path)
		if err == nil {
			err = reload(cfg)
		}
		if err != nil {
			logger.Error("the file changed but does not apply; the running configuration stays", "file", path, "err", err)
			return
		}
		mu.Lock()
		named = cfg.NamedFiles()
		mu.Unlock()
		logger.Info("the file changed on disk: reloaded", "file", path)
	})
}

// namedFiles are the files path's configuration names, or none when it
// does not load.
func namedFiles(path string) []string {
	cfg, err := config.Load(path)
	if err != nil {
		return nil
	}
	return cfg.NamedFiles()
}

// hostMemory is the memory this process may use: the smaller of the
// host's (MemTotal) and its cgroup's limit (memory.max, cgroup v2). ok is
// false where neither can be read.
func hostMemory() (int64, bool) {
	var mem int64
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					mem = kb << 10
				}
			}
		}
	}
	if data, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && n > 0 && (mem == 0 || n < mem) {
			mem = n
		}
	}
	return mem, mem > 0
}

// mib formats a byte count in MiB or GiB.
func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0fMiB", float64(n)/(1<<20))
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
		sdnotify.Notify(sdnotify.ReloadingNow())
		cfg, err := config.Load(path)
		if err == nil {
			err = reload(cfg)
		}
		sdnotify.Notify(sdnotify.Ready)
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
