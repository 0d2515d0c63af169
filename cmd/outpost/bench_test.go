package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBench checks the command's wiring: the simplest use prints one JSON
// object with the documented fields, a table without -json, an HTML
// report with -report, and the exit codes.
func TestBench(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "outpost/test; hit")
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	report := filepath.Join(t.TempDir(), "out.html")

	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"bench", "-duration", "200ms", "-c", "2", "-json", srv.URL + "/x"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var res map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("not one JSON object: %v\n%s", err, stdout.String())
		}
		for _, k := range []string{"requests", "rps", "errors", "hit_ratio", "byte_hit_ratio", "latency_ms", "bytes", "bytes_per_sec", "results", "errors_by_kind", "per_pop"} {
			if _, ok := res[k]; !ok {
				t.Errorf("no %q", k)
			}
		}
		lat, _ := res["latency_ms"].(map[string]any)
		for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
			if _, ok := lat[k]; !ok {
				t.Errorf("no latency_ms.%s", k)
			}
		}
		if res["hit_ratio"] != 1.0 || res["requests"].(float64) == 0 {
			t.Errorf("hit ratio %v over %v requests", res["hit_ratio"], res["requests"])
		}
	})
	t.Run("table and report, flags after the URL", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"bench", "-n", "50", srv.URL + "/x", "-c", "1", "-report", report}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		for _, want := range []string{"requests", "latency (ms)", "hit ratio", "100.00%", "outpost/test"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("the table lacks %q:\n%s", want, stdout.String())
			}
		}
		page, err := os.ReadFile(report)
		if err != nil || !bytes.Contains(page, []byte("<svg")) {
			t.Errorf("report: %v", err)
		}
	})
	t.Run("h2 with -proto", func(t *testing.T) {
		h2 := httptest.NewUnstartedServer(srv.Config.Handler)
		h2.EnableHTTP2 = true
		h2.StartTLS()
		defer h2.Close()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"bench", "-proto", "h2", "-k", "-n", "20", "-c", "2", "-json", h2.URL + "/x"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var res struct {
			Protocol  string           `json:"protocol"`
			Protocols map[string]int64 `json:"protocols"`
			Errors    int64            `json:"errors"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Protocol != "h2" || res.Protocols["HTTP/2.0"] != 20 || res.Errors != 0 {
			t.Errorf("%+v", res)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"help lists the flags", []string{"bench", "-h"}, 0},
		{"nothing answers: exit 1, result printed", []string{"bench", "-n", "3", "-c", "1", closed}, 1},
		{"no URL", []string{"bench", "-n", "3"}, 2},
		{"bad flag", []string{"bench", "-frobnicate", srv.URL}, 2},
		{"two workloads", []string{"bench", "-zipf", "10", "-urls", "x", srv.URL}, 2},
		{"bad protocol", []string{"bench", "-proto", "spdy", srv.URL}, 2},
		{"h3 needs https", []string{"bench", "-proto", "h3", "-n", "1", srv.URL}, 1},
		{"bad region", []string{"bench", "-region", "nowhere", srv.URL}, 2},
		{"missing trace file", []string{"bench", "-trace", "/nonexistent", srv.URL}, 1},
		{"bad size", []string{"bench", "-zipf", "10", "-size", "huge", srv.URL}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.want {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.want, stderr.String())
			}
			if tc.want == 0 {
				for _, flag := range []string{"-c", "-rate", "-duration", "-n", "-warmup", "-connect", "-dns", "-region", "-urls", "-trace", "-zipf", "-zipf-s", "-path-template", "-size", "-shift-every", "-shift-period", "-one-hit", "-seed", "-verify", "-origin-stats", "-proto", "-json", "-report", "Exit status"} {
					if !strings.Contains(stdout.String(), flag) {
						t.Errorf("help lacks %s", flag)
					}
				}
			}
			if tc.name == "nothing answers: exit 1, result printed" && !strings.Contains(stdout.String(), "connect 3") {
				t.Errorf("no result on stdout: %q", stdout.String())
			}
		})
	}
}
