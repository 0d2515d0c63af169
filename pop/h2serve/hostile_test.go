package h2serve

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The attacks on HTTP/2 servers, each as a raw client sends it, with what
// the server must do. Run them with go test -run Attack ./pop/h2serve.

// rawClient is an HTTP/2 client that writes frames by hand.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

// dialRaw connects, sends the preface and an empty SETTINGS frame.
func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc}
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return c
}

// block encodes a GET for path.
func (c *rawClient) block(path string, extra ...string) []byte {
	c.hbuf.Reset()
	fields := append([]string{":method", "GET", ":scheme", "http", ":authority", "example", ":path", path}, extra...)
	for i := 0; i < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// get opens stream id with a GET.
func (c *rawClient) get(id uint32, path string) {
	c.t.Helper()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(path), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// until reads frames until pred is true, the connection ends (nil frame)
// or 10 s pass (a failure).
func (c *rawClient) until(pred func(http2.Frame) bool) http2.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer") {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatal("no answer within 10 s")
			}
			if _, ok := err.(http2.StreamError); ok {
				continue
			}
			return nil
		}
		if pred(f) {
			return f
		}
	}
}

// goAway waits for GOAWAY and returns its code; the connection must then
// close.
func (c *rawClient) goAway() http2.ErrCode {
	c.t.Helper()
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if f == nil {
		c.t.Fatal("the connection closed without GOAWAY")
	}
	code := f.(*http2.GoAwayFrame).ErrCode
	if c.until(func(http2.Frame) bool { return false }) != nil {
		c.t.Fatal("unreachable")
	}
	return code
}

// blockingHandler holds every request until release is closed.
func blockingHandler(release chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
}

// TestAttackConcurrentStreams: streams over SETTINGS_MAX_CONCURRENT_STREAMS
// are refused (RFC 9113 §5.1.2), and the held ones still answer.
func TestAttackConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	addr, srv := serveTest(t, blockingHandler(release), nil, Options{MaxConcurrentStreams: 3})
	c := dialRaw(t, addr)
	for i := range 4 {
		c.get(uint32(2*i+1), "/")
	}
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
	if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 7 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("got RST_STREAM %d %v; want stream 7 REFUSED_STREAM", rst.StreamID, rst.ErrCode)
	}
	close(release)
	answered := 0
	c.until(func(f http2.Frame) bool {
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamEnded() {
			answered++
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
			answered++
		}
		return answered == 3
	})
	if s := srv.Stats(); s.StreamsRefused != 1 {
		t.Errorf("stats %+v; want 1 refused", s)
	}
}

// TestAttackRapidReset: HEADERS then RST_STREAM, again and again
// (CVE-2023-44487), end with GOAWAY ENHANCE_YOUR_CALM, and never run more
// handlers at once than MaxConcurrentStreams.
func TestAttackRapidReset(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var running, peak int64
	var mu = make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		running++
		peak = max(peak, running)
		<-mu
		blockingHandler(release).ServeHTTP(w, r)
		mu <- struct{}{}
		running--
		<-mu
	})
	addr, srv := serveTest(t, h, nil, Options{MaxConcurrentStreams: 10, MaxResets: 50})
	c := dialRaw(t, addr)
	go func() {
		for i := range 1000 {
			id := uint32(2*i + 1)
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block("/"), EndStream: true, EndHeaders: true}) != nil {
				return
			}
			if c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	if code := c.goAway(); code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v; want ENHANCE_YOUR_CALM", code)
	}
	if s := srv.Stats(); s.Calm != 1 || s.Streams > 100 {
		t.Errorf("stats %+v; want 1 calm after at most ~60 streams", s)
	}
	mu <- struct{}{}
	if peak > 10 {
		t.Errorf("%d handlers ran at once; want at most MaxConcurrentStreams 10", peak)
	}
	<-mu
}

// TestAttackContinuationFlood: a header block that never ends
// (CVE-2023-45288) is read only up to MaxHeaderListSize, then the
// connection closes.
func TestAttackContinuationFlood(t *testing.T) {
	addr, _ := serveTest(t, echoHandler(), nil, Options{MaxHeaderListSize: 16 << 10})
	c := dialRaw(t, addr)
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("/"), EndStream: true}) != nil {
			return
		}
		frag := c.block("/", "x-flood", strings.Repeat("a", 1000))
		for n < 100<<20 {
			if c.fr.WriteContinuation(1, false, frag) != nil {
				return
			}
			n += len(frag)
		}
	}()
	c.goAway()
	if n := <-sent; n >= 100<<20 {
		t.Fatalf("the server read %d bytes of one header block", n)
	}
}

