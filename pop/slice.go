package pop

// Large objects in slices (cache.slice; docs/slices.md).
//
// With slicing on, a fill that may start a stored object asks the origin
// for one slice, `Range: bytes=kS-(k+1)S-1` (k is the slice the client's
// range starts in, 0 for a whole GET). The answer decides:
//
//   - 206 for the whole object (complete-length ≤ S, k = 0): an ordinary
//     200, stored and served as any other;
//   - 206 of a larger object with a strong ETag or a Last-Modified, that may
//     be stored, has no Vary and no Content-Encoding: the object is sliced.
//     Its header and freshness are stored under key+"\x00slices" (the
//     "meta"), and each slice under key+"\x00slice:"+nonce+":"+index, so a
//     purge of the URL (the purge index groups keys by the part before the
//     first NUL), a prefix or a tag (every slice carries the object's
//     header) drops them all, and a new representation (a new nonce)
//     orphans every old slice at once;
//   - a 206 the PoP cannot slice (no validator, Vary, coded, bad
//     Content-Range, not storable): the fill asks again without Range and
//     goes on as if slicing were off, and the URL is remembered for a while
//     so the next fills do not ask for a range;
//   - anything else (200: the origin ignores Range; 304, 4xx, 5xx): as
//     before.
//
// A request for a sliced object is answered from the slices its range
// touches, through http.ServeContent over a reader that takes each slice
// from the store or from the one fill in flight for it (collapsed by the
// PoP's fill group, under the in-flight budget and the purge gate), and
// starts the fill of the next slice while it sends one: never more than
// two slices ahead of what the client has taken. Every slice response is
// checked against the object: status 206, Content-Range exactly the
// slice's with the object's complete-length, the object's ETag (or
// Last-Modified), and exactly as many body bytes; a slice of another
// representation drops the object's slices, and a client mid-stream has
// its connection cut rather than get bytes of two versions.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/pop/fill"
)

const (
	// sliceMetaSuffix follows an object's key to name its meta entry.
	sliceMetaSuffix = "\x00slices"
	// fwdPartial is the Cache-Status forward reason of a response that
	// some stored slices and some fetched ones make (RFC 9211 §2.2).
	fwdPartial = "partial"
	// unslicedFor is how long a URL whose object could not be sliced is
	// fetched without a Range.
	unslicedFor = 10 * time.Minute
	// maxDropSlices bounds the slices deleted at once when an object
	// changes; the rest are orphaned (their nonce is gone) and age out.
	maxDropSlices = 1 << 16
)

var (
	// errSliceChanged: a slice came from another representation than the
	// object's (validators or complete-length differ, or the origin
	// answered 200).
	errSliceChanged = errors.New("pop: the object changed between slices")
	// errBadSlice: a slice response that does not fit its request
	// (status, Content-Range, length).
	errBadSlice = errors.New("pop: bad slice response from the origin")
)

// sliceCounters are a service's slice figures (exported by
// limitsCollector).
type sliceCounters struct {
	fetches          atomic.Uint64 // slice requests sent to the origin
	hits             atomic.Uint64 // slices served from storage
	validatorChanges atomic.Uint64 // objects dropped because a slice was of another representation
	errors           atomic.Uint64 // slice responses refused (bad Content-Range, length, status)
	fallbacks        atomic.Uint64 // ranged fills asked again without Range

	// changed holds the nonces of representations a slice found changed,
	// so that the fill of a first slice still in flight does not store
	// its object's meta after the object was dropped.
	mu      sync.Mutex
	changed map[string]struct{}
}

// markChanged records that nonce's object changed; it reports whether
// this is the first report of it.
func (c *sliceCounters) markChanged(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.changed[nonce]; ok {
		return false
	}
	if c.changed == nil || len(c.changed) >= maxMarks {
		c.changed = make(map[string]struct{})
	}
	c.changed[nonce] = struct{}{}
	return true
}

// wasChanged reports whether nonce's object was found changed.
func (c *sliceCounters) wasChanged(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.changed[nonce]
	return ok
}

