package dnsgeo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
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

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// labNetworks is the lab's network map plus rows the tests need: a
// private network (always used when listed), an IPv6 network and a PoP row.
const labNetworks = `198.51.100.0/24, 50.11, 8.68, DE
192.0.2.0/24, 40.71, -74.01, US
203.0.113.0/24, 34.69, 135.50, JP
10.9.0.0/16, nrt
2001:db8:1::/48, 50.11, 8.68, DE
`

// labYAML is the lab configuration with room for test settings: %ADMINn%
// marks the PoPs' admin addresses, %DNS% extra dns keys.
const labYAML = `zone: cdn.example
services:
  - name: demo
    hostnames: [demo.cdn.example, img.eu.cdn.example, other.example]
    origin:
      servers: [{url: "http://127.0.0.1:8000"}]
pops:
  - {name: prg, location: {lat: 50.08, lon: 14.43}, listen: "127.0.0.11:8080", admin: "%ADMIN0%"}
  - {name: iad, location: {lat: 39.04, lon: -77.49}, listen: "127.0.0.12:8080", admin: "%ADMIN1%"}
  - {name: nrt, location: {lat: 35.68, lon: 139.69}, listen: "127.0.0.13:8080", admin: "%ADMIN2%", address6: "2001:db8::13"}
dns:
  listen: ["127.0.0.1:0"]
  admin: 127.0.0.1:0
  networks: networks.csv
%DNS%
`

// popNames are the lab's PoPs in file order.
var popNames = []string{"prg", "iad", "nrt"}

// fakePoP is a PoP admin endpoint whose /healthz the test switches.
type fakePoP struct {
	srv   *httptest.Server
	state atomic.Value // "ok", "draining" or "error"
}

func newFakePoP(t *testing.T) *fakePoP {
	t.Helper()
	f := &fakePoP{}
	f.state.Store("ok")
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f.state.Load().(string) {
		case "ok":
			io.WriteString(w, "ok\n")
		case "draining":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "draining\n")
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePoP) set(state string) { f.state.Store(state) }

// labConfig writes the lab configuration (with extra dns settings and the
// PoPs' admin addresses) and the network map to a temporary directory and
// loads it.
func labConfig(t testing.TB, extraDNS string, admins []string, networks string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	y := strings.Replace(labYAML, "%DNS%", extraDNS, 1)
	for i := range popNames {
		admin := "127.0.0.1:" + string(rune('1'+i)) // nothing listens: probes fail at once
		if i < len(admins) {
			admin = admins[i]
		}
		y = strings.Replace(y, "%ADMIN"+string(rune('0'+i))+"%", admin, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "networks.csv"), []byte(networks), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// parseWithNetworks loads the configuration y with networks as the
// networks.csv beside it.
func parseWithNetworks(t testing.TB, y, networks string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "networks.csv"), []byte(networks), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cdn.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// testServer is a running Server and where to reach it.
type testServer struct {
	*Server
	udp, tcp string // host:port
	admin    string // http://host:port
	logs     *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServer runs a Server for cfg on 127.0.0.1:0 until the test ends.
// It returns once every listener serves (dns.Server's NotifyStartedFunc).
func startServer(t *testing.T, cfg *config.Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, Options{})
}

// startServerWith is startServer with options; the logger is the test's.
func startServerWith(t *testing.T, cfg *config.Config, opts Options) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := Listen(ctx, cfg.DNS.Listen, cfg.DNS.Admin)
	if err != nil {
		cancel()
		t.Fatalf("Listen: %v", err)
	}
	serveUntilEnd(ctx, t, cancel, s, ls)
	ts := &testServer{Server: s, udp: ls.UDP[0].LocalAddr().String(), tcp: ls.TCP[0].Addr().String(), logs: logs}
	if ls.Admin != nil {
		ts.admin = "http://" + ls.Admin.Addr().String()
	}
	return ts
}

// serveUntilEnd runs s on ls until the test ends (then cancel stops it and
// Serve must return nil), and returns once every listener serves.
func serveUntilEnd(ctx context.Context, t *testing.T, cancel context.CancelFunc, s *Server, ls Listeners) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("Serve returned before serving: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready after 5s")
	}
}

// exchange sends m over proto ("udp" or "tcp") and returns the reply.
func (ts *testServer) exchange(t *testing.T, proto string, m *dns.Msg) *dns.Msg {
	t.Helper()
	addr := ts.udp
	if proto == "tcp" {
		addr = ts.tcp
	}
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second, UDPSize: 4096}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange over %s: %v", proto, err)
	}
	return r
}

// query makes a question for name and type, with an ECS option when
// subnet is not "" and EDNS when edns is not 0.
func query(name string, qtype uint16, subnet string, edns uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 || subnet != "" {
		m.SetEdns0(max(edns, 1232), false)
	}
	if subnet != "" {
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(subnet))
	}
	return m
}

// ecsOption makes an ECS option for a CIDR string.
func ecsOption(cidr string) *dns.EDNS0_SUBNET {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	ones, _ := ipnet.Mask.Size()
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(ones), Address: ip}
	switch {
	case ones == 0 && ip.To4() != nil && ip.IsUnspecified():
		e.Family = 0 // as dig sends +subnet=0
	case ip.To4() != nil:
		e.Family = 1
	default:
		e.Family = 2
	}
	return e
}

// replyECS returns the ECS option of a reply, or nil.
func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

// answerAddr returns the address in a reply's single A or AAAA record, or
// "" when the answer section holds anything else.
func answerAddr(m *dns.Msg) string {
	if len(m.Answer) != 1 {
		return ""
	}
	switch rr := m.Answer[0].(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.AAAA:
		return rr.AAAA.String()
	}
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a dns.ResponseWriter that keeps the reply, packed as the
// server would send it.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
	raw    []byte
	err    error
}

func newRecorder(tcp bool) *recorder {
	ip := net.IPv4(127, 0, 0, 1)
	if tcp {
		return &recorder{remote: &net.TCPAddr{IP: ip, Port: 5300}}
	}
	return &recorder{remote: &net.UDPAddr{IP: ip, Port: 5300}}
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.msg = m
	r.raw, r.err = m.Pack()
	return r.err
}
func (r *recorder) Write(b []byte) (int, error) { r.raw = append(r.raw[:0], b...); return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}
