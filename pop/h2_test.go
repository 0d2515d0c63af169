package pop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h2DiffOrigin is the origin of TestH2MatchesNetHTTP: objects of several
// sizes, a Vary'd one, validators, an echo for POSTs, errors.
func h2DiffOrigin(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch {
	case r.Method == http.MethodPost:
		h.Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	case strings.HasPrefix(r.URL.Path, "/size/"):
		var n int
		fmt.Sscanf(r.URL.Path, "/size/%d", &n)
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("ETag", fmt.Sprintf(`"s%d"`, n))
		h.Set("Last-Modified", "Wed, 25 Nov 2026 10:00:00 GMT")
		w.Write(pattern(n))
	case r.URL.Path == "/vary":
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Vary", "Accept-Language")
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	case r.URL.Path == "/sniff": // no Content-Type: net/http sniffs one
		h.Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "<html><body>sniffed</body></html>")
	case r.URL.Path == "/dated":
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Type", "text/plain")
		h.Set("Date", "Wed, 25 Nov 2026 11:59:00 GMT")
		h.Add("Via", "1.1 upstream")
		h.Set("X-Multi", "a")
		h.Add("X-Multi", "b")
		io.WriteString(w, "dated")
	case r.URL.Path == "/private":
		h.Set("Cache-Control", "private")
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "private")
	case r.URL.Path == "/empty":
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Type", "text/plain")
	default:
		http.Error(w, "no such object", http.StatusNotFound)
	}
}

// h2Exchange is what a client sees of one answer.
type h2Exchange struct {
	Status        int
	Header        http.Header
	ContentLength int64
	Body          []byte
	Err           string
}

func doH2(t *testing.T, tp *testPoP, method, path string, header http.Header, body string) h2Exchange {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tp.url+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "demo.example"
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := tp.client.Do(req)
	if err != nil {
		return h2Exchange{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return h2Exchange{Err: err.Error()}
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s answered over %s; want HTTP/2", method, path, resp.Proto)
	}
	h := resp.Header.Clone()
	for _, k := range []string{"Date", "Age", "Alt-Svc"} { // the clocks (and ports) differ
		if _, ok := h[k]; ok {
			h[k] = []string{"(set)"}
		}
	}
	// A multipart answer's boundary is random.
	if ct := h.Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
		if _, boundary, ok := strings.Cut(ct, "boundary="); ok {
			h.Set("Content-Type", strings.ReplaceAll(ct, boundary, "B"))
			b = bytes.ReplaceAll(b, []byte(boundary), []byte("B"))
		}
	}
	return h2Exchange{Status: resp.StatusCode, Header: h, ContentLength: resp.ContentLength, Body: b}
}

