package main

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// attack304Leak: A revalidates, B-D are collapsed onto A's 304.
func attack304Leak(bin string) (string, error) {
	conditional := make(chan struct{}, 16)
	var first sync.Once
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == "" {
			_, _ = w.Write([]byte("the page\n"))
			return
		}
		conditional <- struct{}{}
		first.Do(func() { time.Sleep(500 * time.Millisecond) })
		w.Header().Set("Set-Cookie", "session="+r.Header.Get("X-User"))
		w.WriteHeader(http.StatusNotModified)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	if _, _, err := get(e.url("/page"), "X-User", "first"); err != nil {
		return "", err
	}
	users := []string{"A", "B", "C", "D"}
	cookies := make([]string, len(users))
	var wg sync.WaitGroup
	ask := func(i int) {
		defer wg.Done()
		resp, _, err := get(e.url("/page"), "X-User", users[i])
		if err != nil {
			cookies[i] = "error"
			return
		}
		cookies[i] = fmt.Sprintf("%d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	wg.Add(1)
	go ask(0)
	select {
	case <-conditional:
	case <-time.After(5 * time.Second):
		wg.Wait()
		return fmt.Sprintf("A's request was not revalidated (A got %s; origin %d requests)", cookies[0], e.o.requests.Load()), nil
	}
	for i := 1; i < len(users); i++ {
		wg.Add(1)
		go ask(i)
	}
	wg.Wait()
	leaked := 0
	for _, c := range cookies[1:] {
		if strings.Contains(c, "session=A") {
			leaked++
		}
	}
	verdict := "no leak"
	if leaked > 0 {
		verdict = fmt.Sprintf("**%d of 3 got A's cookie**", leaked)
	}
	return fmt.Sprintf("%s: A %s, B %s, C %s, D %s; origin saw X-User %s", verdict,
		cookies[0], cookies[1], cookies[2], cookies[3], strings.Join(e.o.seenUsers(), ",")), nil
}

// negotiate picks a coding as Caddy's encode does: the client's highest
// weight among zstd, br, gzip and deflate, ties broken in that order.
func negotiate(acceptEncoding string) string {
	best, bestQ := "", 0.0
	for _, coding := range []string{"zstd", "br", "gzip", "deflate"} {
		for _, part := range strings.Split(acceptEncoding, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), coding) {
				continue
			}
			q := 1.0
			if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				q, _ = strconv.ParseFloat(v, 64)
			}
			if q > bestQ {
				best, bestQ = coding, q
			}
		}
	}
	return best
}

// accepts says whether a client with this Accept-Encoding can decode coding.
func accepts(acceptEncoding, coding string) bool {
	if coding == "" || coding == "identity" {
		return true
	}
	for _, part := range strings.Split(acceptEncoding, ",") {
		if name, _, _ := strings.Cut(strings.TrimSpace(part), ";"); strings.EqualFold(strings.TrimSpace(name), coding) {
			return true
		}
	}
	return false
}

// attackAcceptEncoding: Chrome, curl and Safari in turn on one URL.
func attackAcceptEncoding(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Encoding")
		coding := negotiate(r.Header.Get("Accept-Encoding"))
		if coding != "" {
			w.Header().Set("Content-Encoding", coding)
		}
		_, _ = fmt.Fprintf(w, "body in %q\n", coding)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	clients := []struct{ name, ae string }{
		{"Chrome", "gzip, deflate, br, zstd"},
		{"curl", ""},
		{"Safari", "gzip, deflate, br"},
	}
	var out []string
	bad := 0
	for _, c := range clients {
		var fields []string
		if c.ae != "" {
			fields = []string{"Accept-Encoding", c.ae}
		}
		resp, _, err := get(e.url("/app.js"), fields...)
		if err != nil {
			return "", err
		}
		ce := resp.Header.Get("Content-Encoding")
		mark := "ok"
		if !accepts(c.ae, ce) {
			mark, bad = "**cannot decode**", bad+1
		}
		if ce == "" {
			ce = "identity"
		}
		out = append(out, fmt.Sprintf("%s %s (%s)", c.name, ce, mark))
	}
	return fmt.Sprintf("%d of 3 undecodable: %s; origin %d requests", bad, strings.Join(out, ", "), e.o.requests.Load()), nil
}

