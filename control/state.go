package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
	"github.com/outpost-cdn/outpost/stats"
)

// WatchStates calls fn with every PoP state published on the bus until ctx
// is done, from one goroutine, in arrival order. States that do not parse
// are dropped; when fn falls behind by more than the control section's
// max_pending states, the newest are dropped (the next second brings
// fresh ones).
func (c *Conn) WatchStates(ctx context.Context, fn func(popapi.State)) error {
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(StateSubject+".>", ch)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(c.cc.MaxPending, -1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			var s popapi.State
			if json.Unmarshal(m.Data, &s) != nil {
				continue
			}
			// The subject names the PoP, and only it may publish there.
			s.PoP = m.Subject[len(StateSubject)+1:]
			fn(s)
		}
	}
}

// States listens to the PoPs' states for d and returns the latest of each,
// sorted by PoP.
func (c *Conn) States(ctx context.Context, d time.Duration) ([]popapi.State, error) {
	latest := make(map[string]popapi.State)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := c.WatchStates(ctx, func(s popapi.State) { latest[s.PoP] = s })
	out := make([]popapi.State, 0, len(latest))
	for _, s := range latest {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PoP < out[j].PoP })
	return out, err
}

// GatherStats asks every PoP agent for its Stats (a request on
// StatsSubject) and gathers the answers until every PoP in want answered,
// the control section's stats_timeout passed, or stats_max_replies
// answers came. The answers are keyed by PoP.
func (c *Conn) GatherStats(ctx context.Context, want []string) (map[string]StatsReply, error) {
	inbox := c.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(c.cc.MaxPending, -1)
	start := time.Now()
	if err := c.nc.PublishRequest(StatsSubject, inbox, nil); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	waiting := make(map[string]bool, len(want))
	for _, p := range want {
		waiting[p] = true
	}
	out := make(map[string]StatsReply)
	deadline := time.NewTimer(c.cc.StatsTimeout)
	defer deadline.Stop()
	for n := 0; n < c.cc.StatsMaxReplies && (len(want) == 0 || len(waiting) > 0); n++ {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			return out, nil
		case m := <-ch:
			var s popapi.Stats
			if err := json.Unmarshal(m.Data, &s); err != nil || s.PoP == "" {
				continue
			}
			out[s.PoP] = StatsReply{Stats: s, Raw: m.Data, Latency: time.Since(start)}
			delete(waiting, s.PoP)
		}
	}
	return out, nil
}

// StatsReply is one PoP's answer to GatherStats.
type StatsReply struct {
	Stats   popapi.Stats
	Raw     json.RawMessage // as the PoP sent it
	Latency time.Duration
}

// StatsReport gathers every PoP's Stats over the bus and builds the same
// report as stats.Collect does over the admin listeners: the file's PoPs
// in its order (one that did not answer has Err set), then any other PoP
// that answered.
func (c *Conn) StatsReport(ctx context.Context, cfg *config.Config) (*stats.Report, error) {
	names := make([]string, len(cfg.POPs))
	for i, p := range cfg.POPs {
		names[i] = p.Name
	}
	replies, err := c.GatherStats(ctx, names)
	if err != nil {
		return nil, err
	}
	r := &stats.Report{At: time.Now()}
	add := func(name string) {
		rep, ok := replies[name]
		if !ok {
			r.PoPs = append(r.PoPs, stats.PoP{Name: name, Admin: "bus:" + StatsSubject, Err: fmt.Errorf("no answer on the bus within %s", c.cc.StatsTimeout)})
			return
		}
		delete(replies, name)
		r.PoPs = append(r.PoPs, stats.FromStats(name, "bus:"+StatsSubject, rep.Raw, rep.Stats))
	}
	for _, n := range names {
		add(n)
	}
	extra := make([]string, 0, len(replies))
	for n := range replies {
		extra = append(extra, n)
	}
	sort.Strings(extra)
	for _, n := range extra {
		add(n)
	}
	r.Sum()
	return r, nil
}
