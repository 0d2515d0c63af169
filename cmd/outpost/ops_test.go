package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

// TestFlagErrors: a missing required flag is named, zero is no default,
// and errors do not repeat the command's name.
func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"pop without --config names it", []string{"pop"}, 2, "outpost pop: --config is required"},
		{"stats without --config names it", []string{"stats"}, 2, "outpost stats: --config is required"},
		{"tail without --config names it", []string{"tail"}, 2, "outpost tail: --config is required"},
		{"cert without its flags names both", []string{"cert"}, 2, "outpost cert: --hosts and --out are required"},
		{"purge without a target says so", []string{"purge", "--config", "../../deploy/examples/single-pop.yaml"}, 2, "TARGET (a URL, a prefix or a tag) is required"},
		{"bench -c 0 is an error, not 10 connections", []string{"bench", "-c", "0", "http://127.0.0.1:1/"}, 1, "outpost bench: -c 0: want more than zero (leave it out for the default, 10)"},
		{"bench -duration 0s is an error", []string{"bench", "-duration", "0s", "http://127.0.0.1:1/"}, 1, "-duration 0s: want more than zero"},
		{"stats -interval 0 is an error", []string{"stats", "--config", "../../deploy/examples/single-pop.yaml", "--interval", "0s"}, 1, "-interval 0s: want more than zero"},
		{"purge -attempts 0 is an error", []string{"purge", "--config", "../../deploy/examples/single-pop.yaml", "--attempts", "0", "http://demo.example/"}, 1, "-attempts 0: want more than zero"},
		{"pop --watch-config below zero", []string{"pop", "--config", "x.yaml", "--watch-config", "-1s"}, 1, "--watch-config -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OUTPOST_PURGE_TOKEN", "a-test-token-that-is-no-placeholder-0123456789")
			runOutpost(t, tt.args, tt.code, "", tt.wantStderr)
		})
	}
}

// TestErrorPrefix: "outpost purge: purge: ..." loses its stutter.
func TestErrorPrefix(t *testing.T) {
	var stdout, stderr bytes.Buffer
	t.Setenv("OUTPOST_PURGE_TOKEN", "a-test-token-that-is-no-placeholder-0123456789")
	run([]string{"purge", "--config", "../../deploy/examples/single-pop.yaml", "--prefix", "ftp://nowhere/"}, &stdout, &stderr)
	if strings.Contains(stderr.String(), "outpost purge: purge:") || !strings.HasPrefix(stderr.String(), "outpost purge: ") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestVersion: the version line has the Go version, and /stats reports
// the same build (buildinfo is the one source).
func TestVersion(t *testing.T) {
	out := runOutpost(t, []string{"version"}, 0, "outpost ", "")
	if !strings.Contains(out, "go1.") {
		t.Errorf("version %q lacks the Go version", out)
	}
}

func TestCurlLine(t *testing.T) {
	tests := []struct {
		hosts []string
		want  string
	}{
		{[]string{"demo.example", "127.0.0.1"}, "curl --cacert ca.pem --resolve demo.example:8443:127.0.0.1 https://demo.example:8443/"},
		{[]string{"*.cdn.example"}, "curl --cacert ca.pem --resolve www.cdn.example:8443:127.0.0.1 https://www.cdn.example:8443/"},
		{[]string{"127.0.0.1"}, "curl --cacert ca.pem https://127.0.0.1:8443/"},
		{[]string{"::1"}, "curl --cacert ca.pem https://[::1]:8443/"},
	}
	for _, tt := range tests {
		if got := curlLine("ca.pem", tt.hosts, "127.0.0.1:8443"); got != tt.want {
			t.Errorf("curlLine(%q) = %q, want %q", tt.hosts, got, tt.want)
		}
	}
}

// TestCheckWarnsAboveHostMemory: a cache_size beyond this host's memory
// is a warning at --check, not an error.
func TestCheckWarnsAboveHostMemory(t *testing.T) {
	mem, ok := hostMemory()
	if !ok {
		t.Skip("this host's memory cannot be read (/proc/meminfo)")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "big.yaml")
	text := fmt.Sprintf(`services:
  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: big, location: {lat: 1, lon: 2}, listen: "127.0.0.1:8081", admin: "127.0.0.1:9081", cache_size: %d}
`, mem*2)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	runOutpost(t, []string{"pop", "--config", file, "--check"}, 0, ": ok (version ", "warning: pop big: cache_size")
	runOutpost(t, []string{"pop", "--config", "../../deploy/examples/single-pop.yaml", "--check"}, 0, ": ok", "")
}

// TestTailCommand follows a PoP's requests through its admin handler, as
// `outpost tail` finds it in the file.
func TestTailCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	var admin atomic.Pointer[http.Handler]
	adminSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*admin.Load()).ServeHTTP(w, r) }))
	defer adminSrv.Close()
	file := filepath.Join(t.TempDir(), "cdn.yaml")
	text := fmt.Sprintf(`services:
  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: %q}]}}
pops:
  - {name: edge-1.example.com, location: {lat: 1, lon: 2}, listen: "127.0.0.1:0", admin: %q}
purge: {token: a-test-token-that-is-no-placeholder-0123456789}
`, origin.URL, strings.TrimPrefix(adminSrv.URL, "http://"))
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pop.New(cfg, "", pop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := p.AdminHandler()
	admin.Store(&h)

	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run([]string{"tail", "--config", file, "-n", "1", "status", "=", "404"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metrics(t, adminSrv.URL), "outpost_pop_tail_subscribers 1\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the tail did not open: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, path := range []string{"/ok", "/missing"} { // the filter leaves out the 200
		p.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://demo.example"+path, nil))
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("outpost tail -n 1 did not end")
	}
	if !strings.Contains(stdout.String(), `"path":"/missing","proto":"HTTP/1.1","status":404`) || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("stdout %q: want one 404 line", stdout.String())
	}
	if !strings.Contains(stderr.String(), "following pop edge-1.example.com") {
		t.Errorf("stderr %q", stderr.String())
	}
}

func metrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
