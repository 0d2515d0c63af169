package fastpath

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// fixedCache is a Cache with fixed answers: /hit from the heap, /blob
// from a blob; it declines every other path.
type fixedCache struct {
	blob    *blob.Blob
	answers atomic.Int64
}

func (c *fixedCache) ServeFast(s *Sender, r *Request) {
	var body []byte
	var b *blob.Blob
	switch string(r.Path) {
	case "/hit":
		body = []byte("hit")
	case "/blob":
		if c.blob == nil {
			return
		}
		b = c.blob
	default:
		return
	}
	size := int64(len(body))
	if b != nil {
		size = b.Size()
	}
	head := append(s.Buffer(), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"...)
	head = AppendField(head, "Content-Length", strconv.FormatInt(size, 10))
	if r.Close {
		head = append(head, "Connection: close\r\n"...)
	}
	head = append(head, "\r\n"...)
	s.Send(head, body, b)
	c.answers.Add(1)
}

// testServer is a fast-path Server on a loopback Listener with net/http
// behind it, which answers "net/http <path>".
type testServer struct {
	addr  string
	cache *fixedCache
	sent  atomic.Uint64
	srv   *Server
}

func startServer(t *testing.T, c *fixedCache) *testServer {
	t.Helper()
	return startServerFor(t, c, c)
}

// startServerFor is startServer with any Cache (fc is ts.cache, may be
// nil).
func startServerFor(t *testing.T, c Cache, fc *fixedCache) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), cache: fc}
	l := NewListener(ln, 0, 10*time.Second, &ts.sent)
	ts.srv = NewServer(l, c, Options{ReadHeaderTimeout: 10 * time.Second})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "net/http "+r.URL.Path)
		}),
		ConnState: ConnState,
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
	return ts
}

// roundTrips sends raw on a new connection and reads one response per
// method, their bodies included.
func roundTrips(t *testing.T, addr, raw string, methods ...string) (net.Conn, *bufio.Reader, []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var bodies []string
	for i, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d: body: %v", i+1, err)
		}
		bodies = append(bodies, string(body))
	}
	return c, br, bodies
}

// settled polls get until it returns want or a deadline passes, and
// returns its last value: counters move just after the client has its
// answer.
func settled[T comparable](get func() T, want T) T {
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := get()
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServer sends requests the Cache answers, and ones it declines or
// never sees, on one connection each: every answer comes from the right
// side, and the connection stays open or closes as HTTP/1.1 says. A
// connection that stays open is shown to by one more request on it.
func TestServer(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	c := &fixedCache{}
	if b, err := blob.New("fastpath-test", data); err == nil {
		c.blob = b
	}
	ts := startServer(t, c)
	const host = "Host: a.example\r\n"
	tests := []struct {
		name       string
		raw        string
		methods    []string
		want       []string
		wantCache  int64 // answers from the Cache
		wantClosed bool
	}{
		{"a hit from the Cache", "GET /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET"}, []string{"hit"}, 1, false},
		{"RFC9110 9.3.2 HEAD: the head alone", "HEAD /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"HEAD"}, []string{""}, 1, false},
		{"RFC9112 9.3.2 pipelined hits", "GET /hit HTTP/1.1\r\n" + host + "\r\nGET /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET", "GET"}, []string{"hit", "hit"}, 2, false},
		{"RFC9112 9.6 Connection: close closes", "GET /hit HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			[]string{"GET"}, []string{"hit"}, 1, true},
		{"declined: lent to net/http, then a hit on the same connection", "GET /miss HTTP/1.1\r\n" + host + "\r\nGET /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET", "GET"}, []string{"net/http /miss", "hit"}, 1, false},
		{"RFC9110 14.2 a range is lent to net/http", "GET /hit HTTP/1.1\r\n" + host + "Range: bytes=0-0\r\n\r\n",
			[]string{"GET"}, []string{"net/http /hit"}, 0, false},
		{"RFC9112 6.1 a body gives net/http the connection for good", "POST /hit HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\nGET /hit HTTP/1.1\r\n" + host + "\r\n",
			[]string{"POST", "GET"}, []string{"net/http /hit", "net/http /hit"}, 0, false},
		{"HTTP/1.0 goes to net/http", "GET /hit HTTP/1.0\r\n" + host + "\r\n",
			[]string{"GET"}, []string{"net/http /hit"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.answers.Load()
			conn, br, got := roundTrips(t, ts.addr, tt.raw, tt.methods...)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("bodies %q, want %q", got, tt.want)
			}
			// The Cache counts an answer once Send returns, which may be
			// just after the client has it.
			if n := settled(func() int64 { return c.answers.Load() - before }, tt.wantCache); n != tt.wantCache {
				t.Errorf("the Cache answered %d, want %d", n, tt.wantCache)
			}
			if tt.wantClosed {
				if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
					t.Errorf("after the answers: %v, want EOF", err)
				}
				return
			}
			io.WriteString(conn, "GET /next HTTP/1.1\r\n"+host+"\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("the connection did not stay open: %v", err)
			}
		})
	}
	t.Run("a blob body with sendfile", func(t *testing.T) {
		if c.blob == nil {
			t.Skip("blobs unsupported here")
		}
		before := ts.sent.Load()
		_, _, got := roundTrips(t, ts.addr, "GET /blob HTTP/1.1\r\n"+host+"\r\n", "GET")
		if got[0] != string(data) {
			t.Errorf("body of %d bytes, want the blob's %d", len(got[0]), len(data))
		}
		if n := settled(func() uint64 { return ts.sent.Load() - before }, uint64(len(data))); n != uint64(len(data)) {
			t.Errorf("%d bytes counted as sent with sendfile, want %d", n, len(data))
		}
	})
}

