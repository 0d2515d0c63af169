package h2serve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// fixedCache answers every request with one body.
type fixedCache struct{ block, body []byte }

func (f fixedCache) ServeH2(s *Sender, r *Request) {
	s.Send(append(s.Block(), f.block...), f.body, (*blob.Blob)(nil))
}

// BenchmarkInlineHit measures the server alone: a raw client sends ten
// GETs in one write and reads the ten answers (frame headers parsed by
// hand), as h2load -m 10 does; ns/op and allocs/op are per request, the
// client's small share included.
func BenchmarkInlineHit(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			block := AppendStatus(nil, 200)
			block = AppendField(block, "content-type", "application/octet-stream")
			block = AppendField(block, "content-length", fmt.Sprint(size))
			block = AppendField(block, "cache-control", "public, max-age=60")
			addr, _ := serveTest(b, http.NotFoundHandler(), fixedCache{block, bytes.Repeat([]byte("x"), size)}, Options{})
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			br := bufio.NewReaderSize(nc, 256<<10)
			fr := http2.NewFramer(nc, nil)
			io.WriteString(nc, http2.ClientPreface)
			fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
			fr.WriteWindowUpdate(0, 1<<30)
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "demo.example"}, {":path", "/obj"}, {"user-agent", "h2load nghttp2/1.64.0"}} {
				enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			hdr := hb.Bytes()
			var batch []byte
			id := uint32(1)
			ended := 0
			readUntil := func(want int) {
				var h [9]byte
				for ended < want {
					if _, err := io.ReadFull(br, h[:]); err != nil {
						b.Fatal(err)
					}
					n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
					if _, err := br.Discard(n); err != nil {
						b.Fatal(err)
					}
					if (h[3] == 0 || h[3] == 1) && h[4]&1 != 0 { // DATA or HEADERS with END_STREAM
						ended++
					}
				}
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += 10 {
				// The connection's credit back for the last batch's bodies.
				batch = appendWindowUpdate(batch[:0], 0, uint32(10*size))
				for range 10 {
					batch = appendFrameHeader(batch, len(hdr), http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id)
					batch = append(batch, hdr...)
					id += 2
				}
				if _, err := nc.Write(batch); err != nil {
					b.Fatal(err)
				}
				readUntil(ended + 10)
			}
			b.StopTimer()
		})
	}
}
