package control_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/popapi"
)

// fakeDNS records the states and reloads the follower hands it.
type fakeDNS struct {
	mu        sync.Mutex
	states    map[string]popapi.State
	reloads   []string // config versions
	reloadErr error
}

func (f *fakeDNS) ObserveState(s popapi.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states == nil {
		f.states = map[string]popapi.State{}
	}
	f.states[s.PoP] = s
}

func (f *fakeDNS) Reload(cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloadErr != nil {
		return f.reloadErr
	}
	f.reloads = append(f.reloads, cfg.Version)
	return nil
}

func (f *fakeDNS) seen(pop string) (popapi.State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[pop]
	return s, ok
}

func (f *fakeDNS) reloaded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reloads...)
}

// TestDNSFollower runs a DNS follower as a dns user beside a PoP agent:
// it hears the PoP's states, applies a pushed revision with the server's
// Reload and records it, and records a revision the server refuses with
// the reason, keeping the one it runs.
func TestDNSFollower(t *testing.T) {
	users := []bus.User{
		{Name: "ops", Password: "ops-secret", Role: config.RoleOperator},
		{Name: "prg", Password: "prg-secret", Role: config.RolePoP, PoP: "prg"},
		{Name: "ns1", Password: "ns1-secret", Role: config.RoleDNS},
	}
	s := startBus(t, users)
	dir := t.TempDir()
	path := cdnFile(t, dir, s.ClientURL(), []string{"prg"}, "")
	cfg := loadCDN(t, path)
	startAgent(t, cfg.Control, path, cfg, "prg", "prg", "prg-secret")

	d := &fakeDNS{}
	conn := dial(t, cfg.Control, control.Identity{Role: config.RoleDNS, Name: "ns1"}, "ns1", "ns1-secret")
	f, err := control.NewDNSFollower(conn, d, control.DNSOptions{Name: "ns1", Path: path, Config: cfg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	waitFor(t, 10*time.Second, "the follower hands the DNS server prg's state", func() bool {
		st, ok := d.seen("prg")
		return ok && st.PoP == "prg"
	})

	ops := dial(t, cfg.Control, control.Identity{Role: config.RoleOperator}, "ops", "ops-secret")
	if err := ops.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "next.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "# revision two\n"...)
	if err := os.WriteFile(next, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rev, err := ops.PushConfig(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the DNS server runs the pushed revision", func() bool {
		return f.Config().Revision == rev
	})
	if got := d.reloaded(); len(got) != 1 || got[0] != f.Config().Version {
		t.Errorf("reloads %v, want the pushed version %s once", got, f.Config().Version)
	}
	waitFor(t, 10*time.Second, "the hosts bucket has dns ns1 at the pushed revision", func() bool {
		hosts, err := ops.Hosts(context.Background())
		if err != nil {
			return false
		}
		for _, h := range hosts {
			if h.Role == config.RoleDNS && h.Host == "ns1" && h.Revision == rev {
				return true
			}
		}
		return false
	})

	d.mu.Lock()
	d.reloadErr = errors.New("networks.csv:7: unknown PoP \"fra\"")
	d.mu.Unlock()
	bad := append(data, "# revision three\n"...)
	rev3, err := ops.PushConfig(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the DNS server reports the refused revision", func() bool {
		r := f.Config()
		return r.Refused == rev3 && r.Revision == rev && r.Reason == d.reloadErr.Error()
	})
}

// TestDNSFollowerName refuses a name that cannot stand in a subject.
func TestDNSFollowerName(t *testing.T) {
	cfg := &config.Config{}
	if _, err := control.NewDNSFollower(nil, &fakeDNS{}, control.DNSOptions{Name: "ns1.example", Config: cfg}); err == nil {
		t.Error("NewDNSFollower accepted the name ns1.example")
	}
}
