package pop

// The attacks of issue 16, each reproduced as the issue describes it, with
// the behaviour the PoP must keep under them. Run them with
// go test -run Attack ./pop.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// hostileKnobs are the settings the attack tests turn; hostileDefaults
// gives each its value when a test leaves it alone.
type hostileKnobs struct {
	Origin        string
	MaxObject     string // services[].cache.max_object
	HitForMiss    string // services[].cache.hit_for_miss
	FillTimeout   string // services[].origin.timeouts.fill
	FirstByte     string // services[].origin.timeouts.first_byte
	SvcDetached   int    // services[].origin.detached_fills
	EjectFailures int    // services[].origin.ejection.failures
	PoPDetached   int    // pops[].limits.detached_fills
	InflightBytes string // pops[].limits.inflight_bytes
	MaxRanges     int    // pops[].limits.max_ranges
	RequestBuffer string // pops[].limits.request_buffer
	RequestBody   string // pops[].timeouts.request_body
	Send          string // pops[].timeouts.send
	H2C           bool   // pops[].tls.h2c
	HTTP2         string // pops[].tls.http2 (with H2C): "" for the default
	NoFastPath    bool   // Options.NoFastPath: every request through net/http
	NoSlice       bool   // services[].cache.slice.enabled: false
}

func hostileDefaults(originURL string) hostileKnobs {
	return hostileKnobs{
		Origin: originURL, MaxObject: "1MiB", HitForMiss: "2m", FillTimeout: "1m", FirstByte: "5s",
		SvcDetached: 16, EjectFailures: 5, PoPDetached: 64, InflightBytes: "256MiB",
		MaxRanges: 200, RequestBuffer: "1MiB", RequestBody: "5s", Send: "10s",
	}
}

var hostileConfig = template.Must(template.New("hostile").Parse(`
services:
  - name: demo
    hostnames: [demo.example, 127.0.0.1]
    origin:
      servers: [{url: "{{.Origin}}"}]
      timeouts: {connect: 2s, first_byte: {{.FirstByte}}, idle: 5s, fill: {{.FillTimeout}}}
      detached_fills: {{.SvcDetached}}
      ejection: {failures: {{.EjectFailures}}, cooldown: 30s}
    cache:
      max_object: {{.MaxObject}}
      hit_for_miss: {{.HitForMiss}}
{{- if .NoSlice}}
      slice: {enabled: false}
{{- end}}
pops:
  - name: test
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:0
    admin: 127.0.0.2:0
    cache_size: 64MiB
    drain: 0s
    timeouts: {send: {{.Send}}, request_body: {{.RequestBody}}}
    limits: {inflight_bytes: {{.InflightBytes}}, detached_fills: {{.PoPDetached}}, max_ranges: {{.MaxRanges}}, request_buffer: {{.RequestBuffer}}}
{{- if .H2C}}
    tls: {listen: "127.0.0.1:0", self_signed: true, http3: false, h2c: true{{if .HTTP2}}, http2: {{.HTTP2}}{{end}}}
{{- end}}
purge:
  token: s3cret
`))

// startHostile starts a PoP with the knobs k.
func startHostile(t *testing.T, k hostileKnobs) *testPoP {
	t.Helper()
	var b strings.Builder
	if err := hostileConfig.Execute(&b, k); err != nil {
		t.Fatal(err)
	}
	return startPoPConfig(t, b.String(), func(o *Options) { o.NoFastPath = k.NoFastPath })
}

// addr is the PoP's serving address, for raw connections.
func (tp *testPoP) addr() string { return strings.TrimPrefix(tp.url, "http://") }

// rawExchange sends raw bytes on a new connection and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", firstLine(raw), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\r'); i >= 0 {
		return s[:i]
	}
	return s
}

// pattern returns n bytes of a repeating pattern, so a body cut or
// shifted anywhere shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%251%26)
	}
	return b
}

// gate releases whoever waits on it once, and on test cleanup at the
// latest, so no origin handler outlives its test.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// smallSendListener gives every accepted connection a small send buffer,
// so an origin that writes to a PoP that stopped reading blocks soon.
type smallSendListener struct{ net.Listener }

func (l smallSendListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(64 << 10)
	}
	return c, err
}

