package pop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/pop/fill"
)

// serveAuthorized answers a GET or HEAD that carries credentials (RFC 9111
// §3.5). It never uses a stored response and never shares a fill: it goes
// to the origin alone, credentials and all, so no user is answered with
// what the origin said to another. Its response is stored for later
// requests only when public, s-maxage or must-revalidate allow it
// (cache.Decide).
func (p *PoP) serveAuthorized(w http.ResponseWriter, r *http.Request, svc *service, host string) {
	if cache.ParseRequestDirectives(r.Header).OnlyIfCached {
		// Nothing stored may answer it, and it forbids the origin.
		status := cache.Status{Fwd: cache.FwdRequest, Detail: "only-if-cached"}
		p.plainError(w, r, svc, http.StatusGatewayTimeout, status, "outpost: a request with credentials is never answered from storage, and it said only-if-cached\n")
		return
	}
	l := p.find(r, svc, host)
	l.entry, l.alone = nil, true
	p.serveMiss(w, r, svc, &l, cache.Status{Fwd: cache.FwdRequest})
}

// serveMiss answers a request that storage could not, through the fill for
// its key: it starts the fill or joins the one in flight.
//
// The common answer, a shared body streamed as it arrives, is this
// function's; the others are in functions of their own, which keeps this
// frame small. A request's handler runs on a new net/http goroutine whose
// stack starts small and is copied to one twice its size whenever a call
// goes deeper; the deepest point of a miss is net/http writing the
// response header, 4 KiB of frames below the handler's, and with small
// frames above it that stays within 8 KiB. Past it, the stack was copied
// a third time, to 16 KiB: 3.5% of a 1 KiB miss's CPU (BenchmarkMiss/wire's
// profile, with the flush after the last chunk, now left to net/http).
func (p *PoP) serveMiss(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, status cache.Status) {
	flight := l.key
	if l.alone {
		flight = aloneFlight(l.key, r)
	}
	f, leader := p.fills.join(flight)
	// Attach before the fill starts, so no byte of a shared body can pass
	// before this request is there to read it.
	reader := f.Attach()
	defer func() {
		if reader != nil {
			reader.Detach()
		}
	}()
	if leader {
		p.startFill(f, r, svc, l)
	}
	role := resultMiss
	if !leader {
		role = resultCollapsed
	}
	if !p.awaitFill(w, r, f, leader) {
		if leader {
			f.abandon()
		}
		svc.stats.record(r, 0, role, 0)
		return
	}
	status.Collapsed = !leader
	if leader {
		noteOrigin(w, f.responseTime.Sub(f.requestTime), f.resp)
	}

	switch {
	case f.err != nil:
		p.originFailed(w, r, svc, status, f.err)
		return
	case f.entry != nil:
		if p.serveFillEntry(w, r, svc, l, f, status, role, reader, leader) {
			reader = nil // serveFillEntry detached it
		}
		return
	}
	status.FwdStatus = f.resp.StatusCode
	if !f.shared {
		p.serveUnshared(w, r, svc, f, status, leader)
		return
	}
	if f.varyFields != nil && !leader && !l.retried {
		if mine := cache.VariantKey(l.primary, f.varyNonce, f.varyFields, r.Header); mine != f.storeKey {
			// Another variant of the URL: it needs a fill of its own.
			reader.Detach()
			reader = nil
			p.serveOtherVariant(w, r, svc, l, f, status, mine)
			return
		}
	}
	if reader == nil { // the body outgrew the object limit and was trimmed
		p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(cache.ReasonTooLarge)}, resultMiss)
		return
	}
	if storing, reason := f.storingNow(); !storing {
		// Known not to be stored before the header goes out (the in-flight
		// budget refused it, or the body already outgrew max_object): say
		// so rather than "stored". Hit-for-miss, when it is why this
		// request fetched alone, stays the detail, however far the body
		// has come by now.
		if status.Detail != detailHitForMiss {
			status.Detail = string(reason)
		}
	} else {
		status.Stored = true
		status.TTL, status.HasTTL = remaining(f.decision.Lifetime, f.decision.InitialAge, f.responseTime, p.now()), true
	}

	if needsEvaluation(r) {
		p.serveEvaluated(w, r, svc, f, reader, status, role)
		return
	}
	p.streamFill(w, r, svc, f, reader, &status, role, leader)
}

