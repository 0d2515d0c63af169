package pop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fastOrigin serves the objects of the fast-path tests, clear and TLS.
func fastOrigin(t *testing.T) *testOrigin {
	return newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("ETag", `"v1"`)
		switch r.URL.Path {
		case "/notype":
			h["Content-Type"] = nil // net/http would sniff one
			io.WriteString(w, "<html>sniff me</html>")
		case "/vary":
			h.Set("Content-Type", "text/plain")
			h.Set("Vary", "Accept-Encoding")
			io.WriteString(w, "varies")
		case "/big": // a blob: sent with sendfile, or through TLS from a buffer
			h.Set("Content-Type", "application/octet-stream")
			w.Write(bigBody(100 << 10))
		case "/huge": // several of the TLS fast path's batches
			h.Set("Content-Type", "application/octet-stream")
			w.Write(bigBody(700 << 10))
		case "/own": // its own Alt-Svc and HSTS, which win over the PoP's
			h.Set("Content-Type", "text/plain")
			h.Set("Alt-Svc", "clear")
			h.Set("Strict-Transport-Security", "max-age=5")
			h.Set("Via", "1.1 upstream")
			h["Zz-Last"] = []string{"z"}
			io.WriteString(w, "own fields")
		case "/many":
			h.Set("Content-Type", "text/plain")
			h.Set("Via", "1.1 upstream")
			h.Set("Cache-Status", "upstream; hit")
			h["X-Zeta"] = []string{"z"}
			h["A-Alpha"] = []string{"1", "2"}
			io.WriteString(w, "many fields")
		case "/targeted":
			h.Set("Content-Type", "text/plain")
			h.Set("CDN-Cache-Control", "max-age=600")
			io.WriteString(w, "targeted")
		default:
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "hello fast path "+r.URL.RawQuery)
		}
	})
}

// exchanged is what an exchange read: the responses and their bodies,
// whether the server closed the connection after them, and every byte
// read before the probe (see exchangeOn).
type exchanged struct {
	resps  []*http.Response
	bodies [][]byte
	closed bool
	wire   []byte
}

// exchange is exchangeOn over a new TCP connection to addr.
func exchange(t *testing.T, addr, raw string, n int, wantClosed bool) exchanged {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return exchangeOn(t, c, raw, n, wantClosed)
}

// exchangeOn writes raw to c and reads n responses (bodies included),
// then whether the server closed the connection after them: when
// wantClosed it waits up to 10s for the end of the stream; otherwise it
// sends one more request (one the fast path lends to net/http, so the
// fast-hit count stays) and a closed connection is one that does not
// answer it.
func exchangeOn(t *testing.T, c net.Conn, raw string, n int, wantClosed bool) (ex exchanged) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	// Each response is read for its request's method (HEAD has no body).
	var methods []string
	rr := bufio.NewReader(strings.NewReader(raw))
	for {
		req, err := http.ReadRequest(rr)
		if err != nil {
			break
		}
		io.Copy(io.Discard, req.Body)
		methods = append(methods, req.Method)
	}
	var rec bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &rec))
	for i := range n {
		method := strings.Fields(raw)[0]
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading response %d of %q: %v", i+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d of %q: %v", i+1, raw, err)
		}
		ex.resps, ex.bodies = append(ex.resps, resp), append(ex.bodies, body)
	}
	ex.wire = bytes.Clone(rec.Bytes())
	if wantClosed {
		_, err := br.ReadByte()
		ex.closed = errors.Is(err, io.EOF)
		return ex
	}
	if _, err := io.WriteString(c, probeRequest); err != nil {
		ex.closed = true
		return ex
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		ex.closed = true
		return ex
	}
	io.Copy(io.Discard, resp.Body)
	return ex
}