// TestAttackStalledReaders is issue 16 item 3's first attack: a large
// cacheable body of unknown length with max_object 1 MiB and two clients
// that send their request and never read. Past max_object the fill stops
// storing and relays at its readers' pace: the origin's writes block
// after a few MiB (before the fix the PoP read the whole body at full
// speed).
func TestAttackStalledReaders(t *testing.T) {
	const total = 64 << 20
	var written atomic.Int64
	var lastWrite atomic.Int64 // unix nanoseconds of the last write that returned
	release := newGate(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release.ch:
		case <-r.Context().Done():
			return
		}
		buf := pattern(32 << 10)
		for written.Load() < total {
			n, err := w.Write(buf)
			written.Add(int64(n))
			lastWrite.Store(time.Now().UnixNano())
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	srv.Listener = smallSendListener{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	tp := startHostile(t, hostileDefaults(srv.URL))
	t.Cleanup(release.open) // before the PoP and the origin stop

	var conns []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", tp.addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		if _, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: demo.example\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn) // never read
	}
	waitFor(t, "both clients to join the fill", func() bool { return tp.fills.joined("http://demo.example/big") == 2 })
	release.open()
	waitFor(t, "the origin's writes to block", func() bool {
		last := lastWrite.Load()
		return last != 0 && time.Since(time.Unix(0, last)) > 300*time.Millisecond
	})
	const bound = 12 << 20 // max_object + relay window + socket buffers, with room
	got := written.Load()
	held := tp.inflight.used.Load()
	t.Logf("origin wrote %d bytes (%.1f MiB) of %d before its writes blocked; in-flight budget used %d bytes", got, float64(got)/(1<<20), total, held)
	if got >= bound {
		t.Errorf("origin wrote %d bytes to a fill whose clients read nothing; want < %d (max_object + relay window + socket buffers)", got, bound)
	}
	if held > relayWindow+3*chunkSize {
		t.Errorf("the relaying fill holds %d bytes of the budget; want at most the relay window and its partial chunks (%d)", held, relayWindow+3*chunkSize)
	}
	if n := tp.store.Stats().Items; n != 0 {
		t.Errorf("store holds %d items; a body above max_object must not be stored", n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "the fill to stop once its clients left", func() bool { return tp.fills.inFlight() == 0 && tp.inflight.used.Load() == 0 })
}

// TestAttackInflightBudget is issue 16 item 3's budget: with
// limits.inflight_bytes 2 MiB, four stored fills with slow bodies hold all
// of it; fills that start meanwhile are relayed whole but not stored
// (Cache-Status detail inflight-budget), and the budget is never exceeded.
func TestAttackInflightBudget(t *testing.T) {
	const (
		limit   = 2 << 20
		holders = 4
		holdLen = limit / holders // each holder's body fills its share exactly
		lateLen = 256 << 10
		late    = 2
	)
	release := newGate(t)
	holdBody, lateBody := pattern(holdLen), pattern(lateLen)
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		if strings.HasPrefix(r.URL.Path, "/late/") {
			w.Header().Set("Content-Length", fmt.Sprint(lateLen))
			w.Write(lateBody)
			return
		}
		// A slow body: all but its last byte, then a pause until released.
		w.Header().Set("Content-Length", fmt.Sprint(holdLen))
		w.Write(holdBody[:holdLen-1])
		w.(http.Flusher).Flush()
		select {
		case <-release.ch:
		case <-r.Context().Done():
			return
		}
		w.Write(holdBody[holdLen-1:])
	})
	k := hostileDefaults(o.URL)
	k.MaxObject, k.InflightBytes = "4MiB", "2MiB"
	tp := startHostile(t, k)
	t.Cleanup(release.open) // before the PoP and the origin stop

	type result struct {
		status string
		body   []byte
	}
	results := make(map[string]result)
	var mu sync.Mutex
	var wg sync.WaitGroup
	fetch := func(path string) {
		wg.Go(func() {
			resp, body := tp.get(t, path)
			mu.Lock()
			results[path] = result{resp.Header.Get("Cache-Status"), body}
			mu.Unlock()
		})
	}
	for i := range holders {
		fetch(fmt.Sprintf("/hold/%d", i))
	}
	waitFor(t, "the holders to take the whole budget", func() bool { return tp.inflight.used.Load() == limit })
	denied := tp.inflight.denied.Load()
	for i := range late {
		fetch(fmt.Sprintf("/late/%d", i))
	}
	// Each late fill reached the origin and left the group: with the
	// holders holding the whole budget, only a refusal does that. (The
	// refusal count alone is no signal: one fill may be refused twice, at
	// its start and by its relay, before the other has begun.)
	waitFor(t, "the late fills to be refused by the budget", func() bool {
		for i := range late {
			if o.count(fmt.Sprintf("/late/%d", i)) != 1 {
				return false
			}
		}
		return tp.fills.inFlight() == holders && tp.inflight.denied.Load() >= denied+late
	})
	release.open()
	wg.Wait()

	for path, r := range results {
		want := holdBody
		if strings.HasPrefix(path, "/late/") {
			want = lateBody
			if !strings.Contains(r.status, "detail=inflight-budget") || strings.Contains(r.status, "stored") {
				t.Errorf("%s: Cache-Status %q; want detail=inflight-budget and not stored", path, r.status)
			}
		} else if !strings.Contains(r.status, "stored") {
			t.Errorf("%s: Cache-Status %q; want stored", path, r.status)
		}
		if !bytes.Equal(r.body, want) {
			t.Errorf("%s: body of %d bytes differs from the origin's %d", path, len(r.body), len(want))
		}
	}
	t.Logf("in-flight budget peak %d of %d bytes; takes refused %d", tp.inflight.Peak(), limit, tp.inflight.denied.Load())
	if p := tp.inflight.Peak(); p > limit {
		t.Errorf("in-flight bytes peaked at %d; the limit is %d", p, limit)
	}
	waitFor(t, "fills done and the budget given back", func() bool { return tp.fills.inFlight() == 0 && tp.inflight.used.Load() == 0 })
	for i := range holders {
		path := fmt.Sprintf("/hold/%d", i)
		waitFor(t, path+" stored", func() bool {
			resp, _ := tp.get(t, path)
			return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
		})
	}
	for i := range late {
		path := fmt.Sprintf("/late/%d", i)
		if resp, _ := tp.get(t, path); strings.Contains(resp.Header.Get("Cache-Status"), "; hit") || o.count(path) != 2 {
			t.Errorf("%s was stored (Cache-Status %q, origin requests %d); a fill refused by the budget is not", path, resp.Header.Get("Cache-Status"), o.count(path))
		}
	}
}

