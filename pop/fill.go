package pop

import (
	"context"
	"github.com/outpost-cdn/outpost/cache"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A fill is one origin fetch for a key that any number of requests share.
//
// The first request for a key (the leader) starts it; requests that arrive
// while it runs wait for its response header. If the response is to be
// stored, the fill reads the whole body into memory on its own goroutine,
// detached from every client, and each request streams the body from that
// buffer as it grows; a client that hangs up leaves the others undisturbed.
// If the response is not to be stored, the fill belongs to its leader alone:
// the leader streams it straight from the origin and the waiters are
// released to fetch for themselves.
type fill struct {
	key string
	// joined counts the requests that joined the fill, the leader included.
	joined atomic.Int32

	// ready is closed once the fields below it are set.
	ready chan struct{}
	// err is the failure that left the fill without a response header.
	err error
	// resp is the origin response, before any body has been read.
	resp *http.Response
	// shared says the body is buffered for every reader; if false the
	// leader alone reads resp.Body.
	shared bool
	// reason says why the response is not stored ("" when it is).
	reason string
	// requestTime and responseTime bracket the origin exchange.
	requestTime, responseTime time.Time
	// decision is what the caching rules said of resp.
	decision cache.Decision
	// entry, when set, answers every request of the fill from storage:
	// the stored response freshened by a 304, or served stale because the
	// origin failed (outcome says which); fwdStatus is the origin's status.
	entry     *cache.Entry
	outcome   result
	fwdStatus int
	// storeKey is the key the response will be stored under: the URL's
	// key, or its variant's when the response varies on varyFields.
	storeKey   string
	varyFields []string
	varyNonce  string

	// Set by startFill before the fill runs.
	primary      string       // the URL's key
	index        *cache.Entry // the variant index found, if any
	stale        *cache.Entry // the stored entry being validated, if any
	leaderHeader http.Header  // the leading request's header fields
	background   bool         // a stale-while-revalidate refresh: no leader reads it
	purgeSeq     uint64       // the latest purge when the fill started

	mu sync.Mutex
	// leaderGone records that the leader left before the header came, so a
	// private response has no reader and is closed.
	leaderGone bool
	// body holds the bytes read so far (from offset base when trimmed).
	body []byte
	base int64
	// storing is cleared when the body outgrows the object limit; from
	// then on the buffer is trimmed behind the slowest reader.
	storing bool
	readers map[*bodyReader]struct{}
	done    bool
	bodyErr error
	// final is the complete, stored entry once done without error.
	final *cache.Entry
	// changed is closed, and replaced, whenever body, done or readers change.
	changed chan struct{}
	// cancel stops the origin fetch.
	cancel context.CancelFunc
}

func newFill(key string) *fill {
	return &fill{
		key:     key,
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
		readers: make(map[*bodyReader]struct{}),
	}
}

// publish sets the fill's outcome and wakes the waiters. For a private
// response whose leader has already left, it closes the body instead.
func (f *fill) publish() {
	f.mu.Lock()
	orphan := !f.shared && f.resp != nil && f.leaderGone
	close(f.ready)
	f.mu.Unlock()
	if orphan {
		f.resp.Body.Close()
	}
}

// abandon records that the leader left before the response header came.
// A private response that has already arrived is closed, as no one will
// read it.
func (f *fill) abandon() {
	f.mu.Lock()
	f.leaderGone = true
	var orphan *http.Response
	select {
	case <-f.ready:
		if !f.shared && f.resp != nil {
			orphan = f.resp
		}
	default:
	}
	f.mu.Unlock()
	if orphan != nil {
		orphan.Body.Close()
	}
}

// notifyLocked wakes every reader waiting for a change. f.mu is held.
func (f *fill) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// append adds bytes read from the origin. It returns false when the fill
// no longer has a use for more: it is not storing and no reader is left.
func (f *fill) append(p []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body = append(f.body, p...)
	f.notifyLocked()
	return f.storing || len(f.readers) > 0
}

// stopStoring turns the fill into a pass-through after the body outgrew the
// object limit: the buffer is trimmed behind the slowest reader from now on.
func (f *fill) stopStoring() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storing = false
	f.trimLocked()
}

// finish records the end of the body (err nil on a complete one). When the
// body is complete and still to be stored, store makes and stores the
// entry, which then serves the readers that need the whole object.
func (f *fill) finish(err error, store func(body []byte) *cache.Entry) {
	f.mu.Lock()
	keep := f.storing && err == nil
	body := f.body
	f.mu.Unlock()
	var final *cache.Entry
	if keep {
		final = store(body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.final = final
	f.done = true
	f.bodyErr = err
	f.notifyLocked()
}

// trimLocked drops bytes every reader has passed, when not storing.
func (f *fill) trimLocked() {
	if f.storing {
		return
	}
	low := f.base + int64(len(f.body))
	for r := range f.readers {
		low = min(low, r.pos)
	}
	if drop := low - f.base; drop > 0 {
		f.body = f.body[drop:]
		f.base = low
	}
}

// bodyReader is one request's position in a shared fill's body.
type bodyReader struct {
	f   *fill
	pos int64
}

// attach adds a reader at the start of the body. It returns nil when the
// buffer no longer starts at zero (trimmed), so the body cannot be served
// whole from this fill.
func (f *fill) attach() *bodyReader {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.base != 0 {
		return nil
	}
	r := &bodyReader{f: f}
	f.readers[r] = struct{}{}
	return r
}

// detach removes the reader; a fill that is not storing stops once its
// last reader has gone.
func (r *bodyReader) detach() {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.readers, r)
	f.trimLocked()
	if !f.storing && len(f.readers) == 0 && !f.done && f.cancel != nil {
		f.cancel()
	}
}

// next waits for body bytes past the reader's position and returns them.
// It returns done=true with the fill's error once the body is complete and
// read, or ctx's error if the client goes away first. The returned slice is
// shared and must not be modified.
func (r *bodyReader) next(ctx context.Context) (chunk []byte, done bool, err error) {
	f := r.f
	for {
		f.mu.Lock()
		if end := f.base + int64(len(f.body)); r.pos < end {
			chunk = f.body[r.pos-f.base:]
			r.pos = end
			f.trimLocked()
			f.mu.Unlock()
			return chunk, false, nil
		}
		if f.done {
			err := f.bodyErr
			f.mu.Unlock()
			return nil, true, err
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// drain waits until the whole body has arrived, discarding it.
func (r *bodyReader) drain(ctx context.Context) error {
	for {
		_, done, err := r.next(ctx)
		if done || err != nil {
			return err
		}
	}
}

// fillGroup tracks the fills in flight by key.
type fillGroup struct {
	mu    sync.Mutex
	fills map[string]*fill
}

// join returns the fill in flight for key, or starts a new one; leader is
// true for the request that must run it.
func (g *fillGroup) join(key string) (f *fill, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.fills[key]; ok {
		f.joined.Add(1)
		return f, false
	}
	if g.fills == nil {
		g.fills = make(map[string]*fill)
	}
	f = newFill(key)
	f.joined.Add(1)
	g.fills[key] = f
	return f, true
}

// forget removes f from the group if it is still the fill for its key, so
// that later requests start afresh.
func (g *fillGroup) forget(f *fill) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fills[f.key] == f {
		delete(g.fills, f.key)
	}
}

// joined returns how many requests have joined the fill in flight for key
// (0 when there is none).
func (g *fillGroup) joined(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.fills[key]; ok {
		return int(f.joined.Load())
	}
	return 0
}

// inFlight returns the number of fills running.
func (g *fillGroup) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.fills)
}