// aloneFlight is the flight key of a request that fetches alone: unique
// while r is in flight.
func aloneFlight(key string, r *http.Request) string {
	return fmt.Sprintf("%s\x00alone\x00%p", key, r)
}

// serveFillEntry answers from the stored entry a fill found, revalidated
// or stood in with. It returns true when it detached reader (a sliced
// object's fill reads its slice through it).
func (p *PoP) serveFillEntry(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, f *fetch, status cache.Status, role result, reader *fill.Reader, leader bool) (detached bool) {
	switch {
	case parseMeta(f.entry) != nil:
		// A sliced object: answered from its slices.
		p.serveSlicedFill(w, r, svc, *l, f, status, role, reader)
		return true
	case f.waitersAlone && !leader:
		// The revalidation made the response one user's: fetch our own.
		p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(cache.ReasonPrivate)}, resultMiss)
		return false
	}
	// Revalidated, or stale served on origin error.
	status.FwdStatus = f.fwdStatus
	res := f.outcome
	e := f.entry
	if res == resultRevalidated {
		status.Stored = !f.waitersAlone
		if leader && f.leaderEntry != nil {
			e = f.leaderEntry
		}
		if !leader {
			res = resultCollapsed
		}
	} else {
		status.Detail = "stale-if-error"
	}
	p.serveStored(w, r, svc, e, status, res)
	return false
}

// serveUnshared answers a request whose fill's response is not to be
// shared: the leader relays it, the others fetch their own.
func (p *PoP) serveUnshared(w http.ResponseWriter, r *http.Request, svc *service, f *fetch, status cache.Status, leader bool) {
	if !leader {
		// The response is not to be shared: fetch this request's own.
		p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(f.reason)}, resultMiss)
		return
	}
	if f.reason == cache.ReasonTooLarge && r.Header["Range"] != nil {
		// Too large to store: the origin answers the range itself
		// (video seeking and resumed downloads depend on it).
		f.resp.Body.Close()
		p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(cache.ReasonTooLarge)}, resultMiss)
		return
	}
	if f.reason == reasonEncoding {
		// The origin ignored the Accept-Encoding it was sent: its
		// body may be one this client cannot decode.
		f.resp.Body.Close()
		status.Detail = string(reasonEncoding)
		p.log.Warn("origin answered with a content coding it was not asked for", "service", svc.name,
			"asked", f.encoding, "content_encoding", f.resp.Header.Get("Content-Encoding"))
		p.plainError(w, r, svc, http.StatusBadGateway, status, "outpost: Bad Gateway: the origin answered with a content coding the request did not accept\n")
		return
	}
	if status.Detail != detailHitForMiss {
		// Hit-for-miss is why this request fetched alone: it stays
		// the detail.
		status.Detail = string(f.reason)
	}
	p.relay(w, r, svc, f.resp, status, resultMiss)
}

// serveOtherVariant answers a request that joined a fill for another
// variant of its URL (key mine), through a fill of its own.
func (p *PoP) serveOtherVariant(w http.ResponseWriter, r *http.Request, svc *service, l *lookup, f *fetch, status cache.Status, mine string) {
	index := &cache.Entry{Key: l.primary, VaryFields: f.varyFields, VaryNonce: f.varyNonce}
	status.Fwd, status.Collapsed = cache.FwdVary, false
	p.serveMiss(w, r, svc, &lookup{primary: l.primary, key: mine, index: index, retried: true}, status)
}