// TestAttackNoPreallocation is issue 16 item 3's third attack: 20 fills
// whose origin announces a 60 MiB Content-Length and then sends nothing.
// Before the fix each preallocated its announced length; now a fill holds
// at most its first chunk until bytes come.
func TestAttackNoPreallocation(t *testing.T) {
	const fills = 20
	release := newGate(t)
	var arrived atomic.Int32
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Length", fmt.Sprint(60<<20))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		arrived.Add(1)
		select {
		case <-release.ch:
		case <-r.Context().Done():
		}
	})
	k := hostileDefaults(o.URL)
	k.MaxObject, k.SvcDetached = "64MiB", 0
	tp := startHostile(t, k)
	t.Cleanup(release.open) // before the PoP and the origin stop

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range fills {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/silent/%d", tp.url, i), nil)
			req.Host = "demo.example"
			if resp, err := tp.client.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	waitFor(t, "every fill to have its response header", func() bool {
		return arrived.Load() == fills && publishedFills(tp) == fills
	})
	used := tp.inflight.used.Load()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d silent fills of 60 MiB hold %d bytes of the in-flight budget; heap grew %.1f MiB", fills, used, float64(grew)/(1<<20))
	if used > fills*chunkSize {
		t.Errorf("in-flight bytes %d; want at most one %d-byte chunk per fill (%d)", used, chunkSize, fills*chunkSize)
	}
	if grew > 64<<20 {
		t.Errorf("heap grew by %d bytes for fills that received no body", grew)
	}
	release.open() // the origin ends its bodies short
	cancel()
	wg.Wait()
	waitFor(t, "fills ended", func() bool { return tp.fills.inFlight() == 0 && tp.inflight.used.Load() == 0 })
}

// publishedFills counts the fills in flight whose response header is in.
func publishedFills(tp *testPoP) int { return tp.fills.published() }

