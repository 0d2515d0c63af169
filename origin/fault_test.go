package origin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failingBody is a client's request body that returns some bytes, then
// err.
type failingBody struct {
	data string
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if b.data == "" {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// readTimeout is the error a net.Conn returns when its read deadline
// passes.
var readTimeout = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

// echoBackend answers METHOD BODY after reading the whole request body;
// /broken reads it and drops the connection instead.
func echoBackend(t *testing.T) *backend {
	t.Helper()
	return newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.URL.Path == "/broken" {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		io.WriteString(w, r.Method+" "+string(body))
	})
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want int
	}{
		{"client fault is 400 (RFC 9110 15.5.1)", &Error{Kind: KindClient, Err: io.ErrUnexpectedEOF}, 400},
		{"client read deadline is 408 (RFC 9110 15.5.9)", &Error{Kind: KindClient, Err: fmt.Errorf("reading: %w", readTimeout)}, 408},
		{"origin timeout is 504 (RFC 9110 15.6.5)", &Error{Kind: KindTimeout, Err: errIdle}, 504},
		{"broken answer is 502 (RFC 9110 15.6.3)", &Error{Kind: KindProtocol, Err: io.EOF}, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusFor(fmt.Errorf("wrapped: %w", tt.err)); got != tt.want {
				t.Errorf("StatusFor = %d, want %d", got, tt.want)
			}
		})
	}
	if KindClient.String() != "client" {
		t.Errorf("KindClient.String() = %q, want client", KindClient)
	}
}

// TestClientFaultIsNotOriginFailure sends, past the ejection threshold,
// requests whose body fails to read: each is a KindClient error, the
// server keeps no failure and stays in rotation, and a GET then succeeds.
// A broken answer of the server to a good POST still counts.
func TestClientFaultIsNotOriginFailure(t *testing.T) {
	b := echoBackend(t)
	name := strings.TrimPrefix(b.URL, "http://")
	tests := []struct {
		name       string
		body       func() io.Reader
		length     int64
		wantStatus int
	}{
		{"body fails after some bytes, known length (RFC 9110 15.5.1)",
			func() io.Reader { return &failingBody{"abc", errors.New("connection reset by client")} }, 100, 400},
		{"body fails after some bytes, chunked (RFC 9112 7.1)",
			func() io.Reader { return &failingBody{"abc", errors.New("connection reset by client")} }, -1, 400},
		{"client went away mid-body (RFC 9112 8)",
			func() io.Reader { return &failingBody{"abc", io.ErrUnexpectedEOF} }, 100, 400},
		{"body read deadline passed (RFC 9110 15.5.9)",
			func() io.Reader { return &failingBody{"abc", readTimeout} }, -1, 408},
		{"body fails at once",
			func() io.Reader { return &failingBody{"", errors.New("bad chunk size")} }, 10, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Options{Ejection: Ejection{Failures: 2}}, []string{b.URL})
			for i := range 5 {
				_, _, err := get(t, p, Request{Method: http.MethodPost, Body: tt.body(), ContentLength: tt.length})
				oe, ok := errors.AsType[*Error](err)
				if !ok || oe.Kind != KindClient || oe.Status() != tt.wantStatus {
					t.Fatalf("request %d: error %v; want a client error with status %d", i, err, tt.wantStatus)
				}
			}
			st := serverStats(t, p, name)
			if st.Failures != 0 || st.InFlight != 0 || st.State != StateHealthy || st.Requests != 5 {
				t.Fatalf("after 5 client faults: failures %d, in flight %d, state %s, requests %d; want 0, 0, healthy, 5",
					st.Failures, st.InFlight, st.State, st.Requests)
			}
			if _, body, err := get(t, p, Request{}); err != nil || body != "GET " {
				t.Errorf("GET after the client faults: %q, %v", body, err)
			}
		})
	}

	t.Run("a broken answer to a good POST still counts", func(t *testing.T) {
		p := newTestPool(t, Options{Ejection: Ejection{Failures: 2}}, []string{b.URL})
		for range 2 {
			_, _, err := get(t, p, Request{Method: http.MethodPost, Target: "/broken", Body: strings.NewReader("data"), ContentLength: 4})
			if oe, ok := errors.AsType[*Error](err); !ok || oe.Kind == KindClient || oe.Status() != 502 {
				t.Fatalf("error %v; want an origin failure with status 502", err)
			}
		}
		st := serverStats(t, p, name)
		if st.Failures != 2 || st.InFlight != 0 || st.State != StateEjected {
			t.Errorf("failures %d, in flight %d, state %s; want 2, 0, ejected", st.Failures, st.InFlight, st.State)
		}
	})
}

