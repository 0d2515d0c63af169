package fill

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds, or fails the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// body returns n bytes that differ from one offset to the next, so a
// reader that skips or repeats bytes is caught.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// testFlight is a flight in a group, with hooks that count their calls.
type testFlight struct {
	f        *Flight
	g        *Group[int]
	budget   *Budget
	slots    *Slots
	canceled atomic.Int32
	released atomic.Int32
	stores   atomic.Int32
}

// newTestFlight starts a flight for key "k" with a budget of limit bytes
// and slots detached-flight slots.
func newTestFlight(t *testing.T, limit int64, slots int64) *testFlight {
	t.Helper()
	tf := &testFlight{g: new(Group[int]), budget: NewBudget(limit), slots: NewSlots(slots)}
	_, leader := tf.g.Join("k", func(f *Flight) int { tf.f = f; return 0 })
	if !leader {
		t.Fatal("the first Join does not lead")
	}
	tf.f.Prepare(Hooks{
		Budget:  tf.budget,
		Detach:  tf.slots.Acquire,
		Release: func() { tf.released.Add(1); tf.slots.Release() },
		Cancel:  func() { tf.canceled.Add(1) },
	})
	return tf
}

// write writes p in pieces of at most piece bytes.
func (tf *testFlight) write(ctx context.Context, p []byte, piece int) (stopped bool, err error) {
	for len(p) > 0 {
		n := min(piece, len(p))
		s, err := tf.f.Write(ctx, p[:n])
		stopped = stopped || s
		if err != nil {
			return stopped, err
		}
		p = p[n:]
	}
	return stopped, nil
}

// storeBytes is a Finish store that keeps the body in one slice.
func (tf *testFlight) storeBytes(chunks [][]byte) Stored {
	tf.stores.Add(1)
	return Stored{Bytes: bytes.Join(chunks, nil)}
}

// storeAt is a Finish store that keeps the body behind an io.ReaderAt.
func (tf *testFlight) storeAt(chunks [][]byte) Stored {
	tf.stores.Add(1)
	b := bytes.Join(chunks, nil)
	return Stored{At: bytes.NewReader(b), Size: int64(len(b))}
}

// readAll reads r to the end, receiving from pace before each chunk (nil:
// no pause), so tests set each reader's pace.
func readAll(ctx context.Context, r *Reader, pace <-chan struct{}) ([]byte, error) {
	var got []byte
	for {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				return got, ctx.Err()
			}
		}
		chunk, done, err := r.Next(ctx)
		if done || err != nil {
			return got, err
		}
		got = append(got, chunk...)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name       string
		limit      int64
		takes      []int64
		wantOK     []bool
		wantUsed   int64
		wantDenied uint64
	}{
		{"within the limit", 100, []int64{40, 60}, []bool{true, true}, 100, 0},
		{"over the limit is refused and counted", 100, []int64{60, 50, 40}, []bool{true, false, true}, 100, 1},
		{"a zero budget refuses everything", 0, []int64{1, 1}, []bool{false, false}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			for i, n := range tt.takes {
				if got := b.TryTake(n); got != tt.wantOK[i] {
					t.Errorf("TryTake(%d) #%d = %v, want %v", n, i, got, tt.wantOK[i])
				}
			}
			if b.Used() != tt.wantUsed || b.Denied() != tt.wantDenied || b.Limit() != tt.limit {
				t.Errorf("used %d, denied %d, limit %d; want %d, %d, %d", b.Used(), b.Denied(), b.Limit(), tt.wantUsed, tt.wantDenied, tt.limit)
			}
			b.Give(b.Used())
			if b.Used() != 0 {
				t.Errorf("used %d after giving everything back", b.Used())
			}
			if b.Peak() != tt.wantUsed {
				t.Errorf("peak %d, want %d: it stays after the bytes come back", b.Peak(), tt.wantUsed)
			}
		})
	}
}

func TestBudgetTakeWaits(t *testing.T) {
	tests := []struct {
		name    string
		give    bool // give bytes back while Take waits; else cancel it
		wantErr error
	}{
		{"bytes given back wake the taker", true, nil},
		{"a cancelled taker gives up", false, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(10)
			if !b.TryTake(10) {
				t.Fatal("TryTake(10) of 10 refused")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- b.Take(ctx, 5) }()
			waitFor(t, "Take to wait", func() bool { return b.waiters.Load() == 1 })
			if tt.give {
				b.Give(5)
			} else {
				cancel()
			}
			if err := <-errc; !errors.Is(err, tt.wantErr) {
				t.Fatalf("Take = %v, want %v", err, tt.wantErr)
			}
			// Given back: 5 returned and 5 taken by the waiter. Cancelled:
			// nothing moved.
			if b.Used() != 10 {
				t.Errorf("used %d, want 10", b.Used())
			}
		})
	}
}

