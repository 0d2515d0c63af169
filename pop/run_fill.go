package pop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/pop/fill"
)

// reasonEncoding is the Cache-Status detail of a response whose
// Content-Encoding is not one the PoP asked the origin for: it is never
// stored or shared, as clients of the variant could not decode it.
const reasonEncoding cache.Reason = "encoding-mismatch"

// startFill prepares f for the request that leads it and runs it on a
// fill worker (fillGroup.run). A stored entry that must be validated
// turns the fill into a conditional request. Everything the fill needs of
// r is taken here: r is not read once the handler may have returned.
func (p *PoP) startFill(f *fetch, r *http.Request, svc *service, l *lookup) {
	f.primary = l.primary
	f.index = l.index
	f.stale = l.entry
	f.purgeSeq = p.purges.current()
	out, probe := p.fillOrigin(f, r, svc, l)
	// The context exists before the fill runs, so a leader reset at once
	// can cancel it.
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	hooks := svc.fillHooks
	hooks.Cancel = cancel
	f.Prepare(hooks)
	key := l.key
	p.fills.run(func() { p.runFill(ctx, f, svc, key, out, probe) })
}

// fillOrigin makes f's origin request for r, and the slice it asks for,
// if any.
func (p *PoP) fillOrigin(f *fetch, r *http.Request, svc *service, l *lookup) (origin.Request, *sliceProbe) {
	f.leaderHeader = r.Header.Clone()
	out := p.fillRequest(r, l.entry)
	out.CacheKey = l.primary
	probe := p.sliceProbeFor(r, svc, *l)
	if probe != nil && !f.background {
		probe.prepare(out.Header)
	} else {
		probe = nil
	}
	f.encoding = out.Header.Get("Accept-Encoding")
	if r.ProtoAtLeast(1, 1) && !f.background {
		out.Got1xx = f.sendInterim
	}
	return out, probe
}

// setFillHooks gives each service of rt the hooks its fills get: the
// in-flight budget and its detached-fill slots. On a reload it also
// carries each service's slice figures over from the running routes, as
// routesFrom does with the rest of its figures.
func (p *PoP) setFillHooks(rt *routes) {
	if old := p.routes.Load(); old != nil {
		for _, svc := range rt.list {
			for _, o := range old.list {
				if o.name == svc.name && o.slices != nil {
					svc.slices = o.slices
				}
				if o.name == svc.name {
					svc.edge = o.edge // edge.go
				}
			}
		}
	}
	for _, svc := range rt.list {
		p.setShield(svc, svc.conf) // shield.go
		svc.fillHooks = fill.Hooks{
			Budget:  p.inflight.Budget,
			Detach:  func() bool { return p.acquireDetached(svc) },
			Release: func() { p.releaseDetached(svc) },
		}
	}
}

// acquireDetached takes a PoP-wide and a per-service detached-fill slot.
func (p *PoP) acquireDetached(svc *service) bool {
	if !p.detached.Acquire() {
		return false
	}
	if !svc.detached.Acquire() {
		p.detached.Release()
		return false
	}
	return true
}

func (p *PoP) releaseDetached(svc *service) {
	svc.detached.Release()
	p.detached.Release()
}