// TestClientFaultKeepsTrial sends a failing body as the trial request of
// an ejected server: the trial is given back unused, and the next request
// is the trial that brings the server back.
func TestClientFaultKeepsTrial(t *testing.T) {
	b := echoBackend(t)
	clk := newClock()
	p := newTestPool(t, Options{Ejection: Ejection{Failures: 1, Cooldown: 10 * time.Second}, Now: clk.Now}, []string{b.URL})
	if _, _, err := get(t, p, Request{Target: "/broken"}); err == nil {
		t.Fatal("GET /broken succeeded")
	}
	s := p.servers[0]
	eject := func() ejectState {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.eject
	}
	if eject() != coolingDown {
		t.Fatalf("after a failure: eject state %d, want cooling down", eject())
	}
	clk.Advance(10 * time.Second)
	_, _, err := get(t, p, Request{Method: http.MethodPost, Body: &failingBody{"abc", io.ErrUnexpectedEOF}, ContentLength: 10})
	if oe, ok := errors.AsType[*Error](err); !ok || oe.Kind != KindClient {
		t.Fatalf("error %v; want a client error", err)
	}
	if eject() != probing || s.failures.Load() != 1 || s.inFlight.Load() != 0 {
		t.Fatalf("after a client fault on trial: eject state %d, failures %d, in flight %d; want probing, 1, 0",
			eject(), s.failures.Load(), s.inFlight.Load())
	}
	mustGet(t, p, Request{})
	if st := serverStats(t, p, b.Listener.Addr().String()); st.State != StateHealthy {
		t.Errorf("after a good trial: state %s, want healthy", st.State)
	}
}

// TestMalformedChunkedBody puts the pool behind a real server, as the PoP
// does, and sends it POSTs with a bad chunk size past the ejection
// threshold: each is answered 400 and the origin stays in rotation.
func TestMalformedChunkedBody(t *testing.T) {
	b := echoBackend(t)
	p := newTestPool(t, Options{Ejection: Ejection{Failures: 2}}, []string{b.URL})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := p.Do(r.Context(), Request{
			Method: r.Method, Target: r.URL.RequestURI(), Header: http.Header{},
			Body: r.Body, ContentLength: r.ContentLength,
		})
		if err != nil {
			w.WriteHeader(StatusFor(err))
			io.WriteString(w, err.Error())
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer front.Close()
	for i := range 5 {
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), ": client: ") {
			t.Fatalf("POST %d with a bad chunk size: %d %q; want 400 and a client error (RFC 9112 7.1)", i, resp.StatusCode, msg)
		}
	}
	st := serverStats(t, p, b.Listener.Addr().String())
	if st.Failures != 0 || st.InFlight != 0 || st.State != StateHealthy {
		t.Fatalf("failures %d, in flight %d, state %s; want 0, 0, healthy", st.Failures, st.InFlight, st.State)
	}
	resp, err := http.Post(front.URL+"/ok", "text/plain", strings.NewReader("fine"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(msg) != "POST fine" {
		t.Errorf("a good POST after the bad ones: %d %q", resp.StatusCode, msg)
	}
}

// TestReplayedBody checks that a body the transport sends again (its
// kept-alive connection was closed under the request, and the request is
// marked idempotent) arrives whole: the pool wraps both the body and its
// copies.
func TestReplayedBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	var dropped atomic.Int64
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	// Each connection answers its first request, then reads the next and
	// closes without an answer, as if its keep-alive time had run out.
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					if i == 1 {
						dropped.Add(1)
						return
					}
					msg := req.Method + " " + string(body)
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
				}
			})
		}
	})
	tests := []struct {
		name string
		body func() (io.Reader, func() (io.ReadCloser, error))
	}{
		{"in-memory body", func() (io.Reader, func() (io.ReadCloser, error)) {
			return bytes.NewReader([]byte("data")), nil
		}},
		{"body with GetBody", func() (io.Reader, func() (io.ReadCloser, error)) {
			return io.MultiReader(strings.NewReader("data")),
				func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("data")), nil }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Options{}, []string{"http://" + ln.Addr().String()})
			mustGet(t, p, Request{}) // on a fresh connection, which stays open
			before := dropped.Load()
			body, getBody := tt.body()
			_, got, err := get(t, p, Request{
				Method: http.MethodPut, Header: http.Header{"Idempotency-Key": {"k1"}},
				Body: body, GetBody: getBody, ContentLength: 4,
			})
			if err != nil || got != "PUT data" {
				t.Fatalf("PUT on a connection closed under it: %q, %v; want the replayed body", got, err)
			}
			if n := dropped.Load() - before; n != 1 {
				t.Errorf("the server dropped %d requests, want 1: the body was not replayed", n)
			}
			if st := p.Stats().Servers[0]; st.Failures != 0 || st.InFlight != 0 {
				t.Errorf("failures %d, in flight %d; want 0, 0", st.Failures, st.InFlight)
			}
		})
	}
}

