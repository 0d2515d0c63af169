package pop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// startLoggedPoP starts the test PoP with access_log set to accessLog (a
// YAML flow mapping), in front of o.
func startLoggedPoP(t *testing.T, o *testOrigin, accessLog string, opts ...func(*Options)) *testPoP {
	t.Helper()
	text := strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"), "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    access_log: "+accessLog+"\n", 1)
	return startPoPConfig(t, text, opts...)
}

// readLines waits until path holds n lines and returns them.
func readLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	settle(t, func() bool {
		data, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(data) == 0 {
			lines = nil
		}
		return len(lines) >= n
	}, func() string { return fmt.Sprintf("%s: %d lines, want %d: %q", path, len(lines), n, lines) })
	return lines
}

// TestAccessLogFields checks the fields operators expect, in both
// formats, over the real listeners, and that the request ID logged is the
// one the origin received. The HTTP/1.1 fast path answers the hits, and
// logs the same fields (TestAccessLogFastPathSame compares them).
func TestAccessLogFields(t *testing.T) {
	o := newTestOrigin(t, cacheable("logged"))
	tests := []struct {
		name   string
		format string
		check  func(t *testing.T, line string, originID string, hit bool)
	}{
		{"json has every field", "json", func(t *testing.T, line, originID string, hit bool) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON: %q: %v", line, err)
			}
			want := map[string]any{"pop": "test", "method": "GET", "host": "demo.example", "status": 200.0, "bytes": 6.0,
				"user_agent": "outpost-test/1", "referer": "https://ref.example/page", "proto": "HTTP/1.1"}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			id, _ := m["request_id"].(string)
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
				t.Errorf("request_id %q: want 32 hex digits", id)
			}
			if !hit && id != originID {
				t.Errorf("request_id %q, but the origin received %q", id, originID)
			}
			if ttfb, total := m["ttfb_ms"].(float64), m["total_ms"].(float64); ttfb <= 0 || ttfb > total {
				t.Errorf("ttfb_ms %v, total_ms %v: want 0 < ttfb <= total", ttfb, total)
			}
			if cs, _ := m["cache_status"].(string); hit != strings.Contains(cs, "; hit") {
				t.Errorf("cache_status %q, hit %v", cs, hit)
			}
		}},
		{"combined is NCSA's", "combined", func(t *testing.T, line, _ string, hit bool) {
			fields := `"https://ref\.example/page" "outpost-test/1"`
			re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /fields HTTP/1\.1" 200 6 ` + fields + `$`)
			if !re.MatchString(line) {
				t.Errorf("line %q\ndoes not match %s", line, re)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.log")
			tp := startLoggedPoP(t, o, fmt.Sprintf("{mode: full, format: %s, path: %s}", tt.format, path))
			header := http.Header{"User-Agent": {"outpost-test/1"}, "Referer": {"https://ref.example/page"}}
			for range 2 { // a miss, then a hit
				tp.do(t, http.MethodGet, "/fields", "demo.example", header)
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			}
			lines := readLines(t, path, 2) // queued after the hit is counted
			if tp.fastHits.Load() != 1 {
				t.Fatalf("the fast path answered %d requests, want the hit", tp.fastHits.Load())
			}
			originID := o.lastRequest("/fields").Header.Get("X-Request-Id")
			for i, line := range lines {
				tt.check(t, line, originID, i == 1)
			}
		})
	}
}

// madeID stands for a request ID the PoP made (32 hex digits) in
// TestAccessLogFastPathSame's rows.
const madeID = "(made)"