// TestAttackHPACKBomb: a dynamic table size update beyond what the server
// allows, and a string longer than MaxHeaderListSize, are
// COMPRESSION_ERRORs: GOAWAY.
func TestAttackHPACKBomb(t *testing.T) {
	addr, _ := serveTest(t, echoHandler(), nil, Options{MaxHeaderListSize: 16 << 10})
	tests := []struct {
		name  string
		block []byte
	}{
		{"RFC7541 6.3 table size update above SETTINGS_HEADER_TABLE_SIZE", append([]byte{0x3f, 0xe1, 0xff, 0x03}, 0x82)},
		{"RFC7541 5.2 string longer than the header list", append([]byte{0x40, 0x7f, 0xff, 0xff, 0x03}, bytes.Repeat([]byte("a"), 1000)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: tt.block, EndStream: true, EndHeaders: true})
			if code := c.goAway(); code != http2.ErrCodeCompression {
				t.Fatalf("GOAWAY %v; want COMPRESSION_ERROR", code)
			}
		})
	}
}

// TestAttackWindowOverflow: WINDOW_UPDATE past 2^31-1 on the connection is
// a FLOW_CONTROL_ERROR (RFC 9113 §6.9.1).
func TestAttackWindowOverflow(t *testing.T) {
	addr, _ := serveTest(t, echoHandler(), nil, Options{})
	c := dialRaw(t, addr)
	c.fr.WriteWindowUpdate(0, 1<<31-1)
	if code := c.goAway(); code != http2.ErrCodeFlowControl {
		t.Fatalf("GOAWAY %v; want FLOW_CONTROL_ERROR", code)
	}
}

// TestAttackPingFlood: a client that sends PINGs (or SETTINGS) and never
// reads the answers is closed: by the send timeout when the answers fill
// the socket, by the idle timeout when the kernel's buffers take them all
// and the client's own writes stall. The server queues at most a read
// buffer's worth of answers of its own.
func TestAttackPingFlood(t *testing.T) {
	for _, kind := range []string{"PING", "SETTINGS"} {
		t.Run(kind, func(t *testing.T) {
			addr, srv := serveTest(t, echoHandler(), nil, Options{SendTimeout: 300 * time.Millisecond, IdleTimeout: time.Second})
			c := dialRaw(t, addr)
			if tc, ok := c.nc.(*net.TCPConn); ok {
				tc.SetReadBuffer(4 << 10)
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					var err error
					if kind == "PING" {
						err = c.fr.WritePing(false, [8]byte{byte(i)})
					} else {
						err = c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
					}
					if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) {
						return
					}
				}
			}()
			waitFor(t, "the connection closed", func() bool { return srv.Stats().Conns == 1 && srv.Stats().ConnsOpen == 0 })
			close(stop)
			<-done
		})
	}
}

// TestAttackNeverReads: a client that asks for a big response and never
// reads it is closed within the send timeout.
func TestAttackNeverReads(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 32<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	addr, srv := serveTest(t, h, nil, Options{SendTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	c.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	c.get(1, "/")
	waitFor(t, "the connection closed", func() bool { return srv.Stats().ConnsOpen == 0 })
}

// TestAttackStalledWindow: a client that grants no flow-control credit
// gets its stream reset after the send timeout; the handler returns.
func TestAttackStalledWindow(t *testing.T) {
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := w.Write(bytes.Repeat([]byte("x"), 1<<20))
		done <- err
	})
	addr, _ := serveTest(t, h, nil, Options{SendTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	c.get(1, "/")
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
	if rst := f.(*http2.RSTStreamFrame); rst.ErrCode != http2.ErrCodeInternal {
		t.Errorf("RST_STREAM %v; want INTERNAL_ERROR", rst.ErrCode)
	}
	if err := <-done; err == nil {
		t.Error("the handler's write succeeded")
	}
}

// TestAttackSlowPreface: a preface sent a byte at a time, or never, and a
// connection left idle, are closed by the timeouts.
func TestAttackSlowPreface(t *testing.T) {
	addr, srv := serveTest(t, echoHandler(), nil, Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	t.Run("slowloris preface", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		start := time.Now()
		for i := 0; i < len(http2.ClientPreface); i++ {
			if _, err := nc.Write([]byte{http2.ClientPreface[i]}); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // the attacker's pace, not synchronisation
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, nc)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v", d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dialRaw(t, addr)
		if code := c.goAway(); code != http2.ErrCodeNo {
			t.Errorf("GOAWAY %v; want NO_ERROR", code)
		}
	})
	waitFor(t, "every connection closed", func() bool { return srv.Stats().ConnsOpen == 0 })
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