// sliceObject is a sliced object as its meta entry describes it.
type sliceObject struct {
	meta  *cache.Entry // the object's header and freshness, under metaKey(key)
	key   string       // the object's key
	nonce string       // names this representation's slices
	size  int64        // complete length
	slice int64        // slice size
}

func metaKey(key string) string { return key + sliceMetaSuffix }

// sliceKey is where slice i of the object is stored.
func (o *sliceObject) sliceKey(i int64) string {
	return o.key + "\x00slice:" + o.nonce + ":" + strconv.FormatInt(i, 10)
}

// count is the number of slices.
func (o *sliceObject) count() int64 { return (o.size + o.slice - 1) / o.slice }

// bounds returns the first and last byte of slice i.
func (o *sliceObject) bounds(i int64) (first, last int64) {
	first = i * o.slice
	return first, min(first+o.slice, o.size) - 1
}

// parseMeta reads a meta entry; nil if e is none.
func parseMeta(e *cache.Entry) *sliceObject {
	if e == nil {
		return nil
	}
	key, ok := strings.CutSuffix(e.Key, sliceMetaSuffix)
	if !ok {
		return nil
	}
	o := &sliceObject{meta: e, key: key}
	body := e.Body
	if e.Blob != nil { // read back from the disk tier: the body is in its file
		buf := make([]byte, min(e.BodySize(), 256))
		n, _ := e.Blob.ReadAt(buf, 0)
		body = buf[:n]
	}
	if _, err := fmt.Sscanf(string(body), "slices %s %d %d", &o.nonce, &o.size, &o.slice); err != nil || o.size <= 0 || o.slice <= 0 {
		return nil
	}
	return o
}

// findSliced returns the sliced object stored for key, if any.
func (p *PoP) findSliced(key string) *sliceObject {
	e, ok := p.store.Get(metaKey(key))
	if !ok {
		return nil
	}
	return parseMeta(e)
}

// dropSliced removes a sliced object: its meta (unless another
// representation has replaced it meanwhile) and its slices. It reports
// whether the meta was still there to drop.
func (p *PoP) dropSliced(o *sliceObject) bool {
	cur := p.findSliced(o.key)
	dropped := cur != nil && cur.nonce == o.nonce
	if dropped {
		p.store.Delete(metaKey(o.key))
	}
	for i := range min(o.count(), maxDropSlices) {
		p.store.Delete(o.sliceKey(i))
	}
	return dropped
}

// contentRange is a parsed Content-Range of a 206 (RFC 9110 §14.4).
type contentRange struct{ first, last, size int64 }

// parseContentRange parses "bytes first-last/size" with a known size.
func parseContentRange(v string) (contentRange, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return contentRange{}, false
	}
	span, total, ok := strings.Cut(rest, "/")
	if !ok {
		return contentRange{}, false
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return contentRange{}, false
	}
	var cr contentRange
	var err1, err2, err3 error
	cr.first, err1 = strconv.ParseInt(a, 10, 64)
	cr.last, err2 = strconv.ParseInt(b, 10, 64)
	cr.size, err3 = strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || cr.first < 0 || cr.last < cr.first || cr.size <= cr.last {
		return contentRange{}, false
	}
	return cr, true
}

// singleRange parses a Range field of one byte range against an object of
// size bytes: ok false when there is none, several, or it does not parse.
func singleRange(values []string, size int64) (first, last int64, ok bool) {
	if len(values) != 1 {
		return 0, 0, false
	}
	spec, found := strings.CutPrefix(strings.TrimSpace(values[0]), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" { // a suffix
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size < 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, size > 0
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	last = int64(1<<63 - 1)
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false
		}
	}
	if size >= 0 {
		if first >= size {
			return 0, 0, false
		}
		last = min(last, size-1)
	}
	return first, last, true
}

// strongETag returns the header's ETag when it is strong.
func strongETag(h http.Header) string {
	if e := h.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		return e
	}
	return ""
}

