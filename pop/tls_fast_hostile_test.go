package pop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// clientHello returns the first bytes a real TLS client sends: its
// ClientHello record.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "demo.example", NextProtos: []string{"http/1.1"}}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, int(buf[3])<<8|int(buf[4]))
	if _, err := io.ReadFull(b, rest); err != nil {
		t.Fatal(err)
	}
	return append(buf, rest...)
}

// TestTLSFastPathHandshakeTimeout floods the TLS listener, capped at
// limits.max_conns: 2, with five clients that never finish a handshake:
// no more than two are open at once (the rest wait in the kernel's queue),
// each is closed after timeouts.read_header and counted, which frees its
// slot, and a real client queued behind them is then served by the fast
// path.
func TestTLSFastPathHandshakeTimeout(t *testing.T) {
	o := fastOrigin(t)
	hello := clientHello(t)
	tests := []struct {
		name string
		send []byte
	}{
		{"RFC8446 4.1.2 no ClientHello at all", nil},
		{"RFC8446 5.1 half a ClientHello", hello[:len(hello)/2]},
		{"RFC8446 5.1 a ClientHello byte by byte, stalled after its record header", hello[:5]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := startTLSFastPoP(t, o.URL, true, "", "    timeouts: {read_header: 1s, idle: 5s}\n    limits: {max_conns: 2}\n")
			tp.fill(t, 1, "/obj")
			tp.client.CloseIdleConnections()
			waitFor(t, "no connection open", func() bool { return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "tls") == 0 })
			start := time.Now() // before the stalled handshakes' deadlines start
			var stalled []net.Conn
			const flood = 5
			for range flood {
				c, err := net.Dial("tcp", tp.tlsAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for _, b := range tt.send { // a byte per write
					c.Write([]byte{b})
				}
				stalled = append(stalled, c)
			}
			waitFor(t, "the cap reached", func() bool {
				return listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "tls") == 2 &&
					listenerMetric(t, tp.PoP, "outpost_pop_connection_limit_reached_total", "tls") >= 1
			})
			before := tp.fastHits.Load()
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tp.tlsAddr, tp.conf)
			if err != nil {
				t.Fatalf("the client behind the stalled ones: %v", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
			waitFor(t, "the fast path answered", func() bool { return tp.fastHits.Load() == before+1 })
			// Five stalled ones ahead of it, two at a time: it is taken
			// with the fifth, once two rounds have timed out.
			if waited := time.Since(start); waited < 2*900*time.Millisecond {
				t.Errorf("served after %v, before the stalled handshakes timed out", waited)
			}
			if n := listenerMetric(t, tp.PoP, "outpost_pop_client_connections", "tls"); n > 2 {
				t.Errorf("%v connections open, past the cap", n)
			}
			for i, s := range stalled {
				s.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadAll(s); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Errorf("stalled connection %d: %v, want closed by the PoP", i, err)
				}
			}
			waitFor(t, "every stalled handshake counted", func() bool { return tp.handshakes()["timeout"] == flood })
			if got := tp.handshakes(); got["http/1.1"] < 1 || got["failed"] != 0 || got["closed"] != 0 {
				t.Errorf("handshakes %v", got)
			}
		})
	}
}

// TestTLSFastPathHostileBytes sends what is not TLS to the TLS listener of
// a PoP with the fast path and of one without, and requires the same
// answer and the same end: plain HTTP gets net/http's 400, garbage gets
// crypto/tls's alert; both are closed at once and counted as failed.
func TestTLSFastPathHostileBytes(t *testing.T) {
	o := fastOrigin(t)
	fast := startTLSFastPoP(t, o.URL, true, "", "    timeouts: {read_header: 20s}\n")
	slow := startTLSFastPoP(t, o.URL, false, "", "    timeouts: {read_header: 20s}\n")
	tests := []struct {
		name     string
		send     string
		wantBody string // a prefix of the answer; "" for any
	}{
		{"plain HTTP on the TLS port", "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n", "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"},
		{"plain HTTP HEAD on the TLS port", "HEAD /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n", "HTTP/1.0 400 Bad Request"},
		{"RFC8446 5.1 garbage instead of a ClientHello", "\x00\x01garbage that is no TLS record at all\r\n\r\n", ""},
		{"RFC8446 5.1 a handshake record that is no ClientHello", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", ""},
		{"RFC8446 5.1 a record header longer than allowed", "\x16\x03\x01\xff\xff", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fast.handshakes()["failed"]
			var answers [2][]byte
			for i, tp := range []*tlsFastPoP{fast, slow} {
				c, err := net.Dial("tcp", tp.tlsAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, tt.send)
				answers[i], err = io.ReadAll(c)
				if err != nil && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("reading the answer: %v (not closed within 10s, the read header timeout is 20s)", err)
				}
			}
			if !bytes.Equal(answers[0], answers[1]) {
				t.Errorf("answer %q, net/http's %q", answers[0], answers[1])
			}
			if !bytes.HasPrefix(answers[0], []byte(tt.wantBody)) {
				t.Errorf("answer %q, want %q", answers[0], tt.wantBody)
			}
			waitFor(t, "the failure counted", func() bool { return fast.handshakes()["failed"] == before+1 })
		})
	}
}

// TestTLSFastPathSlowHead sends a request head over TLS a byte per record:
// the fast path reads it whole and answers it, as net/http would.
func TestTLSFastPathSlowHead(t *testing.T) {
	o := fastOrigin(t)
	tp := startTLSFastPoP(t, o.URL, true, "", "    timeouts: {read_header: 10s}\n")
	tp.fill(t, 1, "/obj")
	c := tp.dial(t)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	before := tp.fastHits.Load()
	for _, b := range []byte("GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n") {
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello fast path " {
		t.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	// (A fast hit is counted just after it is sent.)
	waitFor(t, "the fast path answered", func() bool { return tp.fastHits.Load() == before+1 })
}

// TestTLSFastPathShutdown stops a PoP holding TLS connections: an idle one
// the fast path holds is closed, one in the middle of a handshake too, and
// a request lent to net/http (a miss on a slow origin) is answered whole
// before its connection closes; the PoP stops cleanly.
func TestTLSFastPathShutdown(t *testing.T) {
	o, arrived, release := slowOrigin(t)
	tp := startTLSFastPoP(t, o.URL, true, "", "")
	tp.fill(t, 1, "/obj")
	idle := tp.dial(t)
	defer idle.Close()
	idleBR := sendRaw(t, idle, objRequest, 10*time.Second)
	readAnswer(t, idleBR)
	half, err := net.Dial("tcp", tp.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write(clientHello(t)[:5])

	lent := tp.dial(t)
	defer lent.Close()
	lentBR := sendRaw(t, lent, "GET /slow HTTP/1.1\r\nHost: demo.example\r\n\r\n", 10*time.Second)
	<-arrived
	tp.cancel()
	close(release)
	wantWholeThenEOF(t, lentBR, "the lent request")
	if _, err := idleBR.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection at shutdown: %v, want EOF", err)
	}
	half.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(half); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("connection in its handshake at shutdown: %v, want closed", err)
	}
	tp.waitStopped(t)
}
