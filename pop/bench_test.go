package pop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// discardWriter is a ResponseWriter that throws the response away, so the
// benchmark measures the PoP's own work on the hit path.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// Flush and SetWriteDeadline are there as on a real connection's writer,
// so http.ResponseController finds them (and makes no error per call).
func (w *discardWriter) Flush()                           {}
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkHit measures serving a fresh stored object, by size.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			body := strings.Repeat("x", size)
			o := newBenchOrigin(b, body)
			cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(testConfig, o, "0s")))
			if err != nil {
				b.Fatal(err)
			}
			p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://demo.example/obj", nil)
			req.RemoteAddr = "127.0.0.1:5000"
			// Fill, then wait until the store holds the entry.
			w := &discardWriter{h: http.Header{}}
			p.ServeHTTP(w, req)
			waitStored(b, p)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.n = 0
				p.ServeHTTP(w, req)
				if w.n != size {
					b.Fatalf("served %d bytes, want %d", w.n, size)
				}
			}
			if st := p.Stats(); st.Hits < uint64(b.N) {
				b.Fatalf("hits %d < %d: not measuring hits", st.Hits, b.N)
			}
		})
	}
}

// BenchmarkHitParallel measures the hit path from many goroutines.
func BenchmarkHitParallel(b *testing.B) {
	body := strings.Repeat("x", 1<<10)
	o := newBenchOrigin(b, body)
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(testConfig, o, "0s")))
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://demo.example/obj", nil)
	p.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	waitStored(b, p)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			p.ServeHTTP(w, req)
		}
	})
}

func newBenchOrigin(b *testing.B, body string) string {
	b.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, body)
	})}
	ln, err := listenLoopback()
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// waitStored waits until the PoP's store holds the entry of the fill the
// caller just made, polling; it fails after 5 s.
func waitStored(tb testing.TB, p *PoP) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.store.Stats().Items == 0 {
		if time.Now().After(deadline) {
			tb.Fatal("the fill was never stored")
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// BenchmarkHTTP1Hit measures whole hits over a loopback connection, one
// keep-alive client: the HTTP/1.1 fast path against net/http, by size
// (bodies of 16 KiB and more go out of blobs with sendfile either way).
// The client's own work is in the figure; compare the two paths with
// benchstat, not with other benchmarks.
func BenchmarkHTTP1Hit(b *testing.B) {
	for _, path := range []string{"fast", "nethttp"} {
		for _, size := range []int{1 << 10, 100 << 10} {
			b.Run(fmt.Sprintf("%s/%dKiB", path, size>>10), func(b *testing.B) {
				o := newBenchOrigin(b, strings.Repeat("x", size))
				cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(testConfig, o, "0s")))
				if err != nil {
					b.Fatal(err)
				}
				p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler), NoFastPath: path == "nethttp"})
				if err != nil {
					b.Fatal(err)
				}
				serveLn, err := listenLoopback()
				if err != nil {
					b.Fatal(err)
				}
				adminLn, err := listenLoopback()
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- p.Serve(ctx, serveLn, adminLn) }()
				b.Cleanup(func() { cancel(); <-done; p.Close() })

				// The fill on a connection of its own: a miss hands its
				// connection to net/http for good.
				fillReq, _ := http.NewRequest(http.MethodGet, "http://"+serveLn.Addr().String()+"/obj", nil)
				fillReq.Host = "demo.example"
				fillReq.Close = true
				fill, err := http.DefaultClient.Do(fillReq)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, fill.Body)
				fill.Body.Close()
				waitStored(b, p)

				c, err := net.Dial("tcp", serveLn.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReaderSize(c, 64<<10)
				request := []byte("GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n")
				get := func() {
					if _, err := c.Write(request); err != nil {
						b.Fatal(err)
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Fatal(err)
					}
					if n, _ := io.Copy(io.Discard, resp.Body); n != int64(size) {
						b.Fatalf("got %d body bytes, want %d", n, size)
					}
				}
				get() // the first hit on this connection
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					get()
				}
				if fast := p.fastHits.Load(); (path == "fast") != (fast > 0) {
					b.Fatalf("%s: the fast path answered %d requests", path, fast)
				}
			})
		}
	}
}

// BenchmarkMiss measures the miss path: every request is a new object,
// fetched from a loopback origin, stored and sent (the origin's work is in
// the figure too; compare builds with benchstat). Allocations per miss are
// the steadiest figure on a noisy machine.
func BenchmarkMiss(b *testing.B) {
	o := newBenchOrigin(b, strings.Repeat("x", 1<<10))
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(testConfig, o, "0s")))
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req, _ := http.NewRequest(http.MethodGet, "http://demo.example/obj/"+strconv.Itoa(i), nil)
		req.RemoteAddr = "127.0.0.1:5000"
		clear(w.h)
		w.n = 0
		p.ServeHTTP(w, req)
		if w.n != 1<<10 {
			b.Fatalf("served %d bytes (status %d), want %d", w.n, w.status, 1<<10)
		}
	}
	if st := p.Stats(); st.Misses < uint64(b.N) {
		b.Fatalf("misses %d < %d: not measuring misses", st.Misses, b.N)
	}
}
