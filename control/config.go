package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/nats-io/nats.go"
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
// While the bucket's stream elects a leader (its server died) it tries
// again for up to electionWait; a random message ID makes a push whose
// answer was lost land once.
func (c *Conn) PushConfig(ctx context.Context, data []byte) (uint64, error) {
	var id [12]byte
	rand.Read(id[:])
	ack, err := c.publish(ctx, "$KV."+ConfigBucket+"."+ConfigKey, "KV_"+ConfigBucket, data, "push-"+hex.EncodeToString(id[:]), electionWait)
	if err != nil {
		return 0, fmt.Errorf("control: publishing the config to the bucket %s: %w", ConfigBucket, err)
	}
	return ack.Sequence, nil
}

// electionWait is how long a publish keeps trying while its stream does
// not answer: JetStream elects a stream's new leader 4 to 9 s after its
// server died.
const electionWait = 12 * time.Second

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
//
// The watch is an ephemeral push consumer of the bucket's stream with an
// idle heartbeat every watchHeartbeat. It is made again at once when the
// connection comes back (the consumer may have been on the server that
// went away), when two heartbeats are missed (its server died while this
// host's connection is to another one) and when the server deletes it;
// each new watch delivers the latest revision first, so nothing is
// missed. While the bucket does not exist or JetStream elects a leader,
// it retries with the reconnect backoff. The host record is put when the
// follower starts, after every revision, and after every reconnect, and
// retried with the same backoff until the bus takes it (a host that
// started before the bus had made the bucket appears once it exists).
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

// watchHeartbeat is the idle heartbeat of a config watch: two missed and
// the follower makes a new watch. It bounds how long a host whose watch
// was on a dead server goes without revisions (plus the time JetStream
// takes to place a new consumer).
const watchHeartbeat = time.Second

// Report returns what the host runs now.
func (f *Follower) Report() HostReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.report
	r.PendingRestart = slices.Clone(r.PendingRestart)
	return r
}

// Run follows the config key until ctx is done.
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
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { f.publishLoop(ctx, log, changed) })
	f.watchLoop(ctx, log, restart, changed)
	wg.Wait()
	return nil
}

// watchLoop keeps a watch on the config key and applies what it delivers.
func (f *Follower) watchLoop(ctx context.Context, log *slog.Logger, restart func(a, b *config.Config) []string, changed chan<- struct{}) {
	connected := f.Conn.nc.StatusChanged(nats.CONNECTED)
	defer f.Conn.nc.RemoveStatusListener(connected)
	latest := &latestRevision{ready: make(chan struct{}, 1)}
	lost := make(chan *configWatch, 1)
	var w *configWatch
	defer func() { w.stop() }()
	bo := f.Conn.backoff()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-connected:
			// The watch's consumer may have been on the server that went
			// away: make a new one now rather than wait for heartbeats.
			w.stop()
			w = nil
			bo.reset()
			retry.Reset(0)
		case lw := <-lost:
			if lw != w {
				continue // an old watch's last word
			}
			log.Debug("control: the config watch went quiet; making a new one")
			w.stop()
			w = nil
			retry.Reset(0)
		case <-retry.C:
			if w != nil {
				continue
			}
			var err error
			if w, err = f.watch(ctx, latest, lost); err != nil {
				log.Debug("control: cannot watch the config yet", "err", err)
				retry.Reset(bo.wait())
				continue
			}
			bo.reset()
		case <-latest.ready:
			rev, data := latest.take()
			if f.apply(log, rev, data, restart) {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// latestRevision holds the newest revision a watch delivered until the
// follower takes it; ready says there is one.
type latestRevision struct {
	mu    sync.Mutex
	rev   uint64
	data  []byte
	ready chan struct{}
}

func (l *latestRevision) put(rev uint64, data []byte) {
	l.mu.Lock()
	if rev > l.rev {
		l.rev, l.data = rev, data
	}
	l.mu.Unlock()
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

func (l *latestRevision) take() (uint64, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev, l.data
}

// configWatch is one ephemeral push consumer on the config key.
type configWatch struct {
	conn *Conn
	cons string
	cc   jetstream.ConsumeContext
}

// watch makes a push consumer of the config key's latest revision and
// what follows; its revisions go to latest, and lost gets it when it
// misses two heartbeats or the server deletes it.
func (f *Follower) watch(ctx context.Context, latest *latestRevision, lost chan<- *configWatch) (*configWatch, error) {
	if !f.Conn.nc.IsConnected() {
		return nil, nats.ErrConnectionReconnecting
	}
	tctx, cancel := f.Conn.timeout(ctx)
	defer cancel()
	pc, err := f.Conn.js.CreatePushConsumer(tctx, "KV_"+ConfigBucket, jetstream.ConsumerConfig{
		Description:       "config watch of " + f.Role + " " + f.Host,
		DeliverSubject:    f.Conn.nc.NewInbox(),
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     "$KV." + ConfigBucket + "." + ConfigKey,
		IdleHeartbeat:     watchHeartbeat,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, err
	}
	w := &configWatch{conn: f.Conn, cons: pc.CachedInfo().Name}
	w.cc, err = pc.Consume(func(m jetstream.Msg) {
		if m.Headers().Get("KV-Operation") != "" {
			return // a delete or purge of the key
		}
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		latest.put(meta.Sequence.Stream, m.Data())
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			select {
			case lost <- w:
			default:
			}
		}
	}))
	if err != nil {
		w.deleteConsumer()
		return nil, err
	}
	return w, nil
}

// stop ends the watch and deletes its consumer in the background (the
// server deletes it anyway after its inactive threshold).
func (w *configWatch) stop() {
	if w == nil {
		return
	}
	w.cc.Stop()
	go w.deleteConsumer()
}

func (w *configWatch) deleteConsumer() {
	if !w.conn.nc.IsConnected() {
		return
	}
	ctx, cancel := w.conn.timeout(context.Background())
	defer cancel()
	w.conn.js.DeleteConsumer(ctx, "KV_"+ConfigBucket, w.cons)
}

// apply parses and applies one revision and records the outcome; it
// reports whether the host's report changed.
func (f *Follower) apply(log *slog.Logger, rev uint64, data []byte, restart func(a, b *config.Config) []string) bool {
	f.mu.Lock()
	current := f.report
	f.mu.Unlock()
	if rev <= current.Revision || rev == current.Refused {
		return false // a new watch delivers the latest revision again
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
	return true
}

// publishLoop puts the report in HostsBucket at start, after every change
// and after every reconnect, retrying with the reconnect backoff until
// the bus takes it (the bucket may not exist yet, or JetStream may be
// electing a leader).
func (f *Follower) publishLoop(ctx context.Context, log *slog.Logger, changed <-chan struct{}) {
	connected := f.Conn.nc.StatusChanged(nats.CONNECTED)
	defer f.Conn.nc.RemoveStatusListener(connected)
	bo := f.Conn.backoff()
	pending, failing := true, false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-connected:
		case <-t.C:
			if !pending {
				continue
			}
			err := f.Conn.putHost(ctx, f.Report())
			if err == nil {
				if failing {
					log.Info("control: recorded what this host runs")
				}
				pending, failing = false, false
				bo.reset()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if !failing {
				log.Warn("control: cannot record what this host runs yet; retrying", "err", err)
			}
			failing = true
			t.Reset(bo.wait())
			continue
		}
		pending = true
		bo.reset()
		t.Reset(0)
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
