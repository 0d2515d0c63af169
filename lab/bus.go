package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/dnsgeo"
	"github.com/outpost-cdn/outpost/pop"
	"github.com/outpost-cdn/outpost/popapi"
	"github.com/outpost-cdn/outpost/purge"
)

// This file is the lab's control plane: an embedded NATS server with
// JetStream (package control/bus) in a temporary directory, a bus user
// per role with a password made at start, every PoP's control agent and
// the DNS server's follower on connections of their own, and an operator
// connection that measures how long a purge and a config push take to
// reach every host.

// labBus is the lab's running control plane.
type labBus struct {
	dir    string
	server *bus.Server
	cc     config.Control // the servers and bounds every role dials with
	ops    *control.Conn
	conns  []*control.Conn
	agents []*control.Agent
	dns    *control.DNSFollower
	done   chan struct{} // closed when every agent and the follower stopped
	cancel context.CancelFunc
	log    *slog.Logger
}

// dnsName is the lab's DNS server on the bus.
const dnsName = "dns"

// startBus starts the bus, the PoPs' agents and the DNS follower. path is
// the CDN file the roles run (revisions are parsed as if read from it).
func startBus(ctx context.Context, cfg *config.Config, path string, pops []*pop.PoP, dnsServer *dnsgeo.Server, logger *slog.Logger) (_ *labBus, err error) {
	dir, err := os.MkdirTemp("", "outpost-lab-bus-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b := &labBus{dir: dir, done: make(chan struct{}), cancel: cancel, log: logger}
	defer func() {
		if err != nil {
			close(b.done)
			b.close()
		}
	}()
	// The NATS server's notices and warnings (plain-text passwords: the
	// lab's are made for one run) are its own business; errors go to the
	// lab's log.
	busLog := slog.New(discardBelow{logger.Handler(), slog.LevelError})
	users := []bus.User{{Name: "ops", Role: config.RoleOperator}, {Name: dnsName, Role: config.RoleDNS}}
	for _, p := range pops {
		users = append(users, bus.User{Name: "pop-" + p.Name(), Role: config.RolePoP, PoP: p.Name()})
	}
	for i := range users {
		users[i].Password = secret()
		if err := os.WriteFile(b.passwordFile(users[i].Name), []byte(users[i].Password+"\n"), 0o600); err != nil {
			return b, fmt.Errorf("lab: %w", err)
		}
	}
	b.server, err = bus.Start(ctx, bus.Options{
		Name: "lab", Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "jetstream"), Users: users, Logger: busLog,
	})
	if err != nil {
		return b, fmt.Errorf("lab: %w", err)
	}
	b.cc = config.Control{
		Servers:          []string{b.server.ClientURL()},
		Timeout:          config.DefaultControlTimeout,
		PurgeTimeout:     config.DefaultControlPurgeTimeout,
		StatsTimeout:     config.DefaultControlStatsTimeout,
		StatsMaxReplies:  config.DefaultControlStatsMaxReplies,
		ReconnectWait:    config.DefaultControlReconnectWait,
		ReconnectMaxWait: config.DefaultControlReconnectMaxWait,
		MaxPending:       config.DefaultControlMaxPending,
		StateInterval:    config.DefaultControlStateInterval,
		Replicas:         1,
		PurgeHistory:     time.Hour,
	}
	if b.ops, err = b.dial(ctx, "ops", control.Identity{Role: config.RoleOperator}); err != nil {
		return b, err
	}
	var run []func(context.Context) error
	for _, p := range pops {
		conn, err := b.dial(ctx, "pop-"+p.Name(), control.Identity{Role: config.RolePoP, Name: p.Name()})
		if err != nil {
			return b, err
		}
		a, err := control.NewAgent(conn, p, control.AgentOptions{Name: p.Name(), Path: path, Config: cfg, Logger: logger})
		if err != nil {
			return b, err
		}
		b.agents = append(b.agents, a)
		run = append(run, a.Run)
	}
	conn, err := b.dial(ctx, dnsName, control.Identity{Role: config.RoleDNS, Name: dnsName})
	if err != nil {
		return b, err
	}
	if b.dns, err = control.NewDNSFollower(conn, dnsServer, control.DNSOptions{Name: dnsName, Path: path, Config: cfg, Logger: logger}); err != nil {
		return b, err
	}
	run = append(run, b.dns.Run)
	errc := make(chan error, len(run))
	for _, r := range run {
		go func() { errc <- r(runCtx) }()
	}
	go func() {
		defer close(b.done)
		for range run {
			if err := <-errc; err != nil {
				logger.Error("lab: control plane", "err", err)
			}
		}
	}()
	return b, nil
}