// TestAttackAbortedRequests is issue 16 item 4: requests for distinct URLs
// reset right after they are sent, to an origin that holds its answer.
// Fills whose every client left go on only within the detached-fill
// bounds (per service and PoP-wide); the origin completes at most that
// many, and the rest see their request context cancelled.
func TestAttackAbortedRequests(t *testing.T) {
	const n = 200
	tests := []struct {
		name                     string
		svcDetached, popDetached int
		h2, noFastPath           bool
		want                     int
		http2                    string // the HTTP/2 server (tls.http2)
	}{
		{"issue 16 item 4 per-service bound, HTTP 1.1 client closes after sending", 5, 64, false, false, 5, ""},
		{"issue 16 item 4 PoP-wide bound, HTTP 1.1 client closes after sending", 16, 3, false, false, 3, ""},
		{"issue 16 item 4 no detached fills, HTTP 1.1 client closes after sending", 0, 64, false, false, 0, ""},
		{"issue 16 item 4 per-service bound, HTTP 1.1 without the fast path", 5, 64, false, true, 5, ""},
		{"issue 16 item 4 HTTP2 rapid reset (CVE-2023-44487), net/http's HTTP/2 server", 4, 64, true, false, 4, "net/http"},
		{"issue 16 item 4 HTTP2 rapid reset (CVE-2023-44487), the PoP's own HTTP/2 server", 4, 64, true, false, 4, "outpost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := newGate(t)
			var arrived, holding, active, cancelled atomic.Int32
			body := pattern(64 << 10)
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/warm" {
					cacheable("warm")(w, r)
					return
				}
				arrived.Add(1)
				active.Add(1)
				defer active.Add(-1)
				holding.Add(1)
				select {
				case <-release.ch:
					holding.Add(-1)
					if r.Context().Err() != nil {
						cancelled.Add(1)
						return
					}
					w.Header().Set("Cache-Control", "public, max-age=60")
					w.Write(body)
				case <-r.Context().Done():
					holding.Add(-1)
					cancelled.Add(1)
				}
			})
			k := hostileDefaults(o.URL)
			k.SvcDetached, k.PoPDetached, k.H2C, k.NoFastPath, k.HTTP2 = tt.svcDetached, tt.popDetached, tt.h2, tt.noFastPath, tt.http2
			// Long enough that only a client leaving can end a held fill
			// before the wait below gives up.
			k.FirstByte = "60s"
			tp := startHostile(t, k)
			t.Cleanup(release.open) // before the PoP and the origin stop
			defer func() {
				if t.Failed() {
					t.Logf("state: %d requests counted, %d fills in flight, %d held at the origin (%d arrived), %d detached slots",
						tp.Stats().Requests, tp.fills.inFlight(), holding.Load(), arrived.Load(), tp.detached.used.Load())
				}
			}()
			var warm uint64
			if tt.h2 {
				rapidReset(t, tp, n)
				warm = tp.Stats().OriginBytes
			} else {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						conn, err := net.Dial("tcp", tp.addr())
						if err != nil {
							t.Error(err)
							return
						}
						fmt.Fprintf(conn, "GET /a/%d HTTP/1.1\r\nHost: demo.example\r\n\n", i)
						conn.Close()
					})
				}
				wg.Wait()
			}
			// HTTP/2 streams reset before their handler starts never become
			// requests, so only HTTP/1.1 can wait for all n.
			waitFor(t, "every aborted request handled and every fill beyond the bound cancelled", func() bool {
				return (tt.h2 || tp.Stats().Requests >= n) && tp.fills.inFlight() == tt.want &&
					int(holding.Load()) == tt.want && int(tp.detached.used.Load()) == tt.want
			})
			live := holding.Load()
			release.open()
			waitFor(t, "the detached fills to finish and the origin to be idle", func() bool {
				return tp.fills.inFlight() == 0 && active.Load() == 0
			})
			waitFor(t, "the detached fills stored", func() bool { return tp.store.Stats().Items >= int64(tt.want) })
			// What the origin served is what the PoP read of its bodies: a
			// request the PoP gave up is never read, whenever the origin
			// noticed.
			served := (tp.Stats().OriginBytes - warm) / uint64(len(body))
			t.Logf("%d requests reset: %d reached the origin, %d still wanted when released, %d cancelled; %d bodies read, %d stored",
				n, arrived.Load(), live, cancelled.Load(), served, tp.store.Stats().Items)
			// (live is only logged: the wait above saw exactly the bound
			// held at the origin, and a count taken again can be off for
			// a moment, through no fault of the PoP: a cancelled request
			// the origin has yet to notice, beside a detached one that has
			// yet to arrive. What the origin served, below, is settled.)
			// Over HTTP/1.1 every request was handled before the release;
			// an HTTP/2 stream's handler may run after it (its reset
			// already seen) and take a slot the released fills gave back,
			// so there only the bound at any one time holds.
			if !tt.h2 {
				if int(served) != tt.want {
					t.Errorf("the origin served %d bodies; want the detached bound %d", served, tt.want)
				}
				if n := tp.store.Stats().Items; n != int64(tt.want) {
					t.Errorf("store holds %d items; want the %d detached fills", n, tt.want)
				}
			}
			if tp.detached.used.Load() != 0 || tp.inflight.used.Load() != 0 {
				t.Errorf("after the fills: %d detached slots and %d in-flight bytes still held", tp.detached.used.Load(), tp.inflight.used.Load())
			}
		})
	}
}