// sameRepresentation reports whether a response with header h is of the
// representation whose stored header is stored: the same strong ETag or,
// without one, the same Last-Modified.
func sameRepresentation(stored, h http.Header) bool {
	if e := strongETag(stored); e != "" {
		return h.Get("ETag") == e
	}
	lm := stored.Get("Last-Modified")
	return lm != "" && h.Get("Last-Modified") == lm
}

// sliceProbe is what a fill that may start a sliced object asks for.
type sliceProbe struct {
	size  int64        // the service's slice size
	index int64        // the slice asked for
	stale *sliceObject // the sliced object being revalidated, if any
}

// sliceProbeFor decides whether the fill for l asks for a slice, and which.
func (p *PoP) sliceProbeFor(r *http.Request, svc *service, l lookup) *sliceProbe {
	if svc.slice <= 0 || l.alone || l.entry != nil || l.noSlice {
		return nil
	}
	if !svc.sliceProbe && l.meta == nil && !l.large {
		return nil // not known to be large: an ordinary fill finds out
	}
	pr := &sliceProbe{size: svc.slice, stale: l.meta}
	size := int64(-1)
	if l.meta != nil {
		size = l.meta.size
		pr.size = l.meta.slice
	}
	if r.Method == http.MethodGet && r.Header.Get("If-Range") == "" {
		if first, _, ok := singleRange(r.Header["Range"], size); ok {
			pr.index = first / pr.size
		}
	}
	return pr
}

// prepare adds the probe's Range (and, revalidating, the stale object's
// validators) to the fill's request.
func (pr *sliceProbe) prepare(h http.Header) {
	first := pr.index * pr.size
	h.Set("Range", "bytes="+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(first+pr.size-1, 10))
	if pr.stale != nil {
		if etag := pr.stale.meta.Header.Get("ETag"); etag != "" {
			h.Set("If-None-Match", etag)
		}
		if lm := pr.stale.meta.Header.Get("Last-Modified"); lm != "" {
			h.Set("If-Modified-Since", lm)
		}
	}
}

// sliceProbed handles the origin's answer to a probe. It returns done when
// the fill is over (published, body read); otherwise the response the fill
// goes on with as if slicing were off: resp itself, resp made a 200 (the
// whole object in one slice), or the answer to the request asked again
// without Range.
func (p *PoP) sliceProbed(ctx context.Context, f *fetch, svc *service, lookupKey string, pr *sliceProbe, resp *http.Response, out *origin.Request) (*http.Response, bool) {
	req := cache.RequestOf(http.MethodGet, f.leaderHeader)
	switch {
	case resp.StatusCode == http.StatusNotModified && pr.stale != nil:
		resp.Body.Close()
		merged := cache.MergeNotModified(pr.stale.meta.Header, resp.Header)
		d := cache.Decide(req, http.StatusOK, merged, svc.policy, f.requestTime, f.responseTime)
		if d.Storable {
			meta := p.sliceMeta(pr.stale.key, pr.stale.nonce, pr.stale.size, pr.stale.slice, merged, d, f)
			p.keep(f, meta, meta.StorageTTL(p.now(), svc.keep))
			f.entry, f.outcome, f.fwdStatus = meta, resultRevalidated, resp.StatusCode
			f.publish()
			return nil, true
		}
	case resp.StatusCode >= 500 && pr.stale != nil && pr.stale.meta.UsableOnError(f.responseTime):
		resp.Body.Close()
		f.entry, f.outcome, f.fwdStatus = pr.stale.meta, resultStaleOnError, resp.StatusCode
		f.publish()
		return nil, true
	case resp.StatusCode == http.StatusPartialContent:
		cr, ok := parseContentRange(resp.Header.Get("Content-Range"))
		lengthOK := resp.ContentLength < 0 || ok && resp.ContentLength == cr.last-cr.first+1
		switch {
		case !ok || !lengthOK:
		case pr.index == 0 && cr.first == 0 && cr.last == cr.size-1 && cr.size <= pr.size:
			// The whole object: an ordinary 200 from here on.
			if pr.stale != nil {
				p.dropSliced(pr.stale)
			}
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
			resp.Header.Del("Content-Range")
			resp.ContentLength = cr.size
			resp.Header.Set("Content-Length", strconv.FormatInt(cr.size, 10))
			return resp, false
		case cr.size > pr.size && cr.first == pr.index*pr.size && cr.last == min(cr.first+pr.size, cr.size)-1:
			if p.startSliced(ctx, f, svc, lookupKey, pr, resp, cr, req) {
				return nil, true
			}
		}
		// A 206 the PoP cannot slice: ask again without Range.
		resp.Body.Close()
		svc.slices.fallbacks.Add(1)
		p.marks.setUnsliced(lookupKey, p.now().Add(unslicedFor))
		out.Header.Del("Range")
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Modified-Since")
		svc.stats.originFetches.Add(1)
		sent := time.Now()
		again, err := svc.pool.Do(ctx, *out)
		svc.stats.originLatency.Observe(time.Since(sent))
		f.responseTime = p.now()
		if err != nil {
			f.err = err
			f.publish()
			return nil, true
		}
		origin.RemoveHopByHop(again.Header)
		resp = again
	}
	if pr.stale != nil {
		p.dropSliced(pr.stale) // the object is no longer this sliced one
	}
	return resp, false
}

