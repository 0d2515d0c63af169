package pop

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop/fastpath"
)

// tlsFastPoP is a PoP with an HTTPS listener (HTTP/3 on, so Alt-Svc is
// sent) whose service redirects plain HTTP and sends HSTS.
type tlsFastPoP struct {
	*testPoP
	tlsAddr string
	conf    *tls.Config // trusts the PoP's certificate; ALPN http/1.1
}

// startTLSFastPoP starts a tlsFastPoP; tlsExtra is added to its tls
// section, popExtra (lines such as "    timeouts: {...}\n") to its PoP, and
// fast false turns the TLS fast path off (tls.fast_path: false).
func startTLSFastPoP(t *testing.T, originURL string, fast bool, tlsExtra, popExtra string) *tlsFastPoP {
	t.Helper()
	if !fast {
		tlsExtra += ", fast_path: false"
	}
	text := fmt.Sprintf(testConfig, originURL, "0s")
	text = strings.Replace(text, "max_object: 1MiB", "max_object: 4MiB", 1)
	text = strings.Replace(text, "    cache:\n", "    https: {redirect: true, hsts: {max_age: 1h, include_subdomains: true}}\n    cache:\n", 1)
	popExtra = "    tls: {listen: \"127.0.0.1:0\", self_signed: true" + tlsExtra + "}\n" + popExtra
	text = strings.Replace(text, "    cache_size: 64MiB\n", "    cache_size: 64MiB\n"+popExtra, 1)
	p, clk, _ := newTestPoP(t, text, func(*config.POP) {})
	ls := listenAll(t)
	conf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: []string{"http/1.1"}}
	tp := &tlsFastPoP{
		testPoP: &testPoP{
			PoP:    p,
			url:    "https://" + ls.TLS.Addr().String(),
			admin:  "http://" + ls.Admin.Addr().String(),
			clock:  clk,
			client: &http.Client{Transport: &http.Transport{TLSClientConfig: conf.Clone(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		},
		tlsAddr: ls.TLS.Addr().String(),
		conf:    conf,
	}
	tp.serve(t, ls)
	return tp
}

// dial opens a TLS connection to the PoP.
func (tp *tlsFastPoP) dial(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", tp.tlsAddr, tp.conf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchangeTLS is exchangeOn over a new TLS connection to tp; wire is
// every plaintext byte read before the probe.
func exchangeTLS(t *testing.T, tp *tlsFastPoP, raw string, n int, wantClosed bool) exchanged {
	t.Helper()
	c := tp.dial(t)
	defer c.Close()
	return exchangeOn(t, c, raw, n, wantClosed)
}

// TestTLSFastPathMatchesNetHTTP sends the same raw requests over TLS to a
// PoP with the TLS fast path and to one without (tls.fast_path: false,
// net/http's ServeTLS), and requires the same answers, byte for byte but
// for Date values, the same connection handling, and the fast path to
// have taken the requests it should. Over TLS the fast path keys hits
// https, adds Alt-Svc and HSTS where the handler would (stored ones win),
// does not redirect, and lends or hands over the rest with Request.TLS
// set (a lent miss is stored under https, so its hit comes next).
func TestTLSFastPathMatchesNetHTTP(t *testing.T) {
	o := fastOrigin(t)
	fast := startTLSFastPoP(t, o.URL, true, "", "")
	slow := startTLSFastPoP(t, o.URL, false, "", "")
	for _, tp := range []*tlsFastPoP{fast, slow} {
		tp.fill(t, 6, "/obj", "/obj?b=2&a=1", "/big", "/huge", "/own", "/vary")
	}
	matchNetHTTP(t, "tls", fast.testPoP, func(t *testing.T, toFast bool, tt fastPathCase) exchanged {
		tp := slow
		if toFast {
			tp = fast
		}
		ex := exchangeTLS(t, tp, tt.raw, tt.n, tt.wantClose)
		// The PoPs' Alt-Svc differ by their ports only.
		ex.wire = altSvcPort.ReplaceAll(ex.wire, []byte(`h3=":*"`))
		for _, r := range ex.resps {
			if v := r.Header["Alt-Svc"]; len(v) == 1 {
				r.Header["Alt-Svc"] = []string{altSvcPort.ReplaceAllString(v[0], `h3=":*"`)}
			}
		}
		return ex
	})
	// Every fast hit above came over TLS, and the metric says so.
	if tls, clear := listenerMetric(t, fast.PoP, "outpost_pop_fast_path_requests_total", "tls"),
		listenerMetric(t, fast.PoP, "outpost_pop_fast_path_requests_total", "clear"); tls != float64(fast.fastHits.Load()) || tls == 0 || clear != 0 {
		t.Errorf("outpost_pop_fast_path_requests_total: tls %v, clear %v, want %d and 0", tls, clear, fast.fastHits.Load())
	}
	// What the fields above depend on, once: the fast path's answers
	// over TLS carry both, and a clear request is redirected.
	resp, _ := fast.get(t, "/obj")
	if resp.Header.Get("Alt-Svc") == "" || resp.Header.Get("Strict-Transport-Security") != "max-age=3600; includeSubDomains" {
		t.Errorf("a TLS hit's Alt-Svc %q, HSTS %q", resp.Header.Get("Alt-Svc"), resp.Header.Get("Strict-Transport-Security"))
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Errorf("negotiated %+v, want http/1.1", resp.TLS)
	}
}

// TestTLSFastPathHTTP2 checks that a connection negotiating h2 still goes
// to HTTP/2 with the TLS fast path on, on net/http's server and on the
// PoP's own, and that a client without ALPN gets the fast path.
func TestTLSFastPathHTTP2(t *testing.T) {
	o := fastOrigin(t)
	for _, server := range []string{config.HTTP2NetHTTP, config.HTTP2Outpost} {
		t.Run(strings.ReplaceAll(server, "/", ""), func(t *testing.T) {
			tp := startTLSFastPoP(t, o.URL, true, ", http2: "+server, "")
			tp.fill(t, 1, "/obj")
			h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tp.certs.selfSignedCA.Pool()}, ForceAttemptHTTP2: true}}
			defer h2.CloseIdleConnections()
			for range 2 {
				req, _ := http.NewRequest(http.MethodGet, tp.url+"/obj", nil)
				req.Host = "demo.example"
				resp, err := h2.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || string(body) != "hello fast path " ||
					!strings.Contains(resp.Header.Get("Cache-Status"), "; hit") || resp.Header.Get("Strict-Transport-Security") == "" {
					t.Fatalf("%s %d %q %v", resp.Proto, resp.StatusCode, body, resp.Header)
				}
			}
			// No ALPN at all: HTTP/1.1, through the fast path.
			conf := tp.conf.Clone()
			conf.NextProtos = nil
			c, err := tls.Dial("tcp", tp.tlsAddr, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := tp.fastHits.Load()
			io.WriteString(c, "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			waitFor(t, "a client without ALPN answered by the fast path", func() bool { return tp.fastHits.Load() == before+1 })
			got := tp.handshakes()
			if got["h2"] < 1 || got["http/1.1"] < 2 {
				t.Errorf("handshakes %v", got)
			}
		})
	}
}

// handshakes reads the PoP's outpost_pop_tls_handshakes_total by result.
func (tp *tlsFastPoP) handshakes() map[string]float64 {
	out := map[string]float64{}
	mfs, err := tp.registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "outpost_pop_tls_handshakes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// altSvcPort matches the port in the PoP's Alt-Svc value.
var altSvcPort = regexp.MustCompile(`h3=":[0-9]+"`)

var _ = fastpath.HandshakeResults

// TestTLSFastPathAccessLog sends the same hit over TLS through the fast
// path and through net/http (tls.fast_path: false) and compares their
// access-log lines: every field but the timings and the PoP-made request
// ID is the same (the proto is HTTP/1.1 either way, the path as sent).
func TestTLSFastPathAccessLog(t *testing.T) {
	o := fastOrigin(t)
	dir := t.TempDir()
	logs := [2]string{dir + "/fast.log", dir + "/slow.log"}
	var lines [2]map[string]any
	for i, fast := range []bool{true, false} {
		tp := startTLSFastPoP(t, o.URL, fast, "", "    access_log: {mode: full, path: "+logs[i]+"}\n")
		tp.fill(t, 1, "/obj?b=2&a=1")
		before := tp.fastHits.Load()
		exchangeTLS(t, tp, "GET /obj?b=2&a=1 HTTP/1.1\r\nHost: demo.example\r\nUser-Agent: ua/1\r\nReferer: https://r.example/\r\n\r\n", 1, false)
		lines[i] = hitLine(t, logs[i], "/obj?b=2&a=1")
		if got := tp.fastHits.Load() - before; (got == 1) != fast {
			t.Fatalf("fast path %v: it answered %d", fast, got)
		}
	}
	for k := range lines[1] {
		switch k {
		case "time", "ttfb_ms", "total_ms", "request_id":
			continue
		}
		if lines[0][k] != lines[1][k] {
			t.Errorf("%s: fast path %q, net/http %q", k, lines[0][k], lines[1][k])
		}
	}
	if len(lines[0]) != len(lines[1]) || lines[0]["proto"] != "HTTP/1.1" {
		t.Errorf("fast path's line %v\nnet/http's %v", lines[0], lines[1])
	}
}
