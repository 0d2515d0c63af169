package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
)

// PoP is what the agent needs of the PoP it speaks for; *pop.PoP has it.
type PoP interface {
	Purger
	Stats() popapi.Stats
	Reload(*config.Config) error
}

// AgentOptions configure an Agent.
type AgentOptions struct {
	// Name is the PoP's name in the file.
	Name string
	// Path and Config are the local file the PoP started from and its
	// Config (see Follower).
	Path   string
	Config *config.Config
	// Logger; nil means the Conn's.
	Logger *slog.Logger
	// Registry, when set, receives the agent's metrics:
	// outpost_control_purge_lag, outpost_control_purge_applied (the stream
	// sequence) and outpost_control_config_revision.
	Registry prometheus.Registerer
	// Now is the clock of states; nil means time.Now.
	Now func() time.Time
}

// Agent is a PoP's side of the control plane: it follows the config,
// applies purges from its durable consumer in order, answers stats
// requests and publishes the PoP's state every state interval.
type Agent struct {
	conn     *Conn
	pop      PoP
	name     string
	log      *slog.Logger
	now      func() time.Time
	follower *Follower

	mu         sync.Mutex
	applied    uint64 // stream sequence of the last purge applied
	lag        uint64 // purges in the stream not applied yet
	caughtUp   bool   // lag is known to be 0 since the last (re)connect
	recheck    bool   // ask the consumer for the lag at the next tick
	consumer   jetstream.Consumer
	reconnects uint64
	capacity   config.Capacity // the PoP's, from the configuration it runs
	last       popapi.Stats    // the previous state's snapshot
	lastAt     time.Time
	state      popapi.State
}

// NewAgent makes the agent of PoP p on conn (a connection as
// Identity{config.RolePoP, opts.Name}).
func NewAgent(conn *Conn, p PoP, opts AgentOptions) (*Agent, error) {
	if err := checkToken("PoP name", opts.Name); err != nil {
		return nil, err
	}
	if opts.Config == nil {
		return nil, errors.New("control: the agent needs the PoP's starting Config")
	}
	a := &Agent{conn: conn, pop: p, name: opts.Name, log: opts.Logger, now: opts.Now, recheck: true}
	if a.log == nil {
		a.log = conn.log
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.follower = &Follower{
		Conn: conn, Role: config.RolePoP, Host: opts.Name, Path: opts.Path, Started: opts.Config,
		Apply: p.Reload, Logger: a.log,
		Applied: func(_ uint64, cfg *config.Config) {
			if pc, err := cfg.POP(opts.Name); err == nil {
				a.mu.Lock()
				a.capacity = pc.Capacity
				a.mu.Unlock()
			}
		},
	}
	if pc, err := opts.Config.POP(opts.Name); err == nil {
		a.capacity = pc.Capacity
	}
	if opts.Registry != nil {
		gauge := func(name, help string, f func() float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
		}
		for _, c := range []prometheus.Collector{
			gauge("outpost_control_purge_lag", "Purges in the control plane's stream this PoP has not applied yet.", func() float64 { return float64(a.State().PurgeLag) }),
			gauge("outpost_control_purge_applied", "Stream sequence of the last purge this PoP applied.", func() float64 { return float64(a.State().PurgeApplied) }),
			gauge("outpost_control_config_revision", "Config revision from the control plane this PoP runs (0: its local file).", func() float64 { return float64(a.follower.Report().Revision) }),
		} {
			if err := opts.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("control: metrics: %w", err)
			}
		}
	}
	return a, nil
}

// State returns the PoP's latest state, as last published.
func (a *Agent) State() popapi.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Config returns what the follower applied (see HostReport).
func (a *Agent) Config() HostReport { return a.follower.Report() }

// Run runs the agent until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := a.conn.nc.Subscribe(StatsSubject, func(m *nats.Msg) {
		b, err := json.Marshal(a.pop.Stats())
		if err == nil {
			err = m.Respond(b)
		}
		if err != nil {
			a.log.Warn("control: cannot answer a stats request", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(a.conn.cc.MaxPending, -1)

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		if err := a.follower.Run(ctx); err != nil {
			select {
			case errc <- err:
			default:
			}
			cancel()
		}
	})
	wg.Go(func() { a.runPurges(ctx) })
	a.publishState(ctx)
	t := time.NewTicker(a.conn.cc.StateInterval)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			a.publishState(ctx)
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// The purge consumer's timings. A pull request parked on a server that
// died, or on a consumer whose leader moved, gets no answer and no
// heartbeat: the client notices after two missed heartbeats and pulls
// again, so purgeHeartbeat bounds how long a PoP stalls on a lost pull
// (the library's default, half of a 30 s expiry, stalled it for 30 s).
// A purge the server delivered to a request whose client had gone (a
// reconnect races with the delivery) stays unacknowledged, and with one
// unacknowledged purge at a time it blocks the PoP's consumer until
// purgeAckWait passes and the server delivers it again. Applying a purge
// twice is harmless (the PoP knows its ID).
const (
	purgeHeartbeat = time.Second
	purgeExpiry    = 10 * time.Second
	purgeAckWait   = 2 * time.Second
)

// runPurges reads the PoP's durable consumer until ctx is done,
// recreating it when it goes away.
func (a *Agent) runPurges(ctx context.Context) {
	bo := a.conn.backoff()
	for ctx.Err() == nil {
		began := time.Now()
		err := a.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		a.log.Debug("control: purge consumer", "err", err)
		if time.Since(began) > a.conn.cc.ReconnectMaxWait {
			bo.reset() // it ran: start the backoff again
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(bo.wait()):
		}
	}
}

