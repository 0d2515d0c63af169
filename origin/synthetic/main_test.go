package synthetic

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends the server's warnings and errors to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testServer is a Server running on a real 127.0.0.1:0 listener.
type testServer struct {
	*Server
	url    string
	client *http.Client
	cancel context.CancelFunc // starts the shutdown, as SIGTERM would
	done   chan error         // Serve's result

	wantServeErr bool // a test expects Serve to fail

	waitOnce sync.Once
	err      error
}

// wait returns Serve's result once it has returned.
func (ts *testServer) wait() error {
	ts.waitOnce.Do(func() { ts.err = <-ts.done })
	return ts.err
}

// stopped reports whether Serve has returned, without waiting for it.
func (ts *testServer) stopped() bool {
	select {
	case err := <-ts.done:
		ts.waitOnce.Do(func() { ts.err = err })
		return true
	default:
		return false
	}
}

// start runs a Server with opts until the test ends; setup may set test
// hooks before it serves.
func start(t *testing.T, opts Options, setup ...func(*Server)) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		Server: s,
		url:    "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { ts.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := ts.wait(); err != nil && !ts.wantServeErr {
			t.Errorf("Serve: %v", err)
		}
		ts.client.CloseIdleConnections()
	})
	return ts
}

// do sends a request and returns the response with its body read.
func (ts *testServer) do(t *testing.T, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, body
}

func (ts *testServer) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return ts.do(t, http.MethodGet, path, nil)
}

// stats fetches /_origin/stats (with the query q, if any).
func (ts *testServer) stats(t *testing.T, method, q string) Stats {
	t.Helper()
	resp, body := ts.do(t, method, statsPath+q, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats: %v in %s", err, body)
	}
	return st
}

// h builds a header from name, value pairs.
func h(kv ...string) http.Header {
	hdr := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		hdr.Add(kv[i], kv[i+1])
	}
	return hdr
}
