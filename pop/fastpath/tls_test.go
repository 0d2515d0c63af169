package fastpath

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/localca"
)

// startTLSServer is startServer with the Server running the TLS
// handshakes (Options.TLS); net/http behind it answers
// "net/http <path> tls=<whether Request.TLS is set>". It returns the
// client's TLS configuration too.
func startTLSServer(t *testing.T, c *fixedCache) (*testServer, *tls.Config) {
	t.Helper()
	leaf, ca, err := localca.SelfSigned([]string{"a.example"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), cache: c}
	conf := &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, NextProtos: []string{"h2", "http/1.1"}}
	l := NewListener(ln, 0, 10*time.Second, &ts.sent)
	ts.srv = NewServer(l, c, Options{ReadHeaderTimeout: 10 * time.Second, TLS: conf})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tlsOn := "false"
			if r.TLS != nil && r.TLS.HandshakeComplete && r.TLS.ServerName == "a.example" {
				tlsOn = "true"
			}
			io.WriteString(w, "net/http "+r.URL.Path+" tls="+tlsOn)
		}),
		ConnState: ConnState,
		TLSConfig: conf,
	}
	var wg sync.WaitGroup
	wg.Go(func() { ts.srv.Serve() })
	wg.Go(func() { hs.Serve(ts.srv.Handoff()) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("fast path shutdown: %v", err)
		}
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("net/http shutdown: %v", err)
		}
		wg.Wait()
	})
	return ts, &tls.Config{RootCAs: ca.Pool(), ServerName: "a.example", NextProtos: []string{"http/1.1"}}
}

// TestTLSServer sends requests over TLS that the Cache answers (from the
// heap and from a blob, copied through TLS) and that it declines: lent or
// handed to net/http, whose handler sees Request.TLS as on a *tls.Conn;
// a client offering h2 goes to net/http's HTTP/2. A blob's body goes out
// in full-size records (BenchmarkTLSHit in package pop counts the writes:
// one per answer).
func TestTLSServer(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 6<<10) // 96 KiB
	c := &fixedCache{}
	b, err := blob.New("fastpath-tls-test", data)
	if err != nil {
		t.Skipf("no blobs here: %v", err)
	}
	c.blob = b
	ts, conf := startTLSServer(t, c)
	const host = "Host: a.example\r\n"
	tests := []struct {
		name      string
		raw       string
		methods   []string
		want      []string
		wantCache int64
	}{
		{"a hit from the heap", "GET /hit HTTP/1.1\r\n" + host + "\r\n", []string{"GET"}, []string{"hit"}, 1},
		{"a hit from a blob, through TLS", "GET /blob HTTP/1.1\r\n" + host + "\r\n", []string{"GET"}, []string{string(data)}, 1},
		{"RFC9110 9.3.2 HEAD of a blob", "HEAD /blob HTTP/1.1\r\n" + host + "\r\n", []string{"HEAD"}, []string{""}, 1},
		{"declined: lent with Request.TLS, then a hit", "GET /miss HTTP/1.1\r\n" + host + "\r\nGET /blob HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET", "GET"}, []string{"net/http /miss tls=true", string(data)}, 1},
		{"RFC9112 6.1 a body: handed over with Request.TLS", "POST /hit HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\nGET /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"POST", "GET"}, []string{"net/http /hit tls=true", "net/http /hit tls=true"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.answers.Load()
			raw, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Client(raw, conf)
			io.WriteString(tc, tt.raw)
			br := bufio.NewReader(tc)
			for i, m := range tt.methods {
				resp, err := http.ReadResponse(br, &http.Request{Method: m})
				if err != nil {
					t.Fatalf("response %d: %v", i+1, err)
				}
				body, _ := io.ReadAll(resp.Body)
				if string(body) != tt.want[i] {
					t.Errorf("response %d: %q, want %q", i+1, clipped(body), clipped([]byte(tt.want[i])))
				}
			}
			if got := settled(func() int64 { return c.answers.Load() - before }, tt.wantCache); got != tt.wantCache {
				t.Errorf("the Cache answered %d, want %d", got, tt.wantCache)
			}
		})
	}

	t.Run("RFC8446 5.1 a 96 KiB blob in full-size records", func(t *testing.T) {
		raw, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		cc := &recordCounter{Conn: raw}
		tc := tls.Client(cc, conf)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReaderSize(tc, 256<<10)
		get := func() {
			io.WriteString(tc, "GET /blob HTTP/1.1\r\n"+host+"\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		for range 3 { // past crypto/tls's small first records
			get()
		}
		cc.records.Store(0)
		get()
		// 96 KiB is six full records, plus the head's share.
		if n := cc.records.Load(); n > 8 {
			t.Errorf("%d TLS records for a 96 KiB answer, want at most 8", n)
		}
	})

	t.Run("RFC7301 h2 goes to net/http's HTTP/2", func(t *testing.T) {
		h2 := conf.Clone()
		h2.NextProtos = []string{"h2"}
		tr := &http.Transport{TLSClientConfig: h2, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + ts.addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "net/http /x tls=true" {
			t.Errorf("%s %q", resp.Proto, body)
		}
		if got := settled(func() uint64 { return ts.srv.Handshakes()[HandshakeH2] }, 1); got != 1 {
			t.Errorf("h2 handshakes %d", got)
		}
	})
}

// recordCounter counts the TLS records a client reads (by their headers).
type recordCounter struct {
	net.Conn
	records atomic.Int64
	left    int // bytes of the current record's body still to come
	hdr     []byte
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) == 5 {
			c.records.Add(1)
			c.left = int(c.hdr[3])<<8 | int(c.hdr[4])
			c.hdr = c.hdr[:0]
		}
	}
	return n, err
}

func clipped(b []byte) string {
	if len(b) > 40 {
		return strings.ToValidUTF8(string(b[:40]), "?") + "..."
	}
	return string(b)
}