// serveEvaluated answers a request with preconditions or a range from the
// fill's complete, stored object.
func (p *PoP) serveEvaluated(w http.ResponseWriter, r *http.Request, svc *service, f *fetch, reader *fill.Reader, status cache.Status, role result) {
	if err := reader.Drain(r.Context()); err != nil || f.final == nil {
		if r.Context().Err() == nil {
			// Not stored: the reason the body stopped being stored,
			// if it did.
			p.pass(w, r, svc, cache.Status{Fwd: status.Fwd, Detail: string(f.notStored())}, resultMiss)
		}
		return
	}
	status.HasTTL = false // serveStored reports the entry's
	p.serveStored(w, r, svc, f.final, status, role)
}

// awaitFill waits for the fill's response header, relaying the origin's
// interim responses (103 Early Hints and the like, RFC 9110 §15.2) to the
// leader meanwhile. It returns false if the client left first.
func (p *PoP) awaitFill(w http.ResponseWriter, r *http.Request, f *fetch, leader bool) bool {
	var interim <-chan interimResponse
	var relay func(int, textproto.MIMEHeader) error
	if leader && r.ProtoAtLeast(1, 1) {
		interim = f.interim
		relay = forwardInterim(w)
	}
	for {
		select {
		case <-f.Ready():
			// A 1xx and the final response can arrive together, and select
			// picks at random: relay what is queued before answering
			// (hostile_test.go lost a 103 Early Hints this way).
			for {
				select {
				case ir := <-interim:
					relay(ir.code, textproto.MIMEHeader(ir.header))
					continue
				default:
				}
				return true
			}
		case ir := <-interim:
			relay(ir.code, textproto.MIMEHeader(ir.header))
		case <-r.Context().Done():
			return false
		}
	}
}

// streamFill sends a shared fill's response to one client as its body
// arrives from the origin. The header and the body are each a function of
// its own, which keeps the deepest frames of a miss's handler small (see
// serveMiss).
func (p *PoP) streamFill(w http.ResponseWriter, r *http.Request, svc *service, f *fetch, reader *fill.Reader, status *cache.Status, role result, leader bool) {
	h := w.Header()
	if leader {
		copyHeader(h, f.resp.Header) // the leader's own, cookies and all
	} else {
		copyHeader(h, f.header) // what may be shared
	}
	p.fillHeader(h, r, f, status)
	w.WriteHeader(f.resp.StatusCode)
	if r.Method == http.MethodHead {
		svc.stats.record(r, f.resp.StatusCode, role, 0)
		return
	}
	sent, err := p.fillBody(w, r, reader)
	if err != nil {
		// The origin failed mid-body: cut the client's response short so
		// it cannot mistake it for a whole one.
		svc.stats.record(r, f.resp.StatusCode, resultError, sent)
		panic(http.ErrAbortHandler)
	}
	svc.stats.record(r, f.resp.StatusCode, role, sent)
}

// fillHeader completes the header of a fill's response to one client:
// without the fields aimed at this CDN, with Age, Via and Cache-Status.
func (p *PoP) fillHeader(h http.Header, r *http.Request, f *fetch, status *cache.Status) {
	p.dropTargeted(h)
	if age := f.decision.InitialAge + p.now().Sub(f.responseTime); age >= 1e9 {
		h.Set("Age", cache.AgeHeader(age))
	}
	p.addVia(h, r)
	p.addStatus(h, *status)
}

// fillBody writes a fill's body to the client as it arrives, and returns
// the bytes sent. The error is the origin's failure mid-body, if the
// client is still there; a client that leaves or fails ends it with no
// error.
func (p *PoP) fillBody(w http.ResponseWriter, r *http.Request, reader *fill.Reader) (sent int64, err error) {
	flusher := http.NewResponseController(w)
	var flushed int64
	for {
		// What has been written goes out before waiting for more, so the
		// client has the bytes that came; what is written last goes out
		// with the response's end (one write for a small body, and net/http
		// flushes it higher up the stack than here).
		chunk, done, ok, err := reader.TryNext()
		if !ok {
			if sent > flushed {
				_ = flusher.Flush()
				flushed = sent
			}
			chunk, done, err = reader.Next(r.Context())
		}
		if done || err != nil {
			if err != nil && !errors.Is(err, context.Canceled) && r.Context().Err() == nil {
				// What came goes out before the response is cut short.
				_ = flusher.Flush()
				return sent, err
			}
			return sent, nil
		}
		p.extendWrite(flusher)
		n, werr := w.Write(chunk)
		sent += int64(n)
		if werr != nil {
			return sent, nil
		}
	}
}

