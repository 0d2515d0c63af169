package pop

import (
	"context"
	"errors"
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/pop/fill"
)

// A fetch is the PoP's side of a fill: one origin fetch for a key that any
// number of requests share (package fill runs the sharing: the group by
// key, the body in chunks from the in-flight budget, the readers, the
// relay window and the detached-fill slots).
//
// The first request for a key (the leader) starts it; requests that arrive
// while it runs wait for its response header. If the response is to be
// stored, the fill reads the body on its own goroutine, detached from every
// client, and each request streams it as it arrives; a client that hangs
// up leaves the others undisturbed. Once the body is complete and stored,
// readers go on from the stored entry.
//
// A fill stops storing when the body outgrows max_object or the in-flight
// budget has no more bytes for it, and then relays at its slowest reader's
// pace. A fill whose every client has left goes on only while it is
// storing and holds a detached-fill slot (PoP-wide and per service);
// otherwise it is cancelled, so requests reset by a client never become
// origin load beyond those bounds.
//
// If the response is not to be stored, the fill belongs to its leader
// alone: the leader streams it straight from the origin and the waiters are
// released to fetch for themselves. Waiters only ever see the shareable
// part of a response (cache.Shareable): a cookie or a private field the
// origin gave the leader never reaches them.
type fetch struct {
	*fill.Flight
	// interim carries the origin's 1xx responses to the leader until the
	// fill publishes; it never blocks the fill (a full channel drops).
	interim chan interimResponse

	// The fields from err to varyNonce are set before the fill publishes
	// and never change after.

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
	// reason says why the caching rules would not store the response (""
	// when they would); see notStored for why a shared body stopped being
	// stored.
	reason cache.Reason
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
	cancel       context.CancelFunc

	// final is the complete, stored entry once the body is done; set by
	// the fill before its readers are told the body is done.
	final *cache.Entry

	mu sync.Mutex
	// leaderGone records that the leader left before the header came, so a
	// private response has no reader and is closed.
	leaderGone bool
}

// interimResponse is one 1xx response the origin sent before its final one.
type interimResponse struct {
	code   int
	header http.Header
}

const (
	// chunkSize and relayWindow are package fill's, named here for the
	// PoP's tests of its bounds.
	chunkSize   = fill.ChunkSize
	relayWindow = fill.RelayWindow
)

// newFetch makes the PoP's state for a new flight.
func newFetch(fl *fill.Flight) *fetch {
	return &fetch{Flight: fl, interim: make(chan interimResponse, 4)}
}

// errTooLarge is why a fill stops storing a body that outgrew max_object.
var errTooLarge = errors.New("pop: body above max_object")

// notStored is the Cache-Status detail of a shared fill that stopped
// storing its body ("" while it stores).
func (f *fetch) notStored() cache.Reason {
	switch cause := f.Cause(); {
	case errors.Is(cause, fill.ErrBudget):
		return reasonBudget
	case errors.Is(cause, errTooLarge):
		return cache.ReasonTooLarge
	}
	return ""
}

// storingNow reports whether the body is still to be stored and, if not,
// why.
func (f *fetch) storingNow() (bool, cache.Reason) {
	if f.Storing() {
		return true, ""
	}
	return false, f.notStored()
}

// reasonBudget is the Cache-Status detail of a fill that stopped storing
// because the PoP's in-flight budget was spent.
const reasonBudget cache.Reason = "inflight-budget"

// publish sets the fill's outcome and wakes the waiters. For a private
// response whose leader has already left, it closes the body instead.
func (f *fetch) publish() {
	f.mu.Lock()
	orphan := !f.shared && f.resp != nil && f.leaderGone
	f.Publish()
	f.mu.Unlock()
	if orphan {
		f.resp.Body.Close()
	}
}

// abandon records that the leader left before the response header came.
// A private response that has already arrived is closed, as no one will
// read it.
func (f *fetch) abandon() {
	f.mu.Lock()
	f.leaderGone = true
	var orphan *http.Response
	if f.Published() && !f.shared && f.resp != nil {
		orphan = f.resp
	}
	f.mu.Unlock()
	if orphan != nil {
		orphan.Body.Close()
	}
}

// sendInterim hands a 1xx response to the leader without ever blocking
// the fill.
func (f *fetch) sendInterim(code int, h textproto.MIMEHeader) error {
	select {
	case f.interim <- interimResponse{code: code, header: http.Header(h).Clone()}:
	default:
	}
	return nil
}

// fillGroup is the PoP's fills in flight, by key, and the goroutines
// they run on: a fill's goroutine grows its stack in the origin client, so
// fills run on workers that outlive one fill (fill.Workers: at most
// fill.DefaultIdleWorkers wait for the next fill, each for
// fill.DefaultWorkerIdle; outpost_pop_fill_workers counts them).
type fillGroup struct {
	g       fill.Group[*fetch]
	workers fill.Workers
}

// run runs a fill on a worker goroutine.
func (g *fillGroup) run(fn func()) { g.workers.Go(fn) }

// join returns the fill in flight for key, or starts a new one; leader is
// true for the request that must run it.
func (g *fillGroup) join(key string) (f *fetch, leader bool) {
	return g.g.Join(key, newFetch)
}

// joinBackground is join for a refresh that no client leads: its caller
// took detached-fill slots for it, which are the fill's from the start, so
// a request that joins it and leaves cannot cancel it; and nobody reads a
// private answer.
func (g *fillGroup) joinBackground(key string) (f *fetch, leader bool) {
	return g.g.Join(key, func(fl *fill.Flight) *fetch {
		fl.HoldSlots()
		f := newFetch(fl)
		f.background, f.leaderGone = true, true
		return f
	})
}

// joined returns how many requests have joined the fill in flight for key
// (0 when there is none).
func (g *fillGroup) joined(key string) int { return g.g.Joined(key) }

// inFlight returns the number of fills running.
func (g *fillGroup) inFlight() int { return g.g.Len() }

// published returns the number of fills in flight whose response header
// is in.
func (g *fillGroup) published() int {
	n := 0
	g.g.Each(func(fl *fill.Flight, _ *fetch) {
		if fl.Published() {
			n++
		}
	})
	return n
}