// TestServerShutdown shuts the server down with an idle connection open:
// it closes, and Shutdown returns.
func TestServerShutdown(t *testing.T) {
	ts := startServer(t, &fixedCache{})
	_, br, _ := roundTrips(t, ts.addr, "GET /hit HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after Shutdown: %v, want EOF", err)
	}
}

// TestParseRequest checks what the fast path takes from a head it may
// answer, and that it declines the heads net/http must answer.
func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		ok     bool
		method string
		target string
		path   string
		query  string
		host   string
		close  bool
	}{
		{"GET with a query", "GET /a/b.c?x=1&y=2 HTTP/1.1\r\nHost: a.example\r\n\r\n",
			true, "GET", "/a/b.c?x=1&y=2", "/a/b.c", "x=1&y=2", "a.example", false},
		{"RFC9112 9.6 HEAD with Connection: close", "HEAD /o HTTP/1.1\r\nhost: A.example:80\r\nConnection: keep-alive, close\r\n\r\n",
			true, "HEAD", "/o", "/o", "", "A.example:80", true},
		{"RFC9110 7.2 Host value trimmed", "GET / HTTP/1.1\r\nHost: \t[::1]:8080 \r\n\r\n",
			true, "GET", "/", "/", "", "[::1]:8080", false},
		{"RFC9110 14.2 Range declined", "GET /o HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n", false, "", "", "", "", "", false},
		{"RFC9112 3.2.2 absolute form declined", "GET http://a/o HTTP/1.1\r\nHost: a\r\n\r\n", false, "", "", "", "", "", false},
		{"escaped path declined", "GET /o%62j HTTP/1.1\r\nHost: a\r\n\r\n", false, "", "", "", "", "", false},
		{"RFC9112 3.2 two Hosts declined", "GET /o HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false, "", "", "", "", "", false},
		{"RFC9112 5.2 obs-fold declined", "GET /o HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", false, "", "", "", "", "", false},
		{"RFC9110 7.6.1 Connection naming a field declined", "GET /o HTTP/1.1\r\nHost: a\r\nConnection: X-A\r\n\r\n", false, "", "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			ok := parseRequest([]byte(tt.head), &r)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			got := []string{r.Method, string(r.Target), string(r.Path), string(r.Query), string(r.Host)}
			want := []string{tt.method, tt.target, tt.path, tt.query, tt.host}
			if strings.Join(got, " ") != strings.Join(want, " ") || r.Close != tt.close {
				t.Errorf("got %q close=%v, want %q close=%v", got, r.Close, want, tt.close)
			}
		})
	}
}

// TestParseRequestLogged checks the fields the access log keeps, as
// net/http's Header gives them: the first User-Agent and Referer, trimmed;
// the X-Request-Id only when there is one.
func TestParseRequestLogged(t *testing.T) {
	tests := []struct {
		name                    string
		fields                  string
		userAgent, referer, rid string
	}{
		{"all three", "User-Agent: curl/8.5.0\r\nReferer: https://a/b\r\nX-Request-Id: abc-123\r\n", "curl/8.5.0", "https://a/b", "abc-123"},
		{"none", "Accept: */*\r\n", "", "", ""},
		{"RFC9110 5.1 names are case-insensitive", "user-agent: u\r\nREFERER: r\r\nx-request-id: i\r\n", "u", "r", "i"},
		{"RFC9110 5.5 values trimmed of SP and HTAB", "User-Agent: \t u v \t\r\n", "u v", "", ""},
		{"the first User-Agent, as Header.Get", "User-Agent: one\r\nUser-Agent: two\r\n", "one", "", ""},
		{"the first Referer even when empty", "Referer:\r\nReferer: two\r\n", "", "", ""},
		{"two request IDs: none", "X-Request-Id: one\r\nX-Request-Id: two\r\n", "", "", ""},
		{"an empty request ID and another: none", "X-Request-Id:\r\nX-Request-Id: two\r\n", "", "", ""},
		{"obs-text kept as sent", "User-Agent: \xc3\xa9\xff\r\n", "\xc3\xa9\xff", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if !parseRequest([]byte("GET /o HTTP/1.1\r\nHost: a\r\n"+tt.fields+"\r\n"), &r) {
				t.Fatal("declined")
			}
			got := []string{string(r.UserAgent), string(r.Referer), string(r.RequestID)}
			want := []string{tt.userAgent, tt.referer, tt.rid}
			if !slices.Equal(got, want) {
				t.Errorf("user agent, referer, request ID = %q, want %q", got, want)
			}
		})
	}
}