// sameAnswers fails t unless the fast path's exchange and net/http's
// match: the bytes on the wire but for Date values, each response's
// status, body and header (but for Date), and both connections closed as
// wantClose says.
func sameAnswers(t *testing.T, fast, nethttp exchanged, wantClose bool) {
	t.Helper()
	if !sameWire(fast.wire, nethttp.wire) {
		t.Errorf("bytes on the wire differ:\n%q\nnet/http:\n%q", clip(fast.wire, 900), clip(nethttp.wire, 900))
	}
	for i := range min(len(fast.resps), len(nethttp.resps)) {
		f, s := fast.resps[i], nethttp.resps[i]
		if f.StatusCode != s.StatusCode {
			t.Errorf("response %d: status %d, net/http %d", i+1, f.StatusCode, s.StatusCode)
		}
		if !bytes.Equal(fast.bodies[i], nethttp.bodies[i]) {
			t.Errorf("response %d: body %q, net/http %q", i+1, clip(fast.bodies[i], 60), clip(nethttp.bodies[i], 60))
		}
		if d := headerDiff(f.Header, s.Header); d != "" {
			t.Errorf("response %d: header differs from net/http's: %s", i+1, d)
		}
	}
	if fast.closed != wantClose || nethttp.closed != wantClose {
		t.Errorf("connection closed = %v, net/http's %v, want %v", fast.closed, nethttp.closed, wantClose)
	}
}

// wantFastHits fails t unless the fast path of tp answered want requests
// since its count was before. A hit is counted just after its response is
// sent, which the client may have read a moment before: it waits for the
// count first.
func wantFastHits(t *testing.T, tp *testPoP, before uint64, want int) {
	t.Helper()
	waitFor(t, "the fast path's hits counted", func() bool { return int(tp.fastHits.Load()-before) >= want })
	if got := int(tp.fastHits.Load() - before); got != want {
		t.Errorf("fast path answered %d, want %d", got, want)
	}
}

// fill stores paths through the PoP's listener (on a TLS one, keyed
// https) and waits until the store holds at least items entries.
func (tp *testPoP) fill(t *testing.T, items int, paths ...string) {
	t.Helper()
	for _, path := range paths {
		tp.get(t, path)
	}
	waitFor(t, "fills stored", func() bool { return tp.fills.inFlight() == 0 && tp.store.Stats().Items >= int64(items) })
}

// probeRequest asks whether a connection is still open: request cache
// directives keep it off the fast path, so it is never a fast hit.
const probeRequest = "GET /obj HTTP/1.1\r\nHost: demo.example\r\nCache-Control: max-stale\r\n\r\n"

// dateLine matches a Date field: each server stamps its own.
var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

// sameWire compares two servers' bytes on the wire but for Date values.
func sameWire(a, b []byte) bool {
	return bytes.Equal(dateLine.ReplaceAll(a, []byte("Date: *\r")), dateLine.ReplaceAll(b, []byte("Date: *\r")))
}

// TestFastPathMatchesNetHTTP sends the same raw requests to a PoP with the
// HTTP/1.1 fast path and to one without, and requires the same answers,
// byte for byte on the wire but for Date values (header fields in the same
// order), and the same connection handling. It also checks which requests
// the fast path took.
func TestFastPathMatchesNetHTTP(t *testing.T) {
	o := fastOrigin(t)
	fast := startPoP(t, o.URL)
	slow := startPoP(t, o.URL, func(o *Options) { o.NoFastPath = true })
	for _, tp := range []*testPoP{fast, slow} {
		tp.fill(t, 8, "/obj", "/obj?b=2&a=1", "/notype", "/vary", "/big", "/targeted", "/many")
	}
	matchNetHTTP(t, "clear", fast, func(t *testing.T, toFast bool, tt fastPathCase) exchanged {
		tp := slow
		if toFast {
			tp = fast
		}
		return exchange(t, tp.addr(), tt.raw, tt.n, tt.wantClose)
	})
}

// fastPathCase is a row of the tests that compare a PoP's fast path with
// net/http: raw requests, how many responses they get, how many of those
// the fast path answers, and whether the connection then ends. only, where
// set, is the one listener the row is for ("clear" or "tls").
type fastPathCase struct {
	name      string
	only      string
	raw       string
	n         int // responses
	wantFast  int // of them, answered by the fast path
	wantClose bool
}