// runFill fetches f's object from the service's origin on behalf of every
// request that joins f. It runs detached from the clients, so one client
// hanging up does not cancel the fill for the rest. lookupKey is the key
// the requests looked up, which hit-for-miss marks. probe, when set, is
// the slice the fill asks for (slice.go), which may make the object a
// sliced one.
func (p *PoP) runFill(ctx context.Context, f *fetch, svc *service, lookupKey string, out origin.Request, probe *sliceProbe) {
	cancel := f.cancel
	handedOff := false // the leader reads the response itself, and cancels
	defer func() {
		f.End() // leaves the group, gives back detached-fill slots
		if !handedOff {
			cancel()
		}
	}()
	// A fill that is still storing after the fill timeout is given up: an
	// origin that trickles cannot hold it and its chunks for ever. A relay
	// goes at its readers' pace and is bounded by the origin's idle timeout.
	if svc.fillTimeout > 0 {
		deadline := time.AfterFunc(svc.fillTimeout, func() {
			if f.Storing() {
				p.log.Warn("fill timed out; not stored", "service", svc.name, "key", f.Key(), "timeout", svc.fillTimeout)
				cancel()
			}
		})
		defer deadline.Stop()
	}

	f.requestTime = p.now()
	svc.stats.originFetches.Add(1)
	sent := time.Now()
	resp, err := p.fetchOrigin(ctx, svc, out) // shield.go: the shield, or the origin
	svc.stats.originLatency.Observe(time.Since(sent))
	f.responseTime = p.now()
	if err != nil {
		switch {
		case f.Stopped():
			f.err = err // no one is left to tell
		case f.stale != nil && f.stale.UsableOnError(f.responseTime):
			p.log.Warn("origin failed; serving stale", "service", svc.name, "key", f.Key(), "err", err)
			f.entry, f.outcome = f.stale, resultStaleOnError
		case probe != nil && probe.stale != nil && probe.stale.meta.UsableOnError(f.responseTime):
			p.log.Warn("origin failed; serving stale", "service", svc.name, "key", f.Key(), "err", err)
			f.entry, f.outcome = probe.stale.meta, resultStaleOnError
		default:
			f.err = err
		}
		f.publish()
		return
	}
	origin.RemoveHopByHop(resp.Header)
	if probe != nil {
		var done bool
		if resp, done = p.sliceProbed(ctx, f, svc, lookupKey, probe, resp, &out); done {
			return
		}
	}
	// The fill's request is a GET with the leader's header (a HEAD is
	// fetched as a GET).
	req := cache.RequestOf(http.MethodGet, f.leaderHeader)

	if f.stale != nil {
		switch {
		case resp.StatusCode == http.StatusNotModified:
			resp.Body.Close()
			p.revalidated(f, svc, lookupKey, resp, req)
			f.publish()
			return
		case resp.StatusCode >= 500 && f.stale.UsableOnError(f.responseTime):
			// RFC 5861 §4: the origin errs; the stale copy stands in.
			resp.Body.Close()
			f.entry, f.outcome, f.fwdStatus = f.stale, resultStaleOnError, resp.StatusCode
			f.publish()
			return
		}
	}

	f.resp = resp
	d := cache.Decide(req, resp.StatusCode, resp.Header, svc.policy, f.requestTime, f.responseTime)
	switch {
	case !d.Storable:
	case resp.ContentLength > svc.maxObject:
		d.Storable, d.Reason = false, cache.ReasonTooLarge
	case !cache.AcceptsEncoding(f.encoding, resp.Header["Content-Encoding"]):
		// The origin answered with a coding it was not asked for: clients
		// of this variant may not be able to decode it.
		d.Storable, d.Reason = false, reasonEncoding
	}
	if d.Storable {
		p.compressFill(f, svc, resp) // compress.go
	}
	f.decision = d
	f.storeKey = f.primary
	fields, _ := cache.VaryFields(resp.Header)
	if d.Storable && encoded(resp.Header) && !slices.Contains(fields, "Accept-Encoding") {
		// The body is encoded for the Accept-Encoding the PoP sent: it
		// varies on it whether the origin says so or not.
		fields = append(fields, "Accept-Encoding")
		slices.Sort(fields)
		resp.Header.Add("Vary", "Accept-Encoding")
	}
	f.header = cache.Shareable(resp.Header, d)
	if d.Storable && len(fields) > 0 {
		f.varyFields, f.varyNonce = fields, newNonce()
		if f.index != nil && slices.Equal(f.index.VaryFields, fields) {
			f.varyNonce = f.index.VaryNonce
		}
		f.storeKey = cache.VariantKey(f.primary, f.varyNonce, fields, f.leaderHeader)
	}
	f.shared, f.reason = d.Storable, d.Reason
	if !d.Storable {
		p.markUncacheable(svc, lookupKey, d.Reason)
		// The leader reads the body itself and closes it; waiters fetch
		// their own.
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		handedOff = true
		f.Leave()
		f.publish()
		return
	}
	p.marks.clear(lookupKey)
	if !f.Start(resp.ContentLength) {
		// The budget is spent: a relay from the start, which later
		// requests must not join (its body is trimmed as it goes).
		f.Leave()
	}
	f.publish()

	total, err := p.readBody(ctx, f, svc, lookupKey, resp.Body)
	resp.Body.Close()
	if cb, ok := resp.Body.(*compressBody); ok {
		total = cb.originBytes() // what came from the origin, not what it became
	}
	svc.stats.originBytes.Add(uint64(total))
	if err != nil && !errors.Is(err, fill.ErrNoReaders) && !errors.Is(err, context.Canceled) {
		p.log.Warn("origin body failed", "service", svc.name, "key", f.Key(), "bytes", total, "err", err)
	}
	f.Finish(err, func(chunks [][]byte) fill.Stored {
		body := p.storeChunks(f.storeKey, chunks)
		e := p.newEntry(f.storeKey, resp.StatusCode, f.header, body, d, f.requestTime, f.responseTime)
		ttl := e.StorageTTL(p.now(), svc.keep)
		if f.varyFields != nil && (f.index == nil || f.index.VaryNonce != f.varyNonce) {
			index := &cache.Entry{
				Key: f.primary, Status: resp.StatusCode, Header: http.Header{},
				RequestTime: f.requestTime, ResponseTime: f.responseTime,
				VaryFields: f.varyFields, VaryNonce: f.varyNonce,
			}
			p.keep(f, index, ttl+svc.keep)
		}
		p.keep(f, e, ttl)
		f.final = e // before Finish tells the readers the body is done
		if body.blob != nil {
			return fill.Stored{At: body.blob, Size: body.blob.Size()}
		}
		return fill.Stored{Bytes: body.heap}
	})
}

