package pop

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// BenchmarkTLSHit measures fresh hits over HTTP/1.1 on TLS through one
// keep-alive connection: the TLS fast path (tls.fast_path: true, the
// default) against net/http's ServeTLS (fast_path: false), 1 KiB (a heap
// body) and 100 KiB (a blob: sendfile is impossible under TLS). ns/op
// includes the client's work; cpu-ns/op is the process's CPU time per hit;
// writes/op is the server's write system calls per response (syscw in
// /proc/self/io less the client's writes). Writes and allocations per hit
// do not depend on the machine's load; compare times in interleaved runs:
//
//	go test ./pop -run '^$' -bench 'TLSHit' -count 6 | tee tls.txt
func BenchmarkTLSHit(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, path := range []string{"fast", "nethttp"} {
			b.Run(fmt.Sprintf("%s/%dKiB", path, size>>10), func(b *testing.B) {
				c, cw, p := startTLSBenchPoP(b, path == "fast", size)
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
				// Past crypto/tls's small first records (it grows them over
				// a connection's first 128 KiB), as on a busy connection.
				for range 1 + (256<<10)/size {
					get()
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				stop := reportCPU(b)
				before, ok := processWrites()
				clientBefore := cw.Load()
				for b.Loop() {
					get()
				}
				b.StopTimer()
				if after, ok2 := processWrites(); ok && ok2 {
					b.ReportMetric(float64(after-before-(cw.Load()-clientBefore))/float64(b.N), "writes/op")
				}
				stop()
				if fast := p.fastHits.Load(); (path == "fast") != (fast > 0) {
					b.Fatalf("%s: the fast path answered %d requests", path, fast)
				}
			})
		}
	}
}

// startTLSBenchPoP starts a PoP with an HTTPS listener, the TLS fast path
// on or off, with an object of size bytes stored at /obj (keyed https), and
// returns a TLS connection to it (ALPN http/1.1) whose writes are counted
// in cw.
func startTLSBenchPoP(b *testing.B, fast bool, size int) (*tls.Conn, *atomic.Uint64, *PoP) {
	b.Helper()
	o := newBenchOrigin(b, strings.Repeat("x", size))
	text := strings.Replace(fmt.Sprintf(testConfig, o, "0s"), "    cache_size: 64MiB\n",
		fmt.Sprintf("    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true, http3: false, fast_path: %v}\n", fast), 1)
	cfg, err := config.Parse("bench.yaml", []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg, "", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var ls Listeners
	for _, ln := range []*net.Listener{&ls.Serve, &ls.Admin, &ls.TLS} {
		if *ln, err = listenLoopback(); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	conf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: []string{"http/1.1"}}
	// The fill, on a connection of its own (a miss is lent to net/http).
	tr := &http.Transport{TLSClientConfig: conf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+ls.TLS.Addr().String()+"/obj", nil)
	req.Host = "demo.example"
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	waitStored(b, p)
	raw, err := net.Dial("tcp", ls.TLS.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cw := new(atomic.Uint64)
	c := tls.Client(&countingConn{Conn: raw, writes: cw}, conf)
	b.Cleanup(func() { c.Close(); cancel(); <-done; p.Close() })
	return c, cw, p
}

// BenchmarkTLSHitParallel is BenchmarkTLSHit as bench/anchors.sh's tls row
// loads it: 64 keep-alive TLS connections (wrk -c64) on two cores, each
// sending its next request when it has the last answer. cpu-ns/op (the
// process's CPU per hit, the client's TLS included) is the figure to
// compare, in interleaved runs.
func BenchmarkTLSHitParallel(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, path := range []string{"fast", "nethttp"} {
			b.Run(fmt.Sprintf("%s/%dKiB", path, size>>10), func(b *testing.B) {
				c, _, p := startTLSBenchPoP(b, path == "fast", size)
				c.Close()
				addr := c.RemoteAddr().String()
				conf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: []string{"http/1.1"}}
				request := []byte("GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n")
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.SetParallelism(32) // 64 connections on 2 cores
				stop := reportCPU(b)
				b.RunParallel(func(pb *testing.PB) {
					c, err := tls.Dial("tcp", addr, conf)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					br := bufio.NewReaderSize(c, 64<<10)
					for pb.Next() {
						if _, err := c.Write(request); err != nil {
							b.Error(err)
							return
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							b.Error(err)
							return
						}
						if n, _ := io.Copy(io.Discard, resp.Body); n != int64(size) {
							b.Errorf("got %d body bytes, want %d", n, size)
							return
						}
					}
				})
				stop()
				if fast := p.fastHits.Load(); (path == "fast") != (fast > 0) {
					b.Fatalf("%s: the fast path answered %d requests", path, fast)
				}
			})
		}
	}
}
