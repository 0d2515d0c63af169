package origin

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":        {"X-A, close", "X-B"},
		"X-A":               {"1"},
		"X-B":               {"2"},
		"Keep-Alive":        {"timeout=5"},
		"Transfer-Encoding": {"chunked"},
		"Te":                {"trailers"},
		"Upgrade":           {"h2c"},
		"Cache-Control":     {"max-age=1"},
	}
	RemoveHopByHop(h)
	if len(h) != 1 || h.Get("Cache-Control") != "max-age=1" {
		t.Errorf("left %v; want only Cache-Control (RFC 9110 7.6.1)", h)
	}
}

func TestPoolRoundRobinAndErrors(t *testing.T) {
	mk := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/slow":
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			case "/stall":
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "12345")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			default:
				w.Header().Set("X-Server", string(rune('a'+i)))
				io.WriteString(w, r.Header.Get("X-Test"))
			}
		}))
	}
	a, b := mk(0), mk(1)
	defer a.Close()
	defer b.Close()
	// The timeouts must pass for /slow and /stall and never for /x, whose
	// first request also dials: 300 ms was within reach of a loaded -race
	// run, 2 s is not (and /slow and /stall stall for 5 s).
	pool, err := NewPool([]Server{{URL: mustURL(t, a.URL)}, {URL: mustURL(t, b.URL)}},
		Options{Timeouts: Timeouts{FirstByte: 2 * time.Second, Idle: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	for i := range 4 {
		resp, err := pool.Do(ctx, Request{Method: "GET", Target: "/x", Header: http.Header{"X-Test": {"v"}}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "v" {
			t.Errorf("body %q", body)
		}
		if want := string(rune('a' + i%2)); resp.Header.Get("X-Server") != want {
			t.Errorf("request %d went to %s, want %s", i, resp.Header.Get("X-Server"), want)
		}
	}

	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	deadPool, _ := NewPool([]Server{{URL: mustURL(t, deadURL)}}, Options{})
	defer deadPool.Close()

	tests := []struct {
		name       string
		pool       *Pool
		target     string
		wantKind   Kind
		wantStatus int
		inBody     bool
	}{
		{"refused connection is unreachable, 502", deadPool, "/", KindUnreachable, 502, false},
		{"slow header is a timeout, 504", pool, "/slow", KindTimeout, 504, false},
		{"stalled body is a timeout, 504", pool, "/stall", KindTimeout, 504, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.pool.Do(ctx, Request{Method: "GET", Target: tt.target, Header: http.Header{}})
			if tt.inBody {
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			oe, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("error %v is not an *Error", err)
			}
			if oe.Kind != tt.wantKind || StatusFor(err) != tt.wantStatus {
				t.Errorf("kind %v status %d, want %v %d (%v)", oe.Kind, StatusFor(err), tt.wantKind, tt.wantStatus, err)
			}
		})
	}
}

// TestTLS reaches an https origin with a CA from a file, SNI and
// verification.
func TestTLS(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName)
		io.WriteString(w, "secure")
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tls     TLS
		wantSNI string
		wantErr string
	}{
		{"custom CA, SNI from server_name", TLS{CAFile: caFile, ServerName: "example.com"}, "example.com", ""},
		{"custom CA, IP address verified, no SNI (RFC 6066 3)", TLS{CAFile: caFile}, "", ""},
		{"system roots do not know the test CA", TLS{}, "", "certificate signed by unknown authority"},
		{"server_name not in the certificate", TLS{CAFile: caFile, ServerName: "other.example"}, "", "not other.example"},
		{"insecure_skip_verify accepts anything (testing only)", TLS{InsecureSkipVerify: true, ServerName: "other.example"}, "other.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sni.Store("unset")
			p := newTestPool(t, Options{TLS: tt.tls}, []string{srv.URL})
			_, body, err := get(t, p, Request{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
					t.Fatalf("error %v; want one naming the server and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || body != "secure" {
				t.Fatalf("got %q, %v", body, err)
			}
			if got := sni.Load(); got != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", got, tt.wantSNI)
			}
		})
	}

	t.Run("bad ca_file", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
		for _, f := range []string{empty, filepath.Join(t.TempDir(), "missing.pem")} {
			if _, err := NewPool([]Server{{URL: mustURL(t, srv.URL)}}, Options{TLS: TLS{CAFile: f}}); err == nil || !strings.Contains(err.Error(), "ca_file") {
				t.Errorf("NewPool with ca_file %s: %v", f, err)
			}
		}
	})
}