// rapidReset opens one HTTP/2 (h2c) connection to the PoP and sends n
// requests on it, each stream reset as soon as its HEADERS frame is
// written. A last request on the connection fences them: the server
// handles a connection's frames in order, so by its answer every reset
// before it has been seen.
func rapidReset(t *testing.T, tp *testPoP, n int) {
	t.Helper()
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	warm := func() {
		req, _ := http.NewRequest(http.MethodGet, tp.url+"/warm", nil)
		req.Host = "demo.example"
		resp, _ := doRead(t, client, req)
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s; want HTTP/2", resp.Proto)
		}
	}
	// One request first, so every stream after it shares its connection.
	warm()
	defer warm()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				WroteHeaders: cancel, // RST_STREAM right behind HEADERS
			})
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/a/%d", tp.url, i), nil)
			req.Host = "demo.example"
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// TestAttackMalformedBody is issue 16 item 5: ten POSTs with a bad chunk
// size are the client's fault, 400, and never count against the origin:
// a GET after them still reaches it (before the fix they ejected every
// origin server).
func TestAttackMalformedBody(t *testing.T) {
	tests := []struct {
		name, requestBuffer string
	}{
		{"issue 16 item 5 RFC9112 7.1 body buffered before the origin", "1MiB"},
		{"issue 16 item 5 RFC9112 7.1 body streamed to the origin", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var posts atomic.Int32
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					if _, err := io.ReadAll(r.Body); err != nil {
						return
					}
					posts.Add(1)
				}
				io.WriteString(w, "ok")
			})
			k := hostileDefaults(o.URL)
			k.RequestBuffer, k.EjectFailures = tt.requestBuffer, 2
			tp := startHostile(t, k)
			for i := range 10 {
				resp, body := rawExchange(t, tp.addr(), "POST /form HTTP/1.1\r\nHost: demo.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("POST %d: %d %q; want 400", i, resp.StatusCode, body)
				}
			}
			if n := posts.Load(); n != 0 {
				t.Errorf("origin received %d whole POST bodies from malformed requests", n)
			}
			resp, body := tp.get(t, "/after")
			if resp.StatusCode != http.StatusOK || string(body) != "ok" || o.count("/after") != 1 {
				t.Errorf("GET after the bad POSTs: %d %q, origin requests %d; want 200 from the origin (not ejected)", resp.StatusCode, body, o.count("/after"))
			}
		})
	}
}

// TestAttackDotSegments is issue 16 item 6: with an origin URL that has a
// path prefix, dot-segments in the request target are resolved (RFC 3986
// §5.2.4) before the prefix is joined, so nothing climbs above it.
func TestAttackDotSegments(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.RequestURI)
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, r.RequestURI)
	})
	tp := startHostile(t, hostileDefaults(o.URL+"/public"))
	tests := []struct{ name, target, want string }{
		{"RFC3986 5.2.4 dot-dot at the root", "/../secret", "/public/secret"},
		{"RFC3986 5.2.4 percent-encoded dot-dot", "/%2e%2e/secret", "/public/secret"},
		{"RFC3986 5.2.4 upper-case percent-encoded dot-dot", "/%2E%2E/secret", "/public/secret"},
		{"RFC3986 5.2.4 more dot-dots than segments", "/a/../../../secret", "/public/secret"},
		{"RFC3986 5.2.4 mixed dot-dot", "/a/.%2e/%2e./secret", "/public/secret"},
		{"RFC3986 5.2.4 single dots", "/./a/%2e/secret", "/public/a/secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			resp, body := rawExchange(t, tp.addr(), "GET "+tt.target+" HTTP/1.1\r\nHost: demo.example\r\n\r\n")
			mu.Lock()
			got := append([]string(nil), seen...)
			mu.Unlock()
			if resp.StatusCode != http.StatusOK || string(body) != tt.want {
				t.Errorf("GET %s: %d %q; want 200 from the origin's %s", tt.target, resp.StatusCode, body, tt.want)
			}
			for _, uri := range got {
				if !strings.HasPrefix(uri, "/public/") {
					t.Errorf("GET %s reached the origin as %s, outside /public", tt.target, uri)
				}
			}
		})
	}
}