// passwordFile is where the lab keeps user's password.
func (b *labBus) passwordFile(user string) string {
	return filepath.Join(b.dir, user+".password")
}

// dial connects to the bus as user, with the password the lab made.
func (b *labBus) dial(ctx context.Context, user string, id control.Identity) (*control.Conn, error) {
	cc := b.cc
	cc.User, cc.PasswordFile = user, b.passwordFile(user)
	c, err := control.Dial(ctx, &cc, id, control.DialOptions{Logger: b.log})
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	b.conns = append(b.conns, c)
	return c, nil
}

// secret is a password made for one run.
func secret() string {
	p := make([]byte, 18)
	rand.Read(p)
	return hex.EncodeToString(p)
}

// close stops the agents and the follower, closes every connection,
// stops the server and removes its directory.
func (b *labBus) close() {
	b.cancel()
	<-b.done
	for _, c := range b.conns {
		c.Close()
	}
	if b.server != nil {
		b.server.Shutdown()
	}
	os.RemoveAll(b.dir)
}

// waitHealthy waits until every PoP has published a healthy state (its
// purge consumer is ready and caught up) and the DNS server routes on it,
// so that the load run starts on the states, not on a PoP's first state
// of "not caught up yet".
func (b *labBus) waitHealthy(ctx context.Context, dnsServer *dnsgeo.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var waiting []string
		for _, a := range b.agents {
			if !a.State().Healthy {
				waiting = append(waiting, "PoP "+a.State().PoP)
			}
		}
		for _, p := range dnsServer.Stats().POPs {
			if p.State != dnsgeo.Up || p.StateBy != "state" {
				waiting = append(waiting, "DNS's view of "+p.Name)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: the control plane: not healthy after %s: %s", timeout, strings.Join(waiting, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// busReport is what the lab measured on the control plane.
type busReport struct {
	URL string
	// Purge is one purge of a URL, acknowledged by every PoP: the acks in
	// arrival order.
	PurgeURL string
	Purge    control.PurgeReport
	// PurgeP50, PurgeP99 and PurgeN are the times of PurgeN purges more,
	// from the publish to the last PoP's ack.
	PurgeP50, PurgeP99 time.Duration
	PurgeN             int
	// Revision was pushed and applied by Hosts hosts (the PoPs and the
	// DNS server) within ConfigTook.
	Revision   uint64
	Version    string
	Hosts      int
	ConfigTook time.Duration
}

// purgeRounds is how many purges the lab times for the percentiles.
const purgeRounds = 20

// measure purges a URL of the service over the bus, then purgeRounds
// more for the percentiles, then pushes path (with a comment added, so it
// is a new version every host reloads) and waits until every host runs it.
func (b *labBus) measure(ctx context.Context, path, url string) (*busReport, error) {
	r := &busReport{URL: b.server.ClientURL(), PurgeURL: url, PurgeN: purgeRounds}
	names := make([]string, len(b.agents))
	for i, a := range b.agents {
		names[i] = a.State().PoP
	}
	var err error
	r.Purge, err = b.ops.Purge(ctx, popapi.PurgeRequest{ID: purge.NewID(), URL: url}, names, 0)
	if err != nil {
		return nil, fmt.Errorf("lab: purge over the bus: %w", err)
	}
	if r.Purge.Failed() {
		return nil, fmt.Errorf("lab: purge over the bus: not acknowledged by %v", r.Purge.Missing)
	}
	took := make([]time.Duration, 0, purgeRounds)
	for i := range purgeRounds {
		pr, err := b.ops.Purge(ctx, popapi.PurgeRequest{ID: purge.NewID(), URL: fmt.Sprintf("%s?lab-purge=%d", url, i)}, names, 0)
		if err != nil {
			return nil, fmt.Errorf("lab: purge over the bus: %w", err)
		}
		if pr.Failed() {
			return nil, fmt.Errorf("lab: purge over the bus: not acknowledged by %v", pr.Missing)
		}
		took = append(took, lastAck(pr))
	}
	slices.Sort(took)
	r.PurgeP50, r.PurgeP99 = took[len(took)/2], took[(len(took)*99+99)/100-1]

	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	data = append(data, fmt.Sprintf("\n# pushed over the lab's bus at %s\n", time.Now().UTC().Format(time.RFC3339Nano))...)
	next, err := config.Parse(path, data)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rev, err := b.ops.PushConfig(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("lab: config push: %w", err)
	}
	reports := func() []control.HostReport {
		out := []control.HostReport{b.dns.Config()}
		for _, a := range b.agents {
			out = append(out, a.Config())
		}
		return out
	}
	deadline := start.Add(5 * time.Second)
	for {
		behind := 0
		for _, h := range reports() {
			if h.Refused == rev {
				return nil, fmt.Errorf("lab: %s %s refused the pushed revision: %s", h.Role, h.Host, h.Reason)
			}
			if h.Revision < rev {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lab: %d hosts did not apply config revision %d within 5s", behind, rev)
		}
		time.Sleep(time.Millisecond) // polling in-process reports with a deadline
	}
	r.ConfigTook = time.Since(start)
	r.Revision, r.Version, r.Hosts = rev, next.Version, len(b.agents)+1
	return r, nil
}

// lastAck is when the last PoP acknowledged a purge.
func lastAck(r control.PurgeReport) time.Duration {
	var d time.Duration
	for _, a := range r.Acks {
		d = max(d, a.Latency)
	}
	return d
}

// write prints the control plane's part of the report.
func (r *busReport) write(out io.Writer) {
	fmt.Fprintf(out, "\nControl plane (embedded NATS with JetStream at %s, a user per role):\n", r.URL)
	var parts []string
	for _, a := range r.Purge.Acks {
		parts = append(parts, fmt.Sprintf("%s %s", a.PoP, ms(a.Latency)))
	}
	fmt.Fprintf(out, "  purge %s: acknowledged by %d/%d PoPs in %s (%s)\n", r.PurgeURL, len(r.Purge.Acks), len(r.Purge.Acks)+len(r.Purge.Missing), ms(lastAck(r.Purge)), strings.Join(parts, ", "))
	fmt.Fprintf(out, "  purge propagation over %d purges, publish to the last PoP's ack: p50 %s, p99 %s\n", r.PurgeN, ms(r.PurgeP50), ms(r.PurgeP99))
	fmt.Fprintf(out, "  config push: revision %d (version %s) applied by %d hosts (%d PoPs and the DNS server) in %s\n", r.Revision, r.Version, r.Hosts, r.Hosts-1, ms(r.ConfigTook))
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// discardBelow is a slog handler that drops records below a level.
type discardBelow struct {
	slog.Handler
	min slog.Level
}

func (h discardBelow) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h discardBelow) WithAttrs(a []slog.Attr) slog.Handler {
	return discardBelow{h.Handler.WithAttrs(a), h.min}
}

func (h discardBelow) WithGroup(name string) slog.Handler {
	return discardBelow{h.Handler.WithGroup(name), h.min}
}
