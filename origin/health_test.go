package origin

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEjectionAndRecovery stops a server, checks that it is ejected after
// the configured failures, restarts it on the same port and checks that it
// comes back only after the cool-down, through one trial request.
func TestEjectionAndRecovery(t *testing.T) {
	a := newBackend(t, "a", nil)
	b := newRestartable(t, "b")
	clk := newClock()
	var logs logBuffer
	p := newTestPool(t, Options{
		Policy:   PolicyRoundRobin,
		Ejection: Ejection{Failures: 2, Cooldown: 10 * time.Second},
		Logger:   logs.logger(),
		Now:      clk.Now,
	}, []string{a.URL, b.URL()})
	bName := b.addr
	send := func(n int) {
		t.Helper()
		for range n {
			if id := mustGet(t, p, Request{}); id != "a" && id != "b" {
				t.Fatalf("answer from %q", id)
			}
		}
	}
	state := func() State { return serverStats(t, p, bName).State }
	bRequests := func() uint64 { return serverStats(t, p, bName).Requests }

	send(4)
	if got := b.b.hits.Load(); got != 2 {
		t.Fatalf("b got %d of 4 requests, want 2", got)
	}

	// Stopped: its turns fail to connect, are retried on a, and after
	// two failures b is ejected.
	b.stop()
	p.closeTransports() // forget the kept-alive connections to the stopped server
	send(4)
	st := serverStats(t, p, bName)
	if st.State != StateEjected || st.Failures != 2 || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("after 2 failures: state %s, failures %d, last error %q; want ejected, 2, connection refused", st.State, st.Failures, st.LastError)
	}
	if n := logs.count("origin server ejected"); n != 1 {
		t.Errorf("logged the ejection %d times, want 1", n)
	}
	before := bRequests()
	send(6)
	if bRequests() != before {
		t.Errorf("an ejected server got requests")
	}

	// Back on its port, but the cool-down is not over.
	b.start()
	send(4)
	if bRequests() != before || state() != StateEjected {
		t.Errorf("b got requests during its cool-down")
	}

	// Cool-down over: one trial request, which succeeds.
	clk.Advance(10 * time.Second)
	send(4)
	if state() != StateHealthy || b.b.hits.Load() < 3 {
		t.Fatalf("after the cool-down: state %s, hits %d; want healthy and requests again", state(), b.b.hits.Load())
	}
	if n := logs.count("origin server back in rotation"); n != 1 {
		t.Errorf("logged the recovery %d times, want 1", n)
	}

	// A failed trial starts a new cool-down.
	b.stop()
	p.closeTransports()
	send(4)
	if state() != StateEjected {
		t.Fatalf("state %s, want ejected", state())
	}
	clk.Advance(10 * time.Second)
	before = bRequests()
	send(2) // one of these is b's trial; it fails and is retried on a
	if got := bRequests() - before; got != 1 {
		t.Errorf("b got %d trial requests, want 1", got)
	}
	if state() != StateEjected {
		t.Errorf("after a failed trial: state %s, want ejected", state())
	}
	before = bRequests()
	clk.Advance(9 * time.Second)
	send(4)
	if bRequests() != before {
		t.Errorf("b got requests in its new cool-down")
	}
}