// TestCallerContext checks what a caller's deadline and cancellation do:
// the errors they end a request with and whether they count against the
// server.
func TestCallerContext(t *testing.T) {
	tests := []struct {
		name       string
		target     string
		upload     bool // the client's body stalls until the deadline, then its read deadline passes
		cancel     bool // cancel (when the request arrives, or once the header is in) instead of a deadline
		inBody     bool // the failure comes while reading the response body
		wantKind   Kind
		wantFailed uint64
	}{
		{"deadline while reading the body is a timeout, not counted", "/stall-body", false, false, true, KindTimeout, 0},
		{"deadline while waiting for the header counts, as first byte would", "/stall", false, false, false, KindTimeout, 1},
		{"a client too slow to upload is its fault (RFC 9110 15.5.9)", "/stall", true, false, false, KindClient, 0},
		{"cancellation while waiting for the header is not counted", "/stall", false, true, false, KindRequest, 0},
		{"cancellation while reading the body is not counted", "/stall-body", false, true, true, KindBody, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			b := newBackend(t, "ctx", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/stall-body" {
					w.Header().Set("Content-Length", "10")
					io.WriteString(w, "12345")
					w.(http.Flusher).Flush()
				}
				arrived <- struct{}{}
				<-r.Context().Done() // stall until the pool gives up
			})
			p := newTestPool(t, Options{}, []string{b.URL})
			// The deadline rows need the dial, the request and (for the
			// body rows) the header done before it passes: 200 ms was
			// within reach of a loaded -race run.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if tt.cancel {
				ctx, cancel = context.WithCancel(context.Background())
				defer cancel()
				if !tt.inBody {
					go func() { <-arrived; cancel() }()
				}
			}
			r := Request{Method: http.MethodGet, Target: tt.target, Header: http.Header{}}
			if tt.upload {
				r.Method, r.Body, r.ContentLength = http.MethodPost, &slowBody{ctx: ctx}, -1
			}
			resp, err := p.Do(ctx, r)
			if tt.inBody {
				if err != nil {
					t.Fatalf("Do: %v; want a response", err)
				}
				if tt.cancel {
					cancel()
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			oe, ok := errors.AsType[*Error](err)
			if !ok || oe.Kind != tt.wantKind {
				t.Fatalf("error %v; want a *Error of kind %s", err, tt.wantKind)
			}
			st := serverStats(t, p, b.Listener.Addr().String())
			if st.Failures != tt.wantFailed || st.InFlight != 0 {
				t.Errorf("failures %d, in flight %d; want %d, 0", st.Failures, st.InFlight, tt.wantFailed)
			}
		})
	}
}

// slowBody is a client that sends a few bytes and then nothing until ctx
// ends, when its read deadline passes, as a server's would. (A body read
// that never returns holds up the transport past any deadline: the
// server reading the client's body must bound it.)
type slowBody struct {
	ctx  context.Context
	sent bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "abc"), nil
	}
	<-b.ctx.Done()
	return 0, readTimeout
}

// TestResponseHeaderBound checks that a response header over
// MaxHeaderBytes fails as a broken answer that counts against the server.
func TestResponseHeaderBound(t *testing.T) {
	b := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("X-Big", strings.Repeat("a", n))
		io.WriteString(w, "ok")
	})
	tests := []struct {
		name     string
		max      int
		size     int
		wantFail bool
	}{
		{"2 MB header over the default 64 KiB", 0, 2 << 20, true},
		{"32 KiB header within the default", 0, 32 << 10, false},
		{"4 KiB header over MaxHeaderBytes 1024", 1024, 4 << 10, true},
		{"4 KiB header within MaxHeaderBytes 1 MiB", 1 << 20, 4 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Options{MaxHeaderBytes: tt.max}, []string{b.URL})
			_, body, err := get(t, p, Request{Target: "/?n=" + strconv.Itoa(tt.size)})
			st := serverStats(t, p, b.Listener.Addr().String())
			if !tt.wantFail {
				if err != nil || body != "ok" || st.Failures != 0 {
					t.Fatalf("got %q, %v, failures %d; want the answer", body, err, st.Failures)
				}
				return
			}
			oe, ok := errors.AsType[*Error](err)
			if !ok || oe.Kind != KindProtocol || oe.Status() != http.StatusBadGateway {
				t.Fatalf("error %v; want a protocol error, 502", err)
			}
			if st.Failures != 1 || st.InFlight != 0 {
				t.Errorf("failures %d, in flight %d; want 1, 0", st.Failures, st.InFlight)
			}
		})
	}
}

// TestCallerDeadlineWaitingForConnection checks that a caller's deadline
// that passes while the request waits for a connection under MaxConns
// does not count against the server: it has not seen the request.
func TestCallerDeadlineWaitingForConnection(t *testing.T) {
	arrived := make(chan struct{}, 1)
	b := newBackend(t, "busy", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	p, err := NewPool([]Server{{URL: mustURL(t, b.URL), MaxConns: 1}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	holdCtx, release := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := p.Do(holdCtx, Request{Method: http.MethodGet, Target: "/hold", Header: http.Header{}})
		held <- err
	}()
	<-arrived // the one connection is taken
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.Do(ctx, Request{Method: http.MethodGet, Target: "/queued", Header: http.Header{}})
	if oe, ok := errors.AsType[*Error](err); !ok || oe.Kind != KindTimeout {
		t.Fatalf("queued request: %v; want a timeout", err)
	}
	release()
	<-held
	if st := serverStats(t, p, b.Listener.Addr().String()); st.Failures != 0 || st.InFlight != 0 {
		t.Errorf("failures %d, in flight %d; want 0, 0", st.Failures, st.InFlight)
	}
}
