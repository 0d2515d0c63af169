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
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
			p := newBenchPoP(b, benchConfig(b, size), Options{})
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
	p := newBenchPoP(b, benchConfig(b, 1<<10), Options{})
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

// benchConfig is testConfig in front of a loopback origin that sends size
// bytes for every path.
func benchConfig(b *testing.B, size int) string {
	return fmt.Sprintf(testConfig, newBenchOrigin(b, strings.Repeat("x", size)), "0s")
}

// newBenchPoP is the PoP of the configuration text, with opts and no logs,
// each tune applied to its PoP's configuration first.
func newBenchPoP(b *testing.B, text string, opts Options, tune ...func(*config.POP)) *PoP {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range tune {
		f(&cfg.POPs[0])
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	p, err := New(cfg, "", opts)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// newBenchOrigin starts a loopback origin that sends body, cacheable for
// an hour, for every path, and returns its URL.
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
// caller just made, polling; it fails after 30 s (a 24 MiB fill under
// -race on a loaded machine can take several seconds; a stored one ends
// the wait at once).
func waitStored(tb testing.TB, p *PoP) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
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
				p := newBenchPoP(b, benchConfig(b, size), Options{NoFastPath: path == "nethttp"})
				addr := serveBench(b, p)
				fillBench(b, http.DefaultClient, "http://"+addr, p)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				get := keepAliveGet(b, c, size, objRequest)
				get() // the first hit on this connection
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					get()
				}
				checkFastHits(b, p, path)
			})
		}
	}
}

// BenchmarkMiss measures the miss path: every request is a new 1 KiB
// object, fetched from a loopback origin, stored and sent (the origin's
// work is in the figures too; compare builds with benchstat, interleaved,
// -count 6). Allocations per miss are the steadiest figure on a noisy
// machine.
//
//   - handler: ServeHTTP called directly, one request at a time: the
//     PoP's own work on a miss, without its listener.
//   - wire: the whole path over loopback as bench/anchors.sh's miss row
//     drives it: 64 keep-alive connections, each request read by the fast
//     path, declined and lent to net/http, filled and sent (the client's
//     work is in the figures too).
//
// cpu-ns/op is the process's CPU time (user and system) per miss, which
// other processes' load disturbs far less than ns/op, the wall time.
func BenchmarkMiss(b *testing.B) {
	const size = 1 << 10
	newPoP := func(b *testing.B) *PoP { return newBenchPoP(b, benchConfig(b, size), Options{}) }
	b.Run("handler", func(b *testing.B) {
		p := newPoP(b)
		defer p.Close()
		w := &discardWriter{h: http.Header{}}
		b.SetBytes(size)
		b.ReportAllocs()
		defer reportCPU(b)()
		i := 0
		for b.Loop() {
			i++
			req, _ := http.NewRequest(http.MethodGet, "http://demo.example/obj/"+strconv.Itoa(i), nil)
			req.RemoteAddr = "127.0.0.1:5000"
			clear(w.h)
			w.n = 0
			p.ServeHTTP(w, req)
			if w.n != size {
				b.Fatalf("served %d bytes (status %d), want %d", w.n, w.status, size)
			}
		}
		if st := p.Stats(); st.Misses < uint64(b.N) {
			b.Fatalf("misses %d < %d: not measuring misses", st.Misses, b.N)
		}
	})
	b.Run("wire", func(b *testing.B) {
		p := newPoP(b)
		addr := serveBench(b, p)
		var next atomic.Uint64
		b.SetBytes(size)
		b.ReportAllocs()
		b.SetParallelism(32) // 64 connections on 2 cores, as the anchor's wrk -c64
		stop := reportCPU(b)
		defer stop()
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var req []byte
			for pb.Next() {
				req = append(req[:0], "GET /obj/"...)
				req = strconv.AppendUint(req, next.Add(1), 10)
				req = append(req, " HTTP/1.1\r\nHost: demo.example\r\n\r\n"...)
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != size {
					b.Errorf("status %d, %d body bytes, want 200 and %d", resp.StatusCode, n, size)
					return
				}
			}
		})
		// A miss is counted once its response is sent, which the client
		// may have read in full a moment before.
		waitFor(b, "every miss counted", func() bool { return p.Stats().Misses >= uint64(b.N) })
	})
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") // disk_bench_test.go
		}
	}
}

// BenchmarkWire measures whole hits over loopback by protocol — clear
// HTTP/1.1 (the fast path), HTTP/1.1 over TLS and HTTP/2 over TLS, one
// keep-alive connection — and reports the server's write system calls per
// response (writes/op: write, writev and sendfile, read from the process's
// /proc/self/io less the client's own, counted below its TLS). Writes per
// response and allocations per response (the client's are in the figure
// too) do not depend on the machine's load, unlike its time.
func BenchmarkWire(b *testing.B) {
	for _, proto := range []string{"h1", "h1-tls", "h2"} {
		for _, size := range []int{1 << 10, 100 << 10} {
			b.Run(fmt.Sprintf("%s/%dKiB", proto, size>>10), func(b *testing.B) {
				client, url, cw := startWirePoP(b, proto, strings.Repeat("x", size))
				major := 1
				if proto == "h2" {
					major = 2
				}
				get := func() {
					if err := clientHit(client, url, size, major); err != nil {
						b.Fatal(err)
					}
				}
				get() // the connection and its first hit
				b.SetBytes(int64(size))
				b.ReportAllocs()
				writes := reportWrites(b, cw)
				for b.Loop() {
					get()
				}
				writes()
			})
		}
	}
}

