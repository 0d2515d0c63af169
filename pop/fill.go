package pop

import (
	"context"
	"errors"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// A fill is one origin fetch for a key that any number of requests share.
//
// The first request for a key (the leader) starts it; requests that arrive
// while it runs wait for its response header. If the response is to be
// stored, the fill reads the body on its own goroutine, detached from every
// client, into chunks taken from the PoP's in-flight budget, and each
// request streams the body from those chunks as they fill; a client that
// hangs up leaves the others undisturbed. Once the body is complete and
// stored, readers go on from the stored entry and the chunks are given
// back.
//
// A fill stops storing when the body outgrows max_object or the budget has
// no more bytes for it: from then on it relays the origin's body at the
// pace of its slowest reader, holding at most relayWindow bytes ahead of
// it, and stops when its last reader leaves. A fill whose every client
// has left goes on only while it is storing and holds a detached-fill slot
// (PoP-wide and per service); otherwise it is cancelled, so requests reset
// by a client never become origin load beyond those bounds.
//
// If the response is not to be stored, the fill belongs to its leader
// alone: the leader streams it straight from the origin and the waiters are
// released to fetch for themselves. Waiters only ever see the shareable
// part of a response (cache.Shareable): a cookie or a private field the
// origin gave the leader never reaches them.
type fill struct {
	key string
	// joined counts the requests that joined the fill, the leader included.
	joined atomic.Int32
	// group is the fill group the fill is in, to leave it when it stops
	// storing (later requests must not join a body they cannot have whole).
	group *fillGroup
	// interim carries the origin's 1xx responses to the leader until
	// ready is closed; it never blocks the fill (a full channel drops).
	interim chan interimResponse

	// ready is closed once the fields below it are set.
	ready chan struct{}
	// err is the failure that left the fill without a response header.
	err error
	// resp is the origin response, before any body has been read; its
	// header is the leader's alone.
	resp *http.Response
	// header is resp.Header as every other request may see it: without
	// Set-Cookie and the fields the origin named private or no-cache.
	header http.Header
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
	// leaderEntry is what the leader gets instead of entry after a 304: the
	// merged response with the 304's personal fields. waitersAlone says the
	// 304 made the response unshareable: the other requests fetch their
	// own.
	entry        *cache.Entry
	leaderEntry  *cache.Entry
	waitersAlone bool
	outcome      result
	fwdStatus    int
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
	encoding     string       // the Accept-Encoding sent to the origin (folded)
	budget       *budget      // where body chunks come from
	// detach tries to take detached-fill slots for this fill when its last
	// client leaves; release gives them back when the fill ends.
	detach  func() bool
	release func()

	mu sync.Mutex
	// leaderGone records that the leader left before the header came, so a
	// private response has no reader and is closed.
	leaderGone bool
	// chunks hold the body bytes read so far, from offset base (when
	// trimmed); held is their capacity, taken from budget. expect is the
	// announced length, to size the last chunk.
	chunks [][]byte
	base   int64
	held   int64
	expect int64
	// storing is cleared when the body outgrows the object limit or the
	// budget: from then on the chunks are trimmed behind the slowest
	// reader, and at most relayWindow bytes are read ahead of it.
	storing  bool
	readers  map[*bodyReader]struct{}
	done     bool
	bodyErr  error
	detached bool // holds detached-fill slots
	stopped  bool // cancelled because no client is left
	// final is the complete, stored entry once done without error; from
	// then on readers read from it and the chunks are gone.
	final *cache.Entry
	// changed is closed, and replaced, whenever the body, done or readers
	// change.
	changed chan struct{}
	// cancel stops the origin fetch.
	cancel context.CancelFunc
}

// interimResponse is one 1xx response the origin sent before its final one.
type interimResponse struct {
	code   int
	header http.Header
}

const (
	// chunkSize is the size of the pieces a fill's body is read into.
	chunkSize = 64 << 10
	// relayWindow is how far a fill that no longer stores may read ahead
	// of its slowest reader.
	relayWindow = 256 << 10
)

func newFill(key string) *fill {
	return &fill{
		key:     key,
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
		readers: make(map[*bodyReader]struct{}),
		interim: make(chan interimResponse, 4),
	}
}

// errNoReaders stops a fill that is not storing once its readers have gone.
var errNoReaders = errors.New("pop: fill has no readers left")

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

// sendInterim hands a 1xx response to the leader without ever blocking
// the fill.
func (f *fill) sendInterim(code int, h textproto.MIMEHeader) error {
	select {
	case f.interim <- interimResponse{code: code, header: http.Header(h).Clone()}:
	default:
	}
	return nil
}

// notifyLocked wakes every reader waiting for a change. f.mu is held.
func (f *fill) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// endLocked is the offset just past the bytes in the chunks.
func (f *fill) endLocked() int64 {
	end := f.base
	for _, c := range f.chunks {
		end += int64(len(c))
	}
	return end
}

// start prepares the fill for its body once the header says it is to be
// stored. It takes the body's first chunk from the budget now, before the
// header reaches any client, so that a fill the budget cannot hold is known
// as one while Cache-Status can still say so (hostile_test.go: without it
// every client was told "stored" and nothing was). It returns false when
// the budget refused: the fill relays from the start, reason
// inflight-budget.
func (f *fill) start(expect int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expect = expect
	size := int64(chunkSize)
	if expect >= 0 && expect < size {
		size = expect
	}
	if size > 0 && !f.budget.tryTake(size) {
		f.storing, f.reason = false, reasonBudget
		return false
	}
	f.storing = true
	if size > 0 {
		f.held += size
		f.chunks = append(f.chunks, make([]byte, 0, size))
	}
	return true
}

// write adds body bytes read from the origin. It returns errNoReaders when
// the fill has no use for them (not storing and no reader left), or ctx's
// error. A relaying fill waits here while its readers are relayWindow
// behind or the budget is short; a storing fill that the budget cannot
// grow stops storing (stopped reports it).
func (f *fill) write(ctx context.Context, p []byte) (stopped bool, err error) {
	for len(p) > 0 {
		f.mu.Lock()
		if !f.storing {
			if len(f.readers) == 0 {
				f.mu.Unlock()
				return stopped, errNoReaders
			}
			if f.endLocked()-f.lowLocked() >= relayWindow {
				changed := f.changed
				f.mu.Unlock()
				select {
				case <-changed:
				case <-ctx.Done():
					return stopped, ctx.Err()
				}
				continue
			}
		}
		last := len(f.chunks) - 1
		if last < 0 || len(f.chunks[last]) == cap(f.chunks[last]) {
			size := int64(chunkSize)
			if f.expect > 0 {
				if rem := f.expect - f.endLocked(); rem > 0 && rem < size {
					size = rem
				}
			}
			if !f.budget.tryTake(size) {
				if f.storing {
					f.storing, f.reason = false, reasonBudget
					f.trimLocked()
					f.notifyLocked()
					f.mu.Unlock()
					stopped = true
					continue
				}
				f.mu.Unlock()
				if err := f.budget.take(ctx, size); err != nil {
					return stopped, err
				}
				f.mu.Lock()
			}
			f.held += size
			f.chunks = append(f.chunks, make([]byte, 0, size))
			last = len(f.chunks) - 1
		}
		c := f.chunks[last]
		n := copy(c[len(c):cap(c)], p)
		f.chunks[last] = c[:len(c)+n]
		p = p[n:]
		f.notifyLocked()
		f.mu.Unlock()
	}
	return stopped, nil
}

// reasonBudget is the Cache-Status detail of a fill that stopped storing
// because the PoP's in-flight budget was spent.
const reasonBudget = "inflight-budget"

// stopStoring turns the fill into a relay after the body outgrew the
// object limit.
func (f *fill) stopStoring(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.storing {
		f.storing, f.reason = false, reason
	}
	f.trimLocked()
	f.notifyLocked()
}

// isStoring reports whether the body is still to be stored.
func (f *fill) isStoring() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storing
}

