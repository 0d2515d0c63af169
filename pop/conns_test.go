package pop

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// startTunedPoP starts the PoP of yaml with tune applied to its
// configuration, on loopback listeners (an HTTPS one when the file has
// tls), and stops it when the test ends.
func startTunedPoP(t *testing.T, yaml string, tune func(*config.POP), opts ...func(*Options)) (tp *testPoP, tlsAddr string) {
	t.Helper()
	p, clk, pc := newTestPoP(t, yaml, tune, opts...)
	var ls Listeners
	lns := []*net.Listener{&ls.Serve, &ls.Admin}
	if pc.TLS.Enabled() {
		lns = append(lns, &ls.TLS)
	}
	for _, ln := range lns {
		var err error
		if *ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	if ls.TLS != nil {
		tlsAddr = ls.TLS.Addr().String()
	}
	tp = &testPoP{
		PoP:    p,
		url:    "http://" + ls.Serve.Addr().String(),
		admin:  "http://" + ls.Admin.Addr().String(),
		clock:  clk,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true}},
	}
	tp.serve(t, ls)
	return tp, tlsAddr
}

// newTestPoP is the PoP of the configuration text, tune applied to its
// PoP's section (which it returns too), with a test clock, a shutdown
// grace of 5 s and the test's log, then opts.
func newTestPoP(t *testing.T, text string, tune func(*config.POP), opts ...func(*Options)) (*PoP, *clock, *config.POP) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	tune(&cfg.POPs[0])
	clk := newClock()
	o := Options{Now: clk.Now, ShutdownGrace: 5 * time.Second, Logger: testLogger(t)}
	for _, opt := range opts {
		opt(&o)
	}
	p, err := New(cfg, "", o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, clk, &cfg.POPs[0]
}

// serve serves tp's PoP on ls until the test ends, then stops it (waiting
// for Serve to return) and closes it; it sets tp.cancel and tp.done.
func (tp *testPoP) serve(t *testing.T, ls Listeners) {
	ctx, cancel := context.WithCancel(context.Background())
	tp.cancel, tp.done = cancel, make(chan error, 1)
	go func() { tp.done <- tp.ServeListeners(ctx, ls) }()
	t.Cleanup(func() {
		tp.stop(t)
		tp.Close()
	})
}

// mustRequest is a GET of url for Host demo.example.
func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "demo.example"
	return req
}