// pass sends the request to origin on its own and relays the answer; the
// response is not stored. A successful unsafe request invalidates what is
// stored for its URL (RFC 9111 §4.4).
func (p *PoP) pass(w http.ResponseWriter, r *http.Request, svc *service, status cache.Status, res result) {
	out := origin.Request{
		Method:   r.Method,
		Target:   r.URL.RequestURI(),
		Header:   p.forwardHeader(r),
		ClientIP: clientIP(r),
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, length, release, err := p.requestBody(w, r)
		defer release()
		if err != nil {
			p.clientBodyFailed(w, r, svc, status, err)
			return
		}
		out.Body, out.ContentLength = body, length
	}
	if r.ProtoAtLeast(1, 1) {
		out.Got1xx = forwardInterim(w)
	}
	svc.stats.originFetches.Add(1)
	sent := time.Now()
	resp, err := svc.pool.Do(r.Context(), out)
	svc.stats.originLatency.Observe(time.Since(sent))
	noteOrigin(w, time.Since(sent), resp)
	if err != nil {
		if r.Context().Err() != nil {
			svc.stats.record(r, 0, res, 0)
			return
		}
		p.originFailed(w, r, svc, status, err)
		return
	}
	origin.RemoveHopByHop(resp.Header)
	if unsafeMethod(r.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
		p.invalidate(r, svc, resp.Header)
	}
	status.FwdStatus = resp.StatusCode
	p.relay(w, r, svc, resp, status, res)
}

// unsafeMethod reports methods that may change the resource (RFC 9110 §9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// invalidate drops what is stored for the request's URL and for the URLs
// in Location and Content-Location on the same host (RFC 9111 §4.4), under
// both schemes.
func (p *PoP) invalidate(r *http.Request, svc *service, h http.Header) {
	host := hostOnly(r.Host)
	targets := []*url.URL{r.URL}
	for _, name := range []string{"Location", "Content-Location"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		u, err := r.URL.Parse(v)
		if err != nil || (u.Host != "" && hostOnly(u.Host) != host) {
			continue
		}
		targets = append(targets, u)
	}
	for _, u := range targets {
		for _, sch := range []string{"http", "https"} {
			p.store.Delete(cache.Key(sch, host, u.EscapedPath(), u.RawQuery, svc.query))
		}
	}
}

// relay streams an origin response that is not stored to the client, and
// closes its body.
func (p *PoP) relay(w http.ResponseWriter, r *http.Request, svc *service, resp *http.Response, status cache.Status, res result) {
	defer resp.Body.Close()
	h := w.Header()
	copyHeader(h, resp.Header)
	p.dropTargeted(h)
	p.addVia(h, r)
	p.addStatus(h, status)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		svc.stats.record(r, resp.StatusCode, res, 0)
		return
	}
	n, err := p.copyFlushing(r.Context(), w, resp.Body)
	svc.stats.originBytes.Add(uint64(n))
	if err != nil {
		if _, fromOrigin := errors.AsType[*origin.Error](err); fromOrigin {
			svc.stats.record(r, resp.StatusCode, resultError, n)
			panic(http.ErrAbortHandler)
		}
	}
	svc.stats.record(r, resp.StatusCode, res, n)
}

// relayBuffer is the buffer a relay copies an origin body through; it is
// taken from the in-flight budget.
const relayBuffer = 32 << 10