// fastPathCases are the rows for a listener ("clear" or "tls"), in order:
// one list, so that what the fast path does alike on both is written once.
func fastPathCases(listener string) []fastPathCase {
	const host = "Host: demo.example\r\n"
	all := []fastPathCase{
		{"fresh hit", "clear", "GET /obj HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"fresh hit with Alt-Svc and RFC6797 HSTS", "tls", "GET /obj HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"RFC9110 9.3.2 HEAD", "", "HEAD /obj HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"blob body with sendfile", "clear", "GET /big HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"blob body through TLS", "tls", "GET /big HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"HEAD of a blob", "tls", "HEAD /big HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"blob body of several batches", "tls", "GET /huge HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"stored Alt-Svc and HSTS win", "tls", "GET /own HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"sorted query shares the key", "", "GET /obj?a=1&b=2 HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"RFC9110 7.2 Host in any case, with a port", "clear", "GET /obj HTTP/1.1\r\nhost: DEMO.example:8080\r\nUser-Agent: t\r\n\r\n", 1, 1, false},
		{"RFC9112 9.6 Connection: close closes", "", "GET /obj HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 1, 1, true},
		{"RFC9112 9.3.2 pipelined requests", "clear", "GET /obj HTTP/1.1\r\n" + host + "\r\nHEAD /big HTTP/1.1\r\n" + host + "\r\n", 2, 2, false},
		{"RFC9110 5.3 fields in net/http's order, upstream Via and Cache-Status first", "clear", "GET /many HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"RFC9213 targeted field dropped", "clear", "GET /targeted HTTP/1.1\r\n" + host + "\r\n", 1, 1, false},
		{"RFC9110 14.2 range goes to net/http", "clear", "GET /obj HTTP/1.1\r\n" + host + "Range: bytes=0-3\r\n\r\n", 1, 0, false},
		{"RFC9110 13.1.2 If-None-Match goes to net/http", "clear", "GET /obj HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\n\r\n", 1, 0, false},
		{"fast, a range lent to net/http, fast again", "clear", "GET /obj HTTP/1.1\r\n" + host + "\r\nGET /obj HTTP/1.1\r\n" + host + "Range: bytes=1-2\r\n\r\nGET /obj HTTP/1.1\r\n" + host + "\r\n", 3, 2, false},
		{"a miss lent to net/http, then its hit on the same connection", "clear", "GET /obj?miss=1 HTTP/1.1\r\n" + host + "\r\nGET /obj?miss=1 HTTP/1.1\r\n" + host + "\r\n", 2, 1, false},
		{"RFC9112 9.3.2 pipelined requests", "tls", "GET /obj HTTP/1.1\r\n" + host + "\r\nGET /big HTTP/1.1\r\n" + host + "\r\nHEAD /own HTTP/1.1\r\n" + host + "\r\n", 3, 3, false},
		{"fast, a range lent to net/http, fast again", "tls", "GET /obj HTTP/1.1\r\n" + host + "\r\nGET /obj HTTP/1.1\r\n" + host + "Range: bytes=1-2\r\n\r\nGET /big HTTP/1.1\r\n" + host + "\r\n", 3, 2, false},
		{"a range of a blob lent to net/http", "tls", "GET /big HTTP/1.1\r\n" + host + "Range: bytes=100-70000\r\n\r\n", 1, 0, false},
		{"a miss lent to net/http, stored under https, then its hit", "tls", "GET /obj?miss=1 HTTP/1.1\r\n" + host + "\r\nGET /obj?miss=1 HTTP/1.1\r\n" + host + "\r\n", 2, 1, false},
		{"RFC9110 13.1.2 a 304 lent to net/http, then a hit", "", "GET /obj HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\n\r\nHEAD /obj HTTP/1.1\r\n" + host + "\r\n", 2, 1, false},
		{"RFC9112 9.6 a lent request with Connection: close closes", "", "GET /obj HTTP/1.1\r\n" + host + "Range: bytes=0-0\r\nConnection: close\r\n\r\n", 1, 0, true},
		{"a request with a body gives net/http the connection for good", "", "POST /obj HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\nGET /obj HTTP/1.1\r\n" + host + "\r\n", 2, 0, false},
		{"RFC9111 5.2.1 request directives go to net/http", "", "GET /obj HTTP/1.1\r\n" + host + "Cache-Control: max-stale\r\n\r\n", 1, 0, false},
		{"RFC9110 11.6.2 Authorization goes to net/http", "clear", "GET /obj HTTP/1.1\r\n" + host + "Authorization: Basic eDp5\r\n\r\n", 1, 0, false},
		{"RFC9110 12.5.5 Vary goes to net/http", "", "GET /vary HTTP/1.1\r\n" + host + "Accept-Encoding: gzip\r\n\r\n", 1, 0, false},
		{"no stored Content-Type: net/http sniffs", "clear", "GET /notype HTTP/1.1\r\n" + host + "\r\n", 1, 0, false},
		{"escaped path goes to net/http", "clear", "GET /o%62j HTTP/1.1\r\n" + host + "\r\n", 1, 0, false},
		{"HTTP/1.0 goes to net/http", "", "GET /obj HTTP/1.0\r\n" + host + "\r\n", 1, 0, true},
		{"RFC9110 15.5.20 unknown host", "", "GET /obj HTTP/1.1\r\nHost: other.example\r\n\r\n", 1, 0, false},
		{"RFC9112 3.2 missing Host is 400", "", "GET /obj HTTP/1.1\r\n\r\n", 1, 0, true},
		{"RFC9112 3.2 two Hosts are 400", "clear", "GET /obj HTTP/1.1\r\n" + host + host + "\r\n", 1, 0, true},
		{"RFC9112 5.2 obs-fold goes to net/http", "clear", "GET /obj HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", 1, 0, false},
		{"RFC9112 5.1 space before colon is 400", "clear", "GET /obj HTTP/1.1\r\n" + host + "X-A : a\r\n\r\n", 1, 0, true},
		{"bare LF line ends go to net/http", "clear", "GET /obj HTTP/1.1\n" + host[:len(host)-2] + "\n\n", 1, 0, false},
		{"garbage request line is 400", "", "GARBAGE\r\n\r\n", 1, 0, true},
		{"garbage after a fast-path hit", "tls", "GET /obj HTTP/1.1\r\n" + host + "\r\nGARBAGE\r\n\r\n", 2, 1, true},
		{"RFC9113 3.4 an h2 preface over ALPN http/1.1 is an HTTP/1 request", "tls", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1, 0, true},
		{"head larger than the fast path's buffer", "", "GET /obj HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("x", 6000) + "\r\n\r\n", 1, 0, false},
		{"RFC9112 6.1 a body goes to net/http", "clear", "GET /obj HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi", 1, 0, false},
		{"POST goes to net/http", "clear", "POST /obj HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", 1, 0, false},
	}
	var out []fastPathCase
	for _, c := range all {
		if c.only == "" || c.only == listener {
			out = append(out, c)
		}
	}
	return out
}

// matchNetHTTP runs fastPathCases(listener), each through exchange to
// the PoP with the fast path (toFast) and to the one without: their
// answers must be the same (sameAnswers), and fast's fast path must have
// answered the row's share of them.
func matchNetHTTP(t *testing.T, listener string, fast *testPoP, exchange func(t *testing.T, toFast bool, tt fastPathCase) exchanged) {
	t.Helper()
	for _, tt := range fastPathCases(listener) {
		t.Run(tt.name, func(t *testing.T) {
			before := fast.fastHits.Load()
			f := exchange(t, true, tt)
			s := exchange(t, false, tt)
			sameAnswers(t, f, s, tt.wantClose)
			wantFastHits(t, fast, before, tt.wantFast)
		})
	}
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// headerDiff describes how two headers differ, ignoring Date (each server
// stamps its own on error answers).
func headerDiff(a, b http.Header) string {
	var diffs []string
	for name := range a {
		if name != "Date" && !slices.Equal(a[name], b[name]) {
			diffs = append(diffs, name+": "+strings.Join(a[name], ", ")+" vs "+strings.Join(b[name], ", "))
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok && name != "Date" {
			diffs = append(diffs, name+": missing (net/http: "+strings.Join(b[name], ", ")+")")
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// TestFastPathTimeouts checks the server timeouts on connections the fast
// path holds: a request head that never completes, and an idle
// keep-alive connection, are both closed; a head begun on a kept-alive
// connection and never finished gets the head's deadline (read_header),
// not what is left of the idle timeout (the fast path sets the head's
// deadline unless the whole head is in).
func TestFastPathTimeouts(t *testing.T) {
	o := fastOrigin(t)
	tests := []struct {
		name     string
		timeouts string
		raw      string
		n        int           // responses before the close
		within   time.Duration // the close comes sooner
	}{
		{"incomplete head", "{read_header: 300ms, idle: 300ms}", "GET /obj HTTP/1.1\r\nHost: demo.example\r\n", 0, 5 * time.Second},
		{"idle after a request", "{read_header: 300ms, idle: 300ms}", "GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n", 1, 5 * time.Second},
		// Closed by the 300 ms head deadline; the idle timeout would take 60 s.
		{"incomplete head after a request", "{read_header: 300ms, idle: 60s}",
			"GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\nGET /obj HTTP/1.1\r\nHost: demo", 1, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := strings.Replace(fastConfig(o.URL), "    drain: 0s\n", "    drain: 0s\n    timeouts: "+tt.timeouts+"\n", 1)
			tp := startPoPConfig(t, yaml)
			tp.fill(t, 1, "/obj") // stored, so the fast path answers the requests below
			br := sendRaw(t, tp.dialClear(t), tt.raw, 30*time.Second)
			for range tt.n {
				readAnswer(t, br)
			}
			start := time.Now()
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("read after the timeout: %v, want EOF (the server closes)", err)
			}
			if waited := time.Since(start); waited > tt.within {
				t.Errorf("closed after %v, want within %v", waited, tt.within)
			}
		})
	}
}

func fastConfig(originURL string) string {
	return strings.Replace(bigConfig(originURL, ""), "max_object: 32MiB", "max_object: 1MiB", 1)
}

// TestFastPathShutdown stops a PoP holding idle fast-path connections:
// it returns promptly and the connections are closed.
func TestFastPathShutdown(t *testing.T) {
	o := fastOrigin(t)
	tp := startPoP(t, o.URL)
	// The fill stores the object just after the client has it: only a
	// stored object is a fast-path hit.
	tp.fill(t, 1, "/obj")
	br := sendRaw(t, tp.dialClear(t), objRequest, 10*time.Second)
	readAnswer(t, br)
	waitFor(t, "the fast path answered", func() bool { return tp.fastHits.Load() > 0 })
	tp.stop(t)
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after shutdown: %v, want EOF", err)
	}
}

// TestLentRequestAtShutdown shuts the PoP down while net/http is answering
// a request the fast path lent it (a miss waiting on a slow origin): the
// answer arrives whole, the connection is then closed, and the PoP stops
// cleanly.
func TestLentRequestAtShutdown(t *testing.T) {
	o, arrived, release := slowOrigin(t)
	tp := startPoP(t, o.URL)
	br := sendRaw(t, tp.dialClear(t), "GET /slow HTTP/1.1\r\nHost: demo.example\r\n\r\n", 10*time.Second)
	<-arrived
	tp.cancel() // shutdown begins with the lent request in flight
	close(release)
	wantWholeThenEOF(t, br, "the lent request")
	tp.waitStopped(t)
}

// slowOrigin is an origin that answers "slow but whole" (fresh for a
// minute), to a request for /slow only once release is closed: arrived
// receives a value when one comes.
func slowOrigin(t *testing.T) (o *testOrigin, arrived <-chan struct{}, release chan<- struct{}) {
	rel := make(chan struct{})
	arr := make(chan struct{}, 1)
	o = newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arr <- struct{}{}
			<-rel
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "slow but whole")
	})
	return o, arr, rel
}

// wantWholeThenEOF reads slowOrigin's answer from br and fails t unless
// its body is whole and the PoP then closes the connection.
func wantWholeThenEOF(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	if _, body := readAnswer(t, br); string(body) != "slow but whole" {
		t.Fatalf("%s: body %q", what, body)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("%s after its answer: %v, want EOF (the PoP closes the connection)", what, err)
	}
}

// dialClear opens a TCP connection to the PoP's clear listener, closed
// when the test ends.
func (tp *testPoP) dialClear(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tp.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendRaw gives c a deadline within from now, writes raw to it and returns
// a reader of its answers.
func sendRaw(t *testing.T, c net.Conn, raw string, within time.Duration) *bufio.Reader {
	t.Helper()
	c.SetDeadline(time.Now().Add(within))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(c)
}

// readAnswer reads a response to a GET from br, body included.
func readAnswer(t *testing.T, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, body
}

// TestFastPathHandOffMidConnection sends the HTTP/2 connection preface
// after a request the fast path answered or lent, with h2c on and off:
// net/http alone reads it then as an HTTP/1 request (it switches to
// HTTP/2 only at a connection's start), and so must the PoP with the fast
// path.
func TestFastPathHandOffMidConnection(t *testing.T) {
	o := fastOrigin(t)
	const host = "Host: demo.example\r\n"
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2c), func(t *testing.T) {
			yaml := fastConfig(o.URL)
			if h2c {
				yaml = strings.Replace(yaml, "    cache_size: 64MiB\n", "    cache_size: 64MiB\n    tls: {listen: \"127.0.0.1:0\", self_signed: true, h2c: true}\n", 1)
			}
			fast := startPoPConfig(t, yaml)
			slow := startPoPConfig(t, yaml, func(o *Options) { o.NoFastPath = true })
			for _, tp := range []*testPoP{fast, slow} {
				tp.fill(t, 1, "/obj")
			}
			tests := []struct {
				name     string
				raw      string
				wantFast int
			}{
				{"RFC9113 3.4 preface after a fast-path hit", "GET /obj HTTP/1.1\r\n" + host + "\r\n" + preface, 1},
				{"RFC9113 3.4 preface after a lent request", "GET /obj HTTP/1.1\r\n" + host + "Range: bytes=0-1\r\n\r\n" + preface, 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := fast.fastHits.Load()
					f := exchange(t, fast.addr(), tt.raw, 2, true)
					s := exchange(t, slow.addr(), tt.raw, 2, true)
					sameAnswers(t, f, s, true)
					wantFastHits(t, fast, before, tt.wantFast)
				})
			}
		})
	}
}

