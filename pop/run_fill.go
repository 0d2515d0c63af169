package pop

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
)

// errNoReaders stops a fill that is not storing once its readers have gone.
var errNoReaders = errors.New("pop: fill has no readers left")

// runFill fetches f's object from the service's origin on behalf of every
// request that joins f. It runs on its own goroutine, detached from the
// clients, so one client hanging up does not cancel the fill for the rest.
func (p *PoP) runFill(f *fill, svc *service, out origin.Request) {
	defer p.fills.forget(f)
	ctx, cancel := context.WithCancel(context.Background())
	f.mu.Lock()
	f.cancel = cancel
	f.mu.Unlock()

	f.requestTime = p.now()
	svc.stats.originFetches.Add(1)
	resp, err := svc.pool.Do(ctx, out)
	f.responseTime = p.now()
	if err != nil {
		cancel()
		f.err = err
		f.publish()
		return
	}
	origin.RemoveHopByHop(resp.Header)
	f.resp = resp
	f.lifetime = cache.Lifetime(resp.Header, svc.policy)
	f.initialAge = cache.InitialAge(resp.Header, f.requestTime, f.responseTime)
	getReq := &http.Request{Method: http.MethodGet, Header: out.Header}
	storable, reason := cache.Storable(getReq, resp.StatusCode, resp.Header, f.lifetime-f.initialAge)
	if storable && resp.ContentLength > svc.maxObject {
		storable, reason = false, cache.ReasonTooLarge
	}
	f.shared, f.storing, f.reason = storable, storable, reason
	if !storable {
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
	body, store := f.finish(err)
	if err != nil && !errors.Is(err, errNoReaders) {
		p.log.Warn("origin body failed", "service", svc.name, "key", f.key, "bytes", total, "err", err)
	}
	if store {
		e := p.entry(f, body)
		p.store.Set(e, e.StorageTTL(p.now(), svc.keep))
	}
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

// entry makes the stored entry of a completed fill.
func (p *PoP) entry(f *fill, body []byte) *cache.Entry {
	h := f.resp.Header.Clone()
	h.Del("Age")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if h.Get("Date") == "" {
		h.Set("Date", f.responseTime.UTC().Format(http.TimeFormat))
	}
	swr, sie := cache.StaleWindows(h)
	return &cache.Entry{
		Key:                  f.key,
		Status:               f.resp.StatusCode,
		Header:               h,
		Body:                 body,
		RequestTime:          f.requestTime,
		ResponseTime:         f.responseTime,
		InitialAge:           f.initialAge,
		Lifetime:             f.lifetime,
		StaleWhileRevalidate: swr,
		StaleIfError:         sie,
	}
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