func TestSlots(t *testing.T) {
	tests := []struct {
		name        string
		limit       int64
		acquires    int
		wantUsed    int64
		wantRefused uint64
	}{
		{"none", 0, 2, 0, 2},
		{"one of one", 1, 1, 1, 0},
		{"two of three asked", 2, 3, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSlots(tt.limit)
			for range tt.acquires {
				s.Acquire()
			}
			if s.Used() != tt.wantUsed || s.Refused() != tt.wantRefused {
				t.Errorf("used %d, refused %d; want %d, %d", s.Used(), s.Refused(), tt.wantUsed, tt.wantRefused)
			}
			for range s.Used() {
				s.Release()
			}
			if s.Used() != 0 {
				t.Errorf("used %d after releasing every slot", s.Used())
			}
		})
	}
}

func TestGroup(t *testing.T) {
	var g Group[string]
	made := 0
	newState := func(f *Flight) string { made++; return "state of " + f.Key() }
	a, leader := g.Join("a", newState)
	if !leader || a != "state of a" {
		t.Fatalf("first Join(a) = %q, leader %v", a, leader)
	}
	if a2, leader := g.Join("a", newState); leader || a2 != a {
		t.Errorf("second Join(a) = %q, leader %v; want the first's state, not leading", a2, leader)
	}
	if _, leader := g.Join("b", newState); !leader {
		t.Error("Join(b) does not lead")
	}
	if made != 2 || g.Len() != 2 || g.Joined("a") != 2 || g.Joined("b") != 1 || g.Joined("c") != 0 {
		t.Errorf("made %d, len %d, joined a %d b %d c %d; want 2, 2, 2, 1, 0", made, g.Len(), g.Joined("a"), g.Joined("b"), g.Joined("c"))
	}
	var first *Flight
	g.Each(func(f *Flight, _ string) {
		if f.Key() == "a" {
			first = f
		}
	})
	first.Leave()
	if g.Len() != 1 || g.Joined("a") != 0 {
		t.Errorf("after Leave: len %d, joined a %d; want 1, 0", g.Len(), g.Joined("a"))
	}
	if _, leader := g.Join("a", newState); !leader {
		t.Error("Join(a) after the flight left does not lead a new one")
	}
	first.Leave() // a flight that left cannot remove its successor
	if g.Joined("a") != 1 {
		t.Errorf("the old flight's Leave removed the new one: joined a %d", g.Joined("a"))
	}
}

// TestReadersAtDifferentPaces checks that every reader of a stored body
// gets it whole, however fast it reads and whether it reads from the
// chunks or, once stored, from the stored body; and that the budget gets
// every byte back.
func TestReadersAtDifferentPaces(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		expect int64 // announced length; -1 unknown
		store  string
	}{
		{"unknown length, stored in memory", 5*ChunkSize + 123, -1, "bytes"},
		{"announced length, stored elsewhere", 3*ChunkSize + 7, 3*ChunkSize + 7, "at"},
		{"smaller than a chunk", 1000, 1000, "bytes"},
		{"empty", 0, 0, "at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tf := newTestFlight(t, 1<<30, 0)
			want := body(tt.size)
			const readers = 3
			rs := make([]*Reader, readers)
			for i := range rs {
				rs[i] = tf.f.Attach()
			}
			if !tf.f.Start(tt.expect) {
				t.Fatal("Start refused by an ample budget")
			}
			tf.f.Publish()
			// Reader 0 reads as fast as it can, reader 1 one chunk per
			// step of the writer, reader 2 only once the body is stored.
			pace := make(chan struct{})
			held := make(chan struct{})
			var wg sync.WaitGroup
			got := make([][]byte, readers)
			errs := make([]error, readers)
			for i, pc := range []<-chan struct{}{nil, pace, held} {
				wg.Go(func() { got[i], errs[i] = readAll(ctx, rs[i], pc) })
			}
			for p := want; len(p) > 0; {
				n := min(10_000, len(p))
				if _, err := tf.f.Write(ctx, p[:n]); err != nil {
					t.Fatalf("Write: %v", err)
				}
				p = p[n:]
				select {
				case pace <- struct{}{}:
				default:
				}
			}
			store := tf.storeBytes
			if tt.store == "at" {
				store = tf.storeAt
			}
			tf.f.Finish(nil, store)
			close(pace)
			close(held)
			wg.Wait()
			for i := range rs {
				if errs[i] != nil || !bytes.Equal(got[i], want) {
					t.Errorf("reader %d: %d bytes, err %v; want %d bytes", i, len(got[i]), errs[i], len(want))
				}
				rs[i].Detach()
			}
			if late := tf.f.Attach(); late == nil {
				t.Error("a reader cannot attach to a stored body")
			} else if b, err := readAll(ctx, late, nil); err != nil || !bytes.Equal(b, want) {
				t.Errorf("late reader: %d bytes, err %v", len(b), err)
			}
			if tf.stores.Load() != 1 || tf.budget.Used() != 0 || tf.canceled.Load() != 0 {
				t.Errorf("stores %d, budget used %d, cancels %d; want 1, 0, 0", tf.stores.Load(), tf.budget.Used(), tf.canceled.Load())
			}
			tf.f.End()
		})
	}
}

