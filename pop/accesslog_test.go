package pop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

func TestAccessLog(t *testing.T) {
	o := newTestOrigin(t, cacheable("logged"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	tests := []struct {
		name  string
		mode  string
		lines int
	}{
		{"full logs every request", "full", 3},
		{"off logs nothing", "off", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(logPath)
			text := strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"), "    cache_size: 64MiB\n",
				"    cache_size: 64MiB\n    access_log: {mode: "+tt.mode+", path: "+logPath+"}\n", 1)
			cfg, err := config.Parse("log.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(cfg, "", Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			tp := &testPoP{PoP: p}
			w := &discardWriter{h: make(map[string][]string)}
			for i := range 3 {
				req := newRequest(t, fmt.Sprintf("/log/%d", i%2))
				p.ServeHTTP(w, req)
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			}
			p.Close() // flushes the log
			data, _ := os.ReadFile(logPath)
			var lines []map[string]any
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
				}
				lines = append(lines, m)
			}
			if len(lines) != tt.lines {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), tt.lines, data)
			}
			for _, m := range lines {
				for _, k := range []string{"time", "pop", "client", "host", "path", "status", "bytes", "cache_status", "request_id", "user_agent", "referer", "origin_ms", "origin_server", "ttfb_ms", "total_ms"} {
					if _, ok := m[k]; !ok {
						t.Errorf("line %v lacks %q", m, k)
					}
				}
				if m["status"] != 200.0 || m["bytes"] != 6.0 || m["pop"] != "test" {
					t.Errorf("line %v", m)
				}
			}
			if tt.lines > 0 && !strings.Contains(lines[0]["cache_status"].(string), "fwd=uri-miss") {
				t.Errorf("first request's cache_status %v", lines[0]["cache_status"])
			}
			if tt.lines > 0 && lines[0]["origin_server"] != strings.TrimPrefix(o.URL, "http://") {
				t.Errorf("a miss's origin_server %v, want %s", lines[0]["origin_server"], strings.TrimPrefix(o.URL, "http://"))
			}
		})
	}
}

// newRequest is a GET for path on the demo service from a client address.
func newRequest(t *testing.T, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://demo.example"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.7:40000"
	return req
}

// TestAccessLogSampling checks that sampled mode logs about the configured
// fraction of requests.
func TestAccessLogSampling(t *testing.T) {
	tests := []struct {
		mode   string
		sample float64
		want   float64
	}{
		{config.AccessLogSampled, 0.1, 0.1},
		{config.AccessLogSampled, 0.5, 0.5},
		{config.AccessLogFull, 0.1, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %.2f", tt.mode, tt.sample), func(t *testing.T) {
			l, err := newAccessLog("t", config.AccessLog{Mode: tt.mode, Sample: tt.sample, Path: filepath.Join(t.TempDir(), "a.log")})
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			const n = 100000
			logged := 0
			for range n {
				if l.sampled() {
					logged++
				}
			}
			if got := float64(logged) / n; got < tt.want-0.01 || got > tt.want+0.01 {
				t.Errorf("logged %.3f of requests, want %.2f ± 0.01", got, tt.want)
			}
		})
	}
	// Off: nothing drawn for the log, but the log is there for a tail.
	l, err := newAccessLog("t", config.AccessLog{Mode: config.AccessLogOff})
	if err != nil || l == nil {
		t.Fatalf("off: %v, %v", l, err)
	}
	defer l.close()
	for range 1000 {
		if l.sampled() {
			t.Fatal("off: a request was drawn with no tail open")
		}
	}
}
