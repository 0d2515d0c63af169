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
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
)

// errNoReaders stops a fill that is not storing once its readers have gone.
var errNoReaders = errors.New("pop: fill has no readers left")

// startFill prepares f for the request that leads it and runs it on its own
// goroutine. A stored entry that must be validated turns the fill into a
// conditional request.
func (p *PoP) startFill(f *fill, r *http.Request, svc *service, l lookup) {
	f.primary = l.primary
	f.index = l.index
	f.stale = l.entry
	f.leaderHeader = r.Header.Clone()
	f.purgeSeq = p.purges.current()
	out := p.fillRequest(r, l.entry)
	out.CacheKey = l.primary
	go p.runFill(f, svc, out)
}

// runFill fetches f's object from the service's origin on behalf of every
// request that joins f. It runs detached from the clients, so one client
// hanging up does not cancel the fill for the rest.
func (p *PoP) runFill(f *fill, svc *service, out origin.Request) {
	defer p.fills.forget(f)
	ctx, cancel := context.WithCancel(context.Background())
	f.mu.Lock()
	f.cancel = cancel
	f.mu.Unlock()

	f.requestTime = p.now()
	svc.stats.originFetches.Add(1)
	sent := time.Now()
	resp, err := svc.pool.Do(ctx, out)
	svc.stats.originLatency.observe(time.Since(sent))
	f.responseTime = p.now()
	if err != nil {
		cancel()
		if f.stale != nil && f.stale.UsableOnError(f.responseTime) {
			p.log.Warn("origin failed; serving stale", "service", svc.name, "key", f.key, "err", err)
			f.entry, f.outcome = f.stale, resultStaleOnError
		} else {
			f.err = err
		}
		f.publish()
		return
	}
	origin.RemoveHopByHop(resp.Header)
	getReq := &http.Request{Method: http.MethodGet, Header: f.leaderHeader}

	if f.stale != nil {
		switch {
		case resp.StatusCode == http.StatusNotModified:
			// RFC 9111 §4.3.4: freshen the stored response.
			resp.Body.Close()
			cancel()
			merged := cache.MergeNotModified(f.stale.Header, resp.Header)
			d := cache.Decide(getReq, f.stale.Status, merged, svc.policy, f.requestTime, f.responseTime)
			e := p.newEntry(f.key, f.stale.Status, merged, storedBody{heap: f.stale.Body, blob: f.stale.Blob}, d, f.requestTime, f.responseTime)
			if d.Storable {
				p.keep(f, e, e.StorageTTL(p.now(), svc.keep))
			}
			f.entry, f.outcome, f.fwdStatus = e, resultRevalidated, resp.StatusCode
			f.publish()
			return
		case resp.StatusCode >= 500 && f.stale.UsableOnError(f.responseTime):
			// RFC 5861 §4: the origin errs; the stale copy stands in.
			resp.Body.Close()
			cancel()
			f.entry, f.outcome, f.fwdStatus = f.stale, resultStaleOnError, resp.StatusCode
			f.publish()
			return
		}
	}

	f.resp = resp
	d := cache.Decide(getReq, resp.StatusCode, resp.Header, svc.policy, f.requestTime, f.responseTime)
	if d.Storable && resp.ContentLength > svc.maxObject {
		d.Storable, d.Reason = false, cache.ReasonTooLarge
	}
	f.decision = d
	f.storeKey = f.primary
	if fields, _ := cache.VaryFields(resp.Header); d.Storable && len(fields) > 0 {
		f.varyFields, f.varyNonce = fields, newNonce()
		if f.index != nil && slices.Equal(f.index.VaryFields, fields) {
			f.varyNonce = f.index.VaryNonce
		}
		f.storeKey = cache.VariantKey(f.primary, f.varyNonce, fields, f.leaderHeader)
	}
	f.shared, f.storing, f.reason = d.Storable, d.Storable, d.Reason
	if !d.Storable {
		// The leader reads the body itself and closes it; waiters fetch
		// their own.
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		p.fills.forget(f)
		f.publish()
		return
	}
	if resp.ContentLength > 0 {
		f.body = make([]byte, 0, resp.ContentLength)
	}
	f.publish()

	total, err := p.readBody(f, svc, resp.Body)
	resp.Body.Close()
	cancel()
	svc.stats.originBytes.Add(uint64(total))
	if err != nil && !errors.Is(err, errNoReaders) {
		p.log.Warn("origin body failed", "service", svc.name, "key", f.key, "bytes", total, "err", err)
	}
	f.finish(err, func(body []byte) *cache.Entry {
		e := p.newEntry(f.storeKey, resp.StatusCode, resp.Header, p.storeBody(f.storeKey, body), d, f.requestTime, f.responseTime)
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
		return e
	})
}

// keep offers a fill's entry to the store and indexes its key, unless a
// purge that covers it landed while the fill was in flight: the object the
// fill fetched may be the one the purge meant to remove.
func (p *PoP) keep(f *fill, e *cache.Entry, ttl time.Duration) {
	// The gate makes the check and the Set one step as far as a purge is
	// concerned: a purge either sees this entry in the index or is seen by
	// the check.
	p.purges.gate.RLock()
	defer p.purges.gate.RUnlock()
	if p.purges.purgedSince(f.purgeSeq, e.Key, entryTags(e)) {
		p.log.Debug("fill not stored: purged while in flight", "key", e.Key)
		return
	}
	p.index.add(e)
	p.store.Set(e, ttl)
}

// readBody copies the origin body into f until its end, an error, or the
// fill no longer needs it.
func (p *PoP) readBody(f *fill, svc *service, body io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > svc.maxObject && f.storing {
				f.stopStoring()
				p.fills.forget(f) // later requests must not join a trimmed body
			}
			if !f.append(buf[:n]) {
				return total, errNoReaders
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

// newEntry makes a stored entry from a response and the rules' decision
// about it. Fields the origin marked private or no-cache by name are not
// stored (RFC 9111 §5.2.2.4, §5.2.2.7).
func (p *PoP) newEntry(key string, status int, header http.Header, body storedBody, d cache.Decision, requestTime, responseTime time.Time) *cache.Entry {
	h := header.Clone()
	h.Del("Age")
	for _, name := range d.StripFields {
		h.Del(name)
	}
	h.Set("Content-Length", strconv.FormatInt(body.size(), 10))
	if h.Get("Date") == "" {
		h.Set("Date", responseTime.UTC().Format(http.TimeFormat))
	}
	return &cache.Entry{
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