// TestServerSegments sends requests in the pieces a client may send them
// in, each row on one connection: whatever the segments, every answer
// comes from the right side, in order. The clear listener serves inside
// one poller read per connection (rawloop.go), waiting without a read
// after a short one, so a wake-up it lost would hang a row (the
// connection's deadline fails it); heads cut short and heads it declines
// leave that loop and come back to it.
func TestServerSegments(t *testing.T) {
	ts := startServer(t, &fixedCache{})
	const host = "Host: a.example\r\n"
	hit := "GET /hit HTTP/1.1\r\n" + host + "\r\n"
	many := strings.Repeat(hit, 200) // more than a buffer (headMax) of heads
	tests := []struct {
		name     string
		segments []string // written one by one, each after the answers to the one before
		answers  []int    // answers to read after each segment
		want     string   // the bodies, joined by |
	}{
		{"one at a time, waiting for each answer", slices.Repeat([]string{hit}, 50), slices.Repeat([]int{1}, 50),
			strings.TrimSuffix(strings.Repeat("hit|", 50), "|")},
		{"a head in three segments", []string{"GET /hit HTT", "P/1.1\r\n" + host, "\r\n"}, []int{0, 0, 1}, "hit"},
		{"a head in two, then a whole one", []string{"GET /hit HTTP/1.1\r\n", host + "\r\n", hit}, []int{0, 1, 1}, "hit|hit"},
		{"a whole head and the start of the next", []string{hit + "GET /hit", " HTTP/1.1\r\n" + host + "\r\n"}, []int{1, 1}, "hit|hit"},
		{"pipelined: a hit, a declined one, a hit", []string{hit + "GET /miss HTTP/1.1\r\n" + host + "\r\n" + hit}, []int{3},
			"hit|net/http /miss|hit"},
		{"declined, then hits waited for", []string{"GET /miss HTTP/1.1\r\n" + host + "\r\n", hit, hit}, []int{1, 1, 1},
			"net/http /miss|hit|hit"},
		{"more pipelined heads than a buffer holds", []string{many}, []int{200},
			strings.TrimSuffix(strings.Repeat("hit|", 200), "|")},
		{"RFC9112 2.2 a bare LF goes to net/http", []string{hit, "GET /hit HTTP/1.1\n" + host + "\r\n"}, []int{1, 1}, "hit|net/http /hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			var got []string
			for i, seg := range tt.segments {
				if _, err := io.WriteString(c, seg); err != nil {
					t.Fatalf("segment %d: %v", i+1, err)
				}
				for range tt.answers[i] {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("after segment %d: %v (bodies so far %q)", i+1, err, got)
					}
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatalf("after segment %d: body: %v", i+1, err)
					}
					got = append(got, string(body))
				}
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("bodies %q, want %q", g, tt.want)
			}
		})
	}
	t.Run("the client leaves mid-head", func(t *testing.T) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, hit+"GET /hit HTTP/1.1\r\nHo")
		c.(*net.TCPConn).CloseWrite()
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the whole request's answer: %v", err)
		}
		// net/http, given the rest, answers the cut head or closes.
		if _, err := io.Copy(io.Discard, br); err != nil {
			t.Fatalf("after the cut head: %v, want the connection closed", err)
		}
	})
}

// closingCache answers a request and returns only once its connection has
// begun to close (Shutdown past its deadline), so that the connection is
// marked idle again while Shutdown closes it.
type closingCache struct{ started chan struct{} }