// TestH2MatchesNetHTTP sends the same requests to a PoP on net/http's
// HTTP/2 server and to one on its own (tls.http2: outpost), over TLS and
// h2c, and wants the same answers: status, header fields (Date and Age
// values aside), Content-Length and body — for inline hits of several
// sizes (beyond the 64 KiB initial window and 16 KiB frames, heap and blob
// bodies), HEAD, misses, conditionals, ranges, POST bodies, Vary, 304s,
// errors and purges.
func TestH2MatchesNetHTTP(t *testing.T) {
	type step struct {
		method, path string
		header       http.Header
		body         string
		purge        string // a purge request body sent before the step
	}
	steps := []step{
		{method: "GET", path: "/size/1024"}, // miss
		{method: "GET", path: "/size/1024"}, // hit
		{method: "HEAD", path: "/size/1024"},
		{method: "GET", path: "/size/0"},
		{method: "GET", path: "/size/0"},
		{method: "GET", path: "/size/20000"},
		{method: "GET", path: "/size/20000"},
		{method: "GET", path: "/size/200000"},
		{method: "GET", path: "/size/200000"},
		{method: "HEAD", path: "/size/200000"},
		{method: "GET", path: "/size/1024?b=2&a=1"},
		{method: "GET", path: "/size/1024?a=1&b=2"},
		{method: "GET", path: "/size/1024", header: http.Header{"If-None-Match": {`"s1024"`}}},
		{method: "GET", path: "/size/1024", header: http.Header{"If-Modified-Since": {"Wed, 25 Nov 2026 11:00:00 GMT"}}},
		{method: "GET", path: "/size/200000", header: http.Header{"Range": {"bytes=100-70099"}}},
		{method: "GET", path: "/size/1024", header: http.Header{"Range": {"bytes=0-1,5-9"}}},
		{method: "GET", path: "/size/1024", header: http.Header{"Cache-Control": {"no-cache"}}},
		{method: "GET", path: "/vary", header: http.Header{"Accept-Language": {"cs"}}},
		{method: "GET", path: "/vary", header: http.Header{"Accept-Language": {"cs"}}},
		{method: "GET", path: "/vary", header: http.Header{"Accept-Language": {"de"}}},
		{method: "GET", path: "/sniff"},
		{method: "GET", path: "/sniff"},
		{method: "GET", path: "/dated"},
		{method: "GET", path: "/dated"},
		{method: "GET", path: "/empty"},
		{method: "GET", path: "/empty"},
		{method: "GET", path: "/private"},
		{method: "GET", path: "/missing"},
		{method: "POST", path: "/echo", body: strings.Repeat("post body ", 30000)},
		{method: "POST", path: "/echo", body: "short"},
		{method: "DELETE", path: "/size/1024"},
		{method: "GET", path: "/size/1024", purge: `{"id": "d1", "url": "http://demo.example/size/1024"}`},
		{method: "GET", path: "/size/1024"},
	}
	for _, mode := range []string{"tls", "h2c"} {
		for _, bodies := range []string{"heap", "blob"} {
			t.Run(mode+"/"+bodies, func(t *testing.T) {
				proto := map[string]string{"tls": "h2", "h2c": "h2c"}[mode]
				ref := startTLSPoP(t, newTestOrigin(t, h2DiffOrigin).URL, proto, bodiesIn(bodies))
				own := startTLSPoP(t, newTestOrigin(t, h2DiffOrigin).URL, proto+"-outpost", bodiesIn(bodies))
				for i, s := range steps {
					if s.purge != "" {
						h2purge(t, ref, s.purge)
						h2purge(t, own, s.purge)
					}
					want := doH2(t, ref, s.method, s.path, s.header, s.body)
					got := doH2(t, own, s.method, s.path, s.header, s.body)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("step %d %s %s %v:\n got %d %v cl=%d err=%q body %d bytes\nwant %d %v cl=%d err=%q body %d bytes",
							i, s.method, s.path, s.header, got.Status, got.Header, got.ContentLength, got.Err, len(got.Body),
							want.Status, want.Header, want.ContentLength, want.Err, len(want.Body))
					}
				}
				if st := own.h2stats(t); st.Hits == 0 {
					t.Errorf("no hit was answered inline: %+v", st)
				}
			})
		}
	}
}

// h2purge purges through tp's admin listener (HTTP/1.1, whatever
// tp.client speaks).
func h2purge(t *testing.T, tp *testPoP, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tp.admin+"/purge", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge: %s", resp.Status)
	}
}