// startSliced makes the probe's 206 the first slice of a sliced object, if
// the object may be sliced: it publishes the object's meta to the fill's
// requests and reads the slice. It returns false, having read nothing,
// when the object may not be sliced.
func (p *PoP) startSliced(ctx context.Context, f *fetch, svc *service, lookupKey string, pr *sliceProbe, resp *http.Response, cr contentRange, req cache.Request) bool {
	d := cache.Decide(req, http.StatusOK, resp.Header, svc.policy, f.requestTime, f.responseTime)
	fields, star := cache.VaryFields(resp.Header)
	if !d.Storable || star || len(fields) > 0 || encoded(resp.Header) ||
		(strongETag(resp.Header) == "" && resp.Header.Get("Last-Modified") == "") {
		return false
	}
	nonce := newNonce()
	if st := pr.stale; st != nil {
		if st.size == cr.size && st.slice == pr.size && sameRepresentation(st.meta.Header, resp.Header) {
			nonce = st.nonce // the same representation: its slices stay
		} else {
			svc.slices.validatorChanges.Add(1)
			p.dropSliced(st)
		}
	}
	p.marks.clear(lookupKey)
	meta := p.sliceMeta(lookupKey, nonce, cr.size, pr.size, resp.Header, d, f)
	obj := parseMeta(meta)
	svc.slices.fetches.Add(1)
	f.entry, f.fwdStatus, f.outcome = meta, resp.StatusCode, resultMiss
	f.storeKey = obj.sliceKey(pr.index) // the body this fill's readers get
	f.shared = true
	if !f.Start(cr.last - cr.first + 1) {
		f.Leave()
	}
	f.publish()
	p.sliceBody(ctx, f, svc, obj, pr.index, resp.Body, meta)
	return true
}

// sliceMeta makes the meta entry of a sliced object from the header of a
// response of it.
func (p *PoP) sliceMeta(key, nonce string, size, slice int64, header http.Header, d cache.Decision, f *fetch) *cache.Entry {
	h := cache.Shareable(header, d).Clone()
	h.Del("Age")
	h.Del("Content-Range")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	if h.Get("Date") == "" {
		h.Set("Date", f.responseTime.UTC().Format(http.TimeFormat))
	}
	return &cache.Entry{
		Key:                  metaKey(key),
		Status:               http.StatusOK,
		Header:               h,
		Body:                 fmt.Appendf(nil, "slices %s %d %d", nonce, size, slice),
		RequestTime:          f.requestTime,
		ResponseTime:         f.responseTime,
		InitialAge:           d.InitialAge,
		Lifetime:             d.Lifetime,
		StaleWhileRevalidate: d.StaleWhileRevalidate,
		StaleIfError:         d.StaleIfError,
		NoCache:              d.NoCache,
		MustRevalidate:       d.MustRevalidate,
	}
}

