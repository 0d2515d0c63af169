package pop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTailFilter(t *testing.T) {
	rec := &accessRecord{client: "192.0.2.7", method: "GET", host: "demo.example", path: "/obj/1?x=1", proto: "HTTP/1.1",
		status: 503, bytes: 100, cacheStatus: "outpost/prg; fwd=uri-miss", userAgent: "curl/8", total: 150 * time.Millisecond}
	tests := []struct {
		q     string
		match bool
		err   string // a part of the error, "" for none
	}{
		{"", true, ""},
		{"status >= 500", true, ""},
		{"status>=500", true, ""},
		{"status < 500", false, ""},
		{"status = 503 and host = demo.example", true, ""},
		{"status = 503 host = other.example", false, ""},
		{"status = 200 or path ~ ^/obj/", true, ""},
		{"not method = GET", false, ""},
		{"not method = GET or total_ms > 100", true, ""},
		{`cache_status ~ "fwd=uri-miss"`, true, ""},
		{`user_agent !~ "^curl/"`, false, ""},
		{`client = "192.0.2.7"`, true, ""},
		{"referer = -", false, ""},
		{"bytes != 100", false, ""},
		{"ttfb_ms = 0", true, ""},
		{"colour = red", false, `unknown field "colour"`},
		{"status", false, "want an operator"},
		{"status >=", false, "want a value"},
		{"status >= many", false, "want a number"},
		{"host > a", false, "host is text"},
		{"path ~ (", false, "missing closing )"},
		{"or status = 1", false, `"or" needs`},
		{"status = 1 or", false, `"or" needs`},
		{"status = 1 not", false, `"not" needs`},
		{`host = "unterminated`, false, "bad quoted value"},
		{strings.Repeat("status = 1 ", 33), false, "more than 32"},
		{strings.Repeat("x", 1025), false, "longer than 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			f, err := parseTailFilter(tt.q)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.match(rec); got != tt.match {
				t.Errorf("match = %v, want %v (parsed as %s)", got, tt.match, f)
			}
		})
	}
}

// FuzzTailFilter: any filter parses or fails without panicking, and a
// parsed one can be matched.
func FuzzTailFilter(f *testing.F) {
	for _, s := range []string{"status >= 500", `cache_status ~ "hit" and not host = a or total_ms > 1.5`, "path !~ ^/x", "not not status=1"} {
		f.Add(s)
	}
	rec := &accessRecord{status: 200, path: "/", cacheStatus: "x"}
	f.Fuzz(func(t *testing.T, q string) {
		filter, err := parseTailFilter(q)
		if err != nil {
			return
		}
		filter.match(rec)
		_ = filter.String()
	})
}

// openTail opens GET /tail with query and the test token, and returns
// its lines as they come.
func openTail(t *testing.T, tp *testPoP, query url.Values) (*http.Response, <-chan string) {
	t.Helper()
	resp := tp.adminRequest(t, http.MethodGet, "/tail?"+query.Encode(), "s3cret", "")
	lines := make(chan string, 100)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(lines)
		return resp, lines
	}
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return resp, lines
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the tail ended")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no tail line in 10s")
	}
	return ""
}

