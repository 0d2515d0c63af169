package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-cdn/outpost/config"
)

// maxConfigFile bounds the CDN file a push publishes (the bucket's value
// limit).
const maxConfigFile = 512 << 10

// ValidateFile reads the CDN file at path and validates it as every host
// will: config.Parse, then check (when not nil) for what a role loads
// beside the file, such as the DNS server's network map and databases.
// It returns the file's bytes and its Config.
func ValidateFile(path string, check func(*config.Config) error) ([]byte, *config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > maxConfigFile {
		return nil, nil, fmt.Errorf("control: %s is larger than %d KiB, the most a revision may hold", path, maxConfigFile>>10)
	}
	cfg, err := config.Parse(path, data)
	if err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, nil, err
		}
	}
	return data, cfg, nil
}

// PushConfig publishes data, a CDN file the caller validated
// (ValidateFile), as the next config revision and returns its number.
func (c *Conn) PushConfig(ctx context.Context, data []byte) (uint64, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, ConfigBucket)
	if err != nil {
		return 0, fmt.Errorf("control: the config bucket: %w", err)
	}
	rev, err := kv.Put(ctx, ConfigKey, data)
	if err != nil {
		return 0, fmt.Errorf("control: publishing the config: %w", err)
	}
	return rev, nil
}

// Revision is one revision of the CDN file on the bus.
type Revision struct {
	Number  uint64
	Data    []byte
	Created time.Time
}

// CurrentConfig returns the latest revision; Number is 0 when none was
// pushed.
func (c *Conn) CurrentConfig(ctx context.Context) (Revision, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, ConfigBucket)
	if err != nil {
		return Revision{}, fmt.Errorf("control: the config bucket: %w", err)
	}
	e, err := kv.Get(ctx, ConfigKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return Revision{}, nil
	case err != nil:
		return Revision{}, fmt.Errorf("control: reading the config: %w", err)
	}
	return Revision{Number: e.Revision(), Data: e.Value(), Created: e.Created()}, nil
}