// TestAttackHitForMiss is issue 16 item 7: a private page with a slow
// origin. Once the PoP has seen it answer uncacheable, later requests go
// to the origin side by side (hit-for-miss) instead of one after another
// behind a fill each; a cacheable answer ends it.
func TestAttackHitForMiss(t *testing.T) {
	const clients = 4
	var cacheableNow, holdNow atomic.Bool
	var inflight, peak atomic.Int32
	release := newGate(t)
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		now := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		if holdNow.Load() {
			select { // the slow origin: answers once the test lets it
			case <-release.ch:
			case <-r.Context().Done():
				return
			}
		}
		if cacheableNow.Load() {
			w.Header().Set("Cache-Control", "public, max-age=60")
		} else {
			w.Header().Set("Cache-Control", "private, max-age=60")
		}
		io.WriteString(w, "page")
	})
	tp := startHostile(t, hostileDefaults(o.URL))
	t.Cleanup(release.open) // before the PoP and the origin stop

	resp, _ := tp.get(t, "/account")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=private") {
		t.Fatalf("first request: Cache-Status %q; want a private miss", cs)
	}
	holdNow.Store(true)
	peak.Store(0)
	statuses := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, body := tp.get(t, "/account")
			if string(body) != "page" {
				t.Errorf("client %d got %q", i, body)
			}
			statuses[i] = resp.Header.Get("Cache-Status")
		})
	}
	// Before the fix only one request at a time reached the origin, and
	// this wait timed out.
	waitFor(t, "all requests at the origin at once", func() bool { return inflight.Load() == clients })
	release.open()
	wg.Wait()
	if p := peak.Load(); p != clients {
		t.Errorf("origin concurrency peaked at %d; want %d", p, clients)
	}
	// Each is a miss of its own, not collapsed, and says why.
	for i, cs := range statuses {
		if !strings.Contains(cs, "fwd=uri-miss") || strings.Contains(cs, "collapsed") || !strings.Contains(cs, "detail=hit-for-miss") {
			t.Errorf("client %d: Cache-Status %q; want a hit-for-miss of its own, not collapsed", i, cs)
		}
	}
	cacheableNow.Store(true)
	resp, _ = tp.get(t, "/account")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "stored") {
		t.Errorf("cacheable answer: Cache-Status %q; want stored", cs)
	}
	waitFor(t, "the cacheable answer to be a hit", func() bool {
		resp, _ := tp.get(t, "/account")
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	})
}

// TestAttackRangeTooLarge is issue 16 item 8: a range of an object above
// max_object is answered with exactly that range, the first time and the
// next (video seeking and resumed downloads), and never makes the PoP
// fetch the whole object again. With slicing off the origin answers each
// range itself; with slicing on (the default) the first request finds the
// object too large, and from then on the slice holding the range is
// fetched once and later ranges in it are hits.
func TestAttackRangeTooLarge(t *testing.T) {
	content := pattern(2 << 20)
	tests := []struct {
		name    string
		chunked bool // the length is unknown until max_object is passed
		noSlice bool
		// wantRanged is how many Range requests the origin has seen after
		// each of three requests for bytes 0-9.
		wantRanged [3]int32
	}{
		{"issue 16 item 8 RFC9110 14.2 known length above max_object, slicing off", false, true, [3]int32{1, 2, 3}},
		{"issue 16 item 8 RFC9110 14.2 chunked body outgrowing max_object, slicing off", true, true, [3]int32{1, 2, 3}},
		{"RFC9110 14.2 known length above max_object, sliced from the second request", false, false, [3]int32{1, 2, 2}},
		{"RFC9110 14.2 chunked body outgrowing max_object, sliced from the second request", true, false, [3]int32{1, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ranged, whole atomic.Int32
			o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=60")
				w.Header().Set("Content-Type", "video/mp4")
				w.Header().Set("ETag", `"v1"`)
				if r.Header.Get("Range") != "" {
					ranged.Add(1)
				} else {
					whole.Add(1)
					if tt.chunked {
						for off := 0; off < len(content); off += 64 << 10 {
							if _, err := w.Write(content[off : off+64<<10]); err != nil {
								return
							}
							w.(http.Flusher).Flush()
						}
						return
					}
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
			})
			k := hostileDefaults(o.URL)
			k.NoSlice = tt.noSlice
			tp := startHostile(t, k)
			for i := 1; i <= 3; i++ {
				waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
				resp, body := tp.do(t, http.MethodGet, "/movie", "demo.example", http.Header{"Range": {"bytes=0-9"}})
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[:10]) {
					t.Errorf("request %d: %d with %d bytes; want 206 with the first 10", i, resp.StatusCode, len(body))
				}
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 0-9/%d", len(content)) {
					t.Errorf("request %d: Content-Range %q", i, cr)
				}
				if got := ranged.Load(); got != tt.wantRanged[i-1] {
					t.Errorf("request %d: the origin saw %d range requests; want %d", i, got, tt.wantRanged[i-1])
				}
			}
			if n := whole.Load(); n != 1 {
				t.Errorf("the origin was asked for the whole object %d times; want once (the first fill)", n)
			}
		})
	}
}

