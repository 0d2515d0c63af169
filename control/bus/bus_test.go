package bus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/popapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCluster starts three servers as a cluster with the stream and
// buckets replicated three times, kills one, and checks that purges and
// config still go through the other two.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node JetStream cluster takes a few seconds")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cc := &config.Control{
		Timeout: 5 * time.Second, PurgeTimeout: 2 * time.Second, Replicas: 3, PurgeHistory: time.Hour,
		MaxPending: 1024, StateInterval: time.Second, StatsTimeout: time.Second, StatsMaxReplies: 10,
		ReconnectWait: 20 * time.Millisecond, ReconnectMaxWait: 200 * time.Millisecond,
	}
	var routes []string
	var clusterPorts []int
	for range 3 {
		p := freePort(t)
		clusterPorts = append(clusterPorts, p)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	servers := make([]*bus.Server, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			s, err := bus.Start(context.Background(), bus.Options{
				Name: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
				Cluster: config.ControlCluster{Name: "outpost", Listen: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]), Routes: routes},
				Control: cc, Logger: quiet,
			})
			servers[i] = s
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range servers {
		t.Cleanup(s.Shutdown)
	}
	cc.Servers = []string{servers[0].ClientURL(), servers[1].ClientURL(), servers[2].ClientURL()}
	ctx := context.Background()
	ops, err := control.Dial(ctx, cc, control.Identity{Role: config.RoleOperator}, control.DialOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	servers[1].Shutdown()
	for i := range 3 {
		r, err := ops.Purge(ctx, popapi.PurgeRequest{ID: fmt.Sprintf("c%d", i), Tag: "t"}, nil, time.Millisecond)
		if err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("purge %d with a node down: seq %d, %v", i, r.Seq, err)
		}
		if _, err := ops.PushConfig(ctx, []byte(fmt.Sprintf("# revision %d", i))); err != nil {
			t.Fatalf("push with a node down: %v", err)
		}
	}
	cur, err := ops.CurrentConfig(ctx)
	if err != nil || string(cur.Data) != "# revision 2" {
		t.Errorf("latest revision %q, %v", cur.Data, err)
	}
}
