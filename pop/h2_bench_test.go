package pop

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
						if err := clientHit(client, url, size, 2); err != nil {
							b.Error(err)
						}
					}
					get() // the connection and its first hit
					b.SetBytes(int64(size))
					b.ReportAllocs()
					writes := reportWrites(b, cw)
					b.SetParallelism(5) // ten streams on two cores
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							get()
						}
					})
					b.StopTimer()
					writes()
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
	text := withBenchTLS(fmt.Sprintf(testConfig, o.URL, "0s"), ", http3: false, h2c: true, http2: "+server)
	text = strings.Replace(text, "max_object: 1MiB", "max_object: 4MiB", 1)
	p := newBenchPoP(b, text, Options{})
	ls := serveBenchListeners(b, p, true)
	dial, cw := countingDialer()
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
	b.Cleanup(tr.CloseIdleConnections) // before the PoP stops (cleanups run last first)
	client := &http.Client{Transport: tr}
	// The fill, through the same client (HTTP/2 connections stay), until
	// the object answers as a hit.
	waitFor(b, "the object stored", func() bool {
		resp := benchGet(b, client, url+"/obj", false)
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	})
	return client, url, cw
}