// TestAccessLogFastPathSame sends the same hit, byte for byte, through
// the HTTP/1.1 fast path and through net/http (a PoP with NoFastPath), and
// compares their access-log lines: every field but the timings must be the
// same, the user agent, referer and request ID by net/http's rules (the
// first value; the client's ID only when it sent one valid one). A made
// ID differs between the two, so the rows say where one is expected.
func TestAccessLogFastPathSame(t *testing.T) {
	o := newTestOrigin(t, cacheable("same"))
	dir := t.TempDir()
	fastLog, slowLog := filepath.Join(dir, "fast.log"), filepath.Join(dir, "slow.log")
	fast := startLoggedPoP(t, o, "{mode: full, path: "+fastLog+"}")
	slow := startLoggedPoP(t, o, "{mode: full, path: "+slowLog+"}", func(o *Options) { o.NoFastPath = true })
	tests := []struct {
		name      string
		fields    string // request fields after Host, each ending in CRLF
		userAgent string
		referer   string
		requestID string // madeID: the PoP's own
	}{
		{"all three", "User-Agent: curl/8.5.0\r\nReferer: https://ref.example/\r\nX-Request-Id: abc-123\r\n",
			"curl/8.5.0", "https://ref.example/", "abc-123"},
		{"none", "", "", "", madeID},
		{"RFC9110 5.1 names are case-insensitive", "user-agent: u/1\r\nREFERER: r\r\nx-request-id: id-1\r\n", "u/1", "r", "id-1"},
		{"RFC9110 5.5 values trimmed", "User-Agent: \t u v \t\r\nX-Request-Id:  id-2 \r\n", "u v", "", "id-2"},
		{"RFC9110 5.3 the first of two User-Agents", "User-Agent: one\r\nUser-Agent: two\r\n", "one", "", madeID},
		{"an empty first Referer", "Referer:\r\nReferer: two\r\n", "", "", madeID},
		{"two request IDs are replaced", "X-Request-Id: one\r\nX-Request-Id: two\r\n", "", "", madeID},
		{"a request ID with a space is replaced", "X-Request-Id: abc 123\r\n", "", "", madeID},
		{"a request ID of 129 bytes is replaced", "X-Request-Id: " + strings.Repeat("a", 129) + "\r\n", "", "", madeID},
		{"a request ID of 128 bytes is kept", "X-Request-Id: " + strings.Repeat("b", 128) + "\r\n", "", "", strings.Repeat("b", 128)},
		{"quotes and UTF-8 in a user agent", "User-Agent: a \"b\" \xc3\xa9\r\n", "a \"b\" é", "", madeID},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/same/%d", i)
			raw := "GET " + path + " HTTP/1.1\r\nHost: demo.example\r\n" + tt.fields + "Connection: close\r\n\r\n"
			var lines [2]map[string]any
			for j, tp := range []*testPoP{fast, slow} {
				tp.get(t, path) // the miss that stores it
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				before := tp.fastHits.Load()
				rawRequest(t, tp.addr(), raw)
				// The line is queued after the hit is counted: with it, the count is final.
				lines[j] = hitLine(t, []string{fastLog, slowLog}[j], path)
				if got, want := tp.fastHits.Load()-before, uint64(1-j); got != want {
					t.Fatalf("PoP %d: the fast path answered %d, want %d", j, got, want)
				}
			}
			for k := range lines[1] {
				switch k {
				case "time", "ttfb_ms", "total_ms":
					continue // timing
				case "request_id":
					if tt.requestID == madeID {
						continue // made per request; checked below
					}
				}
				if lines[0][k] != lines[1][k] {
					t.Errorf("%s: fast path %q, net/http %q", k, lines[0][k], lines[1][k])
				}
			}
			if len(lines[0]) != len(lines[1]) {
				t.Errorf("fields: fast path %v, net/http %v", lines[0], lines[1])
			}
			for j, m := range lines {
				got := []any{m["user_agent"], m["referer"]}
				if want := []any{tt.userAgent, tt.referer}; got[0] != want[0] || got[1] != want[1] {
					t.Errorf("PoP %d: user_agent, referer = %q, want %q", j, got, want)
				}
				id, _ := m["request_id"].(string)
				if tt.requestID == madeID && !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) ||
					tt.requestID != madeID && id != tt.requestID {
					t.Errorf("PoP %d: request_id %q, want %q", j, id, tt.requestID)
				}
			}
		})
	}
}

// rawRequest sends raw on a new connection and reads its response, which
// must be a 200.
func rawRequest(t *testing.T, addr, raw string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%q: status %d", raw, resp.StatusCode)
	}
}

// hitLine waits for the JSON line of a hit on path in the log at file,
// and returns it decoded.
func hitLine(t *testing.T, file, path string) map[string]any {
	t.Helper()
	var found map[string]any
	settle(t, func() bool {
		data, _ := os.ReadFile(file)
		for line := range strings.SplitSeq(string(data), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["path"] == path && strings.Contains(fmt.Sprint(m["cache_status"]), "; hit") {
				found = m
				return true
			}
		}
		return false
	}, func() string { return file + ": no hit on " + path })
	return found
}