// startWirePoP starts a PoP with a TLS listener in front of a loopback
// origin serving body, fills /obj, and returns a client for proto ("h1",
// "h1-tls" or "h2") whose connections count their writes in cw.
func startWirePoP(b *testing.B, proto, body string) (*http.Client, string, *atomic.Uint64) {
	b.Helper()
	text := withBenchTLS(fmt.Sprintf(testConfig, newBenchOrigin(b, body), "0s"), "")
	p := newBenchPoP(b, text, Options{})
	ls := serveBenchListeners(b, p, true)
	dial, cw := countingDialer()
	tlsConf := &tls.Config{RootCAs: p.certs.selfSignedCA.Pool()}
	tr := &http.Transport{DialContext: dial, TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 1}
	url := "https://" + ls.TLS.Addr().String()
	switch proto {
	case "h1":
		url = "http://" + ls.Serve.Addr().String()
	case "h1-tls":
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	case "h2":
		tr.ForceAttemptHTTP2 = true
	}
	b.Cleanup(tr.CloseIdleConnections) // before the PoP stops (cleanups run last first)
	client := &http.Client{Transport: tr}
	fillBench(b, client, url, p)
	return client, url, cw
}

// withBenchTLS adds an HTTPS listener on loopback with a self-signed
// certificate to the configuration text, with extra settings (such as
// ", http3: false") in its tls section.
func withBenchTLS(text, extra string) string {
	return strings.Replace(text, "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true"+extra+"}\n", 1)
}

// fillBench fills /obj through client from the PoP at url (Host
// demo.example) on a connection of its own, closed after it (a miss hands
// a clear connection to net/http for good), and waits until p stores it.
func fillBench(b *testing.B, client *http.Client, url string, p *PoP) {
	b.Helper()
	benchGet(b, client, url+"/obj", true)
	waitStored(b, p)
}

// benchGet asks client for url (Host demo.example), closing the
// connection after the answer when closeConn, and returns the response
// with its body read and closed.
func benchGet(b *testing.B, client *http.Client, url string, closeConn bool) *http.Response {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = "demo.example"
	req.Close = closeConn
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// checkFastHits fails b unless the fast path answered requests on path
// "fast" and none on any other (net/http's).
func checkFastHits(b *testing.B, p *PoP, path string) {
	b.Helper()
	if fast := p.fastHits.Load(); (path == "fast") != (fast > 0) {
		b.Fatalf("%s: the fast path answered %d requests", path, fast)
	}
}

// objRequest asks for /obj over HTTP/1.1, keeping the connection.
const objRequest = "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n"

// keepAliveGet returns a function that sends the next of requests (in
// turn) on c and reads its answer, failing b unless the body has size bytes.
func keepAliveGet(b *testing.B, c net.Conn, size int, requests ...string) func() {
	br := bufio.NewReaderSize(c, 64<<10)
	raw := make([][]byte, len(requests))
	for i, r := range requests {
		raw[i] = []byte(r)
	}
	i := 0
	return func() {
		err := keepAliveHit(c, br, raw[i%len(raw)], size)
		i++
		if err != nil {
			b.Fatal(err)
		}
	}
}

// keepAliveHit sends request on c and reads its answer from br, which
// reads c: an error unless it is whole and its body has size bytes.
func keepAliveHit(c net.Conn, br *bufio.Reader, request []byte, size int) error {
	if _, err := c.Write(request); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != int64(size) {
		return fmt.Errorf("got %d body bytes, want %d", n, size)
	}
	return nil
}

// clientHit asks client for url+"/obj" (Host demo.example): an error
// unless the answer is a hit of size bytes over HTTP/major.
func clientHit(client *http.Client, url string, size, major int) error {
	req, _ := http.NewRequest(http.MethodGet, url+"/obj", nil)
	req.Host = "demo.example"
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != int64(size) || resp.ProtoMajor != major || !strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
		return fmt.Errorf("got %d body bytes over %s (%s), want an HTTP/%d hit of %d", n, resp.Proto, resp.Header.Get("Cache-Status"), major, size)
	}
	return nil
}

// countingDialer returns a dial function whose connections count their
// writes in the counter it returns too.
func countingDialer() (func(ctx context.Context, network, addr string) (net.Conn, error), *atomic.Uint64) {
	cw := new(atomic.Uint64)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: cw}, nil
	}, cw
}

// reportWrites starts counting the server's write system calls: the
// process's (processWrites) less the client's, which cw counts; the
// function it returns reports them per operation as writes/op.
func reportWrites(b *testing.B, cw *atomic.Uint64) func() {
	before, ok := processWrites()
	clientBefore := cw.Load()
	return func() {
		if after, ok2 := processWrites(); ok && ok2 {
			b.ReportMetric(float64(after-before-(cw.Load()-clientBefore))/float64(b.N), "writes/op")
		}
	}
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Uint64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// processWrites is the number of write system calls the process has made
// (syscw in /proc/self/io: write, writev, sendfile); false where that
// file is missing.
func processWrites() (uint64, bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// serveBench serves p on loopback listeners until the benchmark ends and
// returns its serving address.
func serveBench(b *testing.B, p *PoP) string {
	b.Helper()
	return serveBenchListeners(b, p, false).Serve.Addr().String()
}

// serveBenchListeners serves p on loopback listeners (an HTTPS one too
// when withTLS) until the benchmark ends, then closes it, and returns them.
func serveBenchListeners(b *testing.B, p *PoP, withTLS bool) Listeners {
	b.Helper()
	var ls Listeners
	lns := []*net.Listener{&ls.Serve, &ls.Admin}
	if withTLS {
		lns = append(lns, &ls.TLS)
	}
	for _, ln := range lns {
		var err error
		if *ln, err = listenLoopback(); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	b.Cleanup(func() { cancel(); <-done; p.Close() })
	return ls
}
