// Package fill shares one fetch among every request that wants it, within
// bounds on memory and on work nobody waits for.
//
// A Group maps a key to the Flight in progress for it: the first request
// to join leads and runs the fetch, later ones wait for the flight to
// Publish. The fetch writes the body once, into ChunkSize chunks taken
// from a Budget that every flight shares, and any number of Readers read
// it at their own pace. While the body is to be stored every chunk is
// kept, and once stored readers go on from the stored copy; when it cannot
// be stored (the caller stops storing, or the Budget refuses a chunk) the
// flight relays: it gives back the chunks its slowest reader has passed
// and writes at most RelayWindow bytes ahead of that reader. When the last
// reader leaves, a flight that may still store goes on only if its Detach
// hook grants it slots (see Slots); any other leaves its group, so that no
// new request joins it, and is cancelled. Every chunk's bytes go back to
// the Budget exactly once.
//
// Workers runs the fetches themselves on goroutines that outlive one
// fetch, whose stacks have already grown.
//
// The package knows nothing of origins or of HTTP caching: what is
// fetched, whether it may be stored and how it is stored are the caller's.
package fill

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

const (
	// ChunkSize is the size of the pieces a flight's body is written into,
	// and what a flight takes from its budget at a time.
	ChunkSize = 64 << 10
	// RelayWindow is how far a flight that no longer stores may write
	// ahead of its slowest reader.
	RelayWindow = 256 << 10
)

var (
	// ErrNoReaders is what Write returns when a flight that is not storing
	// has no reader left: nothing needs the rest of the body.
	ErrNoReaders = errors.New("fill: no readers left")
	// ErrBudget is why a flight stopped storing when its budget refused it
	// a chunk (see Flight.Cause).
	ErrBudget = errors.New("fill: in-flight budget spent")
)

// Hooks connect a flight to what its owner bounds and runs. They are set
// once, by Prepare, before the fetch starts.
type Hooks struct {
	// Budget is where body chunks come from. It must be set.
	Budget *Budget
	// Detach is asked for detached-flight slots when the last reader leaves
	// a flight that may still store; if it returns true the flight goes on
	// and Release is called when it ends. Nil grants nothing.
	Detach func() bool
	// Release gives back what Detach took, or what the owner took for a
	// flight marked with HoldSlots. Nil when there is nothing to give back.
	Release func()
	// Cancel stops the fetch; the flight calls it when no reader is left
	// and nothing is to be stored.
	Cancel func()
}

// Stored is where a complete body is read from once the flight has stored
// it: Bytes when the body is in memory, or else At, which reads its Size
// bytes.
type Stored struct {
	Bytes []byte
	At    io.ReaderAt
	Size  int64
}

func (s *Stored) size() int64 {
	if s.At == nil {
		return int64(len(s.Bytes))
	}
	return s.Size
}

// Flight is one fetch in progress that any number of requests share. The
// fetch calls Prepare, then Start (if the body is to be stored), Publish,
// Write for each piece of the body, Finish, and End when it returns;
// requests Attach a Reader before the flight publishes, so that no byte
// passes before they can read it.
type Flight struct {
	key string
	// joined counts the requests that joined the flight, the leader
	// included.
	joined atomic.Int32
	// leave removes the flight from its group.
	leave func()
	// ready is closed by Publish.
	ready chan struct{}

	mu    sync.Mutex
	hooks Hooks
	// chunks hold the body bytes written so far, from offset base (when
	// trimmed); held is their capacity, taken from the budget. expect is
	// the announced length, to size the last chunk.
	chunks [][]byte
	first  [1][]byte // the chunks' first backing array: most bodies are one chunk
	base   int64
	held   int64
	expect int64
	// storing is cleared when the caller or the budget stops it (cause
	// says why): from then on the chunks are trimmed behind the slowest
	// reader, and at most RelayWindow bytes are written ahead of it.
	storing bool
	cause   error
	readers []*Reader  // each at its index, Reader.at
	reader1 [1]*Reader // the readers' first backing array: most flights have one
	done    bool
	err     error
	// stored is the complete, stored body once done without error; from
	// then on readers read from it and the chunks are gone.
	stored   *Stored
	detached bool // holds detached-flight slots
	stopped  bool // cancelled because no reader is left
	// changed is closed whenever the body, done or readers change, and
	// made again by the next waiter (changedLocked): nil while no one waits,
	// so a flight whose readers never wait makes none.
	changed chan struct{}
}

func newFlight(key string) *Flight {
	return &Flight{
		key:   key,
		ready: make(chan struct{}),
	}
}

// Key is the key the flight was started for.
func (f *Flight) Key() string { return f.key }

// Prepare sets the flight's hooks before its fetch starts.
func (f *Flight) Prepare(h Hooks) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks = h
}

// HoldSlots marks a flight that no reader leads (a background refresh) as
// holding detached-flight slots its owner took: it goes on whoever joins
// and leaves, and Hooks.Release is called when it ends. Call it from
// Join's newState, before anyone else can join.
func (f *Flight) HoldSlots() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detached = true
}