// sliceBody reads slice i of obj into f and stores it, with meta when
// given (a probe makes the object's meta with its first slice), once it is
// complete and exactly as long as the slice.
func (p *PoP) sliceBody(ctx context.Context, f *fetch, svc *service, obj *sliceObject, i int64, body io.ReadCloser, meta *cache.Entry) {
	first, last := obj.bounds(i)
	want := last - first + 1
	bp := readBuffers.Get().(*[]byte)
	buf := *bp
	var total int64
	var err error
	for err == nil {
		n, rerr := body.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > want {
				err = fmt.Errorf("%w: more than the %d bytes of slice %d", errBadSlice, want, i)
				break
			}
			stopped, werr := f.Write(ctx, buf[:n])
			if stopped {
				f.Leave()
			}
			err = werr
		}
		switch {
		case err != nil:
		case rerr == io.EOF && total != want:
			err = fmt.Errorf("%w: %d of the %d bytes of slice %d", errBadSlice, total, want, i)
		case rerr == io.EOF:
			rerr = nil
			goto done
		case rerr != nil:
			err = rerr
		}
	}
done:
	readBuffers.Put(bp)
	body.Close()
	svc.stats.originBytes.Add(uint64(total))
	if errors.Is(err, errBadSlice) {
		svc.slices.errors.Add(1)
		p.log.Warn("bad slice from the origin; not stored", "service", svc.name, "key", obj.key, "slice", i, "err", err)
	} else if err != nil && !errors.Is(err, fill.ErrNoReaders) && !errors.Is(err, context.Canceled) {
		p.log.Warn("origin body failed", "service", svc.name, "key", obj.key, "slice", i, "bytes", total, "err", err)
	}
	f.Finish(err, func(chunks [][]byte) fill.Stored {
		key := obj.sliceKey(i)
		b := p.storeChunks(key, chunks)
		src := obj.meta
		e := &cache.Entry{
			Key: key, Status: http.StatusPartialContent, Header: src.Header, Body: b.heap, Blob: b.blob,
			RequestTime: src.RequestTime, ResponseTime: src.ResponseTime, InitialAge: src.InitialAge,
			Lifetime: src.Lifetime, StaleWhileRevalidate: src.StaleWhileRevalidate, StaleIfError: src.StaleIfError,
			NoCache: src.NoCache, MustRevalidate: src.MustRevalidate,
		}
		ttl := src.StorageTTL(p.now(), svc.keep)
		if !svc.slices.wasChanged(obj.nonce) { // else the object was dropped while this slice came
			p.keep(f, e, ttl) // the slice before the meta that leads to it
			if meta != nil {
				p.keep(f, meta, ttl)
			}
		}
		if b.blob != nil {
			return fill.Stored{At: b.blob, Size: b.blob.Size()}
		}
		return fill.Stored{Bytes: b.heap}
	})
}

// joinSlice returns the fill in flight for slice i of obj, started if
// there was none, with a reader attached; nil when none could be joined.
func (p *PoP) joinSlice(r *http.Request, svc *service, obj *sliceObject, i int64, purgeSeq uint64) (*fetch, *fill.Reader) {
	key := obj.sliceKey(i)
	for range 3 {
		f, leader := p.fills.join(key)
		rd := f.Attach()
		if leader {
			p.startSliceFill(f, r, svc, obj, i, purgeSeq)
		}
		if rd != nil {
			return f, rd
		}
		// A relay whose start is gone has left the group: the next join
		// starts a new fill.
	}
	return nil, nil
}