// TestTrialIsOneAtATime checks that when a cool-down ends only one request
// goes to the server until its trial has answered.
func TestTrialIsOneAtATime(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	a := newBackend(t, "a", nil)
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		entered <- struct{}{}
		<-release
	})
	clk := newClock()
	p := newTestPool(t, Options{Ejection: Ejection{Failures: 1, Cooldown: time.Second}, Now: clk.Now}, []string{a.URL, b.URL})
	mustGet(t, p, Request{Target: "/fail"}) // a
	mustGet(t, p, Request{Target: "/fail"}) // b answers 503: ejected
	if s := p.Stats().Servers[1]; s.State != StateEjected {
		t.Fatalf("b is %s after a 503, want ejected", s.State)
	}
	clk.Advance(time.Second)
	done := make(chan string, 2)
	for range 2 { // round robin sends one of these to b, as its trial
		go func() { id, _, _ := get(t, p, Request{}); done <- id }()
	}
	<-entered // b's trial is in its handler
	if id := <-done; id != "a" {
		t.Fatalf("the other request went to %q, want a", id)
	}
	for range 10 {
		if id := mustGet(t, p, Request{}); id != "a" {
			t.Fatalf("a request went to %s while its trial was in flight", id)
		}
	}
	close(release)
	if id := <-done; id != "b" {
		t.Fatalf("the trial got %q, want b's answer", id)
	}
	waitFor(t, "b back in rotation", func() bool { return p.Stats().Servers[1].State == StateHealthy })
}

// TestNoHealthyServer ejects every server and checks that the pool still
// tries the one that failed least recently, flags it and logs it once.
func TestNoHealthyServer(t *testing.T) {
	a, b := newRestartable(t, "a"), newRestartable(t, "b")
	a.stop()
	b.stop()
	clk := newClock()
	var logs logBuffer
	p := newTestPool(t, Options{Ejection: Ejection{Failures: 1, Cooldown: time.Hour}, Logger: logs.logger(), Now: clk.Now},
		[]string{a.URL(), b.URL()})
	// POSTs are never retried, so each one fails on exactly one server.
	post := func() (string, error) {
		t.Helper()
		id, _, err := get(t, p, Request{Method: http.MethodPost, Body: strings.NewReader("x"), ContentLength: 1})
		clk.Advance(time.Second)
		return id, err
	}
	failedOn := func(err error) string {
		t.Helper()
		oe, ok := errors.AsType[*Error](err)
		if !ok {
			t.Fatalf("error %v is not an *Error", err)
		}
		return oe.Server
	}
	for _, want := range []string{a.addr, b.addr} { // both ejected in turn
		if _, err := post(); err == nil || failedOn(err) != want {
			t.Fatalf("error %v, want a failure on %s", err, want)
		}
	}
	if p.Stats().NoHealthy {
		t.Fatalf("no_healthy_server set before any request found no server")
	}
	for _, want := range []string{a.addr, b.addr, a.addr} { // least recently failed first
		_, err := post()
		if err == nil || failedOn(err) != want {
			t.Fatalf("with no healthy server: error %v, want a failure on %s", err, want)
		}
		if !p.Stats().NoHealthy {
			t.Errorf("no_healthy_server not set")
		}
	}
	if n := logs.count("origin pool has no healthy server; trying the least recently failed"); n != 1 {
		t.Errorf("logged %d times that no server is healthy, want once", n)
	}

	b.start() // b failed least recently now
	if id, err := post(); err != nil || id != "b" {
		t.Fatalf("got %q, %v; want b's answer", id, err)
	}
	if id, err := post(); err != nil || id != "b" {
		t.Fatalf("got %q, %v; want b's answer (a is still ejected)", id, err)
	}
	if st := p.Stats(); st.NoHealthy || st.Servers[1].State != StateHealthy || st.Servers[0].State != StateEjected {
		t.Errorf("stats %+v; want b healthy, a ejected, no flag", st)
	}
	if n := logs.count("origin pool has a healthy server again"); n != 1 {
		t.Errorf("logged the return of a healthy server %d times, want once", n)
	}
}