// TestRequestID: the client's ID is logged and forwarded; one that is
// too long or has spaces is replaced by the PoP's.
func TestRequestID(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("x"))
	})
	path := filepath.Join(t.TempDir(), "access.log")
	tp := startLoggedPoP(t, o, "{mode: full, path: "+path+"}")
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"a client's ID is kept", "abc-123", true},
		{"an ID with a space is replaced", "abc 123", false},
		{"an ID of 129 bytes is replaced", strings.Repeat("a", 129), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fmt.Sprintf("/id/%d", i)
			tp.do(t, http.MethodGet, p, "demo.example", http.Header{"X-Request-Id": {tt.sent}})
			got := o.lastRequest(p).Header.Get("X-Request-Id")
			if (got == tt.sent) != tt.kept || got == "" {
				t.Errorf("origin received %q for %q, want kept=%v", got, tt.sent, tt.kept)
			}
			line := readLines(t, path, i+1)[i]
			var m map[string]any
			json.Unmarshal([]byte(line), &m)
			if m["request_id"] != got {
				t.Errorf("logged %v, origin received %q", m["request_id"], got)
			}
		})
	}
}

// TestAccessLogReopen is logrotate's move and nginx's SIGUSR1: after the
// file is moved, lines go to it until ReopenLogs, then to a new file at
// the configured path.
func TestAccessLogReopen(t *testing.T) {
	o := newTestOrigin(t, cacheable("r"))
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	tp := startLoggedPoP(t, o, "{mode: full, path: "+path+"}")
	tp.get(t, "/before")
	readLines(t, path, 1)
	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	tp.get(t, "/moved")
	readLines(t, rotated, 2) // still the old file: it is open
	if err := tp.ReopenLogs(); err != nil {
		t.Fatal(err)
	}
	tp.get(t, "/after")
	lines := readLines(t, path, 1)
	if len(lines) != 1 || !strings.Contains(lines[0], `"path":"/after"`) {
		t.Errorf("new file: %q", lines)
	}
	if old := readLines(t, rotated, 2); len(old) != 2 {
		t.Errorf("rotated file: %q", old)
	}
	metrics := tp.adminGet(t, "/metrics")
	if !strings.Contains(metrics, `outpost_pop_access_log_reopens_total{result="ok"} 1`) {
		t.Errorf("metrics lack one reopen:\n%s", grepLines(metrics, "reopens"))
	}

	// The file's directory gone: the old file stays in use.
	os.RemoveAll(dir)
	if err := tp.ReopenLogs(); err == nil {
		t.Error("ReopenLogs into a removed directory: no error")
	}
}

// TestAccessLogStreams: stdout and stderr are targets, and ReopenLogs
// leaves them alone.
func TestAccessLogStreams(t *testing.T) {
	tests := []struct {
		path string
		want *os.File
	}{
		{config.AccessLogStdout, os.Stdout},
		{config.AccessLogStderr, os.Stderr},
		{"", os.Stderr},
	}
	for _, tt := range tests {
		t.Run("path "+tt.path, func(t *testing.T) {
			l, err := newAccessLog("t", config.AccessLog{Mode: config.AccessLogFull, Path: tt.path})
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			if l.out != tt.want {
				t.Errorf("writes to %v, want %v", l.out, tt.want)
			}
			p := &PoP{name: "t", access: l}
			if err := p.ReopenLogs(); err != nil {
				t.Errorf("ReopenLogs on a stream: %v", err)
			}
		})
	}
}

// TestCombinedEscapes: a client cannot forge a combined line.
func TestCombinedEscapes(t *testing.T) {
	r := &accessRecord{at: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), client: "192.0.2.7", method: "GET",
		path: `/a"b`, proto: "HTTP/1.1", status: 404, bytes: 0, userAgent: "x\" \"y\n", referer: `\`}
	got := string(appendCombined(nil, r))
	want := `192.0.2.7 - - [06/Dec/2026:10:00:00 +0000] "GET /a\x22b HTTP/1.1" 404 0 "\x5C" "x\x22 \x22y\x0A"` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// accessLogConfig is an access_log section of the given mode, as parsed.
func accessLogConfig(mode string) config.AccessLog {
	return config.AccessLog{Mode: mode, Sample: 0.01, Format: config.AccessLogJSON, Buffer: 4096}
}