// copyFlushing copies src to the client, flushing after each read so a
// slow origin's bytes reach the client as they come. The error is src's
// (an *origin.Error), the client's, or ctx's while waiting for the
// in-flight budget to lend a buffer.
func (p *PoP) copyFlushing(ctx context.Context, w http.ResponseWriter, src io.Reader) (int64, error) {
	if err := p.inflight.Take(ctx, relayBuffer); err != nil {
		return 0, err
	}
	defer p.inflight.Give(relayBuffer)
	flusher := http.NewResponseController(w)
	buf := make([]byte, relayBuffer)
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.extendWrite(flusher)
			written, werr := w.Write(buf[:n])
			total += int64(written)
			if werr != nil {
				return total, werr
			}
			_ = flusher.Flush()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// extendWrite gives the next write to the client the send timeout, on
// every protocol (HTTP/2 and HTTP/3 streams too, whose writes can wait on
// flow control while the connection is busy with others).
func (p *PoP) extendWrite(rc *http.ResponseController) {
	if send := p.cfg.Timeouts.Send; send > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(send))
	}
}

// originFailed answers when no response header came from the origin and
// nothing stored may stand in. A failure of the client's own request body
// is the client's: 400 (or 408), never counted against the origin.
func (p *PoP) originFailed(w http.ResponseWriter, r *http.Request, svc *service, status cache.Status, err error) {
	if clientFault(err) {
		p.clientBodyFailed(w, r, svc, status, err)
		return
	}
	code := origin.StatusFor(err)
	status.Detail = "origin-error"
	if code == http.StatusGatewayTimeout {
		status.Detail = "origin-timeout"
	}
	p.log.Warn("origin request failed", "service", svc.name, "status", code, "err", err)
	p.plainError(w, r, svc, code, status, "outpost: "+http.StatusText(code)+": the origin did not answer\n")
}

// forwardInterim relays the origin's interim responses (103 Early Hints
// and the like) to the client, whose protocol allows them (HTTP/1.1 and
// later). 100 Continue and 101 are the server's own business and are not
// relayed. The callback runs while the handler waits for the origin's
// final response, so it has the ResponseWriter to itself.
func forwardInterim(w http.ResponseWriter) func(int, textproto.MIMEHeader) error {
	return func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
			return nil
		}
		hdr := w.Header()
		for name, values := range h {
			hdr[name] = values
		}
		w.WriteHeader(code)
		for name := range h {
			delete(hdr, name) // interim fields do not carry over to the final response
		}
		return nil
	}
}

// serveSlicedFill answers a request whose fill found (or revalidated, or
// stood in with) a sliced object, from its slices: the fill's own slice
// through reader, the others from the store or their fills.
func (p *PoP) serveSlicedFill(w http.ResponseWriter, r *http.Request, svc *service, l lookup, f *fetch, status cache.Status, role result, reader *fill.Reader) {
	obj := parseMeta(f.entry)
	status.FwdStatus = f.fwdStatus
	res := role
	switch f.outcome {
	case resultStaleOnError:
		status.Detail, res = "stale-if-error", resultStaleOnError
	case resultRevalidated:
		status.Stored = true
		if role == resultMiss {
			res = resultRevalidated
		}
	default:
		status.Stored = true
	}
	var probe *sliceSource
	if reader != nil && strings.HasPrefix(f.storeKey, obj.key+"\x00slice:") {
		i, err := strconv.ParseInt(f.storeKey[strings.LastIndexByte(f.storeKey, ':')+1:], 10, 64)
		if err == nil && obj.sliceKey(i) == f.storeKey {
			probe = &sliceSource{index: i, f: f, rd: reader}
		}
	}
	if probe == nil && reader != nil {
		reader.Detach()
	}
	if !p.serveSliced(w, r, svc, obj, status, res, probe, !l.resliced) {
		p.serveMiss(w, r, svc, &lookup{primary: l.primary, key: l.key, index: l.index, resliced: true}, cache.Status{Fwd: cache.FwdURIMiss})
	}
}