// TestAttackManyRanges is issue 16 item 9: thousands of one-byte ranges on
// a 1 MiB hit are answered with the whole body (200, as RFC 9110 §14.2
// allows) rather than a multipart of thousands of parts; up to
// limits.max_ranges (200) still get 206.
func TestAttackManyRanges(t *testing.T) {
	content := pattern(1 << 20)
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(content)
	})
	k := hostileDefaults(o.URL)
	k.MaxObject = "2MiB"
	tp := startHostile(t, k)
	tp.get(t, "/file")
	waitFor(t, "the object stored", func() bool {
		resp, _ := tp.get(t, "/file")
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	})
	tests := []struct {
		name       string
		ranges     int
		wantStatus int
	}{
		{"issue 16 item 9 RFC9110 14.2 4500 one-byte ranges get the whole body", 4500, http.StatusOK},
		{"issue 16 item 9 RFC9110 14.2 201 ranges get the whole body", 201, http.StatusOK},
		{"issue 16 item 9 RFC9110 14.2 200 ranges get 206", 200, http.StatusPartialContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs := make([]string, tt.ranges)
			for i := range specs {
				specs[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
			}
			resp, body := tp.do(t, http.MethodGet, "/file", "demo.example", http.Header{"Range": {"bytes=" + strings.Join(specs, ",")}})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%d ranges: status %d; want %d", tt.ranges, resp.StatusCode, tt.wantStatus)
			}
			switch tt.wantStatus {
			case http.StatusOK:
				if !bytes.Equal(body, content) {
					t.Errorf("%d ranges: %d bytes; want the whole %d-byte body", tt.ranges, len(body), len(content))
				}
			case http.StatusPartialContent:
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/byteranges") {
					t.Errorf("%d ranges: Content-Type %q; want multipart/byteranges", tt.ranges, ct)
				}
				if parts := strings.Count(string(body), "Content-Range: bytes "); parts != tt.ranges {
					t.Errorf("%d ranges: %d parts", tt.ranges, parts)
				}
			}
		})
	}
	if n := o.count("/file"); n != 1 {
		t.Errorf("origin requests = %d; want 1 (every range answered from the hit)", n)
	}
}

// TestAttackEarlyHints checks that a 103 Early Hints the origin sends
// before a cacheable response (a fill) reaches the client (RFC 9110
// §15.2), sent back to back with the final response as origins do.
func TestAttackEarlyHints(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "page")
	})
	tp := startHostile(t, hostileDefaults(o.URL))
	for i := range 20 {
		var mu sync.Mutex
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, fmt.Sprintf("%s/hinted/%d", tp.url, i), nil)
		req.Host = "demo.example"
		resp, body := doRead(t, tp.client, req)
		mu.Lock()
		got := strings.Join(hints, "; ")
		mu.Unlock()
		if want := "103 </style.css>; rel=preload; as=style"; got != want || string(body) != "page" || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
			t.Errorf("miss %d: interim %q, body %q, Cache-Status %q; want %q before a stored 200", i, got, body, resp.Header.Get("Cache-Status"), want)
		}
	}
}

// TestAttackTunnelMethods checks that CONNECT and TRACE get 405 and never
// reach an origin (RFC 9110 §9.3.6, §9.3.8: a CDN is no tunnel, and TRACE
// would echo cookies and credentials back).
func TestAttackTunnelMethods(t *testing.T) {
	var requests atomic.Int32
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "origin")
	})
	tp := startHostile(t, hostileDefaults(o.URL))
	tests := []struct{ name, raw string }{
		{"RFC9110 9.3.6 CONNECT", "CONNECT demo.example:443 HTTP/1.1\r\nHost: demo.example:443\r\n\r\n"},
		{"RFC9110 9.3.8 TRACE", "TRACE /page HTTP/1.1\r\nHost: demo.example\r\nCookie: session=secret\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, tp.addr(), tt.raw)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d %q; want 405", firstLine(tt.raw), resp.StatusCode, body)
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("%s echoed the request: %q", firstLine(tt.raw), body)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("origin received %d requests", n)
			}
		})
	}
}