// stalledRun asks for each path with a client that never reads, waits, and
// reports the PoP's memory and what the origin sent.
func stalledRun(bin string, h http.HandlerFunc, paths []string, wait time.Duration) (string, error) {
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	s := e.p.sample()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, p := range paths {
		c, err := stalled(e.p.listen, p)
		if err != nil {
			s.stop()
			return "", err
		}
		conns = append(conns, c)
	}
	time.Sleep(wait)
	s.stop()
	return fmt.Sprintf("peak RSS %s (end %s), memory files up to %s, Go heap in use up to %s; origin sent %s in %d requests",
		mib(e.p.peakRSS()), mib(e.p.rss()), mib(s.memfd), mib(s.heap), mib(e.o.bytes.Load()), e.o.requests.Load()), nil
}

// attackStalledMisses: 10 distinct 60 MiB misses whose clients never read.
func attackStalledMisses(bin string) (string, error) {
	const size = 60 << 20
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		writeBody(w, size)
	}
	var paths []string
	for i := range 10 {
		paths = append(paths, fmt.Sprintf("/big/%d", i))
	}
	return stalledRun(bin, h, paths, 10*time.Second)
}

// attackStalledChunked: a 400 MiB chunked body, two clients that never read.
func attackStalledChunked(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		writeBody(w, 400<<20)
	}
	return stalledRun(bin, h, []string{"/huge", "/huge"}, 10*time.Second)
}

// attackSilentFills: origins that announce 60 MiB and send nothing.
func attackSilentFills(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(60<<20))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	var paths []string
	for i := range 20 {
		paths = append(paths, fmt.Sprintf("/silent/%d", i))
	}
	return stalledRun(bin, h, paths, 3*time.Second)
}

// attackAborted: 2000 HTTP/1.1 requests reset right after they are sent.
func attackAborted(bin string) (string, error) { return aborted(bin, "HTTP/1.1") }

// attackAbortedHTTP10: the same in HTTP/1.0, which the fast path hands to
// net/http for good instead of lending it one request.
func attackAbortedHTTP10(bin string) (string, error) { return aborted(bin, "HTTP/1.0") }

func aborted(bin, proto string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		writeBody(w, 1<<20)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	s := e.p.sample()
	start := time.Now()
	for i := range 2000 {
		c, err := net.DialTimeout("tcp", e.p.listen, 5*time.Second)
		if err != nil {
			s.stop()
			return "", err
		}
		tc := c.(*net.TCPConn)
		_, _ = fmt.Fprintf(tc, "GET /obj/%d %s\r\nHost: 127.0.0.1\r\n\r\n", i, proto)
		_ = tc.SetLinger(0)
		tc.Close()
	}
	reset := time.Now()
	// Let the fills run their course, then read the origin's counts.
	last := int64(-1)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		n := e.o.bytes.Load()
		if n == last && e.o.inFlight.Load() == 0 {
			break
		}
		last = n
	}
	s.stop()
	refused := "not exported"
	if n, err := e.p.metric("outpost_pop_detached_fills_refused_total"); err == nil {
		refused = strconv.Itoa(int(n))
	}
	busy := 0.0
	if last := e.o.lastDone(); last.After(reset) {
		busy = last.Sub(reset).Seconds()
	}
	return fmt.Sprintf("sent and reset in %.2f s; origin: %d started, %d completed, at most %d at once, %s sent, busy %.1f s after the last reset; PoP peak RSS %s, up to %d goroutines, detached fills refused: %s",
		reset.Sub(start).Seconds(), e.o.requests.Load(), e.o.completed.Load(), e.o.peak.Load(), mib(e.o.bytes.Load()),
		busy, mib(e.p.peakRSS()), s.goroutines, refused), nil
}

// attackMalformedBody: POSTs with a bad chunk size, then a GET.
func attackMalformedBody(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		if _, err := body.ReadFrom(r.Body); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, "%s %s ok\n", r.Method, r.URL.Path)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	statuses := map[int]int{}
	for range 10 {
		code, err := rawStatus(e.p.listen, "POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbad\r\n0\r\n\r\n")
		if err != nil {
			return "", err
		}
		statuses[code]++
	}
	posts := e.o.requests.Load()
	healthy, herr := e.p.metric("outpost_origin_healthy")
	pool := "origin server healthy after them"
	if herr != nil {
		pool = "origin health not exported"
	} else if healthy == 0 {
		pool = "**origin server ejected**"
	}
	resp, _, err := get(e.url("/after"))
	if err != nil {
		return "", err
	}
	reached := "did not reach the origin"
	if slices.Contains(e.o.seen(), "/after") {
		reached = "reached the origin"
	}
	var codes []string
	for code, n := range statuses {
		codes = append(codes, fmt.Sprintf("%d×%d", n, code))
	}
	slices.Sort(codes)
	return fmt.Sprintf("POSTs: %s (origin saw %d), %s; then GET %d, %s", strings.Join(codes, ", "), posts, pool, resp.StatusCode, reached), nil
}