// revalidated handles a 304 to a fill's conditional request (RFC 9111
// §4.3.4): the stored response is freshened with the 304's fields. The
// leader is answered with everything the 304 said; every other request
// only with what may be shared (cache.Shareable), and if the 304 made the
// response unshareable as a whole (private, no-store...), the others fetch
// their own and the stored copy is dropped.
func (p *PoP) revalidated(f *fetch, svc *service, lookupKey string, resp *http.Response, req cache.Request) {
	merged := cache.MergeNotModified(f.stale.Header, resp.Header)
	keepWeakETag(f.stale.Header, merged) // compress.go
	d := cache.Decide(req, f.stale.Status, merged, svc.policy, f.requestTime, f.responseTime)
	body := storedBody{heap: f.stale.Body, blob: f.stale.Blob}
	f.outcome, f.fwdStatus = resultRevalidated, resp.StatusCode
	leader := p.newEntry(f.Key(), f.stale.Status, merged, body, cache.Decision{
		InitialAge: d.InitialAge, Lifetime: d.Lifetime, NoCache: d.NoCache, MustRevalidate: d.MustRevalidate,
	}, f.requestTime, f.responseTime)
	leader.Header = merged.Clone() // the leader's own: personal fields included
	leader.Prepared = nil          // made for the shared header
	leader.Header.Set("Content-Length", strconv.FormatInt(body.size(), 10))
	if !d.Storable {
		f.entry, f.leaderEntry, f.waitersAlone = leader, leader, true
		p.store.Delete(f.stale.Key)
		p.markUncacheable(svc, lookupKey, d.Reason)
		return
	}
	shared := p.newEntry(f.stale.Key, f.stale.Status, merged, body, d, f.requestTime, f.responseTime)
	p.keep(f, shared, shared.StorageTTL(p.now(), svc.keep))
	f.entry, f.leaderEntry = shared, leader
}

// markUncacheable remembers that key answered with a response the PoP
// could not store, for hit-for-miss (and too-large for ranges).
func (p *PoP) markUncacheable(svc *service, key string, reason cache.Reason) {
	if svc.hitForMiss <= 0 {
		return
	}
	switch reason {
	case cache.ReasonStatus, reasonEncoding, reasonBudget, cache.ReasonAuthorization, "":
		// Errors and accidents of one fetch say nothing of the next, and a
		// request with credentials nothing of those without.
		return
	}
	p.marks.set(key, mark{until: p.now().Add(svc.hitForMiss), tooLarge: reason == cache.ReasonTooLarge})
}

