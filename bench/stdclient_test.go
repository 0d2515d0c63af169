package bench

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/outpost-cdn/outpost/localca"
)

// seen records what a test server received.
type seen struct {
	mu     sync.Mutex
	protos map[string]int
	hosts  map[string]int
	agents map[string]int
	extra  map[string]int
}

// handler answers a hit with a 5-byte body and records the requests.
func (s *seen) handler() http.Handler {
	s.reset()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.protos[r.Proto]++
		s.hosts[r.Host]++
		s.agents[r.UserAgent()]++
		s.extra[r.Header.Get("X-Bench")]++
		s.mu.Unlock()
		w.Header().Set("Cache-Status", "outpost/test; hit")
		w.Write([]byte("hello"))
	})
}

// reset clears the counts, under the lock: a request of the previous
// subtest (an HTTP/3 stream still finishing) may be in the handler.
func (s *seen) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.protos, s.hosts, s.agents, s.extra = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
}

func (s *seen) check(t *testing.T, res *Result, proto, host string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.Requests == 0 || res.Errors != 0 || res.Responses != res.Requests {
		t.Errorf("%d requests, %d responses, errors %v", res.Requests, res.Responses, res.ErrorsByKind)
	}
	if res.Protocols[proto] != res.Responses || len(res.Protocols) != 1 {
		t.Errorf("protocols %v, want %d on %s", res.Protocols, res.Responses, proto)
	}
	if res.Results.Hit != res.Responses || res.HitRatio != 1 || res.Bytes != 5*res.Responses {
		t.Errorf("results %+v, hit ratio %v, %d bytes", res.Results, res.HitRatio, res.Bytes)
	}
	if len(res.PerPoP) != 1 || res.PerPoP[0].Name != "outpost/test" {
		t.Errorf("per PoP %+v", res.PerPoP)
	}
	// The server may count more than the window: warm-up, abandoned ends.
	if int64(s.protos[proto]) < res.Requests || len(s.protos) != 1 {
		t.Errorf("the server saw %v", s.protos)
	}
	if s.hosts[host] != s.protos[proto] || s.agents["outpost-bench"] != s.protos[proto] || s.extra["1"] != s.protos[proto] {
		t.Errorf("the server saw hosts %v, agents %v, X-Bench %v; want %s, outpost-bench, 1", s.hosts, s.agents, s.extra, host)
	}
}

// startH3 serves h over HTTP/3 on a loopback UDP socket with a self-signed
// certificate until the test ends, and returns the address.
func startH3(t *testing.T, h http.Handler) string {
	t.Helper()
	leaf, _, err := localca.SelfSigned([]string{"127.0.0.1", "svc.example"})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{leaf.TLS}})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pc) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("HTTP/3 server: %v", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().String()
}

// TestProtocolClients runs HTTP/2 over TLS, h2c and HTTP/3 against servers
// that speak them, directly and with -connect (the URL's host in Host and
// SNI, the connection to the given address).
func TestProtocolClients(t *testing.T) {
	var h2s, h2cs, h3s seen
	h2 := httptest.NewUnstartedServer(h2s.handler())
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	h2c := httptest.NewUnstartedServer(h2cs.handler())
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetHTTP1(true)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	defer h2c.Close()

	h3 := startH3(t, h3s.handler())

	for _, tc := range []struct {
		name, proto, url, connect, host, want string
		s                                     *seen
	}{
		{"h2", ProtocolHTTP2, h2.URL + "/x", "", strings.TrimPrefix(h2.URL, "https://"), protoHTTP2, &h2s},
		{"h2 connect", ProtocolHTTP2, "https://svc.example/x", strings.TrimPrefix(h2.URL, "https://"), "svc.example", protoHTTP2, &h2s},
		{"h2c", ProtocolHTTP2, h2c.URL + "/x", "", strings.TrimPrefix(h2c.URL, "http://"), protoHTTP2, &h2cs},
		{"h2c connect", ProtocolHTTP2, "http://svc.example:8080/x", strings.TrimPrefix(h2c.URL, "http://"), "svc.example:8080", protoHTTP2, &h2cs},
		{"h3", ProtocolHTTP3, "https://" + h3 + "/x", "", h3, protoHTTP3, &h3s},
		{"h3 connect", ProtocolHTTP3, "https://svc.example/x", h3, "svc.example", protoHTTP3, &h3s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.reset()
			res := mustRun(t, Config{
				URL: tc.url, Connect: tc.connect, Protocol: tc.proto, InsecureTLS: true,
				Connections: 3, Requests: 60, Header: []string{"X-Bench: 1"},
			})
			if res.Protocol != tc.proto {
				t.Errorf("protocol %q, want %q", res.Protocol, tc.proto)
			}
			tc.s.check(t, res, tc.want, tc.host)
		})
	}
}

// TestProtocolMismatch checks that responses on another protocol than
// asked are errors of kind protocol, counted by the protocol they came on.
func TestProtocolMismatch(t *testing.T) {
	var s seen
	h1 := httptest.NewTLSServer(s.handler()) // HTTP/1.1 only
	defer h1.Close()
	res := mustRun(t, Config{URL: h1.URL + "/x", Protocol: ProtocolHTTP2, InsecureTLS: true, Connections: 2, Requests: 20})
	if res.Responses != 20 || res.ErrorsByKind["protocol"] != 20 || res.Protocols[protoHTTP1] != 20 {
		t.Errorf("%d responses, errors %v, protocols %v; want 20 HTTP/1.1 responses, all protocol errors",
			res.Responses, res.ErrorsByKind, res.Protocols)
	}
}

// TestProtocolConfig checks the protocol's validation.
func TestProtocolConfig(t *testing.T) {
	for _, tc := range []struct {
		url, proto, want string
	}{
		{"http://x/", "", ProtocolHTTP1},
		{"http://x/", "h1", ProtocolHTTP1},
		{"http://x/", ProtocolHTTP2, ProtocolHTTP2},
		{"https://x/", ProtocolHTTP3, ProtocolHTTP3},
		{"http://x/", ProtocolHTTP3, ""},
		{"http://x/", "spdy", ""},
	} {
		c := Config{URL: tc.url, Protocol: tc.proto}
		_, err := c.check()
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s %q: no error", tc.url, tc.proto)
			}
		} else if err != nil || c.Protocol != tc.want {
			t.Errorf("%s %q: %q, %v; want %q", tc.url, tc.proto, c.Protocol, err, tc.want)
		}
	}
}

// TestH3Unreachable checks that an HTTP/3 run with nothing listening ends
// with errors, within its timeout, and leaves nothing running.
func TestH3Unreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	res, err := Run(t.Context(), Config{
		URL: "https://" + addr + "/x", Protocol: ProtocolHTTP3, Connections: 1, Requests: 1,
		Timeout: 500 * time.Millisecond, Logger: testLogger(t),
	}, nil)
	if !errors.Is(err, ErrNoResponses) || res == nil || res.Errors != 1 {
		t.Fatalf("%v, %+v", err, res)
	}
}
