package fastpath

import (
	"bufio"
	"bytes"
	"testing"
)

// BenchmarkFastPathParse measures reading and parsing one request head
// as the fast path does (readHead, then parseRequest), for a bare head and
// for a browser's, whose User-Agent, Referer and X-Request-Id the fast
// path keeps for the access log. It should allocate nothing: the fields
// it keeps are windows of the connection's buffer.
func BenchmarkFastPathParse(b *testing.B) {
	heads := []struct{ name, head string }{
		{"bare", "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n"},
		{"browser", "GET /static/app.js?v=3 HTTP/1.1\r\nHost: demo.example\r\n" +
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n" +
			"Accept: */*\r\nAccept-Language: en-GB,en;q=0.5\r\n" +
			"Referer: https://demo.example/index.html\r\nX-Request-Id: 6f1c2a9e-1d2b-4c3d-9e8f-0a1b2c3d4e5f\r\n" +
			"Connection: keep-alive\r\nSec-Fetch-Dest: script\r\n\r\n"},
	}
	for _, h := range heads {
		b.Run(h.name, func(b *testing.B) {
			data := []byte(h.head)
			src := bytes.NewReader(nil)
			br := bufio.NewReaderSize(src, headMax)
			var r Request
			b.SetBytes(int64(len(h.head)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(data)
				br.Reset(src)
				head, ok := readHead(br, nil)
				if !ok || !parseRequest(head, &r) {
					b.Fatalf("the fast path refused %q", h.head)
				}
			}
		})
	}
}