// listenerMetric reads a per-listener metric from the PoP's registry.
func listenerMetric(t *testing.T, p *PoP, name, listener string) float64 {
	t.Helper()
	families, err := p.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

// TestSendTimeout sends a large body (24 MiB: loopback's kernel buffers
// can hold several) to clients that never read, with a tiny receive
// buffer, on every way a hit reaches a client over HTTP/1.1, clear and
// TLS (a blob over TLS is copied through it, without sendfile): each
// write stalls, and the send timeout cuts the connection off, counts it
// on its listener and frees its slot.
func TestSendTimeout(t *testing.T) {
	const size = 24 << 20
	path := fmt.Sprintf("/big/%d", size)
	o := bigOrigin(t)
	tlsYAML := strings.Replace(bigConfig(o.URL, ""), "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true}\n", 1)
	const lend = "Cache-Control: max-age=600\r\n"
	tests := []struct {
		name     string
		bodies   string
		extra    string   // request header lines
		tls      bool     // on the TLS listener
		alpn     []string // the TLS client's ALPN protocols
		wantFast bool
	}{
		{"fast path, heap body", "heap", "", false, nil, true},
		{"fast path, blob with sendfile", "blob", "", false, nil, true},
		{"lent to net/http, heap body", "heap", lend, false, nil, false},
		{"lent to net/http, blob with sendfile", "blob", lend, false, nil, false},
		{"TLS fast path, heap body", "heap", "", true, nil, true},
		{"TLS, lent to net/http", "heap", lend, true, nil, false},
		{"TLS fast path with ALPN http/1.1, heap body", "heap", "", true, []string{"http/1.1"}, true},
		{"TLS fast path with ALPN http/1.1, blob copied through TLS", "blob", "", true, []string{"http/1.1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := bigConfig(o.URL, "")
			if tt.tls {
				yaml = tlsYAML
			}
			tp, tlsAddr := startTunedPoP(t, yaml, func(pc *config.POP) { pc.Timeouts.Send = 200 * time.Millisecond }, bodiesIn(tt.bodies))
			listener, addr := "clear", tp.addr()
			var conf *tls.Config
			// The fill's own client may be cut off too on a loaded machine
			// (-race): what matters is that the object is stored.
			// Over TLS the object is filled over TLS: the key is https's.
			fillClient, fillURL := tp.client, tp.url+path
			if tt.tls {
				listener, addr = "tls", tlsAddr
				conf = &tls.Config{RootCAs: tp.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: tt.alpn}
				fillClient = &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
				fillURL = "https://" + tlsAddr + path
			}
			if resp, err := fillClient.Do(mustRequest(t, fillURL)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			waitStored(t, tp.PoP)
			fillClient.CloseIdleConnections()
			waitFor(t, "no connection open", func() bool { return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", listener) == 0 })

			c := dialSmallWindow(t, addr)
			if tt.tls {
				tc := tls.Client(c, conf)
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				c = tc
			}
			before := tp.fastHits.Load()
			timeouts := listenerMetric(t, tp.PoP, "outpost_pop_send_timeouts_total", listener)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: demo.example\r\n%s\r\n", path, tt.extra)
			waitFor(t, "the send timeout", func() bool {
				return listenerMetric(t, tp.PoP, "outpost_pop_send_timeouts_total", listener) == timeouts+1
			})
			// The send timeout is counted inside the write, before the
			// hit is.
			wantFast := 0
			if tt.wantFast {
				wantFast = 1
			}
			wantFastHits(t, tp, before, wantFast)
			// What reaches the client is what the kernels held when the
			// server gave up: less than the body.
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, _ := io.Copy(io.Discard, c); n >= size {
				t.Errorf("read %d bytes: the whole body arrived", n)
			}
			waitFor(t, "the connection closed", func() bool { return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", listener) == 0 })
		})
	}
}

// dialSmallWindow connects to addr with a receive buffer of 4 KiB, set
// before connecting so that the window the client offers is small from
// the start; the connection has a deadline 20 s away and is closed when
// the test ends.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// TestSendTimeoutSlowReader checks that the send timeout bounds each wait,
// not the response: a client that reads slowly but steadily gets a body
// that takes many times the timeout.
func TestSendTimeoutSlowReader(t *testing.T) {
	o := bigOrigin(t)
	for _, bodies := range []string{"heap", "blob"} {
		t.Run(bodies, func(t *testing.T) {
			tp, _ := startTunedPoP(t, bigConfig(o.URL, ""), func(pc *config.POP) { pc.Timeouts.Send = 200 * time.Millisecond }, bodiesIn(bodies))
			const size = 2 << 20
			path := fmt.Sprintf("/big/%d", size)
			tp.get(t, path)
			waitStored(t, tp.PoP)
			c, err := net.Dial("tcp", strings.TrimPrefix(tp.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.(*net.TCPConn).SetReadBuffer(16 << 10)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: demo.example\r\n\r\n", path)
			// 64 KiB every 50ms: 1.6s for the body, eight send timeouts.
			var got int
			buf := make([]byte, 64<<10)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for got < size {
				<-tick.C // the reader's pace, not synchronisation
				n, err := io.ReadFull(c, buf)
				got += n
				if err != nil {
					break
				}
			}
			if got < size {
				t.Fatalf("read %d bytes of %d: a steady reader was cut off", got, size)
			}
			if n := listenerMetric(t, tp.PoP, "outpost_pop_send_timeouts_total", "clear"); n != 0 {
				t.Errorf("%v send timeouts counted", n)
			}
		})
	}
}

// TestMaxConns caps the clear listener at two connections: a third waits
// in the kernel's queue, unanswered, until one of the two closes; the cap
// and the open connections are counted.
func TestMaxConns(t *testing.T) {
	o := fastOrigin(t)
	tp, _ := startTunedPoP(t, fastConfig(o.URL), func(pc *config.POP) { pc.Limits.MaxConns = 2 })
	tp.get(t, "/obj")
	tp.client.CloseIdleConnections()
	waitFor(t, "no connection open", func() bool { return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "clear") == 0 })
	addr := strings.TrimPrefix(tp.url, "http://")
	request := "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n"
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, request)
		return c, bufio.NewReader(c)
	}
	answered := func(c net.Conn, br *bufio.Reader, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	}
	first, firstBR := dial()
	second, secondBR := dial()
	if !answered(first, firstBR, 10*time.Second) || !answered(second, secondBR, 10*time.Second) {
		t.Fatal("the first two connections were not answered")
	}
	third, thirdBR := dial()
	waitFor(t, "the cap reached", func() bool {
		return listenerMetric(t, tp.PoP, "outpost_pop_connection_limit_reached_total", "clear") >= 1
	})
	if n := listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "clear"); n != 2 {
		t.Errorf("open connections = %v, want 2", n)
	}
	if answered(third, thirdBR, 200*time.Millisecond) {
		t.Fatal("a third connection was served past the cap")
	}
	first.Close()
	if !answered(third, thirdBR, 10*time.Second) {
		t.Fatal("the third connection was not served once a slot was free")
	}
	second.Close()
	third.Close()
	waitFor(t, "every slot back", func() bool {
		return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "clear") == 0
	})
}