// TestHostHeader checks the Host the origin sees, for requests and health
// checks.
func TestHostHeader(t *testing.T) {
	var hosts sync.Map // path → Host
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { hosts.Store(r.URL.Path, r.Host) })
	tests := []struct {
		name, override, want string
	}{
		{"default is the server URL's host", "", b.Listener.Addr().String()},
		{"host_header overrides it", "www.example.org", "www.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts.Clear()
			p := newTestPool(t, Options{HostHeader: tt.override, Health: &HealthCheck{Path: "/health", Interval: time.Hour}}, []string{b.URL})
			mustGet(t, p, Request{Target: "/page"})
			if got, _ := hosts.Load("/page"); got != tt.want {
				t.Errorf("origin saw Host %q, want %q", got, tt.want)
			}
			waitFor(t, "the health check", func() bool { _, ok := hosts.Load("/health"); return ok })
			if got, _ := hosts.Load("/health"); got != tt.want {
				t.Errorf("health check sent Host %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMaxConns checks that a server's connection cap holds: concurrent
// requests share one connection.
func TestMaxConns(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 5)
	var conns atomic.Int32
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	b.Start()
	defer b.Close()
	p, err := NewPool([]Server{{URL: mustURL(t, b.URL), MaxConns: 1}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, _, err := get(t, p, Request{}); err != nil {
				t.Error(err)
			}
		})
	}
	<-entered
	waitFor(t, "all five in flight", func() bool { return p.Stats().Servers[0].InFlight == 5 })
	close(release)
	wg.Wait()
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections to a server with max_conns 1", n)
	}
}

// TestServerFigures checks the per-server figures: requests, in flight,
// failures with their reason, and response times.
func TestServerFigures(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
		case "/busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	})
	p := newTestPool(t, Options{Policy: PolicyLeastConnections}, []string{b.URL})
	resp, err := p.Do(context.Background(), Request{Method: "GET", Target: "/hold", Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats().Servers[0]; st.InFlight != 1 || st.Requests != 1 || st.Responses != 1 {
		t.Errorf("while the body is read: %+v; want 1 in flight, 1 request, 1 response", st)
	}
	close(release)
	io.ReadAll(resp.Body)
	resp.Body.Close()
	mustGet(t, p, Request{Target: "/busy"})
	st := p.Stats().Servers[0]
	if st.InFlight != 0 || st.Requests != 2 || st.Failures != 1 || !strings.Contains(st.LastError, "503") || st.LastErrorTime.IsZero() {
		t.Errorf("after a 503: %+v; want 0 in flight, 2 requests, 1 failure naming 503", st)
	}
	if st.State != StateHealthy || st.Name != b.Listener.Addr().String() || st.URL != b.URL || st.Weight != 1 {
		t.Errorf("identity %+v", st)
	}
	if st.ResponseSeconds <= 0 || st.LatencyEWMAMillis <= 0 || st.ResponseBuckets[10] != 2 {
		t.Errorf("response times: %v s total, %v ms EWMA, buckets %v", st.ResponseSeconds, st.LatencyEWMAMillis, st.ResponseBuckets)
	}
	if p.Stats().Policy != PolicyLeastConnections {
		t.Errorf("policy %q", p.Stats().Policy)
	}
}

// TestServerNames checks that servers sharing a host get their path in
// their name, so metric labels stay distinct.
func TestServerNames(t *testing.T) {
	p := newTestPool(t, Options{}, []string{"http://o:80/a", "http://o:80/b", "http://p:80"})
	var names []string
	for _, s := range p.Stats().Servers {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "o:80/a o:80/b p:80" {
		t.Errorf("names %q", got)
	}
}

// TestCloseStopsProbes checks that Close stops the health checks and load
// polls (TestMain's goleak check fails otherwise) and may be repeated.
func TestCloseStopsProbes(t *testing.T) {
	b := newBackend(t, "b", nil)
	before := goleak.IgnoreCurrent()
	p, err := NewPool([]Server{{URL: mustURL(t, b.URL)}}, Options{
		Policy: PolicyAdaptive, Load: LoadProbe{Interval: time.Millisecond},
		Health: &HealthCheck{Path: "/health", Interval: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, p, Request{})
	p.Close()
	p.Close()
	b.CloseClientConnections()
	goleak.VerifyNone(t, before)
}