// encoded reports whether a response carries a content coding.
func encoded(h http.Header) bool {
	for _, v := range h["Content-Encoding"] {
		if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, "identity") {
			return true
		}
	}
	return false
}

// keep offers a fill's entry to the store (the purge index wraps it, so
// the Set indexes the key), unless a purge that covers it landed while the
// fill was in flight: the object the fill fetched may be the one the purge
// meant to remove.
func (p *PoP) keep(f *fetch, e *cache.Entry, ttl time.Duration) {
	// The gate makes the check and the Set one step as far as a purge is
	// concerned: a purge either sees this entry in the index or is seen by
	// the check.
	p.purges.gate.RLock()
	defer p.purges.gate.RUnlock()
	if p.purges.purgedSince(f.purgeSeq, e.Key, entryTags(e)) {
		p.log.Debug("fill not stored: purged while in flight", "key", e.Key)
		return
	}
	p.store.Set(e, ttl)
}

// readBody copies the origin body into f until its end, an error, or the
// fill no longer needs it.
func (p *PoP) readBody(ctx context.Context, f *fetch, svc *service, lookupKey string, body io.Reader) (int64, error) {
	bp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > svc.maxObject && f.Storing() {
				f.StopStoring(errTooLarge)
				// Marked before the fill leaves its group: a request that
				// can no longer join it finds the mark (hit-for-miss).
				p.markUncacheable(svc, lookupKey, cache.ReasonTooLarge)
				f.Leave() // later requests must not join a trimmed body
			}
			stopped, werr := f.Write(ctx, buf[:n])
			if stopped {
				f.Leave()
			}
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// readBuffers are readBody's buffers, 32 KiB each: the flight copies what
// is read into its chunks, so a buffer serves one fill after another
// (making and zeroing one per miss cost about 8% of a 1 KiB miss).
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// storeChunks decides where a filled body is kept: in a blob when it is
// at least blobMin bytes and a blob can be made, else on the heap, in a
// slice of its own size.
func (p *PoP) storeChunks(key string, chunks [][]byte) storedBody {
	var size int
	for _, c := range chunks {
		size += len(c)
	}
	if p.blobMin > 0 && size >= p.blobMin {
		b, err := blob.NewChunks(key, chunks)
		if err == nil {
			return storedBody{blob: b}
		}
		if p.blobFailures.Add(1) == 1 || !errors.Is(err, blob.ErrLimit) {
			p.log.Warn("body kept on the heap", "key", key, "err", err)
		}
	}
	if len(chunks) == 1 && len(chunks[0]) == cap(chunks[0]) {
		return storedBody{heap: chunks[0]}
	}
	body := make([]byte, 0, size)
	for _, c := range chunks {
		body = append(body, c...)
	}
	return storedBody{heap: body}
}

// newEntry makes a stored entry from a response and the rules' decision
// about it. Set-Cookie and the fields the origin marked private or
// no-cache by name are not stored (RFC 9111 §5.2.2.4, §5.2.2.7, §7.3).
func (p *PoP) newEntry(key string, status int, header http.Header, body storedBody, d cache.Decision, requestTime, responseTime time.Time) *cache.Entry {
	h := cache.Shareable(header, d).Clone()
	h.Del("Age")
	h.Set("Content-Length", strconv.FormatInt(body.size(), 10))
	if h.Get("Date") == "" {
		h.Set("Date", responseTime.UTC().Format(http.TimeFormat))
	}
	e := &cache.Entry{
		Key:                  key,
		Status:               status,
		Header:               h,
		Body:                 body.heap,
		Blob:                 body.blob,
		RequestTime:          requestTime,
		ResponseTime:         responseTime,
		InitialAge:           d.InitialAge,
		Lifetime:             d.Lifetime,
		StaleWhileRevalidate: d.StaleWhileRevalidate,
		StaleIfError:         d.StaleIfError,
		NoCache:              d.NoCache,
		MustRevalidate:       d.MustRevalidate,
	}
	e.Prepared = prepareFastHead(e)
	return e
}

// newNonce returns a fresh variant-index nonce.
func newNonce() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cancelOnClose releases a fill's context when the leader closes the body
// of a response it streams alone.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