// Leave removes the flight from its group, if it is still there, so that
// later requests start a flight of their own: one whose body they could
// not have whole (a relay, a response for one request) must not be joined.
func (f *Flight) Leave() {
	if f.leave != nil {
		f.leave()
	}
}

// End is called by the fetch when it returns: the flight leaves its group
// and gives back the detached-flight slots it holds.
func (f *Flight) End() {
	f.Leave()
	f.mu.Lock()
	detached := f.detached
	f.detached = false
	release := f.hooks.Release
	f.mu.Unlock()
	if detached && release != nil {
		release()
	}
}

// Publish tells the requests waiting for the flight that its outcome (a
// response header, a failure) is known.
func (f *Flight) Publish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.ready)
}

// Ready is closed once the flight has published.
func (f *Flight) Ready() <-chan struct{} { return f.ready }

// Published reports whether the flight has published.
func (f *Flight) Published() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// Stopped reports whether the flight was cancelled because no reader was
// left.
func (f *Flight) Stopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// notifyLocked wakes every reader waiting for a change. f.mu is held.
func (f *Flight) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// changedLocked returns the channel the next change closes. f.mu is held.
func (f *Flight) changedLocked() <-chan struct{} {
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// endLocked is the offset just past the bytes in the chunks.
func (f *Flight) endLocked() int64 {
	end := f.base
	for _, c := range f.chunks {
		end += int64(len(c))
	}
	return end
}

// Start begins storing a body of expect bytes (-1 when unknown). It takes
// the body's first chunk from the budget now, before the flight publishes,
// so that a body the budget cannot hold is known as one while the caller
// can still say so. It returns false when the budget refused: the flight
// relays from the start, with cause ErrBudget.
func (f *Flight) Start(expect int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expect = expect
	size := int64(ChunkSize)
	if expect >= 0 && expect < size {
		size = expect
	}
	if size > 0 && !f.hooks.Budget.TryTake(size) {
		f.storing, f.cause = false, ErrBudget
		return false
	}
	f.storing = true
	if size > 0 {
		f.held += size
		if f.chunks == nil {
			f.chunks = f.first[:0]
		}
		f.chunks = append(f.chunks, make([]byte, 0, size))
	}
	return true
}

// Write adds body bytes. It returns ErrNoReaders when the flight has no use
// for them (not storing and no reader left), or ctx's error. A relaying
// flight waits here while its readers are RelayWindow behind or the budget
// is short; a storing flight that the budget cannot grow stops storing
// (stopped reports that this call stopped it).
func (f *Flight) Write(ctx context.Context, p []byte) (stopped bool, err error) {
	for len(p) > 0 {
		f.mu.Lock()
		if !f.storing {
			if len(f.readers) == 0 {
				f.mu.Unlock()
				return stopped, ErrNoReaders
			}
			if f.endLocked()-f.lowLocked() >= RelayWindow {
				changed := f.changedLocked()
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
			size := int64(ChunkSize)
			if f.expect > 0 {
				if rem := f.expect - f.endLocked(); rem > 0 && rem < size {
					size = rem
				}
			}
			if !f.hooks.Budget.TryTake(size) {
				if f.storing {
					f.storing, f.cause = false, ErrBudget
					f.trimLocked()
					f.notifyLocked()
					f.mu.Unlock()
					stopped = true
					continue
				}
				f.mu.Unlock()
				if err := f.hooks.Budget.Take(ctx, size); err != nil {
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

// StopStoring turns the flight into a relay, for the given cause (the body
// outgrew what may be stored, say).
func (f *Flight) StopStoring(cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.storing {
		f.storing, f.cause = false, cause
	}
	f.trimLocked()
	f.notifyLocked()
}

// Storing reports whether the body is still to be stored.
func (f *Flight) Storing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storing
}

// Cause says why a flight that started storing stopped (ErrBudget, or what
// StopStoring was given); nil while it stores, or if it never started.
func (f *Flight) Cause() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cause
}

// Finish records the end of the body (err nil on a complete one). When the
// body is complete and still to be stored, store keeps the chunks (it may
// keep the slices themselves: they are never written again) and says
// where the body is now; readers go on from there, and the chunks' bytes
// are given back to the budget.
func (f *Flight) Finish(err error, store func(chunks [][]byte) Stored) {
	f.mu.Lock()
	keep := f.storing && err == nil
	chunks := f.chunks
	f.mu.Unlock()
	var stored *Stored
	if keep {
		s := store(chunks)
		stored = &s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored = stored
	f.done = true
	f.err = err
	if stored != nil || len(f.readers) == 0 {
		f.dropChunksLocked()
	}
	f.notifyLocked()
}

// dropChunksLocked lets go of the body's chunks and gives their bytes back.
func (f *Flight) dropChunksLocked() {
	f.base = f.endLocked()
	f.chunks = nil
	f.hooks.Budget.Give(f.held)
	f.held = 0
}

// lowLocked is the position of the slowest reader (the end when none).
func (f *Flight) lowLocked() int64 {
	low := f.endLocked()
	for _, r := range f.readers {
		low = min(low, r.pos)
	}
	return low
}

// trimLocked drops the chunks every reader has passed, when not storing.
func (f *Flight) trimLocked() {
	if f.storing || f.stored != nil {
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
		f.hooks.Budget.Give(int64(cap(c)))
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
	}
}

// Reader is one request's position in a flight's body. A Reader is used
// by one goroutine.
type Reader struct {
	f   *Flight
	at  int // index in f.readers; -1 once detached
	pos int64
	buf []byte // for reading a stored body through Stored.At
}

// removeLocked takes r out of f.readers, if it is there. f.mu is held.
func (f *Flight) removeLocked(r *Reader) {
	i := r.at
	if i < 0 || i >= len(f.readers) || f.readers[i] != r {
		return
	}
	last := len(f.readers) - 1
	f.readers[i] = f.readers[last]
	f.readers[i].at = i
	f.readers[last] = nil
	f.readers = f.readers[:last]
	r.at = -1
}

// Attach adds a reader at the start of the body. It returns nil when the
// body's start is gone (trimmed), so the body cannot be read whole from
// this flight.
func (f *Flight) Attach() *Reader {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.base != 0 && f.stored == nil {
		return nil
	}
	r := &Reader{f: f}
	if f.readers == nil {
		f.readers = f.reader1[:0]
	}
	r.at = len(f.readers)
	f.readers = append(f.readers, r)
	return r
}

// Detach removes the reader. When it was the last: a flight whose body is
// complete gives its chunks back; one that may still store (storing, or
// not yet published) goes on if it holds or is granted detached-flight
// slots; any other leaves its group and is cancelled.
func (r *Reader) Detach() {
	f := r.f
	f.mu.Lock()
	f.removeLocked(r)
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
	if !f.Published() || f.storing {
		// The body may still be stored for the next request: go on if the
		// bounds allow.
		if f.detached {
			f.mu.Unlock()
			return
		}
		if f.hooks.Detach != nil && f.hooks.Detach() {
			f.detached = true
			f.mu.Unlock()
			return
		}
	}
	f.mu.Unlock()
	// No one is left to serve and nothing to store: cancel the fetch,
	// after leaving the group so that no new request joins a dying flight.
	f.Leave()
	f.mu.Lock()
	cancel := f.hooks.Cancel
	stop := len(f.readers) == 0 && !f.done
	if stop {
		f.stopped = true
	}
	f.mu.Unlock()
	if stop && cancel != nil {
		cancel()
	}
}

// Next waits for body bytes past the reader's position and returns them.
// It returns done=true with the fetch's error once the body is complete
// and read, or ctx's error if ctx ends first. The returned slice is shared
// (or the reader's own buffer) and must not be modified.
func (r *Reader) Next(ctx context.Context) (chunk []byte, done bool, err error) {
	for {
		chunk, done, changed, err := r.next()
		if changed == nil {
			return chunk, done, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// TryNext is Next without the wait: ok is false when Next would wait for
// the fetch. A caller that streams the body can then flush what it has
// written before it waits, and need not flush otherwise: the end of a body
// goes out with the response's end.
func (r *Reader) TryNext() (chunk []byte, done, ok bool, err error) {
	chunk, done, changed, err := r.next()
	return chunk, done, changed == nil, err
}

// next returns what Next would without waiting or, when there is nothing
// yet, the channel the next change closes.
func (r *Reader) next() (chunk []byte, done bool, changed <-chan struct{}, err error) {
	f := r.f
	f.mu.Lock()
	if f.stored != nil {
		s := f.stored
		f.mu.Unlock()
		chunk, done, err = r.nextStored(s)
		return chunk, done, nil, err
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
		return chunk, false, nil, nil
	}
	if f.done {
		err := f.err
		f.mu.Unlock()
		return nil, true, nil, err
	}
	changed = f.changedLocked()
	f.mu.Unlock()
	return nil, false, changed, nil
}

// nextStored continues a reader from the stored body. Once a body is
// stored nothing else reads r.pos, so it changes without f.mu.
func (r *Reader) nextStored(s *Stored) ([]byte, bool, error) {
	size := s.size()
	if r.pos >= size {
		return nil, true, nil
	}
	if s.At == nil {
		chunk := s.Bytes[r.pos:]
		r.pos = size
		return chunk, false, nil
	}
	if r.buf == nil {
		r.buf = make([]byte, 32<<10)
	}
	n, err := s.At.ReadAt(r.buf[:min(int64(len(r.buf)), size-r.pos)], r.pos)
	r.pos += int64(n)
	if n > 0 {
		return r.buf[:n], false, nil
	}
	return nil, true, err
}

// Drain waits until the whole body has arrived, discarding it.
func (r *Reader) Drain(ctx context.Context) error {
	for {
		_, done, err := r.Next(ctx)
		if done || err != nil {
			return err
		}
	}
}