// storingNow reports whether the body is still to be stored and, if not,
// why.
func (f *fill) storingNow() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storing, f.reason
}

// finish records the end of the body (err nil on a complete one). When the
// body is complete and still to be stored, store makes and stores the
// entry from the chunks; readers then go on from it and the chunks are
// given back.
func (f *fill) finish(err error, store func(chunks [][]byte) *cache.Entry) {
	f.mu.Lock()
	keep := f.storing && err == nil
	chunks := f.chunks
	f.mu.Unlock()
	var final *cache.Entry
	if keep {
		final = store(chunks)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.final = final
	f.done = true
	f.bodyErr = err
	if final != nil || len(f.readers) == 0 {
		f.dropChunksLocked()
	}
	f.notifyLocked()
}

// dropChunksLocked lets go of the body's chunks and gives their bytes back.
func (f *fill) dropChunksLocked() {
	f.base = f.endLocked()
	f.chunks = nil
	f.budget.give(f.held)
	f.held = 0
}

// lowLocked is the position of the slowest reader (the end when none).
func (f *fill) lowLocked() int64 {
	low := f.endLocked()
	for r := range f.readers {
		low = min(low, r.pos)
	}
	return low
}

// trimLocked drops the chunks every reader has passed, when not storing.
func (f *fill) trimLocked() {
	if f.storing || f.final != nil {
		return
	}
	low := f.lowLocked()
	for len(f.chunks) > 0 {
		c := f.chunks[0]
		if f.base+int64(len(c)) > low || len(c) < cap(c) && len(f.chunks) == 1 {
			break // still to be read, or the chunk being written
		}
		f.base += int64(len(c))
		f.held -= int64(cap(c))
		f.budget.give(int64(cap(c)))
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
	}
}

// bodyReader is one request's position in a shared fill's body.
type bodyReader struct {
	f   *fill
	pos int64
	buf []byte // for reading a stored blob
}

// attach adds a reader at the start of the body. It returns nil when the
// body's start is gone (trimmed), so the body cannot be served whole from
// this fill.
func (f *fill) attach() *bodyReader {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.base != 0 && f.final == nil {
		return nil
	}
	r := &bodyReader{f: f}
	f.readers[r] = struct{}{}
	return r
}

// detach removes the reader. A fill that is not storing stops once its
// last reader has gone; one that is storing (or has no header yet) goes on
// only if it gets detached-fill slots.
func (r *bodyReader) detach() {
	f := r.f
	f.mu.Lock()
	delete(f.readers, r)
	f.trimLocked()
	f.notifyLocked()
	switch {
	case len(f.readers) > 0:
		f.mu.Unlock()
		return
	case f.done:
		f.dropChunksLocked()
		f.mu.Unlock()
		return
	}
	decided := false
	select {
	case <-f.ready:
		decided = true
	default:
	}
	if !decided || f.storing {
		// The object may still be stored for the next client: go on if
		// the bounds allow.
		if f.detached || f.background {
			f.mu.Unlock()
			return
		}
		if f.detach != nil && f.detach() {
			f.detached = true
			f.mu.Unlock()
			return
		}
	}
	f.mu.Unlock()
	// No one is left to serve and nothing to store: cancel the fetch,
	// after leaving the group so that no new request joins a dying fill.
	if f.group != nil {
		f.group.forget(f)
	}
	f.mu.Lock()
	cancel := f.cancel
	stop := len(f.readers) == 0 && !f.done
	if stop {
		f.stopped = true
	}
	f.mu.Unlock()
	if stop && cancel != nil {
		cancel()
	}
}

// next waits for body bytes past the reader's position and returns them.
// It returns done=true with the fill's error once the body is complete and
// read, or ctx's error if the client goes away first. The returned slice is
// shared (or the reader's own buffer) and must not be modified.
func (r *bodyReader) next(ctx context.Context) (chunk []byte, done bool, err error) {
	f := r.f
	for {
		f.mu.Lock()
		if f.final != nil {
			e := f.final
			f.mu.Unlock()
			return r.nextStored(e)
		}
		if r.pos < f.endLocked() {
			off := r.pos - f.base
			for _, c := range f.chunks {
				if off < int64(len(c)) {
					chunk = c[off:]
					break
				}
				off -= int64(len(c))
			}
			r.pos += int64(len(chunk))
			f.trimLocked()
			f.notifyLocked()
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

// nextStored continues a reader from the stored entry.
func (r *bodyReader) nextStored(e *cache.Entry) ([]byte, bool, error) {
	size := e.BodySize()
	if r.pos >= size {
		return nil, true, nil
	}
	if e.Blob == nil {
		chunk := e.Body[r.pos:]
		r.pos = size
		return chunk, false, nil
	}
	if r.buf == nil {
		r.buf = make([]byte, 32<<10)
	}
	n, err := e.Blob.ReadAt(r.buf[:min(int64(len(r.buf)), size-r.pos)], r.pos)
	r.pos += int64(n)
	if n > 0 {
		return r.buf[:n], false, nil
	}
	return nil, true, err
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
	f.group = g
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
