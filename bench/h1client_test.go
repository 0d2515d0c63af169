package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each request on a real loopback listener with the
// bytes script returns for it (n counts requests from 0 across
// connections); closeAfter closes the connection after the answer.
type rawServer struct {
	addr    string
	accepts atomic.Int64
	mu      sync.Mutex
	reqs    []string
}

func startRaw(t *testing.T, script func(n int, req string) (resp string, closeAfter bool)) *rawServer {
	t.Helper()
	ln := listen(t, "127.0.0.1:0")
	s := &rawServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			conns.Store(c, true)
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var req strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						req.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					s.mu.Lock()
					n := len(s.reqs)
					s.reqs = append(s.reqs, req.String())
					s.mu.Unlock()
					resp, closeAfter := script(n, req.String())
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return s
}

func (s *rawServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slicesClone(s.reqs)
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestH1Client checks the client's framing of responses (RFC 9112 §6):
// Content-Length, chunked with extensions and trailers, close-delimited,
// interim responses, bodiless statuses, keep-alive and closing.
func TestH1Client(t *testing.T) {
	const cs = "Cache-Status: outpost/t; hit\r\n"
	for _, tc := range []struct {
		name      string
		method    string
		responses []string // by request; a trailing "|close" closes after
		wantBody  []int64
		wantCS    []string
		accepts   int64
		wantErr   []errKind
	}{
		{
			name:      "Content-Length, kept alive",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + cs + "\r\nhello", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"},
			wantBody:  []int64{5, 3}, wantCS: []string{"outpost/t; hit", ""}, accepts: 1,
		},
		{
			name: "chunked with extensions and trailers",
			responses: []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + cs + "\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n",
				"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"},
			wantBody: []int64{15, 1}, wantCS: []string{"outpost/t; hit", ""}, accepts: 1,
		},
		{
			name:      "Transfer-Encoding overrides Content-Length",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"},
			wantBody:  []int64{2}, accepts: 1,
		},
		{
			name:      "close-delimited body",
			responses: []string{"HTTP/1.1 200 OK\r\n\r\nuntil the end|close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			wantBody:  []int64{13, 2}, accepts: 2,
		},
		{
			name:      "Connection: close",
			responses: []string{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok|close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			wantBody:  []int64{2, 2}, accepts: 2,
		},
		{
			name:      "HTTP/1.0 without keep-alive closes",
			responses: []string{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok|close", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1 204 No Content\r\n\r\n"},
			wantBody:  []int64{2, 2, 0}, accepts: 2,
		},
		{
			name:      "interim 100 and 103 are skipped",
			responses: []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + cs + "\r\nok"},
			wantBody:  []int64{2}, wantCS: []string{"outpost/t; hit"}, accepts: 1,
		},
		{
			name:      "204 and 304 have no body",
			responses: []string{"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
			wantBody:  []int64{0, 0, 1}, accepts: 1,
		},
		{
			name:      "HEAD has no body",
			method:    "HEAD",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"},
			wantBody:  []int64{0, 0}, accepts: 1,
		},
		{
			name:      "the last Cache-Status line holds the last member",
			responses: []string{"HTTP/1.1 200 OK\r\nCache-Status: origin; fwd=uri-miss\r\nContent-Length: 0\r\ncache-status: outpost/fra; hit\r\n\r\n"},
			wantBody:  []int64{0}, wantCS: []string{"outpost/fra; hit"}, accepts: 1,
		},
		{
			name:      "a body cut short is a read error",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc|close", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
			wantBody:  []int64{3, 1}, accepts: 2, wantErr: []errKind{errRead, errNone},
		},
		{
			name:      "a malformed status line is a protocol error",
			responses: []string{"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
			wantBody:  []int64{0, 1}, accepts: 2, wantErr: []errKind{errProtocol, errNone},
		},
		{
			name:      "conflicting Content-Length is a protocol error",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"},
			wantBody:  []int64{0}, accepts: 1, wantErr: []errKind{errProtocol},
		},
		{
			name:      "a bad chunk size is a protocol error",
			responses: []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
			wantBody:  []int64{0}, accepts: 1, wantErr: []errKind{errProtocol},
		},
		{
			name:      "a kept-alive connection the server closed is dialled again",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "|close", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny"},
			wantBody:  []int64{1, 1}, accepts: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRaw(t, func(n int, _ string) (string, bool) {
				if n >= len(tc.responses) {
					return "", true
				}
				r, closeAfter := strings.CutSuffix(tc.responses[n], "|close")
				return r, closeAfter
			})
			method := tc.method
			if method == "" {
				method = "GET"
			}
			c := newH1Client(srv.addr, method, "demo.example", []string{"X-Test: 1"}, nil, time.Second)
			defer c.close()
			var resp response
			for i, want := range tc.wantBody {
				resp.reset(nil)
				err := c.do(context.Background(), []byte("/obj/1"), time.Now().Add(5*time.Second), &resp)
				wantKind := errNone
				if i < len(tc.wantErr) {
					wantKind = tc.wantErr[i]
				}
				if kindOf(err) != wantKind {
					t.Fatalf("request %d: error %v, want kind %v", i, err, wantKind)
				}
				if resp.bodyBytes != want {
					t.Errorf("request %d: body %d bytes, want %d", i, resp.bodyBytes, want)
				}
				if i < len(tc.wantCS) && string(resp.cacheStatus) != tc.wantCS[i] {
					t.Errorf("request %d: Cache-Status %q, want %q", i, resp.cacheStatus, tc.wantCS[i])
				}
			}
			c.close()
			if got := srv.accepts.Load(); got != tc.accepts {
				t.Errorf("%d connections, want %d", got, tc.accepts)
			}
			for _, req := range srv.requests() {
				if !strings.HasPrefix(req, method+" /obj/1 HTTP/1.1\r\nHost: demo.example\r\n") || !strings.Contains(req, "\r\nX-Test: 1\r\n") {
					t.Errorf("request %q", req)
				}
			}
		})
	}
}

// TestH1ClientTimeout checks that a server that never answers is a
// timeout, and that the connection is not reused.
func TestH1ClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := startRaw(t, func(n int, _ string) (string, bool) {
		if n == 0 {
			<-release
			return "", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false
	})
	defer close(release)
	c := newH1Client(srv.addr, "GET", "x", nil, nil, time.Second)
	defer c.close()
	var resp response
	err := c.do(context.Background(), []byte("/"), time.Now().Add(100*time.Millisecond), &resp)
	if kindOf(err) != errTimeout {
		t.Fatalf("error %v, want a timeout", err)
	}
	if err := c.do(context.Background(), []byte("/"), time.Now().Add(5*time.Second), &resp); err != nil || resp.status != 204 && resp.status != 200 {
		t.Fatalf("after the timeout: %v, status %d", err, resp.status)
	}
	if srv.accepts.Load() != 2 {
		t.Errorf("%d connections, want 2: a timed-out connection must not be reused", srv.accepts.Load())
	}
}

// TestH1ClientConnect checks that a refused connection is a connect error.
func TestH1ClientConnect(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := newH1Client(addr, "GET", "x", nil, nil, time.Second)
	var resp response
	if err := c.do(context.Background(), []byte("/"), time.Now().Add(time.Second), &resp); kindOf(err) != errConnect {
		t.Fatalf("error %v, want a connect error", err)
	}
}

// TestH1ClientAllocs checks the hot path allocates nothing per request.
// The server is one that allocates nothing either: AllocsPerRun counts
// the whole process.
func TestH1ClientAllocs(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nCache-Status: outpost/t; hit\r\n\r\n" + strings.Repeat("x", 1024))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			// Each request arrives in one read: one answer per read.
			if bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) {
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	c := newH1Client(ln.Addr().String(), "GET", "x", nil, nil, time.Second)
	defer c.close()
	var resp response
	path := []byte("/obj/1")
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	if err := c.do(ctx, path, deadline, &resp); err != nil { // dial outside the count
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(500, func() {
		resp.reset(nil)
		if err := c.do(ctx, path, deadline, &resp); err != nil {
			t.Fatal(err)
		}
		ClassifyHeader(resp.cacheStatus)
	})
	if allocs > 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

// fakeConn is a net.Conn that reads a fixed response and discards writes.
type fakeConn struct {
	r *bytes.Reader
}

func (f *fakeConn) Read(p []byte) (int, error)       { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzH1Response feeds arbitrary bytes to the response reader: it must
// never panic or loop, and a response it accepts has a status and no more
// body than bytes it was given.
func FuzzH1Response(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 200 OK\r\nCache-Status: a; hit, b; fwd=stale; fwd-status=304\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fc := &fakeConn{r: bytes.NewReader(in)}
		c := newH1Client("fake", "GET", "x", nil, nil, time.Second)
		c.conn = fc
		c.br.Reset(fc)
		var resp response
		_, err := c.readResponse(&resp)
		if err == nil {
			if resp.status < 100 || resp.status > 999 {
				t.Fatalf("status %d accepted", resp.status)
			}
			if resp.bodyBytes < 0 || resp.bodyBytes > int64(len(in)) {
				t.Fatalf("body of %d bytes from %d bytes of input", resp.bodyBytes, len(in))
			}
		}
		ClassifyHeader(resp.cacheStatus)
	})
}
