package h2serve

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestShutdown: Shutdown sends GOAWAY (NO_ERROR) naming the last stream
// the server took, refuses later streams, lets the one in flight finish,
// and returns once the connection has closed.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.Write([]byte("done"))
	})
	addr, srv := serveTest(t, h, nil, Options{})
	c := dialRaw(t, addr)
	c.get(1, "/")
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if g := f.(*http2.GoAwayFrame); g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last %d; want NO_ERROR, last stream 1", g.ErrCode, g.LastStreamID)
	}
	c.get(3, "/") // after GOAWAY: refused
	f = c.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
	if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Errorf("RST_STREAM %d %v; want stream 3 REFUSED_STREAM", rst.StreamID, rst.ErrCode)
	}
	close(release)
	var body []byte
	c.until(func(f http2.Frame) bool {
		if d, ok := f.(*http2.DataFrame); ok {
			body = append(body, d.Data()...)
		}
		return false // until the connection closes
	})
	if string(body) != "done" {
		t.Errorf("stream 1 got %q; want done", body)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