// TestRetryOnConnectFailure checks which requests are sent again to
// another server when the first cannot be reached.
func TestRetryOnConnectFailure(t *testing.T) {
	// The live server listens first, so the kernel cannot hand it the
	// port the dead one gives back.
	live := newBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(body))
	})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	tests := []struct {
		name      string
		req       Request
		wantRetry bool
	}{
		{"GET without a body (RFC 9110 9.2.2)", Request{Method: http.MethodGet}, true},
		{"HEAD", Request{Method: http.MethodHead}, true},
		{"DELETE", Request{Method: http.MethodDelete}, true},
		{"OPTIONS", Request{Method: http.MethodOptions}, true},
		{"PUT with an in-memory body", Request{Method: http.MethodPut, Body: bytes.NewReader([]byte("data")), ContentLength: 4}, true},
		{"PUT with GetBody", Request{
			Method: http.MethodPut, Body: io.MultiReader(strings.NewReader("data")), ContentLength: 4,
			GetBody: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("data")), nil },
		}, true},
		{"PUT with a body that cannot be replayed", Request{Method: http.MethodPut, Body: io.MultiReader(strings.NewReader("data")), ContentLength: 4}, false},
		{"POST is not idempotent", Request{Method: http.MethodPost, Body: strings.NewReader("data"), ContentLength: 4}, false},
		{"POST without a body is not retried either", Request{Method: http.MethodPost}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The dead server comes first, so round robin tries it first.
			p := newTestPool(t, Options{Ejection: Ejection{Failures: 100}}, []string{deadURL, live.URL})
			id, body, err := get(t, p, tt.req)
			if !tt.wantRetry {
				oe, ok := errors.AsType[*Error](err)
				if !ok || oe.Kind != KindUnreachable || oe.Server != dead.Addr().String() {
					t.Fatalf("got %q %q %v; want an unreachable error naming %s", id, body, err, dead.Addr())
				}
				return
			}
			if err != nil || id != "live" {
				t.Fatalf("got %q, %v; want the live server's answer", id, err)
			}
			if tt.req.Method != http.MethodHead && tt.req.Body != nil && body != tt.req.Method+" data" {
				t.Errorf("the retried request arrived with body %q", body)
			}
			st := p.Stats()
			if st.Servers[0].Failures != 1 || st.Servers[1].Requests != 1 {
				t.Errorf("failures %d on the dead server, requests %d on the live one; want 1 and 1", st.Servers[0].Failures, st.Servers[1].Requests)
			}
		})
	}

	t.Run("both unreachable names both", func(t *testing.T) {
		other, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		other.Close()
		p := newTestPool(t, Options{}, []string{deadURL, "http://" + other.Addr().String()})
		_, _, err = get(t, p, Request{})
		if err == nil || !strings.Contains(err.Error(), dead.Addr().String()) || !strings.Contains(err.Error(), other.Addr().String()) {
			t.Errorf("error %v; want one naming both servers", err)
		}
	})
}

// TestActiveHealthChecks makes a server fail its health checks and pass
// them again.
func TestActiveHealthChecks(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(status.Load()))
		}
	}
	a, b := newBackend(t, "a", nil), newBackend(t, "b", h)
	var logs logBuffer
	p := newTestPool(t, Options{
		Health: &HealthCheck{Path: "/health", Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2},
		Logger: logs.logger(),
	}, []string{a.URL, b.URL})
	bName := b.Listener.Addr().String()

	status.Store(http.StatusInternalServerError)
	waitFor(t, "b unhealthy", func() bool { return serverStats(t, p, bName).State == StateUnhealthy })
	if e := serverStats(t, p, bName).LastError; !strings.Contains(e, "answered 500") {
		t.Errorf("last error %q, want the check's status", e)
	}
	before := b.hits.Load()
	for range 10 {
		mustGet(t, p, Request{})
	}
	if b.hits.Load() != before {
		t.Errorf("an unhealthy server got requests")
	}

	status.Store(http.StatusFound) // 3xx passes
	waitFor(t, "b healthy", func() bool { return serverStats(t, p, bName).State == StateHealthy })
	for range 10 {
		mustGet(t, p, Request{})
	}
	if b.hits.Load() == before {
		t.Errorf("b got no requests once healthy again")
	}
	if logs.count("origin server unhealthy") != 1 || logs.count("origin server healthy again") != 1 {
		t.Errorf("want one log line per transition; got\n%s", logs.buf.String())
	}
}