// attackPathPrefix: a dot-segment that tries to climb above /public.
func attackPathPrefix(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "you asked for %s\n", r.RequestURI)
	}
	e, err := setup(bin, h, "/public", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	code, err := rawStatus(e.p.listen, "GET /../secret HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	if err != nil {
		return "", err
	}
	seen := e.o.seen()
	if len(seen) == 0 {
		return fmt.Sprintf("%d; nothing reached the origin", code), nil
	}
	return fmt.Sprintf("%d; origin saw `%s`", code, strings.Join(seen, ", ")), nil
}

// attackUncacheable: one request to a slow private page, then five at once.
func attackUncacheable(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Header().Set("Cache-Control", "private")
		_, _ = w.Write([]byte("your account\n"))
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	if _, _, err := get(e.url("/account")); err != nil {
		return "", err
	}
	took := make([]time.Duration, 5)
	var wg sync.WaitGroup
	for i := range took {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if _, _, err := get(e.url("/account")); err != nil {
				took[i] = -1
				return
			}
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	slices.Sort(took)
	return fmt.Sprintf("p50 %.1f s, slowest %.1f s; origin at most %d at once",
		took[2].Seconds(), took[4].Seconds(), e.o.peak.Load()), nil
}

// attackRangeAboveMax: a Range request for an object that is not stored.
func attackRangeAboveMax(bin string) (string, error) {
	content := bytes.Repeat(pattern, 16) // 4 MiB
	var mu sync.Mutex
	var asked []string // the Range of each origin request
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, cmp.Or(r.Header.Get("Range"), "no Range"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=600")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	}
	e, err := setup(bin, h, "", "1MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	resp, body, err := get(e.url("/video"), "Range", "bytes=0-9")
	if err != nil {
		return "", err
	}
	mu.Lock()
	defer mu.Unlock()
	return fmt.Sprintf("%d, %d bytes; origin asked %s, sent %d bytes", resp.StatusCode, len(body), strings.Join(asked, " + "), e.o.bytes.Load()), nil
}

// attackManyRanges: 4,500 one-byte ranges on a stored object.
func attackManyRanges(bin string) (string, error) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		writeBody(w, 1<<20)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	if _, _, err := get(e.url("/file")); err != nil {
		return "", err
	}
	ranges := make([]string, 4500)
	for i := range ranges {
		ranges[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
	}
	header := "bytes=" + strings.Join(ranges, ",")
	const times = 10
	var status, length int
	before := cpuTime(e.p.pid)
	for range times {
		resp, body, err := get(e.url("/file"), "Range", header)
		if err != nil {
			return "", err
		}
		status, length = resp.StatusCode, len(body)
	}
	cpu := cpuTime(e.p.pid) - before
	return fmt.Sprintf("%d, %d bytes; PoP CPU %d ms per request", status, length, cpu.Milliseconds()/times), nil
}

// attackNeverReads: a stalled HTTP/1.1 client on a stored object.
func attackNeverReads(bin string) (string, error) { return neverReads(bin, "HTTP/1.1") }

// attackNeverReadsHTTP10: the same in HTTP/1.0, which the fast path leaves
// to net/http.
func attackNeverReadsHTTP10(bin string) (string, error) { return neverReads(bin, "HTTP/1.0") }

func neverReads(bin, proto string) (string, error) {
	const size = 32 << 20
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		writeBody(w, size)
	}
	e, err := setup(bin, h, "", "64MiB")
	if err != nil {
		return "", err
	}
	defer e.close()
	if _, _, err := get(e.url("/stored")); err != nil {
		return "", err
	}
	c, err := stalledProto(e.p.listen, "/stored", proto)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// The PoP's end of the connection: a close with unsent data leaves it
	// in FIN_WAIT1 while the client's end still looks established.
	popEnd, clientEnd := c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr)
	start := time.Now()
	for time.Since(start) < *stallWait {
		if st := tcpState(popEnd, clientEnd); st != "ESTABLISHED" {
			return fmt.Sprintf("closed by the PoP after %.0f s (its end: %s)%s", time.Since(start).Seconds(), st, sendTimeouts(e.p)), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Sprintf("still connected after %.0f s%s", stallWait.Seconds(), sendTimeouts(e.p)), nil
}

// sendTimeouts describes the PoP's outpost_pop_send_timeouts_total, if it
// has one.
func sendTimeouts(p *pop) string {
	n, err := p.metric("outpost_pop_send_timeouts_total")
	if err != nil {
		return ""
	}
	return fmt.Sprintf("; send timeouts counted: %.0f", n)
}