// TestFastPathRejectsAsSoonAsNetHTTP sends request heads that net/http
// rejects before they are complete, and never completes them: the PoP
// with the fast path answers as net/http alone does, and as soon (the
// read header timeout is 30s; both must answer within the exchange's 10s).
func TestFastPathRejectsAsSoonAsNetHTTP(t *testing.T) {
	o := fastOrigin(t)
	yaml := strings.Replace(fastConfig(o.URL), "    drain: 0s\n", "    drain: 0s\n    timeouts: {read_header: 30s}\n", 1)
	fast := startPoPConfig(t, yaml)
	slow := startPoPConfig(t, yaml, func(o *Options) { o.NoFastPath = true })
	for _, tp := range []*testPoP{fast, slow} {
		tp.fill(t, 1, "/obj")
	}
	const host = "Host: demo.example\r\n"
	tests := []struct {
		name string
		raw  string
		n    int
	}{
		{"RFC9112 3 garbage request line", "GARBAGE\r\n", 1},
		{"RFC9112 3 invalid method", "G(T /obj HTTP/1.1\r\n", 1},
		{"RFC9112 2.3 malformed version", "GET /obj HTTP/1.1x\r\n", 1},
		{"RFC9112 3.2 control character in the target", "GET /o\x01bj HTTP/1.1\r\n", 1},
		{"RFC9112 5 field line without a colon", "GET /obj HTTP/1.1\r\n" + host + "NoColon\r\n", 1},
		{"RFC9112 5 a line without a colon after one net/http rejects later", "GET /obj HTTP/1.1\r\n" + host + "X-A : a\r\nNoColon\r\n", 1},
		{"RFC9112 5.2 first field line folded", "GET /obj HTTP/1.1\r\n X-A: a\r\n", 1},
		{"garbage after a fast-path hit", "GET /obj HTTP/1.1\r\n" + host + "\r\nGARBAGE\r\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := exchange(t, fast.addr(), tt.raw, tt.n, true)
			s := exchange(t, slow.addr(), tt.raw, tt.n, true)
			sameAnswers(t, f, s, true)
		})
	}
}