// consume creates (or finds) the consumer and applies what it delivers.
func (a *Agent) consume(ctx context.Context) error {
	tctx, cancel := a.conn.timeout(ctx)
	cons, err := a.conn.js.CreateOrUpdateConsumer(tctx, PurgeStream, jetstream.ConsumerConfig{
		Durable:       PurgeConsumer(a.name),
		Description:   "purges for PoP " + a.name,
		DeliverPolicy: jetstream.DeliverNewPolicy, // a new PoP's cache holds nothing older
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       purgeAckWait,
		MaxAckPending: 1, // in order: the next purge after this one is acked
		FilterSubject: PurgeSubject,
	})
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// No purge was ever published: nothing to catch up on.
		a.mu.Lock()
		a.caughtUp, a.lag = true, 0
		a.mu.Unlock()
		return err
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.consumer, a.recheck = cons, true
	a.mu.Unlock()
	it, err := cons.Messages(jetstream.PullMaxMessages(16), jetstream.PullExpiry(purgeExpiry), jetstream.PullHeartbeat(purgeHeartbeat))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return err
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return err
		case err != nil:
			a.log.Debug("control: purge consumer", "err", err)
			continue
		}
		a.apply(msg)
	}
}

// apply applies one purge, acks it in the stream, then acknowledges it to
// whoever published it. The stream ack is not waited for: if it is lost,
// the purge comes again after purgeAckWait and the PoP, which knows its
// ID, reports it as a duplicate. Waiting for it (a request to the
// consumer's leader, up to the control timeout) held up the PoP's ack
// and its next purge whenever that leader was busy or moving.
func (a *Agent) apply(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		a.log.Warn("control: a purge message without metadata", "err", err)
		return
	}
	ack := PurgeAck{Seq: meta.Sequence.Stream}
	var req popapi.PurgeRequest
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		ack.Error = fmt.Sprintf("not a purge request: %v", err)
	} else {
		ack.PurgeResult, err = a.pop.Purge(req)
		if err != nil {
			ack.Error = err.Error()
		}
		ack.ID = req.ID
	}
	ack.PoP = a.name
	if err := msg.Ack(); err != nil {
		// It comes again after the ack wait; the PoP knows its ID.
		a.log.Warn("control: cannot ack a purge in the stream", "seq", meta.Sequence.Stream, "err", err)
	}
	a.mu.Lock()
	a.applied, a.lag = meta.Sequence.Stream, meta.NumPending
	if a.lag == 0 {
		a.caughtUp = true
	}
	a.mu.Unlock()
	if ack.Error != "" {
		a.log.Error("control: purge not applied", "seq", ack.Seq, "id", ack.ID, "err", ack.Error)
	}
	if checkToken("purge ID", ack.ID) != nil {
		return
	}
	b, _ := json.Marshal(ack)
	if err := a.conn.nc.Publish(PurgeAckSubject(ack.ID, a.name), b); err != nil {
		a.log.Warn("control: cannot acknowledge a purge", "id", ack.ID, "err", err)
	}
}

// checkLag asks the consumer how far behind the PoP is, when a reconnect
// or a start made that unknown.
func (a *Agent) checkLag(ctx context.Context) {
	if r := a.conn.nc.Stats().Reconnects; r != a.reconnects {
		a.reconnects = r
		a.mu.Lock()
		a.caughtUp, a.recheck = false, true
		a.mu.Unlock()
	}
	a.mu.Lock()
	cons, recheck := a.consumer, a.recheck || !a.caughtUp
	a.mu.Unlock()
	if cons == nil || !recheck || !a.conn.nc.IsConnected() {
		return
	}
	tctx, cancel := a.conn.timeout(ctx)
	info, err := cons.Info(tctx)
	cancel()
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lag = info.NumPending + uint64(info.NumAckPending)
	a.applied = max(a.applied, info.AckFloor.Stream)
	a.recheck = false
	if a.lag == 0 {
		a.caughtUp = true
	}
}

// publishState computes the state from the PoP's figures and publishes
// it (when connected).
func (a *Agent) publishState(ctx context.Context) {
	a.checkLag(ctx)
	now := a.now()
	s := a.pop.Stats()
	cfg := a.follower.Report()
	connected := a.conn.nc.IsConnected()
	a.mu.Lock()
	st := popapi.State{
		PoP:            a.name,
		Time:           now,
		Draining:       s.Draining,
		HitRatio:       s.HitRatio,
		ConfigRevision: cfg.Revision,
		ConfigVersion:  s.ConfigVersion,
		PendingRestart: cfg.PendingRestart,
		PurgeApplied:   a.applied,
		PurgeLag:       a.lag,
	}
	st.Healthy = connected && a.caughtUp && !s.Draining
	if !a.lastAt.IsZero() && now.After(a.lastAt) {
		dt := now.Sub(a.lastAt).Seconds()
		dr := float64(s.Requests - min(a.last.Requests, s.Requests))
		st.RequestsPerSec = dr / dt
		st.BytesPerSec = float64(s.BytesServed-min(a.last.BytesServed, s.BytesServed)) / dt
		if dr > 0 {
			st.HitRatio = float64(s.Hits-min(a.last.Hits, s.Hits)) / dr
		}
	}
	st.CapacityRequests, st.CapacityBytes = a.capacity.RequestsPerSec, float64(a.capacity.BytesPerSec)
	st.Load = a.capacity.Load(st.RequestsPerSec, st.BytesPerSec)
	a.last, a.lastAt, a.state = s, now, st
	a.mu.Unlock()
	if !connected {
		return
	}
	b, err := json.Marshal(st)
	if err == nil {
		err = a.conn.nc.Publish(StatePopSubject(a.name), b)
	}
	if err != nil {
		a.log.Warn("control: cannot publish the state", "err", err)
	}
}