// h2stats reads the PoP's own HTTP/2 server's figures from /metrics.
func (tp *testPoP) h2stats(t *testing.T) struct{ Hits, Streams int } {
	t.Helper()
	resp, err := http.Get(tp.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st struct{ Hits, Streams int }
	for line := range strings.SplitSeq(string(b), "\n") {
		fmt.Sscanf(line, "outpost_pop_h2_inline_hits_total %d", &st.Hits)
		fmt.Sscanf(line, "outpost_pop_h2_streams_total %d", &st.Streams)
	}
	return st
}

// h2specBin finds h2spec on PATH or in ~/go/bin; "" when absent.
func h2specBin() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// TestH2SpecPoP runs h2spec (github.com/summerwind/h2spec) against a PoP
// on its own HTTP/2 server, over TLS and h2c, with a cached object behind
// the request paths h2spec uses. It skips without h2spec:
// go install github.com/summerwind/h2spec/cmd/h2spec@latest
func TestH2SpecPoP(t *testing.T) {
	bin := h2specBin()
	if bin == "" {
		t.Skip("h2spec not installed (go install github.com/summerwind/h2spec/cmd/h2spec@latest)")
	}
	for _, proto := range []string{"h2-outpost", "h2c-outpost"} {
		t.Run(proto, func(t *testing.T) {
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					io.Copy(io.Discard, r.Body)
				}
				cacheable(strings.Repeat("h2spec ", 200))(w, r)
			})
			tp := startTLSPoP(t, o.URL, proto)
			// The root path stored, so h2spec's GETs are inline hits.
			if got := doH2(t, tp, "GET", "/", nil, ""); got.Status != http.StatusOK {
				t.Fatalf("warming: %+v", got)
			}
			host, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(tp.url, "https://"), "http://"))
			args := []string{"-h", host, "-p", port, "-o", "2"}
			if proto == "h2-outpost" {
				args = append(args, "-t", "-k")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			run := func() ([]byte, error) {
				out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
				if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
					t.Fatal(err)
				}
				return out, err
			}
			out, err := run()
			if err != nil && onlyTimeouts(out) {
				// h2spec waits 2 s (-o 2) for each answer; under -race on a
				// loaded machine one may come later. Timeouts alone get one
				// more run (logged); any other failure fails at once.
				i := bytes.Index(out, []byte("Failures:"))
				t.Logf("h2spec, first run, timed out; running it again:\n%s", out[max(i, 0):])
				out, err = run()
			}
			if err != nil {
				i := bytes.Index(out, []byte("Failures:"))
				fails := out[max(i, 0):]
				// On the clear listener a connection that does not start
				// with the preface is HTTP/1.1, answered as such (as with
				// net/http's h2c), not closed: h2spec's 3.5/2 expects the
				// close of an HTTP/2-only port.
				if proto == "h2c-outpost" && bytes.Contains(out, []byte("144 passed, 0 skipped, 1 failed")) &&
					bytes.Contains(fails, []byte("Sends invalid connection preface")) {
					t.Logf("h2spec: the one expected failure on the clear listener (3.5/2, HTTP/1.1 answers a non-preface)")
					return
				}
				t.Errorf("h2spec failed:\n%s", fails)
			}
		})
	}
}

// onlyTimeouts reports whether every failure h2spec reports in out is a
// timeout.
func onlyTimeouts(out []byte) bool {
	n, timeouts := 0, 0
	for line := range bytes.Lines(out) {
		if bytes.Contains(line, []byte("Actual:")) {
			n++
			if bytes.Contains(line, []byte("Timeout")) {
				timeouts++
			}
		}
	}
	return n > 0 && n == timeouts
}

// TestH2BodyFailureKeepsConnection: a request whose body fails (here it
// never comes, so timeouts.request_body answers 408) fails on its own
// stream. Over HTTP/1.1 that answer closes the connection (what is left of
// the body on it is unknown); over HTTP/2 it must not: a Connection field
// made the PoP's own server send GOAWAY and close once the stream ended,
// with the client's other streams and frames (h2spec 7/2's PING) on it.
func TestH2BodyFailureKeepsConnection(t *testing.T) {
	for _, proto := range []string{"h2-outpost", "h2c-outpost", "h2", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				cacheable("kept")(w, r)
			})
			tp := startTLSPoPWith(t, o.URL, proto, "    timeouts: {request_body: 200ms}\n")
			var conns atomic.Int32
			tr := tp.client.Transport.(*http.Transport)
			dial := tr.DialContext
			if dial == nil {
				dial = (&net.Dialer{}).DialContext
			}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conns.Add(1)
				return dial(ctx, network, addr)
			}
			if got := doH2(t, tp, "GET", "/obj/before", nil, ""); got.Status != http.StatusOK {
				t.Fatalf("before: %+v", got)
			}
			pr, pw := io.Pipe()
			defer pw.Close()
			req, err := http.NewRequest("POST", tp.url+"/obj/post", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "demo.example"
			resp, err := tp.client.Do(req)
			if err != nil {
				t.Fatalf("POST without its body: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Connection") != "" {
				t.Fatalf("POST without its body: %d, Connection %q; want 408 without a Connection field", resp.StatusCode, resp.Header.Get("Connection"))
			}
			if got := doH2(t, tp, "GET", "/obj/after", nil, ""); got.Status != http.StatusOK {
				t.Fatalf("after: %+v", got)
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections for three requests; want the first one kept", n)
			}
		})
	}
}