// TestRelayWindow checks that a flight that does not store writes at most
// RelayWindow bytes ahead of its slowest reader, gives back the chunks
// readers have passed, cannot be joined once its start is gone, and ends
// with the budget whole.
func TestRelayWindow(t *testing.T) {
	tests := []struct {
		name string
		stop func(f *Flight) // how the flight comes to relay
	}{
		{"the caller stops storing", func(f *Flight) { f.Start(-1); f.StopStoring(errors.New("too large")) }},
		{"never started storing", func(f *Flight) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tf := newTestFlight(t, 1<<30, 0)
			slow := tf.f.Attach()
			tt.stop(tf.f)
			tf.f.Publish()
			want := body(4 * RelayWindow)
			wrote := make(chan error, 1)
			go func() {
				_, err := tf.write(ctx, want, 10_000)
				tf.f.Finish(err, tf.storeBytes)
				wrote <- err
			}()
			waitFor(t, "the writer to reach the relay window", func() bool { return tf.budget.Used() >= RelayWindow })
			tf.f.mu.Lock()
			end := tf.f.endLocked()
			tf.f.mu.Unlock()
			if end != RelayWindow || tf.budget.Used() != RelayWindow {
				t.Errorf("the writer is %d bytes ahead of an idle reader, holding %d; want %d", end, tf.budget.Used(), RelayWindow)
			}
			select {
			case err := <-wrote:
				t.Fatalf("the writer ended (%v) with its reader a window behind", err)
			default:
			}
			got, err := readAll(ctx, slow, nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("reader: %d bytes, err %v; want %d bytes", len(got), err, len(want))
			}
			if err := <-wrote; err != nil {
				t.Errorf("writer: %v", err)
			}
			if late := tf.f.Attach(); late != nil {
				t.Error("a reader attached to a relay whose start is gone")
			}
			slow.Detach()
			tf.f.End()
			if tf.stores.Load() != 0 || tf.budget.Used() != 0 || tf.canceled.Load() != 0 {
				t.Errorf("stores %d, budget used %d, cancels %d; want 0, 0, 0", tf.stores.Load(), tf.budget.Used(), tf.canceled.Load())
			}
		})
	}
}

// TestBudgetRefusal checks that a flight the budget cannot hold stops
// storing and relays instead, its readers still getting the whole body.
func TestBudgetRefusal(t *testing.T) {
	tests := []struct {
		name        string
		limit, hold int64 // the budget, and what another holder has of it
		size        int
		wantStart   bool // Start's answer
		wantStopped bool // a Write reported that it stopped storing
	}{
		{"the first chunk is refused: relays from the start", 2 * ChunkSize, 2 * ChunkSize, 3*ChunkSize + 5, false, false},
		{"a later chunk is refused: stops storing mid-body", 2 * ChunkSize, 0, 5*ChunkSize + 5, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tf := newTestFlight(t, tt.limit, 0)
			if tt.hold > 0 && !tf.budget.TryTake(tt.hold) {
				t.Fatal("the other holder could not take its bytes")
			}
			r := tf.f.Attach()
			if got := tf.f.Start(-1); got != tt.wantStart {
				t.Errorf("Start = %v, want %v", got, tt.wantStart)
			}
			tf.f.Publish()
			want := body(tt.size)
			type result struct {
				stopped bool
				err     error
			}
			wrote := make(chan result, 1)
			go func() {
				stopped, err := tf.write(ctx, want, 10_000)
				tf.f.Finish(err, tf.storeBytes)
				wrote <- result{stopped, err}
			}()
			tf.budget.Give(tt.hold) // the other holder is done
			got, err := readAll(ctx, r, nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("reader: %d bytes, err %v; want %d bytes", len(got), err, len(want))
			}
			res := <-wrote
			if res.err != nil || res.stopped != tt.wantStopped {
				t.Errorf("Write: stopped %v, err %v; want stopped %v", res.stopped, res.err, tt.wantStopped)
			}
			if tf.f.Storing() || !errors.Is(tf.f.Cause(), ErrBudget) {
				t.Errorf("storing %v, cause %v; want a relay, cause ErrBudget", tf.f.Storing(), tf.f.Cause())
			}
			r.Detach()
			tf.f.End()
			if tf.stores.Load() != 0 || tf.budget.Used() != 0 || tf.budget.Denied() == 0 {
				t.Errorf("stores %d, budget used %d, denied %d; want 0, 0, some", tf.stores.Load(), tf.budget.Used(), tf.budget.Denied())
			}
		})
	}
}