// TestTail: with the access log off, a tail sees the requests its filter
// matches, hits of the fast path included, and ends after n lines.
func TestTail(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		cacheable("ok")(w, r)
	})
	tp := startPoP(t, o.URL)
	tp.get(t, "/hit") // stored before the tail opens: the fast path could answer it
	resp, lines := openTail(t, tp, url.Values{"q": {"status >= 400 or cache_status ~ hit"}, "n": {"2"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET /tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitFor(t, "the tail is open", tp.access.tail.active)
	tp.get(t, "/fresh")                                                                            // a miss: filtered out
	tp.do(t, http.MethodGet, "/missing", "demo.example", http.Header{"User-Agent": {"tail-test"}}) // 404
	tp.get(t, "/hit")
	var got []map[string]any
	for range 2 {
		var m map[string]any
		line := nextLine(t, lines)
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, m)
	}
	if got[0]["path"] != "/missing" || got[0]["status"] != 404.0 || got[0]["user_agent"] != "tail-test" {
		t.Errorf("first line %v, want the 404 with its user agent", got[0])
	}
	if got[1]["path"] != "/hit" || !strings.Contains(got[1]["cache_status"].(string), "; hit") {
		t.Errorf("second line %v, want the hit", got[1])
	}
	select { // n=2: the stream ends
	case l, ok := <-lines:
		if ok {
			t.Errorf("a third line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Error("the tail did not end after n lines")
	}
	waitFor(t, "the tail is closed", func() bool { return !tp.access.tail.active() })
}

// TestTailFastPathFields: filters on the user agent, referer and request
// ID match hits the HTTP/1.1 fast path answers, which keep those fields as
// net/http's hits do.
func TestTailFastPathFields(t *testing.T) {
	tp := startPoP(t, newTestOrigin(t, cacheable("ok")).URL)
	tp.get(t, "/hit")
	waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
	tests := []struct {
		name         string
		q            string
		other, match http.Header
	}{
		{"user_agent", `user_agent ~ "^probe/"`,
			http.Header{"User-Agent": {"curl/8"}}, http.Header{"User-Agent": {"probe/1"}}},
		{"referer", `referer = "https://ref.example/"`,
			http.Header{"Referer": {"https://other.example/"}}, http.Header{"Referer": {"https://ref.example/"}}},
		{"request_id", `request_id = trace-7`,
			http.Header{"X-Request-Id": {"trace-8"}}, http.Header{"X-Request-Id": {"trace-7"}}},
		{"all three", `user_agent = probe/2 and referer ~ ref and request_id = trace-9`,
			http.Header{"User-Agent": {"probe/2"}, "Referer": {"https://ref.example/"}},
			http.Header{"User-Agent": {"probe/2"}, "Referer": {"https://ref.example/"}, "X-Request-Id": {"trace-9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, lines := openTail(t, tp, url.Values{"q": {tt.q}, "n": {"1"}})
			if resp.StatusCode != 200 {
				t.Fatalf("GET /tail: %d", resp.StatusCode)
			}
			waitFor(t, "the tail is open", tp.access.tail.active)
			before := tp.fastHits.Load()
			tp.do(t, http.MethodGet, "/hit", "demo.example", tt.other)
			tp.do(t, http.MethodGet, "/hit", "demo.example", tt.match)
			var m map[string]any
			if line := nextLine(t, lines); json.Unmarshal([]byte(line), &m) != nil {
				t.Fatalf("not JSON: %q", line)
			}
			// The line is published after its hit is counted.
			if n := tp.fastHits.Load() - before; n != 2 {
				t.Fatalf("the fast path answered %d of the 2 hits", n)
			}
			for k, f := range map[string]string{"user_agent": "User-Agent", "referer": "Referer", "request_id": "X-Request-Id"} {
				if want := tt.match.Get(f); want != "" && m[k] != want {
					t.Errorf("%s = %v, want the matching hit's %q", k, m[k], want)
				}
			}
			waitFor(t, "the tail is closed", func() bool { return !tp.access.tail.active() })
		})
	}
}

// TestTailBounds: the token, the filter, and the subscriber limit.
func TestTailBounds(t *testing.T) {
	tp := startPoP(t, newTestOrigin(t, cacheable("x")).URL)
	tests := []struct {
		name   string
		token  string
		query  string
		status int
	}{
		{"RFC6750 3 no token", "", "", 401},
		{"RFC6750 3 a wrong token", "guess", "", 401},
		{"a bad filter", "s3cret", "q=colour%3Dred", 400},
		{"a bad format", "s3cret", "format=xml", 400},
		{"a bad n", "s3cret", "n=0", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tp.adminRequest(t, http.MethodGet, "/tail?"+tt.query, tt.token, "")
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	t.Run("at most 8 tails", func(t *testing.T) {
		var open []*http.Response
		for range maxTailSubscribers {
			resp, _ := openTail(t, tp, url.Values{})
			if resp.StatusCode != 200 {
				t.Fatalf("tail %d: %d", len(open)+1, resp.StatusCode)
			}
			open = append(open, resp)
		}
		resp, _ := openTail(t, tp, url.Values{})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("a 9th tail: %d, want 503 with Retry-After", resp.StatusCode)
		}
		m := tp.adminGet(t, "/metrics")
		for _, want := range []string{"outpost_pop_tail_subscribers 8", "outpost_pop_tail_max_subscribers 8", "outpost_pop_tail_refused_total 3"} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "tail"))
			}
		}
		for _, r := range open {
			r.Body.Close()
		}
		waitFor(t, "the tails are closed", func() bool { return !tp.access.tail.active() })
	})
}

// TestTailDrops: a subscriber that does not read loses lines, counted, and
// the stream says how many.
func TestTailDrops(t *testing.T) {
	l, err := newAccessLog("t", accessLogOff)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	f, _ := parseTailFilter("")
	sub, err := l.tail.subscribe(f, "json")
	if err != nil {
		t.Fatal(err)
	}
	for i := range tailBuffer + 10 {
		l.tail.publish(&accessRecord{path: fmt.Sprint("/", i)}, l)
	}
	if got := l.tail.dropped.Load(); got != 10 {
		t.Errorf("dropped %d, want 10", got)
	}
	if got := sub.dropped.Load(); got != 10 {
		t.Errorf("the subscriber's count %d, want 10", got)
	}
	if len(sub.lines) != tailBuffer {
		t.Errorf("%d lines buffered, want %d", len(sub.lines), tailBuffer)
	}
}

var accessLogOff = accessLogConfig("off")