// startSliceFill runs the fill of slice i of obj on its own goroutine.
func (p *PoP) startSliceFill(f *fetch, r *http.Request, svc *service, obj *sliceObject, i int64, purgeSeq uint64) {
	primary, _, _ := strings.Cut(obj.key, "\x00")
	f.primary = primary
	f.leaderHeader = r.Header.Clone()
	f.purgeSeq = purgeSeq
	f.storeKey = obj.sliceKey(i)
	out := p.fillRequest(r, nil)
	out.CacheKey = primary
	first, last := obj.bounds(i)
	out.Header.Set("Range", "bytes="+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	hooks := svc.fillHooks
	hooks.Cancel = cancel
	f.Prepare(hooks)
	go p.runSliceFill(ctx, f, svc, obj, i, out)
}

// runSliceFill fetches slice i of obj for every request that joins f.
func (p *PoP) runSliceFill(ctx context.Context, f *fetch, svc *service, obj *sliceObject, i int64, out origin.Request) {
	defer func() {
		f.End()
		f.cancel()
	}()
	if svc.fillTimeout > 0 {
		deadline := time.AfterFunc(svc.fillTimeout, func() {
			if f.Storing() {
				p.log.Warn("slice fill timed out; not stored", "service", svc.name, "key", f.Key(), "timeout", svc.fillTimeout)
				f.cancel()
			}
		})
		defer deadline.Stop()
	}
	f.requestTime = p.now()
	svc.stats.originFetches.Add(1)
	svc.slices.fetches.Add(1)
	sent := time.Now()
	resp, err := svc.pool.Do(ctx, out)
	svc.stats.originLatency.Observe(time.Since(sent))
	f.responseTime = p.now()
	if err != nil {
		f.err = err
		f.publish()
		return
	}
	origin.RemoveHopByHop(resp.Header)
	if err := obj.check(i, resp); err != nil {
		resp.Body.Close()
		if errors.Is(err, errSliceChanged) {
			if svc.slices.markChanged(obj.nonce) {
				svc.slices.validatorChanges.Add(1)
				p.log.Info("object changed between slices; its slices are dropped", "service", svc.name, "key", obj.key, "slice", i, "err", err)
			}
			p.dropSliced(obj)
		} else {
			svc.slices.errors.Add(1)
			p.log.Warn("bad slice from the origin; not stored", "service", svc.name, "key", obj.key, "slice", i, "err", err)
		}
		f.err = err
		f.publish()
		return
	}
	f.shared, f.fwdStatus = true, resp.StatusCode
	first, last := obj.bounds(i)
	if !f.Start(last - first + 1) {
		f.Leave()
	}
	f.publish()
	p.sliceBody(ctx, f, svc, obj, i, resp.Body, nil)
}

// check says whether resp is slice i of obj: a 206 of exactly the slice's
// bytes, of the object's representation.
func (o *sliceObject) check(i int64, resp *http.Response) error {
	first, last := o.bounds(i)
	if resp.StatusCode == http.StatusOK {
		return fmt.Errorf("%w: the origin answered a range with 200", errSliceChanged)
	}
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("%w: status %d", errBadSlice, resp.StatusCode)
	}
	cr, ok := parseContentRange(resp.Header.Get("Content-Range"))
	switch {
	case !sameRepresentation(o.meta.Header, resp.Header):
		return fmt.Errorf("%w: ETag %q, Last-Modified %q", errSliceChanged, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
	case !ok:
		return fmt.Errorf("%w: Content-Range %q", errBadSlice, resp.Header.Get("Content-Range"))
	case cr.size != o.size:
		return fmt.Errorf("%w: complete length %d, was %d", errSliceChanged, cr.size, o.size)
	case cr.first != first || cr.last != last:
		return fmt.Errorf("%w: Content-Range %q for bytes %d-%d", errBadSlice, resp.Header.Get("Content-Range"), first, last)
	case resp.ContentLength >= 0 && resp.ContentLength != last-first+1:
		return fmt.Errorf("%w: Content-Length %d for %d bytes", errBadSlice, resp.ContentLength, last-first+1)
	}
	return nil
}
