package pop

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/outpost-cdn/outpost/config"
)

// TestProxyProtocol sends PROXY protocol v1 and v2 headers, good and bad,
// over real sockets to a PoP's clear and TLS listeners: the address in an
// accepted header is the client's everywhere (X-Forwarded-For and
// Forwarded to the origin, the access log's client, including for hits
// of the HTTP/1.1 fast path); a header from outside the trusted networks,
// a malformed one, or none from a trusted balancer closes the connection;
// every connection is counted by result.
func TestProxyProtocol(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "xff=%s fwd=%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"))
	})
	yaml := strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"),
		"    cache_size: 64MiB\n", "    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true}\n", 1)
	trust := func(prefix string) func(*config.POP) {
		return func(pc *config.POP) {
			pc.ProxyProtocol = config.ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix(prefix)}, Timeout: 300 * time.Millisecond}
		}
	}
	trusted, trustedTLS := startTunedPoP(t, yaml, trust("127.0.0.0/8"))
	untrusted, untrustedTLS := startTunedPoP(t, yaml, trust("10.0.0.0/8"))

	src := &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000}
	dst := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}
	src6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40000}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 80}
	header := func(version byte, src, dst net.Addr) string {
		b, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	local, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()

	tests := []struct {
		name     string
		tp       *testPoP
		tlsAddr  string // "": the clear listener
		header   string
		path     string
		wantBody string // "": the connection is closed without an answer
		result   string // the listener's count that goes up
	}{
		{name: "v1 from a trusted balancer", tp: trusted, header: header(1, src, dst), path: "/v1", wantBody: "xff=198.51.100.7 fwd=for=198.51.100.7", result: "accepted"},
		{name: "v2 from a trusted balancer", tp: trusted, header: header(2, src, dst), path: "/v2", wantBody: "xff=198.51.100.7 fwd=for=198.51.100.7", result: "accepted"},
		{name: "v2 IPv6 from a trusted balancer", tp: trusted, header: header(2, src6, dst6), path: "/v2-6", wantBody: `xff=2001:db8::7 fwd=for="[2001:db8::7]"`, result: "accepted"},
		{name: "v2 over TLS from a trusted balancer", tp: trusted, tlsAddr: trustedTLS, header: header(2, src, dst), path: "/v2-tls", wantBody: "xff=198.51.100.7 fwd=for=198.51.100.7", result: "accepted"},
		{name: "v2 LOCAL (a health check): the socket's address", tp: trusted, header: string(local), path: "/local", wantBody: "xff=127.0.0.1 fwd=for=127.0.0.1", result: "local"},
		{name: "no header from a trusted balancer", tp: trusted, path: "/missing", result: "missing"},
		{name: "malformed v1 from a trusted balancer", tp: trusted, header: "PROXY TCP4 198.51.100.7 nonsense\r\n", path: "/malformed", result: "malformed"},
		{name: "v1 from an untrusted source", tp: untrusted, header: header(1, src, dst), path: "/spoof1", result: "untrusted"},
		{name: "v2 over TLS from an untrusted source", tp: untrusted, tlsAddr: untrustedTLS, header: header(2, src, dst), path: "/spoof2", result: "untrusted"},
		{name: "no header from an untrusted source: served as it is", tp: untrusted, path: "/direct", wantBody: "xff=127.0.0.1 fwd=for=127.0.0.1", result: "direct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listener := "clear"
			addr := strings.TrimPrefix(tt.tp.url, "http://")
			if tt.tlsAddr != "" {
				listener, addr = "tls", tt.tlsAddr
			}
			before := proxyCount(t, tt.tp, listener, tt.result)
			body, err := proxiedGet(tt.tp, addr, tt.tlsAddr != "", tt.header, tt.path)
			if tt.wantBody == "" {
				if err == nil {
					t.Fatalf("answered %q, want the connection closed", body)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(body, tt.wantBody) {
					t.Errorf("the origin saw %q, want %q", body, tt.wantBody)
				}
			}
			waitFor(t, tt.result+" counted", func() bool { return proxyCount(t, tt.tp, listener, tt.result) == before+1 })
		})
	}

	// A hit of the fast path logs the proxied client too.
	if _, err := proxiedGet(trusted, strings.TrimPrefix(trusted.url, "http://"), false, header(1, src, dst), "/v1"); err != nil {
		t.Fatal(err)
	}
	// The hit is counted just after it is sent, so the client may see it first.
	waitFor(t, "the fast path's hit counted", func() bool { return trusted.fastHits.Load() > 0 })
}

// proxiedGet opens a connection to addr, sends the PROXY protocol header
// (if any), then GET path for demo.example (over TLS when tlsOn), and
// returns the body; an error when the PoP closed the connection instead.
func proxiedGet(tp *testPoP, addr string, tlsOn bool, header, path string) (string, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(raw, header); err != nil {
		return "", err
	}
	var c net.Conn = raw
	if tlsOn {
		tc := tls.Client(raw, &tls.Config{RootCAs: tp.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		c = tc
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: demo.example\r\nConnection: close\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// proxyCount reads one outpost_pop_proxy_protocol_connections_total.
func proxyCount(t *testing.T, tp *testPoP, listener, result string) int {
	t.Helper()
	prefix := fmt.Sprintf(`outpost_pop_proxy_protocol_connections_total{listener=%q,result=%q} `, listener, result)
	for line := range strings.Lines(scrape(t, tp)) {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			var n int
			fmt.Sscan(rest, &n)
			return n
		}
	}
	t.Fatalf("/metrics has no %s", prefix)
	return 0
}