// TestAttackForwardedSpoof checks that a client's own Forwarded header
// never reaches the origin, only the PoP's element (RFC 7239 §8.1): the
// origin must not read for=1.2.3.4 as a hop the PoP vouched for.
func TestAttackForwardedSpoof(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, strings.Join(r.Header.Values("Forwarded"), ", "))
		mu.Unlock()
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "ok")
	})
	tp := startHostile(t, hostileDefaults(o.URL))
	tests := []struct{ name, method, path string }{
		{"RFC7239 8.1 GET filled from the origin", http.MethodGet, "/fill"},
		{"RFC7239 8.1 POST passed to the origin", http.MethodPost, "/pass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			resp, _ := tp.do(t, tt.method, tt.path, "demo.example", http.Header{"Forwarded": {"for=1.2.3.4;proto=https"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			mu.Lock()
			got := append([]string(nil), seen...)
			mu.Unlock()
			want := `for=127.0.0.1;host="demo.example";proto=http`
			if len(got) != 1 || got[0] != want {
				t.Errorf("origin saw Forwarded %q; want only the PoP's element %q", got, want)
			}
		})
	}
}

// TestAttackSlowRequestBody is the slow-body item of issue 16: a POST
// whose body trickles a byte every 100 ms gets 408 once
// timeouts.request_body (300ms) passes, and the origin sees no request
// (200 such POSTs held 200 origin connections before the fix).
func TestAttackSlowRequestBody(t *testing.T) {
	var requests atomic.Int32
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.Copy(io.Discard, r.Body)
	})
	k := hostileDefaults(o.URL)
	k.RequestBody = "300ms"
	tp := startHostile(t, k)
	conn, err := net.Dial("tcp", tp.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: demo.example\r\nContent-Length: 100\r\n\r\n")
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(100 * time.Millisecond) // the attack's pace
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(stop)
	<-trickled
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("408 after %v", time.Since(start).Round(time.Millisecond))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("trickling POST: %d; want 408", resp.StatusCode)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("origin received %d requests; the body was never complete", n)
	}
}

// TestAttackHugeResponseHeader is the bounded-header item of issue 16: an
// origin response header of 2 MB is a 502 (as nginx answers past its
// buffer), and nothing is stored (before the fix it was stored and broke
// every hit).
func TestAttackHugeResponseHeader(t *testing.T) {
	big := strings.Repeat("h", 2<<20)
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("X-Huge", big)
		io.WriteString(w, "ok")
	})
	tp := startHostile(t, hostileDefaults(o.URL))
	for i := 1; i <= 2; i++ {
		resp, _ := tp.get(t, "/huge")
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("request %d: %d; want 502", i, resp.StatusCode)
		}
		if len(resp.Header.Get("X-Huge")) > 0 {
			t.Errorf("request %d: the huge field reached the client", i)
		}
		waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
	}
	if n := tp.store.Stats().Items; n != 0 {
		t.Errorf("store holds %d items; want 0", n)
	}
	if n := o.count("/huge"); n != 2 {
		t.Errorf("origin requests = %d; want 2 (nothing stored)", n)
	}
}

// TestAttackTricklingOrigin is the fill-deadline item of issue 16: an
// origin that trickles a cacheable body cannot hold a fill past
// origin.timeouts.fill; the client's response is cut short and nothing is
// stored.
func TestAttackTricklingOrigin(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(50 * time.Millisecond) // the trickle
		defer tick.Stop()
		for range 1000 {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := w.Write([]byte("t")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	k := hostileDefaults(o.URL)
	k.FillTimeout = "400ms"
	tp := startHostile(t, k)
	start := time.Now()
	body, readErr := tp.getCut(t, "/trickle")
	t.Logf("cut after %v with %d bytes", time.Since(start).Round(time.Millisecond), len(body))
	if readErr == nil || len(body) >= 1000 {
		t.Errorf("got %d bytes, error %v; want the response cut short by the fill timeout", len(body), readErr)
	}
	waitFor(t, "fill done", func() bool { return tp.fills.inFlight() == 0 })
	if n := tp.store.Stats().Items; n != 0 {
		t.Errorf("store holds %d items; want 0", n)
	}
}