func (c *closingCache) ServeFast(s *Sender, r *Request) {
	s.Send(append(s.Buffer(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"...), nil, nil)
	c.started <- struct{}{}
	for deadline := time.Now().Add(10 * time.Second); !s.c.closed.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// TestServerShutdownMidAnswer shuts the server down while an answer is in
// progress and lets the answer end only once Shutdown, its deadline past,
// is closing the connection: Shutdown returns. (A Close waits for the
// serving loop's read, and the loop, answer done, marks the connection
// under the server's lock: closing under that lock deadlocked.)
func TestServerShutdownMidAnswer(t *testing.T) {
	cc := &closingCache{started: make(chan struct{}, 1)}
	ts := startServerFor(t, cc, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
	<-cc.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want its deadline's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return: deadlocked closing a connection mid-answer")
	}
}

// TestServerSegmentsRandom sends random streams of requests (hits, HEADs,
// declined ones, a bare LF that hands the connection to net/http, a
// Connection: close), each cut at random points into segments written one
// after another, and checks every answer against what the stream asks
// for, whatever the cuts: the serving loop's reads, waits and exits
// (rawloop.go) must not depend on how the bytes arrive.
func TestServerSegmentsRandom(t *testing.T) {
	ts := startServer(t, &fixedCache{})
	const host = "Host: a.example\r\n"
	kinds := []struct {
		raw     string
		method  string
		fast    string // the body when the fast path answers
		handOff bool   // net/http has the connection from here on
		close   bool   // the last answer on the connection
	}{
		{"GET /hit HTTP/1.1\r\n" + host + "\r\n", "GET", "hit", false, false},
		{"HEAD /hit HTTP/1.1\r\n" + host + "\r\n", "HEAD", "", false, false},
		{"GET /miss HTTP/1.1\r\n" + host + "\r\n", "GET", "net/http /miss", false, false},
		{"GET /hit HTTP/1.1\n" + host + "\r\n", "GET", "net/http /hit", true, false},
		{"GET /hit HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", "GET", "hit", false, true},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for row := range 150 {
		var stream strings.Builder
		var methods, want []string
		handedOff := false
		for range 1 + rng.IntN(8) {
			k := kinds[rng.IntN(len(kinds))]
			stream.WriteString(k.raw)
			methods = append(methods, k.method)
			switch {
			case k.method == "HEAD":
				want = append(want, "")
			case handedOff || k.handOff:
				want = append(want, "net/http /"+strings.Fields(k.raw)[1][1:])
			default:
				want = append(want, k.fast)
			}
			handedOff = handedOff || k.handOff
			if k.close {
				break
			}
		}
		raw := stream.String()
		cuts := []int{0, len(raw)}
		for range rng.IntN(6) {
			cuts = append(cuts, rng.IntN(len(raw)))
		}
		slices.Sort(cuts)
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			for i := 1; i < len(cuts); i++ {
				if _, err := io.WriteString(c, raw[cuts[i-1]:cuts[i]]); err != nil {
					return
				}
			}
		}()
		br := bufio.NewReader(c)
		var got []string
		for i, m := range methods {
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				t.Fatalf("row %d (cuts %v of %q): response %d: %v (bodies so far %q)", row, cuts, raw, i+1, err, got)
			}
			body, _ := io.ReadAll(resp.Body)
			got = append(got, string(body))
		}
		c.Close()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %d (cuts %v of %q): bodies %q, want %q", row, cuts, raw, got, want)
		}
	}
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// TestArmWait checks the wait's read deadline: read_header before the
// first request; after it idle, set 1.25 × idle ahead and not moved again
// until a quarter of idle has passed; read_header again when idle is 0.
func TestArmWait(t *testing.T) {
	const readHeader, idle = 10 * time.Second, 100 * time.Second
	s := &Server{readHeader: readHeader, idle: idle}
	dc := &deadlineConn{}
	fc := &fastConn{rw: dc, first: true}
	within := func(got time.Time, ahead time.Duration) bool {
		d := time.Until(got)
		return d > ahead-time.Second && d <= ahead
	}
	s.armWait(fc)
	if len(dc.set) != 1 || !within(dc.set[0], readHeader) {
		t.Fatalf("before the first request: deadlines %v, want one read_header (%v) ahead", dc.set, readHeader)
	}
	s.armWait(fc)
	if len(dc.set) != 2 || !within(dc.set[1], idle+idle/4) {
		t.Fatalf("after it: deadlines %v, want 1.25 x idle ahead", dc.set)
	}
	s.armWait(fc)
	s.armWait(fc)
	if len(dc.set) != 2 {
		t.Fatalf("within a quarter of idle: deadline moved again (%v)", dc.set)
	}
	fc.idleArmed -= int64(idle / 4) // a quarter of idle later
	s.armWait(fc)
	if len(dc.set) != 3 || !within(dc.set[2], idle+idle/4) {
		t.Fatalf("a quarter of idle later: deadlines %v, want a third, 1.25 x idle ahead", dc.set)
	}
	fc.idleArmed = 0 // another deadline was set meanwhile (a head's, a loan's)
	s.armWait(fc)
	if len(dc.set) != 4 {
		t.Fatalf("after another deadline: not re-armed (%v)", dc.set)
	}
	s.idle = 0
	s.armWait(fc)
	if len(dc.set) != 5 || !within(dc.set[4], readHeader) {
		t.Fatalf("idle 0: deadlines %v, want read_header ahead", dc.set)
	}
}