// TestDetach checks what a flight does when its readers leave: a flight
// that may still store goes on only with detached-flight slots, any other
// is cancelled and leaves its group, and slots and chunks are given back
// exactly once.
func TestDetach(t *testing.T) {
	tests := []struct {
		name       string
		readers    int   // attached before the flight starts
		leave      int   // how many of them leave
		slots      int64 // detached-flight slots free
		hold       bool  // the owner took a slot for the flight (HoldSlots)
		start      bool  // the body is to be stored (Start)
		relay      bool  // ... but the caller stopped storing it
		publish    bool
		finish     bool // the body is complete (not stored) before they leave
		wantCancel int32
		wantGroup  bool  // still in its group once they left
		wantSlots  int64 // slots in use once they left
	}{
		{"one of two readers leaves: nothing happens", 2, 1, 0, false, false, false, false, false, 0, true, 0},
		{"before the header, a slot is free: goes on", 1, 1, 1, false, false, false, false, false, 0, true, 1},
		{"before the header, no slot: cancelled", 1, 1, 0, false, false, false, false, false, 1, false, 0},
		{"storing, a slot is free: goes on", 1, 1, 1, false, true, false, true, false, 0, true, 1},
		{"storing, no slot: cancelled", 1, 1, 0, false, true, false, true, false, 1, false, 0},
		{"relaying, slots free: cancelled all the same", 1, 1, 1, false, true, true, true, false, 1, false, 0},
		{"not to be stored: cancelled", 1, 1, 1, false, false, false, true, false, 1, false, 0},
		{"holds slots already (background): goes on without asking", 1, 1, 1, true, true, false, true, false, 0, true, 1},
		{"body complete: chunks given back, nothing cancelled", 1, 1, 0, false, true, false, true, true, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tf := newTestFlight(t, 1<<30, tt.slots)
			if tt.hold {
				if !tf.slots.Acquire() {
					t.Fatal("no slot to hold")
				}
				tf.f.HoldSlots()
			}
			rs := make([]*Reader, tt.readers)
			for i := range rs {
				rs[i] = tf.f.Attach()
			}
			if tt.start {
				tf.f.Start(-1)
				if _, err := tf.write(ctx, body(ChunkSize+10), 10_000); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if tt.relay {
				tf.f.StopStoring(errors.New("too large"))
			}
			if tt.publish {
				tf.f.Publish()
			}
			if tt.finish {
				tf.f.Finish(errors.New("origin went away"), tf.storeBytes)
			}
			for _, r := range rs[:tt.leave] {
				r.Detach()
			}
			inGroup := tf.g.Joined("k") == 1
			if tf.canceled.Load() != tt.wantCancel || inGroup != tt.wantGroup || tf.slots.Used() != tt.wantSlots {
				t.Errorf("cancels %d, in its group %v, slots used %d; want %d, %v, %d",
					tf.canceled.Load(), inGroup, tf.slots.Used(), tt.wantCancel, tt.wantGroup, tt.wantSlots)
			}
			if tf.f.Stopped() != (tt.wantCancel > 0) {
				t.Errorf("Stopped() = %v after %d cancels", tf.f.Stopped(), tf.canceled.Load())
			}
			// The fetch ends as a cancelled one would; the rest leave.
			if !tt.finish {
				tf.f.Finish(context.Canceled, tf.storeBytes)
			}
			for _, r := range rs[tt.leave:] {
				r.Detach()
			}
			tf.f.End()
			tf.f.End() // a second End gives nothing back twice
			wantReleased := int32(0)
			if tt.wantSlots > 0 {
				wantReleased = 1
			}
			if tf.released.Load() != wantReleased || tf.slots.Used() != 0 || tf.budget.Used() != 0 || tf.g.Len() != 0 || tf.stores.Load() != 0 {
				t.Errorf("at the end: released %d, slots used %d, budget used %d, flights %d, stores %d; want %d, 0, 0, 0, 0",
					tf.released.Load(), tf.slots.Used(), tf.budget.Used(), tf.g.Len(), tf.stores.Load(), wantReleased)
			}
		})
	}
}

