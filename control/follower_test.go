package control_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
)

// hostNames returns the hosts in the hosts bucket ("pop.prg", ...), or nil
// when it cannot be read.
func hostNames(ops *control.Conn) []string {
	hosts, err := ops.Hosts(context.Background())
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range hosts {
		out = append(out, h.Role+"."+h.Host)
	}
	return out
}

// TestFollowerBeforeBuckets starts an agent on a bus whose buckets do not
// exist yet (the operator made them after the hosts started) and checks
// that once they exist the host records what it runs and follows the
// config, without a push or a restart.
func TestFollowerBeforeBuckets(t *testing.T) {
	s := startBus(t, users("prg"))
	path := cdnFile(t, t.TempDir(), s.ClientURL(), []string{"prg"}, "")
	cfg := loadCDN(t, path)
	ops := dial(t, cfg.Control, operator, "ops", "ops-pw")
	js, err := jetstream.New(ops.NATS())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, b := range []string{control.HostsBucket, control.ConfigBucket} {
		if err := js.DeleteKeyValue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	logs := &logLines{}
	conn := dial(t, cfg.Control, control.Identity{Role: config.RolePoP, Name: "prg"}, "prg", "prg-pw")
	a, err := control.NewAgent(conn, &fakePoP{name: "prg"}, control.AgentOptions{Name: "prg", Path: path, Config: cfg,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	// The agent has tried to record itself and failed (it logs the first
	// failure, then retries with the reconnect backoff).
	waitFor(t, 5*time.Second, "the agent's first failure to record itself", func() bool {
		return logs.contains("cannot record what this host runs yet")
	})
	if err := ops.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	// The agent retries with the reconnect backoff (at most 200 ms here);
	// 5 s leaves a loaded -race run room and still fails a follower that
	// waits for the client's 10 s heartbeat check.
	waitFor(t, 5*time.Second, "prg in the hosts bucket once it exists", func() bool {
		return slices.Equal(hostNames(ops), []string{"pop.prg"})
	})
	t.Logf("prg recorded %s after the bucket was made", time.Since(created).Round(time.Millisecond))
	rev, err := ops.PushConfig(ctx, append(data, "# one\n"...))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "prg applies the first revision", func() bool { return a.Config().Revision == rev })
}

// TestFollowerReconnect cuts an agent off, and while it is away pushes a
// revision and deletes its host record: when it is back it applies the
// revision and records itself again.
func TestFollowerReconnect(t *testing.T) {
	s := startBus(t, users("iad"))
	path := cdnFile(t, t.TempDir(), s.ClientURL(), []string{"iad"}, "")
	cfg := loadCDN(t, path)
	ops := dial(t, cfg.Control, operator, "ops", "ops-pw")
	px := newProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	viaProxy := cfg.Control
	viaProxy.Servers = []string{px.url()}
	conn := dial(t, viaProxy, popID("iad"), "iad", "iad-pw")
	a := runAgent(t, conn, &fakePoP{name: "iad"}, path, cfg, "iad")
	waitFor(t, 5*time.Second, "iad recorded", func() bool { return slices.Equal(hostNames(ops), []string{"pop.iad"}) })

	px.cut()
	waitFor(t, 2*time.Second, "iad disconnected", func() bool { return !conn.NATS().IsConnected() })
	ctx := context.Background()
	js, err := jetstream.New(ops.NATS())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, control.HostsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "pop.iad"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	rev, err := ops.PushConfig(ctx, append(data, "# while away\n"...))
	if err != nil {
		t.Fatal(err)
	}
	px.restore()
	back := time.Now()
	// Reconnects back off to at most 200 ms here and the watch is made
	// again at once: 5 s for each step leaves a loaded -race run room and
	// still fails a watch that resumes only on the client's 10 s
	// heartbeat check.
	waitFor(t, 5*time.Second, "iad reconnected", func() bool { return conn.NATS().IsConnected() })
	waitFor(t, 5*time.Second, "iad applies the revision pushed while it was away", func() bool { return a.Config().Revision == rev })
	waitFor(t, 5*time.Second, "iad records itself again", func() bool {
		hosts, err := ops.Hosts(ctx)
		return err == nil && len(hosts) == 1 && hosts[0].Revision == rev
	})
	t.Logf("iad back on revision %d and recorded %s after the link came back", rev, time.Since(back).Round(time.Millisecond))
}
