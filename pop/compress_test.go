package pop

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/outpost-cdn/outpost/config"
)

const compressConfig = `
services:
  - name: demo
    hostnames: [demo.example]
    origin:
      servers: [{url: "%s"}]
    compress: {min_size: 1KiB, max_size: 1MiB}
pops:
  - name: test
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.2:0
    drain: 0s
`

// textCorpus is n bytes of JSON-like text, compressible as real API
// responses and pages are.
func textCorpus(n int) []byte {
	words := []string{"outpost", "cache", "origin", "shield", "status", "hit", "miss", "\"id\":", "\"name\":", "true", "false", "null", "{", "}", "[", "]", ",", "\n"}
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		fmt.Fprintf(&b, "%d ", r.IntN(1000))
	}
	return b.Bytes()[:n]
}

// decode undoes a content coding.
func decode(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

// TestCompression checks compression at the edge against a real origin:
// each Accept-Encoding class gets its own variant, filled once and
// encoded in the best codec the class accepts (RFC 9110 §12.5.3); every
// variant decodes to the origin's bytes; ETags are weakened (§8.8.1) so
// If-None-Match matches and If-Range does not; ranges are ranges of the
// encoded bytes (§14); no-transform (RFC 9111 §5.2.2.6), encoded, small
// and incompressible responses are left alone.
func TestCompression(t *testing.T) {
	doc := textCorpus(64 << 10)
	gz := func() []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(doc)
		w.Close()
		return b.Bytes()
	}()
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=600")
		h.Set("ETag", `"v1"`)
		h.Set("Content-Type", "application/json")
		body := doc
		switch r.URL.Path {
		case "/no-transform.json":
			h.Set("Cache-Control", "public, max-age=600, no-transform")
		case "/small.json":
			body = doc[:100]
		case "/photo.jpg":
			h.Set("Content-Type", "image/jpeg")
		case "/pre.json":
			h.Set("Content-Encoding", "gzip")
			h.Set("Vary", "Accept-Encoding")
			body = gz
		}
		w.Write(body)
	})
	tp := startPoPConfig(t, fmt.Sprintf(compressConfig, o.URL))
	get := func(path, ae string, extra ...string) (*http.Response, []byte) {
		h := http.Header{}
		if ae != "" {
			h.Set("Accept-Encoding", ae)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return tp.do(t, http.MethodGet, path, "demo.example", h)
	}

	classes := []struct {
		name, ae, want string
	}{
		{"Chrome: zstd first", "gzip, deflate, br, zstd", "zstd"},
		{"Safari: br", "gzip, deflate, br", "br"},
		{"gzip only", "gzip", "gzip"},
		{"identity", "", ""},
	}
	encoded := map[string][]byte{}
	for _, c := range classes {
		t.Run(c.name, func(t *testing.T) {
			for i, wantHit := range []bool{false, true} {
				resp, body := get("/doc.json", c.ae)
				if got := resp.Header.Get("Content-Encoding"); got != c.want {
					t.Fatalf("request %d: Content-Encoding %q, want %q", i, got, c.want)
				}
				if !bytes.Equal(decode(t, c.want, body), doc) {
					t.Fatalf("request %d: the body does not decode to the origin's", i)
				}
				if hit := strings.Contains(resp.Header.Get("Cache-Status"), "; hit"); hit != wantHit {
					t.Errorf("request %d: Cache-Status %q, want hit %v", i, resp.Header.Get("Cache-Status"), wantHit)
				}
				wantETag := `W/"v1"`
				if c.want == "" {
					wantETag = `"v1"`
				}
				if got := resp.Header.Get("ETag"); got != wantETag {
					t.Errorf("ETag %q, want %q", got, wantETag)
				}
				if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
					t.Errorf("Vary %q lacks Accept-Encoding", resp.Header.Get("Vary"))
				}
				encoded[c.want] = body
			}
		})
	}
	if n := o.count("/doc.json"); n != len(classes) {
		t.Errorf("the origin was asked %d times, want once per class (%d)", n, len(classes))
	}

	t.Run("RFC 9110 §14.2: a range of the encoded bytes", func(t *testing.T) {
		resp, body := get("/doc.json", "gzip", "Range", "bytes=10-19")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, encoded["gzip"][10:20]) {
			t.Errorf("got %d %q, want 206 with bytes 10-19 of the gzip body", resp.StatusCode, body)
		}
	})
	t.Run("RFC 9110 §13.1.5: If-Range compares strongly, so a weak ETag sends it all", func(t *testing.T) {
		resp, body := get("/doc.json", "gzip", "Range", "bytes=10-19", "If-Range", `W/"v1"`)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, encoded["gzip"]) {
			t.Errorf("got %d with %d bytes, want 200 with the whole gzip body", resp.StatusCode, len(body))
		}
	})
	t.Run("RFC 9110 §13.1.2: If-None-Match compares weakly", func(t *testing.T) {
		if resp, _ := get("/doc.json", "br, gzip", "If-None-Match", `"v1"`); resp.StatusCode != http.StatusNotModified {
			t.Errorf("got %d, want 304", resp.StatusCode)
		}
	})

	for _, tt := range []struct {
		name, path, wantCoding string
		want                   []byte
	}{
		{"RFC 9111 §5.2.2.6: no-transform", "/no-transform.json", "", doc},
		{"below min_size", "/small.json", "", doc[:100]},
		{"not a compressible type", "/photo.jpg", "", doc},
		{"already encoded by the origin", "/pre.json", "gzip", gz},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(tt.path, "zstd, br, gzip")
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantCoding || !bytes.Equal(body, tt.want) {
				t.Errorf("Content-Encoding %q with %d bytes, want %q with the origin's %d", got, len(body), tt.wantCoding, len(tt.want))
			}
		})
	}

	metrics := scrape(t, tp)
	for _, line := range []string{
		`outpost_pop_compressed_responses_total{codec="zstd",service="demo"} 1`,
		// Safari's class and the If-None-Match row's ("br, gzip").
		`outpost_pop_compressed_responses_total{codec="br",service="demo"} 2`,
		`outpost_pop_compressed_responses_total{codec="gzip",service="demo"} 1`,
		`outpost_pop_compress_skipped_total{reason="no-transform",service="demo"} 1`,
		`outpost_pop_compressions_in_flight{service="demo"} 0`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// TestCompressBusy checks the concurrency bounds: with every slot of the
// service, or of the PoP (shared by all services), taken, a fill is
// stored uncompressed and counted busy; with both free it is compressed,
// and its slots are given back when its body is done.
func TestCompressBusy(t *testing.T) {
	for _, tc := range []struct {
		name               string
		svcTaken, popTaken bool
		wantEncoding       string
	}{
		{name: "free", wantEncoding: "gzip"},
		{name: "the service's slots taken", svcTaken: true},
		{name: "the PoP's slots taken, by another service", popTaken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCompressor(config.Compress{Enabled: true, Concurrency: 1, Codecs: []string{"gzip"}, Types: []string{"text/*"}, MaxSize: 1 << 20})
			p := &PoP{compressing: make(chan struct{}, 1)}
			if tc.svcTaken {
				c.slots <- struct{}{}
			}
			if tc.popTaken {
				p.compressing <- struct{}{}
			}
			svc := &service{compress: c, edge: new(edgeCounters)}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: 2000, Body: io.NopCloser(strings.NewReader(strings.Repeat("a", 2000)))}
			p.compressFill(&fetch{encoding: "gzip"}, svc, resp)
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantEncoding {
				t.Errorf("Content-Encoding %q, want %q", got, tc.wantEncoding)
			}
			wantBusy := uint64(0)
			if tc.wantEncoding == "" {
				wantBusy = 1
			}
			if got := svc.edge.compress.busy.Load(); got != wantBusy {
				t.Errorf("busy %d, want %d", got, wantBusy)
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary %q, want Accept-Encoding (the class is its own variant all the same)", resp.Header.Get("Vary"))
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := 0
			if tc.svcTaken {
				want = 1 // the test's own
			}
			waitFor(t, "the service's slots given back", func() bool { return len(c.slots) == want })
			want = 0
			if tc.popTaken {
				want = 1
			}
			waitFor(t, "the PoP's slots given back", func() bool { return len(p.compressing) == want })
		})
	}
}

// BenchmarkCompress is the CPU cost of compressing text per codec, by
// body size: ns/op over the size in MiB is the CPU time per MiB
// (docs/compression.md).
func BenchmarkCompress(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		doc := textCorpus(size)
		for _, codec := range codecs {
			b.Run(fmt.Sprintf("%s/%dKiB", codec, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var out int64
				for b.Loop() {
					cb := newCompressBody(io.NopCloser(bytes.NewReader(doc)), codec, func(in, o int64) { out = o })
					io.Copy(io.Discard, cb)
					cb.Close()
				}
				b.ReportMetric(float64(out)/float64(size), "ratio")
			})
		}
	}
}