// TestWriteWithoutReaders checks that a relay with no reader left stops
// (ErrNoReaders) while a flight that stores goes on.
func TestWriteWithoutReaders(t *testing.T) {
	tests := []struct {
		name    string
		start   bool
		wantErr error
	}{
		{"a relay stops", false, ErrNoReaders},
		{"a storing flight goes on", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTestFlight(t, 1<<30, 0)
			if tt.start {
				tf.f.Start(-1)
			}
			tf.f.Publish()
			if _, err := tf.f.Write(context.Background(), body(100)); !errors.Is(err, tt.wantErr) {
				t.Errorf("Write = %v, want %v", err, tt.wantErr)
			}
			tf.f.Finish(nil, tf.storeBytes)
			tf.f.End()
			wantStores := int32(0)
			if tt.start {
				wantStores = 1
			}
			if tf.stores.Load() != wantStores || tf.budget.Used() != 0 {
				t.Errorf("stores %d, budget used %d; want %d, 0", tf.stores.Load(), tf.budget.Used(), wantStores)
			}
		})
	}
}

// TestReaderContext checks that a reader waiting for bytes gives up when
// its context ends, and the flight goes on for the others.
func TestReaderContext(t *testing.T) {
	tf := newTestFlight(t, 1<<30, 0)
	r := tf.f.Attach()
	other := tf.f.Attach()
	tf.f.Start(-1)
	tf.f.Publish()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, done, err := r.Next(ctx); done || !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a cancelled context: done %v, err %v", done, err)
	}
	r.Detach()
	if tf.canceled.Load() != 0 {
		t.Error("one reader leaving cancelled the flight")
	}
	want := body(100)
	if _, err := tf.f.Write(context.Background(), want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	tf.f.Finish(nil, tf.storeBytes)
	if got, err := readAll(context.Background(), other, nil); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the other reader: %d bytes, err %v", len(got), err)
	}
	other.Detach()
	tf.f.End()
	if tf.budget.Used() != 0 {
		t.Errorf("budget used %d at the end", tf.budget.Used())
	}
}

// TestTryNext checks that TryNext answers what Next would without waiting,
// and says when Next would wait: before any byte, after the bytes written
// so far are read, and never once the body is complete.
func TestTryNext(t *testing.T) {
	for _, store := range []string{"bytes", "readerAt"} {
		t.Run(store, func(t *testing.T) {
			tf := newTestFlight(t, 1<<20, 0)
			r := tf.f.Attach()
			defer r.Detach()
			if !tf.f.Start(-1) {
				t.Fatal("Start refused")
			}
			tf.f.Publish()
			if _, _, ok, _ := r.TryNext(); ok {
				t.Fatal("TryNext ok before any byte was written")
			}
			want := body(3000)
			if _, err := tf.f.Write(context.Background(), want[:1000]); err != nil {
				t.Fatal(err)
			}
			chunk, done, ok, err := r.TryNext()
			if !ok || done || err != nil || !bytes.Equal(chunk, want[:1000]) {
				t.Fatalf("TryNext after 1000 bytes = %d bytes, done %v, ok %v, %v; want the 1000 bytes", len(chunk), done, ok, err)
			}
			if _, _, ok, _ := r.TryNext(); ok {
				t.Fatal("TryNext ok with every written byte read")
			}
			if _, err := tf.f.Write(context.Background(), want[1000:]); err != nil {
				t.Fatal(err)
			}
			finish := tf.storeBytes
			if store == "readerAt" {
				finish = tf.storeAt
			}
			tf.f.Finish(nil, finish)
			got := append([]byte(nil), want[:1000]...)
			for {
				chunk, done, ok, err := r.TryNext()
				if !ok {
					t.Fatal("TryNext not ok on a complete body")
				}
				if err != nil {
					t.Fatal(err)
				}
				if done {
					break
				}
				got = append(got, chunk...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes through TryNext, want the %d written", len(got), len(want))
			}
			tf.f.End()
		})
	}
}
