package control_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/popapi"
)

// fleetSizes are the fleets BenchmarkFleet grows through.
var fleetSizes = []int{10, 50, 100, 300}

// BenchmarkFleet simulates a large fleet on this machine: PoP agents, each
// on its own authenticated connection with its own durable consumer (a
// fake PoP behind it), against a three-node embedded cluster with the
// stream and buckets replicated three times, as docs/control.md advises
// for a real fleet. The fleet grows through fleetSizes; for each size it
// reports the time from a purge's publish to the last PoP's ack (p50 and
// p99), purges per second one after another (each waiting for every ack),
// and how long adding the agents took (their consumers are raft groups of
// the cluster):
//
//	go test ./control -run '^$' -bench Fleet -benchtime 50x -timeout 30m
func BenchmarkFleet(b *testing.B) {
	if testing.Short() {
		b.Skip("hundreds of agents against a three-node cluster")
	}
	maxPoPs := fleetSizes[len(fleetSizes)-1]
	var names []string
	for i := range maxPoPs {
		names = append(names, fmt.Sprintf("p%03d", i))
	}
	urls := startCluster(b, users(names...))
	path := fleetFile(b, urls, names)
	cfg := loadCDN(b, path)
	ops := dial(b, cfg.Control, operator, "ops", "ops-pw")
	if err := ops.Ensure(context.Background()); err != nil {
		b.Fatal(err)
	}
	var agents []*control.Agent
	for _, size := range fleetSizes {
		start := time.Now()
		for _, n := range names[len(agents):size] {
			_, a := startAgent(b, cfg.Control, path, cfg, n, n, n+"-pw")
			agents = append(agents, a)
		}
		for _, a := range agents {
			waitFor(b, 2*time.Minute, "agents healthy", func() bool { return a.State().Healthy })
		}
		joined := time.Since(start)
		fleet := names[:size]
		b.Run(fmt.Sprintf("pops=%d", size), func(b *testing.B) {
			ctx := context.Background()
			var lat []time.Duration
			missed := 0
			began := time.Now()
			for b.Loop() {
				r, err := ops.Purge(ctx, popapi.PurgeRequest{ID: purgeID(), URL: "http://demo.example/obj/x"}, fleet, fleetAckTimeout)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Missing) > 0 {
					// The PoP applies it from its consumer later; the
					// purge counts as taking the whole timeout.
					missed += len(r.Missing)
					b.Logf("no ack within %s from %d PoPs: %v", fleetAckTimeout, len(r.Missing), r.Missing[:min(5, len(r.Missing))])
					lat = append(lat, fleetAckTimeout)
					continue
				}
				lat = append(lat, r.Acks[len(r.Acks)-1].Latency)
			}
			elapsed := time.Since(began)
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "purges/s")
			b.ReportMetric(joined.Seconds(), "join-s")
			b.ReportMetric(float64(missed), "missed-acks")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// fleetAckTimeout is how long a purge of the benchmark waits for every
// PoP's ack.
const fleetAckTimeout = 5 * time.Second

// purgeSeq numbers the benchmark's purges.
var purgeSeq int

func purgeID() string {
	purgeSeq++
	return fmt.Sprintf("fleet%d-%d", os.Getpid(), purgeSeq)
}

// startCluster starts three embedded servers as a cluster with users and
// returns their client URLs; they stop when the benchmark ends.
func startCluster(b *testing.B, us []bus.User) []string {
	b.Helper()
	var routes, listens []string
	for range 3 {
		p := freePort(b)
		listens = append(listens, fmt.Sprintf("127.0.0.1:%d", p))
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	cc := &config.Control{
		Timeout: 10 * time.Second, Replicas: 3, PurgeHistory: time.Hour, MaxPending: 4096,
	}
	servers := make([]*bus.Server, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			s, err := bus.Start(context.Background(), bus.Options{
				Name: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:0", StoreDir: b.TempDir(), Users: us,
				Cluster: config.ControlCluster{Name: "outpost", Listen: listens[i], Routes: routes},
				Control: cc, Logger: quiet,
			})
			servers[i] = s
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	var urls []string
	for _, s := range servers {
		b.Cleanup(s.Shutdown)
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// freePort returns a loopback port nothing listens on now.
func freePort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// fleetFile writes the fleet's CDN file: the PoPs, and a control section
// with the cluster, replicas 3 and the default state interval (1s).
func fleetFile(b *testing.B, urls, pops []string) string {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\npops:\n")
	for i, p := range pops {
		fmt.Fprintf(&sb, "  - {name: %s, location: {lat: 1, lon: 2}, listen: \"127.0.1.%d:%d\", admin: \"127.0.2.%d:%d\"}\n", p, 1+i/200, 20000+i%200, 1+i/200, 21000+i%200)
	}
	fmt.Fprintf(&sb, "control:\n  servers: [%s]\n  timeout: 10s\n  replicas: 3\n  reconnect_wait: 20ms\n  reconnect_max_wait: 1s\n", strings.Join(urls, ", "))
	path := filepath.Join(b.TempDir(), "cdn.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}
