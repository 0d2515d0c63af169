package pop

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/http3"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/localca"
)

// startTLSPoP starts a PoP with an HTTPS listener and HTTP/3 on a
// self-signed certificate, and points tp.url and tp.client at it over
// proto: "h1-tls", "h2" (net/http's server), "h2-outpost" (the PoP's own,
// tls.http2: outpost), "h2c" and "h2c-outpost" (the same with prior
// knowledge on the clear listener) or "h3".
func startTLSPoP(t *testing.T, originURL, proto string, opts ...func(*Options)) *testPoP {
	t.Helper()
	return startTLSPoPWith(t, originURL, proto, "", opts...)
}

// startTLSPoPWith is startTLSPoP with popYAML (lines of the PoP's section,
// each indented by four spaces) added to the configuration.
func startTLSPoPWith(t *testing.T, originURL, proto, popYAML string, opts ...func(*Options)) *testPoP {
	t.Helper()
	tlsYAML := `{listen: "127.0.0.1:0", self_signed: true}`
	switch proto {
	case "h2":
		tlsYAML = `{listen: "127.0.0.1:0", self_signed: true, http2: net/http}`
	case "h2-outpost": // the PoP's own HTTP/2 server (pop/h2serve)
		tlsYAML = `{listen: "127.0.0.1:0", self_signed: true, http2: outpost}`
	case "h2c":
		tlsYAML = `{listen: "127.0.0.1:0", self_signed: true, h2c: true, http2: net/http}`
	case "h2c-outpost":
		tlsYAML = `{listen: "127.0.0.1:0", self_signed: true, h2c: true, http2: outpost}`
	}
	text := strings.Replace(fmt.Sprintf(testConfig, originURL, "0s"), "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    tls: "+tlsYAML+"\n"+popYAML, 1)
	p, clk, _ := newTestPoP(t, text, func(*config.POP) {}, opts...)
	ls := listenAll(t)
	tp := &testPoP{
		PoP:   p,
		admin: "http://" + ls.Admin.Addr().String(),
		clock: clk,
	}
	tlsConf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool()}
	tp.url = "https://" + ls.TLS.Addr().String()
	switch proto {
	case "h1-tls":
		tp.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	case "h2", "h2-outpost":
		tp.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
	case "h2c", "h2c-outpost": // prior knowledge on the clear listener
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		tp.client = &http.Client{Transport: &http.Transport{Protocols: protos}}
		tp.url = "http://" + ls.Serve.Addr().String()
	case "h3":
		h3 := &http3.Transport{TLSClientConfig: tlsConf}
		tp.client = &http.Client{Transport: h3}
		t.Cleanup(func() { h3.Close() })
	}
	tp.serve(t, ls)
	return tp
}

// listenAll opens loopback listeners for a PoP, HTTP/3 on the TLS port.
func listenAll(t *testing.T) Listeners {
	t.Helper()
	var ls Listeners
	for range 20 {
		tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		quic, err := net.ListenPacket("udp", tlsLn.Addr().String())
		if err != nil {
			tlsLn.Close() // that UDP port is taken: try another
			continue
		}
		ls.TLS, ls.QUIC = tlsLn, quic
		break
	}
	if ls.TLS == nil {
		t.Fatal("no TCP+UDP port pair free")
	}
	var err error
	if ls.Serve, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ls.Admin, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return ls
}

// TestProtocols checks what differs by protocol: the negotiated version,
// Alt-Svc advertising HTTP/3 on HTTP/1.1 and HTTP/2, and one cache for all.
func TestProtocols(t *testing.T) {
	o := newTestOrigin(t, cacheable("shared"))
	tp := startTLSPoP(t, o.URL, "h2")
	pool := tp.certs.selfSignedCA.Pool()
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer h3.Close()
	clients := []struct {
		name      string
		client    *http.Client
		url       string
		wantProto int
		wantAlt   bool
	}{
		{"h2 over TLS", tp.client, tp.url, 2, true},
		{"h3 over QUIC", &http.Client{Transport: h3}, tp.url, 3, false},
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(tp.url, "https://"))
	for i, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			req, _ := http.NewRequest(http.MethodGet, c.url+"/same", nil)
			req.Host = "demo.example"
			resp, body := doRead(t, c.client, req)
			if resp.ProtoMajor != c.wantProto || string(body) != "shared" {
				t.Fatalf("proto %d body %q", resp.ProtoMajor, body)
			}
			if alt := resp.Header.Get("Alt-Svc"); (alt == `h3=":`+port+`"; ma=86400`) != c.wantAlt {
				t.Errorf("Alt-Svc %q", alt)
			}
			hit := strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
			if hit != (i > 0) {
				t.Errorf("Cache-Status %q: one cache for every protocol", resp.Header.Get("Cache-Status"))
			}
			if via := resp.Header.Get("Via"); !strings.HasPrefix(via, fmt.Sprint(c.wantProto)) {
				t.Errorf("Via %q for HTTP/%d", via, c.wantProto)
			}
		})
	}
	if n := o.count("/same"); n != 1 {
		t.Errorf("origin requests %d, want 1", n)
	}
}

// TestHTTPSPolicy checks the per-service redirect to https and HSTS, and
// that certificates changed on disk are picked up without a restart.
func TestHTTPSPolicy(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	dir := t.TempDir()
	ca, err := localca.New("test")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := ca.Issue([]string{"demo.example", "127.0.0.1"})
	if err := first.WriteFiles(dir, "cert.pem", "key.pem"); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"), "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", certificates: [{cert: "+dir+"/cert.pem, key: "+dir+"/key.pem}]}\n", 1)
	text = strings.Replace(text, "\npops:\n", "\n    https: {redirect: true, hsts: {max_age: 8760h, include_subdomains: true}}\npops:\n", 1)
	p, _, _ := newTestPoP(t, text, func(*config.POP) {})
	defer p.Close()
	ls := listenAll(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	defer func() { cancel(); <-done }()

	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+ls.Serve.Addr().String()+"/a?b=1", nil)
	req.Host = "demo.example"
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(ls.TLS.Addr().String())
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://demo.example:"+port+"/a?b=1" {
		t.Errorf("plain HTTP: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	serial := func() string {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "https://"+ls.TLS.Addr().String()+"/a", nil)
		req.Host = "demo.example"
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
			t.Errorf("HSTS %q", got)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	second, _ := ca.Issue([]string{"demo.example", "127.0.0.1"})
	if err := second.WriteFiles(dir, "cert.pem", "key.pem"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new certificate to be served", func() bool { return serial() != before })
}

// TestInterimResponses checks that a 103 Early Hints from the origin
// reaches the client of a request the PoP passes through.
func TestInterimResponses(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	tp := startPoP(t, o.URL)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, tp.url+"/p", strings.NewReader("x"))
	req.Host = "demo.example"
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "final" || len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Errorf("body %q, interim responses %q", body, hints)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the interim Link field leaked into the final response")
	}
}
