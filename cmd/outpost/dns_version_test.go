package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// dnsYAML is a CDN file for `outpost dns` that names a network map.
const dnsYAML = `zone: cdn.example
services:
  - {name: demo, hostnames: [demo.cdn.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: prg, location: {lat: 50.08, lon: 14.43}, listen: 127.0.0.11:8080, admin: 127.0.0.11:9080}
  - {name: nrt, location: {lat: 35.68, lon: 139.69}, listen: 127.0.0.13:8080, admin: 127.0.0.13:9080}
dns:
  listen: [127.0.0.1:5353]
  networks: networks.csv
`

// Two network maps: the second moves a network to the other PoP.
const (
	networksV1 = "198.51.100.0/24, prg\n"
	networksV2 = "198.51.100.0/24, nrt\n"
)

// writeFile writes data to dir/name.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// contentVersion is the content version of the file at path now.
func contentVersion(t *testing.T, path string) string {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cfg.ContentVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// startDNSServer makes the DNS server `outpost dns` would make of path.
func startDNSServer(t *testing.T, path string) *dnsServer {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newDNSServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// waitVersion polls srv's /stats version until it is want.
func waitVersion(t *testing.T, srv *dnsServer, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().ConfigVersion != want {
		if time.Now().After(deadline) {
			t.Fatalf("config_version %s, want %s", srv.Stats().ConfigVersion, want)
		}
		poke()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDNSContentVersion: the DNS server reports the version of the file
// and the files it names, as a PoP does, at start, in --check, and after a
// reload, so a new network map changes it and the same bytes do not.
func TestDNSContentVersion(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string)
		changed bool
	}{
		{"a new networks.csv", func(t *testing.T, dir string) { writeFile(t, dir, "networks.csv", networksV2) }, true},
		{"networks.csv rewritten with the same bytes", func(t *testing.T, dir string) { writeFile(t, dir, "networks.csv", networksV1) }, false},
		{"a comment in the YAML", func(t *testing.T, dir string) { writeFile(t, dir, "dns.yaml", dnsYAML+"# edited\n") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "networks.csv", networksV1)
			path := writeFile(t, dir, "dns.yaml", dnsYAML)
			before := contentVersion(t, path)
			cfg, _ := config.Load(path)
			if before == cfg.Version {
				t.Fatalf("content version %s is the YAML's own: the network map is not in it", before)
			}
			runOutpost(t, []string{"dns", "--config", path, "--check"}, 0, "ok (version "+before+",", "")
			srv := startDNSServer(t, path)
			if got := srv.Stats().ConfigVersion; got != before {
				t.Fatalf("config_version %s at start, want the content version %s", got, before)
			}
			tt.change(t, dir)
			next, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Reload(next); err != nil {
				t.Fatal(err)
			}
			after := srv.Stats().ConfigVersion
			if after != contentVersion(t, path) || (after != before) != tt.changed {
				t.Errorf("config_version %s -> %s, want changed=%v (content version now %s)", before, after, tt.changed, contentVersion(t, path))
			}
			if next.Version != cfg.Version && !strings.Contains(tt.name, "YAML") {
				t.Errorf("the loaded Config's own Version changed (%s -> %s): the control plane compares it", cfg.Version, next.Version)
			}
		})
	}
}

// TestDNSReloadOnHUP: SIGHUP reloads a changed network map, and the
// version says so.
func TestDNSReloadOnHUP(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "networks.csv", networksV1)
	path := writeFile(t, dir, "dns.yaml", dnsYAML)
	srv := startDNSServer(t, path)
	// A SIGHUP before reloadOnHUP listens must not end the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reloadOnHUP(ctx, slog.New(slog.DiscardHandler), path, srv.Reload) }()
	defer func() { cancel(); <-done }()

	writeFile(t, dir, "networks.csv", networksV2)
	waitVersion(t, srv, contentVersion(t, path), func() { syscall.Kill(os.Getpid(), syscall.SIGHUP) })
}

// TestDNSWatchConfig: with --watch-config the DNS server follows a
// mounted ConfigMap's swap (a new directory, and the ..data symlink
// renamed onto it) without a signal.
func TestDNSWatchConfig(t *testing.T) {
	dir := t.TempDir()
	link := func(target, name string) {
		t.Helper()
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	swaps := 0
	swap := func(networks string) { // what the kubelet does
		swaps++
		v := fmt.Sprintf("..v%d", swaps)
		os.Mkdir(filepath.Join(dir, v), 0o755)
		writeFile(t, filepath.Join(dir, v), "dns.yaml", dnsYAML)
		writeFile(t, filepath.Join(dir, v), "networks.csv", networks)
		link(v, "..data")
	}
	swap(networksV1)
	link("..data/dns.yaml", "dns.yaml")
	link("..data/networks.csv", "networks.csv")
	path := filepath.Join(dir, "dns.yaml")
	srv := startDNSServer(t, path)
	before := srv.Stats().ConfigVersion

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchConfig(ctx, slog.New(slog.DiscardHandler), path, 10*time.Millisecond, srv.Reload)
	}()
	defer func() { cancel(); <-done }()

	swap(networksV2)
	want := contentVersion(t, path)
	if want == before {
		t.Fatal("the swap did not change the content version")
	}
	// The watcher compares with what it saw first, which may already be
	// this swap: swap again (the same content, new files) until it sees one.
	waitVersion(t, srv, want, func() { swap(networksV2) })
}

// TestDNSWatchConfigFlag: a negative interval is refused.
func TestDNSWatchConfigFlag(t *testing.T) {
	runOutpost(t, []string{"dns", "--config", "x.yaml", "--watch-config", "-1s"}, 1, "", "--watch-config -1s")
}
