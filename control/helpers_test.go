package control_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBus starts an embedded server on a random loopback port with
// JetStream in a temporary directory; users nil means no authentication.
func startBus(t testing.TB, users []bus.User) *bus.Server {
	t.Helper()
	s, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Users: users, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// cdnFile writes a CDN file with the given PoPs and a control section
// pointing at url (plus extra lines in it) and returns its path.
func cdnFile(t testing.TB, dir, url string, pops []string, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\npops:\n")
	for i, p := range pops {
		fmt.Fprintf(&b, "  - {name: %s, location: {lat: 1, lon: 2}, listen: \"127.0.0.1:%d\", admin: \"127.0.0.1:%d\"}\n", p, 20000+i, 21000+i)
	}
	fmt.Fprintf(&b, "control:\n  servers: [%s]\n  timeout: 2s\n  purge_timeout: 2s\n  stats_timeout: 1s\n  state_interval: 100ms\n  reconnect_wait: 20ms\n  reconnect_max_wait: 200ms\n%s", url, extra)
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadCDN(t testing.TB, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// dial connects as id with user/password ("" user: none).
func dial(t testing.TB, cc config.Control, id control.Identity, user, password string) *control.Conn {
	t.Helper()
	c, err := dialErr(t, cc, id, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dialErr(t testing.TB, cc config.Control, id control.Identity, user, password string) (*control.Conn, error) {
	t.Helper()
	if user != "" {
		pw := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cc.User, cc.PasswordFile = user, pw
	}
	c, err := control.Dial(context.Background(), &cc, id, control.DialOptions{Logger: quiet})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// fakePoP records what the agent asks of it; its counters grow by 100
// requests (90 hits) and 1 MB per Stats call.
type fakePoP struct {
	name string

	mu        sync.Mutex
	purges    []popapi.PurgeRequest
	reloads   []*config.Config
	reloadErr error
	calls     uint64
	draining  bool
}

func (f *fakePoP) Purge(req popapi.PurgeRequest) (popapi.PurgeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.purges {
		if p.ID == req.ID {
			return popapi.PurgeResult{ID: req.ID, PoP: f.name, Kind: "url", Duplicate: true}, nil
		}
	}
	f.purges = append(f.purges, req)
	return popapi.PurgeResult{ID: req.ID, PoP: f.name, Kind: "url", Purged: 1}, nil
}

func (f *fakePoP) Stats() popapi.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	s := popapi.Stats{PoP: f.name, ConfigVersion: "v", Draining: f.draining}
	s.Requests, s.Hits, s.BytesServed = 100*f.calls, 90*f.calls, 1_000_000*f.calls
	s.HitRatio = 0.9
	s.Services = map[string]popapi.ServiceStats{"demo": {Figures: s.Figures}}
	return s
}

func (f *fakePoP) Reload(cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloadErr != nil {
		return f.reloadErr
	}
	f.reloads = append(f.reloads, cfg)
	return nil
}

func (f *fakePoP) purged() []popapi.PurgeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]popapi.PurgeRequest(nil), f.purges...)
}

// startAgent runs the agent of PoP name on its own connection until the
// test ends.
func startAgent(t testing.TB, cc config.Control, path string, cfg *config.Config, name string, user, password string) (*fakePoP, *control.Agent) {
	t.Helper()
	f := &fakePoP{name: name}
	conn := dial(t, cc, control.Identity{Role: config.RolePoP, Name: name}, user, password)
	return f, runAgent(t, conn, f, path, cfg, name)
}

func runAgent(t testing.TB, conn *control.Conn, f control.PoP, path string, cfg *config.Config, name string) *control.Agent {
	t.Helper()
	a, err := control.NewAgent(conn, f, control.AgentOptions{Name: name, Path: path, Config: cfg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent %s: %v", name, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// proxy forwards TCP connections to target until cut; while cut, it
// closes new connections at once.
type proxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() { io.Copy(c, s); c.Close() })
	}
}

// cut closes every forwarded connection and refuses new ones.
func (p *proxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() { p.down.Store(false) }

// logLines collects a logger's output for a test to wait on.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// contains reports whether s has been logged.
func (l *logLines) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Contains(l.buf.Bytes(), []byte(s))
}