// HostReport is what a host runs, as it puts it in HostsBucket whenever
// that changes.
type HostReport struct {
	Host string `json:"host"`
	Role string `json:"role"` // pop or dns
	// Revision and Version are the config revision applied (0: the local
	// file, none from the bus yet) and the file's version.
	Revision uint64 `json:"revision"`
	Version  string `json:"version"`
	// PendingRestart lists settings of the applied revision that take
	// effect on restart.
	PendingRestart []string `json:"pending_restart,omitempty"`
	// Refused is the latest revision the host could not apply (it kept the
	// one it ran), and Reason why; 0 when the latest was applied.
	Refused uint64    `json:"refused,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

// putHost records r in HostsBucket.
func (c *Conn) putHost(ctx context.Context, r HostReport) error {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, HostsBucket)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, hostKey(r.Role, r.Host), b)
	return err
}

// Hosts returns every host's report, sorted by role and name.
func (c *Conn) Hosts(ctx context.Context) ([]HostReport, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, HostsBucket)
	if err != nil {
		return nil, fmt.Errorf("control: the hosts bucket: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("control: the hosts bucket: %w", err)
	}
	var out []HostReport
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var r HostReport
		if json.Unmarshal(e.Value(), &r) == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role > out[j].Role // pop before dns
		}
		return out[i].Host < out[j].Host
	})
	return out, nil
}

// Follower keeps a role on the latest config revision: it watches the
// config key (the latest revision first, on start and after every
// reconnect), parses each revision as the local file, applies it, and
// records what the host runs in HostsBucket.
type Follower struct {
	Conn *Conn
	// Role and Host name the host in its report (config.RolePoP or RoleDNS,
	// and its name).
	Role, Host string
	// Path is the local file the host started from: revisions are parsed
	// as if read from it, so relative paths in them resolve as its do.
	Path string
	// Started is the configuration the host started with.
	Started *config.Config
	// Apply applies a revision as a reload does; an error keeps the
	// running configuration.
	Apply func(*config.Config) error
	// Restart lists the settings of next that differ from started and take
	// effect only on restart; nil means RestartSettings(Host).
	Restart func(started, next *config.Config) []string
	// Applied, when set, is called after each revision applied.
	Applied func(rev uint64, cfg *config.Config)
	// Logger; nil means the Conn's.
	Logger *slog.Logger

	mu     sync.Mutex
	report HostReport
}

// Report returns what the host runs now.
func (f *Follower) Report() HostReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.report
	r.PendingRestart = slices.Clone(r.PendingRestart)
	return r
}

// Run follows the config key until ctx is done. It waits (with the
// reconnect backoff) for the bucket when it does not exist yet.
func (f *Follower) Run(ctx context.Context) error {
	log := f.Logger
	if log == nil {
		log = f.Conn.log
	}
	restart := f.Restart
	if restart == nil {
		restart = RestartSettings(f.Host)
	}
	f.mu.Lock()
	f.report = HostReport{Host: f.Host, Role: f.Role, Version: f.Started.Version, Time: time.Now()}
	f.mu.Unlock()
	f.publish(ctx, log)
	var kv jetstream.KeyValue
	for wait := f.Conn.cc.ReconnectWait; ; wait = min(2*wait, f.Conn.cc.ReconnectMaxWait) {
		var err error
		tctx, cancel := f.Conn.timeout(ctx)
		kv, err = f.Conn.js.KeyValue(tctx, ConfigBucket)
		cancel()
		if err == nil {
			break
		}
		log.Debug("control: waiting for the config bucket", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	w, err := kv.Watch(ctx, ConfigKey)
	if err != nil {
		return fmt.Errorf("control: watching the config: %w", err)
	}
	defer w.Stop()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case e = <-w.Updates():
		}
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		f.apply(ctx, log, e.Revision(), e.Value(), restart)
	}
}

// apply parses and applies one revision and records the outcome.
func (f *Follower) apply(ctx context.Context, log *slog.Logger, rev uint64, data []byte, restart func(a, b *config.Config) []string) {
	f.mu.Lock()
	current := f.report
	f.mu.Unlock()
	if rev <= current.Revision {
		return
	}
	cfg, err := config.Parse(f.Path, data)
	if err == nil && cfg.Version != current.Version {
		err = f.Apply(cfg)
	}
	f.mu.Lock()
	if err != nil {
		f.report.Refused, f.report.Reason = rev, err.Error()
		log.Error("control: config revision refused; the running configuration stays", "revision", rev, "err", err)
	} else {
		f.report.Revision, f.report.Version = rev, cfg.Version
		f.report.Refused, f.report.Reason = 0, ""
		f.report.PendingRestart = restart(f.Started, cfg)
		log.Info("control: config revision applied", "revision", rev, "config_version", cfg.Version, "pending_restart", f.report.PendingRestart)
	}
	f.report.Time = time.Now()
	f.mu.Unlock()
	if err == nil && f.Applied != nil {
		f.Applied(rev, cfg)
	}
	f.publish(ctx, log)
}

// publish puts the report in HostsBucket; a failure is logged (the next
// change or reconnect puts it again).
func (f *Follower) publish(ctx context.Context, log *slog.Logger) {
	if err := f.Conn.putHost(ctx, f.Report()); err != nil {
		log.Warn("control: cannot record what this host runs", "err", err)
	}
}

// RestartSettings returns the Restart function of PoP pop: its listen,
// admin, tls.listen and cache_size, and the control section, take effect
// on restart.
func RestartSettings(pop string) func(started, next *config.Config) []string {
	return func(started, next *config.Config) []string {
		var out []string
		a, errA := started.POP(pop)
		b, errB := next.POP(pop)
		switch {
		case errA != nil || errB != nil:
		default:
			if a.Listen != b.Listen {
				out = append(out, "listen")
			}
			if a.Admin != b.Admin {
				out = append(out, "admin")
			}
			if a.TLS.Listen != b.TLS.Listen {
				out = append(out, "tls.listen")
			}
			if a.CacheSize != b.CacheSize {
				out = append(out, "cache_size")
			}
		}
		if !reflect.DeepEqual(started.Control, next.Control) {
			out = append(out, "control")
		}
		return out
	}
}
