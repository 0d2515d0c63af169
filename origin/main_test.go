package origin

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// clock is a test clock that only moves when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects a pool's logs for tests that count them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), "msg=\""+msg+"\"")
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// backend is a real origin server on 127.0.0.1 that names itself in
// X-Server and counts requests.
type backend struct {
	*httptest.Server
	id   string
	hits atomic.Int64
}

// newBackend starts a backend; handler, if not nil, answers after the
// count.
func newBackend(t testing.TB, id string, handler http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id}
	b.Server = httptest.NewServer(b.handler(handler))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) handler(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_origin/load" && r.URL.Path != "/health" {
			b.hits.Add(1)
		}
		w.Header().Set("X-Server", b.id)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, b.id)
	})
}

// restartable is an origin server on a fixed port that can be stopped and
// started again on the same port.
type restartable struct {
	t    testing.TB
	addr string
	b    *backend
	srv  *http.Server
}

func newRestartable(t testing.TB, id string) *restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, addr: ln.Addr().String(), b: &backend{id: id}}
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) URL() string { return "http://" + r.addr }

func (r *restartable) serve(ln net.Listener) {
	r.srv = &http.Server{Handler: r.b.handler(nil)}
	go r.srv.Serve(ln)
}

// stop closes the listener and every connection.
func (r *restartable) stop() {
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// start listens on the same port again.
func (r *restartable) start() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// newTestPool makes a pool over urls with the given weights (1 when
// weights is short) and closes it when the test ends.
func newTestPool(t testing.TB, opts Options, urls []string, weights ...int) *Pool {
	t.Helper()
	servers := make([]Server, len(urls))
	for i, u := range urls {
		servers[i] = Server{URL: mustURL(t, u), Weight: 1}
		if i < len(weights) {
			servers[i].Weight = weights[i]
		}
	}
	p, err := NewPool(servers, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// get sends r and returns the X-Server of the answer and its body.
func get(t testing.TB, p *Pool, r Request) (string, string, error) {
	t.Helper()
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	if r.Target == "" {
		r.Target = "/"
	}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	resp, err := p.Do(context.Background(), r)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.Header.Get("X-Server"), string(body), err
}

// mustGet is get that fails the test on error.
func mustGet(t testing.TB, p *Pool, r Request) string {
	t.Helper()
	id, _, err := get(t, p, r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Target, err)
	}
	return id
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serverStats returns the figures of the pool's server named name.
func serverStats(t testing.TB, p *Pool, name string) ServerStats {
	t.Helper()
	for _, s := range p.Stats().Servers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no server %s in %+v", name, p.Stats())
	return ServerStats{}
}
