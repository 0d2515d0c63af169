package synthetic

import (
	"errors"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		query string
		least time.Duration // a generous lower bound only: no upper bound on a busy machine
	}{
		{"?delay", Options{}, "?size=10&delay=200ms", 200 * time.Millisecond},
		{"server latency", Options{Latency: 100 * time.Millisecond}, "?size=10", 100 * time.Millisecond},
		{"server latency range", Options{Latency: 50 * time.Millisecond, LatencyMax: 60 * time.Millisecond}, "?size=10", 50 * time.Millisecond},
		{"both add up", Options{Latency: 100 * time.Millisecond}, "?size=10&delay=100ms", 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, tt.opts)
			begin := time.Now()
			resp, body := ts.get(t, "/obj/d"+tt.query)
			if took := time.Since(begin); took < tt.least {
				t.Errorf("answered after %v, want at least %v", took, tt.least)
			}
			if resp.StatusCode != 200 || Verify("d", body) != nil || len(body) != 10 {
				t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
			}
		})
	}
}

func TestStatusFault(t *testing.T) {
	ts := start(t, Options{})
	tests := []struct {
		query  string
		status int
		cc     string // wanted Cache-Control
	}{
		{"status=503", 503, "no-store"},
		{"status=500", 500, "no-store"},
		{"status=404", 404, "no-store"},
		{"status=404&cc=max-age=60", 404, "max-age=60"},
		{"status=302", 302, "no-store"},
		{"status=204", 204, "no-store"},
		{"status=200", 200, "no-store"},
		{"status=599", 599, "no-store"},
		// Bad values: informational codes cannot be final responses.
		{"status=100", 400, "no-store"},
		{"status=199", 400, "no-store"},
		{"status=99", 400, "no-store"},
		{"status=600", 400, "no-store"},
		{"status=5o3", 400, "no-store"},
		{"status=0503", 400, "no-store"},
		{"status=+503", 400, "no-store"},
		{"status=", 400, "no-store"},
		{"delay=-1s", 400, "no-store"},
		{"delay=6m", 400, "no-store"},
		{"delay=soon", 400, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := ts.get(t, "/obj/s?"+tt.query)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Cache-Control"); got != tt.cc {
				t.Errorf("Cache-Control %q, want %q", got, tt.cc)
			}
			if resp.Header.Get("Etag") != "" {
				t.Error("a fault response has the object's ETag")
			}
			if wantBody := tt.status != 204; wantBody != (len(body) > 0) {
				t.Errorf("%d bytes of body", len(body))
			}
		})
	}
}

func TestStatusFaultAppliesToAnyPath(t *testing.T) {
	ts := start(t, Options{})
	if resp, _ := ts.get(t, "/anything/at/all?status=502"); resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}

func TestResetFault(t *testing.T) {
	ts := start(t, Options{})
	for _, size := range []string{"1m", "100"} {
		t.Run(size, func(t *testing.T) {
			resp, err := ts.client.Get(ts.url + "/obj/x?reset=1&size=" + size)
			if err != nil {
				t.Fatalf("the header should arrive before the reset: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("read %d bytes of %d without an error", len(body), resp.ContentLength)
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error %v, want ECONNRESET or a truncated body", err)
			}
			if int64(len(body)) >= resp.ContentLength {
				t.Errorf("got the whole body (%d bytes) despite the reset", len(body))
			}
			if err := Verify("x", body); err != nil {
				t.Errorf("the bytes before the reset: %v", err)
			}
		})
	}
	// The server lives on.
	if resp, _ := ts.get(t, "/obj/x?size=10"); resp.StatusCode != 200 {
		t.Fatalf("after resets: %d", resp.StatusCode)
	}
}

func TestSlowFault(t *testing.T) {
	ts := start(t, Options{})
	tests := []struct {
		query string
		size  int
		least time.Duration // pauses × (chunks − 1)
	}{
		{"slow=1", 3 << 10, 20 * time.Millisecond},
		{"slow=2ms", 10<<10 + 1, 20 * time.Millisecond},
		{"slow=0", 100 << 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			begin := time.Now()
			resp, body := ts.get(t, "/obj/slow?size="+strconv.Itoa(tt.size)+"&"+tt.query)
			if took := time.Since(begin); took < tt.least {
				t.Errorf("body took %v, want at least %v", took, tt.least)
			}
			if resp.StatusCode != 200 || len(body) != tt.size {
				t.Fatalf("status %d, %d of %d bytes", resp.StatusCode, len(body), tt.size)
			}
			if err := Verify("slow", body); err != nil {
				t.Error(err)
			}
		})
	}
	resp, body := ts.do(t, "GET", "/obj/slow?size=3000&slow=1ms", h("Range", "bytes=1000-2999"))
	if resp.StatusCode != 206 || len(body) != 2000 {
		t.Fatalf("slow range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, err := NewVerifier("slow", 1000).Write(body); err != nil {
		t.Error(err)
	}
}

func TestErrorRate(t *testing.T) {
	const n = 2000
	statuses := func(opts Options, n int) []int {
		ts := start(t, opts)
		out := make([]int, n)
		for i := range out {
			resp, _ := ts.get(t, "/obj/e?size=1")
			out[i] = resp.StatusCode
		}
		return out
	}
	count := func(codes []int, code int) int {
		c := 0
		for _, s := range codes {
			if s == code {
				c++
			}
		}
		return c
	}
	got := statuses(Options{ErrorRate: 0.1, Seed: 42}, n)
	if c := count(got, 503); c < n/10-60 || c > n/10+60 {
		t.Errorf("%d of %d answered 503 at rate 0.1", c, n)
	}
	if c := count(got, 503) + count(got, 200); c != n {
		t.Errorf("%d answers are neither 200 nor 503", n-c)
	}
	again := statuses(Options{ErrorRate: 0.1, Seed: 42}, 200)
	for i := range again {
		if again[i] != got[i] {
			t.Fatalf("request %d: %d, then %d with the same seed", i, got[i], again[i])
		}
	}
	if c := count(statuses(Options{ErrorRate: 1}, 20), 503); c != 20 {
		t.Errorf("rate 1: %d of 20 answered 503", c)
	}
	if c := count(statuses(Options{}, 20), 503); c != 0 {
		t.Errorf("rate 0: %d of 20 answered 503", c)
	}
}

func TestLatencyDraws(t *testing.T) {
	opts := Options{Latency: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond, Seed: 7}
	a, _ := New(opts)
	b, _ := New(opts)
	var low, high int
	for i := 0; i < 1000; i++ {
		d := a.latency()
		if d < opts.Latency || d > opts.LatencyMax {
			t.Fatalf("latency %v outside %v-%v", d, opts.Latency, opts.LatencyMax)
		}
		if d < 15*time.Millisecond {
			low++
		} else {
			high++
		}
		if e := b.latency(); e != d {
			t.Fatalf("draw %d: %v, then %v with the same seed", i, d, e)
		}
	}
	if low < 400 || high < 400 {
		t.Errorf("draws not uniform: %d below the middle, %d above", low, high)
	}
	fixed, _ := New(Options{Latency: 5 * time.Millisecond})
	if d := fixed.latency(); d != 5*time.Millisecond {
		t.Errorf("fixed latency %v", d)
	}
}
