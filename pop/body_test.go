package pop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// bigBody is a deterministic body of n bytes that differs at every offset
// a test might get wrong.
func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// bigOrigin serves /big/N as bigBody(N), cacheable, with an ETag.
func bigOrigin(t *testing.T) *testOrigin {
	return newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/big/"))
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("ETag", `"big-`+strconv.Itoa(n)+`"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bigBody(n))
	})
}

// bigConfig is testConfig with room for large objects and, when logPath
// is set, an access log.
func bigConfig(originURL, logPath string) string {
	text := strings.Replace(fmt.Sprintf(testConfig, originURL, "0s"), "max_object: 1MiB", "max_object: 32MiB", 1)
	if logPath != "" {
		text = strings.Replace(text, "    cache_size: 64MiB\n",
			"    cache_size: 64MiB\n    access_log: {mode: full, path: "+logPath+"}\n", 1)
	}
	return text
}

// TestStoredBodies serves large and small objects from the heap and from
// blobs (sendfile on clear HTTP/1.1), with and without the access log in
// the way: whole bodies, ranges, HEAD, over reused connections, with the
// bytes counted.
func TestStoredBodies(t *testing.T) {
	o := bigOrigin(t)
	tests := []struct {
		name      string
		bodies    string
		accessLog bool
	}{
		{"heap", "heap", false},
		{"blob sent with sendfile", "blob", false},
		{"blob through the access log", "blob", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := ""
			if tt.accessLog {
				logPath = filepath.Join(t.TempDir(), "access.log")
			}
			tp := startPoPConfig(t, bigConfig(o.URL, logPath), bodiesIn(tt.bodies))
			reused := 0
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			}}
			var wantBytes uint64
			requests := uint64(0)
			for _, size := range []int{10, 100 << 10, 3 << 20} {
				path := "/big/" + strconv.Itoa(size)
				body := bigBody(size)
				steps := []struct {
					name       string
					method     string
					rangeHdr   string
					wantCode   int
					wantBody   []byte
					wantStatus string
				}{
					{"miss", http.MethodGet, "", 200, body, "fwd=uri-miss"},
					{"hit", http.MethodGet, "", 200, body, "hit"},
					{"RFC9110 9.3.2 HEAD hit has no body", http.MethodHead, "", 200, nil, "hit"},
					{"RFC9110 14.2 one range", http.MethodGet, "bytes=3-7", 206, body[3:8], "hit"},
					{"RFC9110 14.2 suffix range", http.MethodGet, "bytes=-5", 206, body[size-5:], "hit"},
					{"hit again", http.MethodGet, "", 200, body, "hit"},
				}
				for _, s := range steps {
					if s.name == "hit" {
						waitStored(t, tp.PoP)
					}
					req, _ := http.NewRequest(s.method, tp.url+path, nil)
					req.Host = "demo.example"
					if s.rangeHdr != "" {
						req.Header.Set("Range", s.rangeHdr)
					}
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
					resp, err := tp.client.Do(req)
					if err != nil {
						t.Fatalf("%d %s: %v", size, s.name, err)
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					requests++
					if err != nil {
						t.Fatalf("%d %s: body: %v", size, s.name, err)
					}
					if resp.StatusCode != s.wantCode || !bytes.Equal(got, s.wantBody) {
						t.Fatalf("%d %s: got %d with %d body bytes, want %d with %d", size, s.name, resp.StatusCode, len(got), s.wantCode, len(s.wantBody))
					}
					if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, s.wantStatus) {
						t.Errorf("%d %s: Cache-Status = %q, want %q", size, s.name, cs, s.wantStatus)
					}
					if s.method == http.MethodHead && resp.ContentLength != int64(size) {
						t.Errorf("%d HEAD: Content-Length = %d, want %d", size, resp.ContentLength, size)
					}
					wantBytes += uint64(len(s.wantBody))
				}
			}
			if reused == 0 {
				t.Error("no connection was reused: keep-alive broke")
			}
			st := tp.statsAfter(t, requests)
			if st.BytesServed != wantBytes {
				t.Errorf("bytes served = %d, want %d", st.BytesServed, wantBytes)
			}
			// Whole bodies and ranges of blobs go out with sendfile (all
			// but the first 512 bytes of a response at most, which
			// net/http copies to sniff); heap bodies never do.
			sent := st.Cache.SendfileBytes
			if tt.bodies == "heap" && sent != 0 {
				t.Errorf("heap bodies: %d bytes sent with sendfile", sent)
			}
			if tt.bodies == "blob" && sent < 2*(3<<20-512) { // two whole hits of 3 MiB
				t.Errorf("blob bodies: only %d bytes sent with sendfile", sent)
			}
			if tt.accessLog {
				tp.stop(t)
				tp.Close() // flushes the log
				data, err := os.ReadFile(logPath)
				if err != nil {
					t.Fatal(err)
				}
				if lines := strings.Count(string(data), "\n"); lines != int(requests) {
					t.Errorf("access log has %d lines, want %d", lines, requests)
				}
				if tp.fastHits.Load() == 0 {
					t.Error("no hit took the fast path: the access log should not keep requests from it")
				}
				if hits := strings.Count(string(data), `; hit`); uint64(hits) != st.Hits {
					t.Errorf("access log has %d hit lines, the PoP counted %d hits", hits, st.Hits)
				}
				if !strings.Contains(string(data), `"bytes":3145728`) {
					t.Errorf("access log lacks a whole 3 MiB body's byte count:\n%.600s", data)
				}
			}
		})
	}
}

// TestBlobOutlivesItsEntry purges an object while a slow client is being
// sent its body from a blob: the body arrives whole, because the blob lives
// until the last reader is done, however many garbage collections run.
func TestBlobOutlivesItsEntry(t *testing.T) {
	if _, err := blob.New("probe", []byte("x")); err != nil {
		t.Skipf("blobs unsupported here: %v", err)
	}
	o := bigOrigin(t)
	tp := startPoPConfig(t, bigConfig(o.URL, ""), bodiesIn("blob"))
	const size = 16 << 20
	tp.get(t, "/big/16777216")
	waitStored(t, tp.PoP)

	conn, err := net.Dial("tcp", strings.TrimPrefix(tp.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /big/16777216 HTTP/1.1\r\nHost: demo.example\r\n\r\n")
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
	}
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if code, res, raw := tp.purge(t, "s3cret", `{"url":"http://demo.example/big/16777216"}`); code != 200 || res.Purged != 1 {
		t.Fatalf("purge: %d %s", code, raw)
	}
	for range 3 {
		runtime.GC()
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the rest after the purge: %v", err)
	}
	if got := append(first, rest...); !bytes.Equal(got, bigBody(size)) {
		t.Fatalf("body after a purge mid-send: %d bytes, or different bytes", len(got))
	}
	if tp.cached(t, "/big/16777216", nil) {
		t.Error("purged object still cached")
	}
}
