package pop

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// BenchmarkH2Hit measures fresh hits over HTTP/2 on net/http's server and
// on the PoP's own (tls.http2: outpost), over TLS and h2c, 1 KiB and
// 100 KiB: ten streams at a time on one connection (as h2load -m 10
// sends them), so ns/op is the client's and the server's CPU together.
// writes/op is the server's write system calls per response (syscw in
// /proc/self/io less the client's writes). Compare the servers in
// interleaved runs:
//
//	go test ./pop -run '^$' -bench 'H2Hit' -count 6 | tee h2.txt
func BenchmarkH2Hit(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, mode := range []string{"tls", "h2c"} {
			for _, server := range []string{config.HTTP2NetHTTP, config.HTTP2Outpost} {
				name := strings.ReplaceAll(server, "/", "")
				b.Run(fmt.Sprintf("%s/%s/%dKiB", mode, name, size>>10), func(b *testing.B) {
					client, url, cw := startH2BenchPoP(b, server, mode, size)
					get := func() {
						req, _ := http.NewRequest(http.MethodGet, url+"/obj", nil)
						req.Host = "demo.example"
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if n != int64(size) || resp.ProtoMajor != 2 || !strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
							b.Errorf("got %d body bytes over %s (%s), want an HTTP/2 hit of %d", n, resp.Proto, resp.Header.Get("Cache-Status"), size)
						}
					}
					get() // the connection and its first hit
					b.SetBytes(int64(size))
					b.ReportAllocs()
					before, ok := h2ProcWrites()
					clientBefore := cw.Load()
					b.SetParallelism(5) // ten streams on two cores
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							get()
						}
					})
					b.StopTimer()
					if after, ok2 := h2ProcWrites(); ok && ok2 {
						b.ReportMetric(float64(after-before-(cw.Load()-clientBefore))/float64(b.N), "writes/op")
					}
				})
			}
		}
	}
}

// startH2BenchPoP starts a PoP on server ("net/http" or "outpost") with
// an object of size bytes stored at /obj, and returns an HTTP/2 client
// for mode ("tls" or "h2c") whose connection counts its writes in cw.
func startH2BenchPoP(b *testing.B, server, mode string, size int) (*http.Client, string, *atomic.Uint64) {
	b.Helper()
	body := strings.Repeat("x", size)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	text := strings.Replace(fmt.Sprintf(testConfig, o.URL, "0s"), "    cache_size: 64MiB\n",
		"    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true, http3: false, h2c: true, http2: "+server+"}\n", 1)
	text = strings.Replace(text, "max_object: 1MiB", "max_object: 4MiB", 1)
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
		if *ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	cw := new(atomic.Uint64)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &h2CountConn{Conn: c, writes: cw}, nil
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1}
	url := "https://" + ls.TLS.Addr().String()
	if mode == "tls" {
		tr.TLSClientConfig = &tls.Config{RootCAs: p.certs.selfSignedCA.Pool()}
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
		url = "http://" + ls.Serve.Addr().String()
	}
	b.Cleanup(func() { tr.CloseIdleConnections(); cancel(); <-done; p.Close() })
	client := &http.Client{Transport: tr}
	// The fill, through the same client (HTTP/2 connections stay), until
	// the object answers as a hit.
	waitFor(b, "the object stored", func() bool {
		req, _ := http.NewRequest(http.MethodGet, url+"/obj", nil)
		req.Host = "demo.example"
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	})
	return client, url, cw
}

// h2CountConn counts a client connection's writes.
type h2CountConn struct {
	net.Conn
	writes *atomic.Uint64
}

func (c *h2CountConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// h2ProcWrites reads the process's write system calls so far (syscw in
// /proc/self/io); false where that is not available.
func h2ProcWrites() (uint64, bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
