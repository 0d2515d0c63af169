package pop

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
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
				get := keepAliveGet(b, c, size, objRequest)
				// Past crypto/tls's small first records (it grows them over
				// a connection's first 128 KiB), as on a busy connection.
				for range 1 + (256<<10)/size {
					get()
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				stop := reportCPU(b)
				writes := reportWrites(b, cw)
				for b.Loop() {
					get()
				}
				b.StopTimer()
				writes()
				stop()
				checkFastHits(b, p, path)
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
	text := withBenchTLS(benchConfig(b, size), fmt.Sprintf(", http3: false, fast_path: %v", fast))
	p := newBenchPoP(b, text, Options{})
	ls := serveBenchListeners(b, p, true)
	conf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool(), ServerName: "demo.example", NextProtos: []string{"http/1.1"}}
	// The fill, on a connection of its own (a miss is lent to net/http).
	tr := &http.Transport{TLSClientConfig: conf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	fillBench(b, &http.Client{Transport: tr}, "https://"+ls.TLS.Addr().String(), p)
	tr.CloseIdleConnections()
	raw, err := net.Dial("tcp", ls.TLS.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cw := new(atomic.Uint64)
	c := tls.Client(&countingConn{Conn: raw, writes: cw}, conf)
	b.Cleanup(func() { c.Close() }) // before the PoP stops (cleanups run last first)
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
				request := []byte(objRequest)
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
						if err := keepAliveHit(c, br, request, size); err != nil {
							b.Error(err)
							return
						}
					}
				})
				stop()
				checkFastHits(b, p, path)
			})
		}
	}
}
