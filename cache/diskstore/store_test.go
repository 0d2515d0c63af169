package diskstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
)

// sameMeta reports how got differs from want in any field but the body
// and Prepared; "" if it does not.
func sameMeta(got, want *cache.Entry) string {
	g, w := *got, *want
	g.Body, g.Blob, g.Prepared = nil, nil, nil
	w.Body, w.Blob, w.Prepared = nil, nil, nil
	if !g.RequestTime.Equal(w.RequestTime) || !g.ResponseTime.Equal(w.ResponseTime) {
		return fmt.Sprintf("times %v %v, want %v %v", g.RequestTime, g.ResponseTime, w.RequestTime, w.ResponseTime)
	}
	g.RequestTime, g.ResponseTime = w.RequestTime, w.ResponseTime
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("\n got %+v\nwant %+v", g, w)
	}
	return ""
}

// TestRoundTrip stores entries of every shape, waits until they are on
// disk, and reads them back from a store and from a reopened store: every
// field, and the body through ReadAt, a reader and sendfile.
func TestRoundTrip(t *testing.T) {
	memBody := bodyFor("memfd", 200<<10)
	memBlob, err := blob.New("test", memBody)
	if err != nil && !errors.Is(err, blob.ErrUnsupported) {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		entry func() *cache.Entry
		body  []byte
	}{
		{"headers with several values", func() *cache.Entry {
			e := entryFor("http://a.example/multi", 1000)
			e.Header["Set-Cookie"] = []string{"a=1", "b=2", "c=3"}
			e.Header["X-Empty"] = []string{""}
			e.NoCache = true
			return e
		}, bodyFor("http://a.example/multi", 1000)},
		{"vary index entry", func() *cache.Entry {
			return &cache.Entry{Key: "http://a.example/vary", Status: 200, Header: http.Header{"Vary": {"Accept-Encoding"}},
				VaryFields: []string{"Accept-Encoding", "Accept-Language"}, VaryNonce: "n0nce\x00\xff", Lifetime: time.Hour}
		}, nil},
		{"vary index on no field", func() *cache.Entry {
			return &cache.Entry{Key: "http://a.example/vary-none", Status: 200, VaryFields: []string{}}
		}, nil},
		{"empty body", func() *cache.Entry {
			e := entryFor("http://a.example/empty", 0)
			e.Status = http.StatusNoContent
			return e
		}, []byte{}},
		{"5 MiB body", func() *cache.Entry { return entryFor("http://a.example/big", 5<<20) }, bodyFor("http://a.example/big", 5<<20)},
		{"key with NUL and high bytes (a variant)", func() *cache.Entry {
			return entryFor("http://a.example/x\x00nonce\x00Accept-Encoding=br\xff\xfe", 4097)
		}, bodyFor("http://a.example/x\x00nonce\x00Accept-Encoding=br\xff\xfe", 4097)},
		{"body in a memory file (cache/blob)", func() *cache.Entry {
			e := entryFor("http://a.example/memfd", 0)
			e.Body = memBody
			if memBlob != nil {
				e.Body, e.Blob = nil, memBlob
			}
			return e
		}, memBody},
	}
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, MinUses: 1})
	for _, tt := range tests {
		s.Set(tt.entry(), time.Hour)
	}
	settle(t, s)
	check := func(t *testing.T, s *Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := tt.entry()
				got, ok := s.Get(want.Key)
				if !ok {
					t.Fatal("miss")
				}
				if got == want {
					t.Fatal("Get returned the entry given to Set, not the one on disk")
				}
				if !got.OnDisk {
					t.Error("an entry read from disk is not marked OnDisk")
				}
				want.OnDisk = true
				if d := sameMeta(got, want); d != "" {
					t.Errorf("metadata differs: %s", d)
				}
				if got.IsVaryIndex() != want.IsVaryIndex() {
					t.Errorf("IsVaryIndex = %v", got.IsVaryIndex())
				}
				if got.Body != nil {
					t.Errorf("Body set (%d bytes): disk bodies come as blobs", len(got.Body))
				}
				if got.BodySize() != int64(len(tt.body)) {
					t.Fatalf("BodySize = %d, want %d", got.BodySize(), len(tt.body))
				}
				if len(tt.body) == 0 {
					if got.Blob != nil {
						t.Error("an empty body has a blob")
					}
					return
				}
				if b := readBody(t, got); !bytes.Equal(b, tt.body) {
					t.Error("body read through the reader differs")
				}
				p := make([]byte, len(tt.body))
				if n, err := got.Blob.ReadAt(p, 0); n != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, tt.body) {
					t.Errorf("ReadAt = %d, %v (or other bytes)", n, err)
				}
				server, client := tcpPair(t)
				recv := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(io.LimitReader(client, int64(len(tt.body))))
					recv <- b
				}()
				server.SetWriteDeadline(time.Now().Add(30 * time.Second))
				n, err := got.Blob.NewReader().SendTo(server, -1)
				if err != nil || n != int64(len(tt.body)) {
					t.Fatalf("SendTo = %d, %v", n, err)
				}
				if b := <-recv; !bytes.Equal(b, tt.body) {
					t.Error("body sent with sendfile differs")
				}
			})
		}
	}
	t.Run("same store", func(t *testing.T) { check(t, s) })
	s.Close()
	t.Run("reopened", func(t *testing.T) {
		s2 := openTest(t, Options{Dir: dir, MinUses: 1})
		check(t, s2)
	})
}

// TestHotGetIsCached checks that a second Get of an entry returns the
// same open entry, from the open set, without opening the file again.
func TestHotGetIsCached(t *testing.T) {
	s := openTest(t, Options{MinUses: 1})
	s.Set(entryFor("k", 100_000), time.Hour)
	settle(t, s)
	// The loader, if it has not walked the directory yet, would read k's
	// file too, fail with the fault below and count a read error.
	loaded(t, s)
	a, ok := s.Get("k")
	if !ok {
		t.Fatal("miss")
	}
	s.setFault(func(op string) error { return errors.New("no file operation expected") })
	b, ok := s.Get("k")
	if !ok || a != b {
		t.Fatalf("second Get = %p, %v; want the same entry %p", b, ok, a)
	}
	if st := s.DiskStats(); st.OpenEntries != 1 || st.ReadErrors != 0 {
		t.Errorf("OpenEntries = %d, ReadErrors = %d", st.OpenEntries, st.ReadErrors)
	}
}

// TestOpenSetBound checks that no more entries than OpenFiles stay open.
func TestOpenSetBound(t *testing.T) {
	s := openTest(t, Options{MinUses: 1, OpenFiles: 4})
	for i := range 20 {
		s.Set(entryFor(fmt.Sprint("k", i), 5000), time.Hour)
	}
	settle(t, s)
	for round := range 3 {
		for i := range 20 {
			key := fmt.Sprint("k", i)
			e, ok := s.Get(key)
			if !ok || !bytes.Equal(readBody(t, e), bodyFor(key, 5000)) {
				t.Fatalf("round %d: %s missing or wrong", round, key)
			}
		}
	}
	if n := s.DiskStats().OpenEntries; n > 4 {
		t.Errorf("OpenEntries = %d, over the bound of 4", n)
	}
}

// TestAdmission checks MinUses on a full store: uses are Set and Touch
// calls, not Get misses; a Set is written once the key has had enough of
// them, or is on disk. (A store with free room waives MinUses: TestAdmissionFree.)
func TestAdmission(t *testing.T) {
	tests := []struct {
		name    string
		minUses int
		before  func(s *Store, e *cache.Entry)
		written bool
	}{
		{"a single Set is declined", 2, func(*Store, *cache.Entry) {}, false},
		{"misses do not count (a server may look a key up twice per request)", 2, func(s *Store, e *cache.Entry) { s.Get(e.Key); s.Get(e.Key); s.Get(e.Key) }, false},
		{"a Set after a memory hit (Touch) is written", 2, func(s *Store, e *cache.Entry) { s.Touch(e, time.Hour) }, true},
		{"a Touch and a Set are not enough for MinUses 3", 3, func(s *Store, e *cache.Entry) { s.Touch(e, time.Hour) }, false},

		{"MinUses 1 writes every Set", 1, func(*Store, *cache.Entry) {}, true},
		{"misses of other keys do not count", 2, func(s *Store, e *cache.Entry) { s.Get(e.Key + "/other") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openFull(t, Options{MinUses: tt.minUses})
			base := s.Stats()
			var removed []*cache.Entry
			var mu sync.Mutex
			s.NotifyRemoval(func(e *cache.Entry) {
				if e.Key == "http://a.example/admit" {
					mu.Lock()
					removed = append(removed, e)
					mu.Unlock()
				}
			})
			e := entryFor("http://a.example/admit", 10)
			tt.before(s, e)
			s.Set(e, time.Hour)
			settle(t, s)
			st := s.Stats()
			if got := s.Contains(e.Key); got != tt.written {
				t.Fatalf("written = %v, want %v (stats %+v)", got, tt.written, st)
			}
			if s.Rejected(e.Key) == tt.written {
				t.Errorf("Rejected = %v", s.Rejected(e.Key))
			}
			wantAdm, wantRej := uint64(0), uint64(1)
			if tt.written {
				wantAdm, wantRej = 1, 0
			}
			if adm, rej := st.Admissions-base.Admissions, st.Rejections-base.Rejections; adm != wantAdm || rej != wantRej {
				t.Errorf("Admissions, Rejections = %d, %d; want %d, %d", adm, rej, wantAdm, wantRej)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.written && (len(removed) != 1 || removed[0] != e) {
				t.Errorf("declined entry reported %d times (want once, the Set's entry)", len(removed))
			}
		})
	}
	t.Run("a key on disk is rewritten without uses", func(t *testing.T) {
		s := openTest(t, Options{MinUses: 2})
		loaded(t, s)
		e := entryFor("k", 10)
		s.Set(e, time.Hour) // written: the store has room
		settle(t, s)
		e2 := entryFor("k", 20)
		s.Set(e2, time.Hour)
		settle(t, s)
		got, ok := s.Get("k")
		if !ok || got.BodySize() != 20 {
			t.Fatalf("refresh not written: %v %v", got, ok)
		}
	})
	t.Run("Touch counts uses and writes once at MinUses", func(t *testing.T) {
		s := openFull(t, Options{MinUses: 3})
		e := entryFor("touched", 1000)
		s.Touch(e, time.Hour)
		s.Touch(e, time.Hour)
		settle(t, s)
		if s.Contains(e.Key) {
			t.Fatal("written before MinUses touches")
		}
		s.Touch(e, time.Hour)
		settle(t, s)
		if st := s.Stats(); !s.Contains(e.Key) || st.Admissions != 2 { // the filler's and this one
			t.Fatalf("after 3 touches: %+v", st)
		}
		for range 10 {
			s.Touch(e, time.Hour)
		}
		settle(t, s)
		if st := s.DiskStats(); st.Writes != 2 {
			t.Errorf("Touch of a key on disk wrote it again: %d writes", st.Writes)
		}
		got, ok := s.Get("touched")
		if !ok || !bytes.Equal(readBody(t, got), e.Body) {
			t.Error("touched entry not served")
		}
	})
}

// TestAdmissionFree checks that MinUses is waived while admitting evicts
// nothing: an empty store writes the first Set of a key; a store whose
// files leave no room for it declines it; so does one whose write queue is
// half full.
func TestAdmissionFree(t *testing.T) {
	t.Run("an empty store writes a first Set", func(t *testing.T) {
		s := openTest(t, Options{MinUses: 2})
		loaded(t, s)
		e := entryFor("first", 1000)
		s.Set(e, time.Hour)
		settle(t, s)
		st := s.DiskStats()
		if !s.Contains(e.Key) || st.Admissions != 1 || st.FreeAdmissions != 1 || st.Rejections != 0 {
			t.Fatalf("first Set into free room: contained %v, %+v", s.Contains(e.Key), st)
		}
		got, ok := s.Get(e.Key)
		if !ok || !bytes.Equal(readBody(t, got), e.Body) {
			t.Fatal("entry written into free room not served")
		}
	})
	t.Run("a full store declines it", func(t *testing.T) {
		s := openFull(t, Options{MinUses: 2})
		e := entryFor("second", 1000)
		s.Set(e, time.Hour)
		settle(t, s)
		if st := s.DiskStats(); s.Contains(e.Key) || st.FreeAdmissions != 0 { // (the filler had its uses)
			t.Fatalf("first Set into a full store: contained %v, %+v", s.Contains(e.Key), st)
		}
	})
	t.Run("the store fills up, then MinUses applies", func(t *testing.T) {
		const max = 64 << 10 // 16 blocks
		s := openTest(t, Options{MinUses: 2, MaxBytes: max})
		loaded(t, s)
		for i := range 32 {
			s.Set(entryFor(fmt.Sprint("k", i), 1000), time.Hour)
			settle(t, s)
		}
		st := s.DiskStats()
		if st.Bytes > max || st.FreeAdmissions != 16 || st.Evictions != 0 || st.Rejections != 16 {
			t.Fatalf("32 first Sets of one block each into 16 blocks: %+v", st)
		}
	})
}

// openFull opens a store (capacity 1 MiB unless opts say) and fills it
// with one entry that leaves no room for another: MinUses applies.
func openFull(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 1 << 20
	}
	s := openTest(t, opts)
	loaded(t, s)
	// Its metadata in the first block, its (aligned) body in the rest.
	filler := entryFor("filler", int(opts.MaxBytes)-blockSize)
	for range opts.MinUses - 1 {
		s.Touch(filler, time.Hour) // uses, so that the Set below has its MinUses
	}
	s.Set(filler, time.Hour)
	settle(t, s)
	if st := s.Stats(); st.Bytes != opts.MaxBytes {
		t.Fatalf("filler: %+v", st)
	}
	return s
}

// TestTTL checks expiry with the injected clock: an expired entry is a
// miss, its file is removed and the removal reported.
func TestTTL(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{MinUses: 1, Now: c.Now})
	var mu sync.Mutex
	var removed []string
	s.NotifyRemoval(func(e *cache.Entry) { mu.Lock(); removed = append(removed, e.Key); mu.Unlock() })
	s.Set(entryFor("short", 100), time.Minute)
	s.Set(entryFor("long", 100), time.Hour)
	settle(t, s)
	c.Add(2 * time.Minute)
	if _, ok := s.Get("short"); ok {
		t.Fatal("expired entry served")
	}
	if _, ok := s.Get("long"); !ok {
		t.Fatal("live entry missed")
	}
	waitFor(t, "the expired file to be unlinked", func() bool { return len(objectFiles(t, s.dir)) == 1 })
	waitFor(t, "the removal notice", func() bool { mu.Lock(); defer mu.Unlock(); return len(removed) == 1 })
	if removed[0] != "short" {
		t.Errorf("removed %q", removed)
	}
	if st := s.DiskStats(); st.Expirations != 1 || st.Evictions != 1 || st.Items != 1 {
		t.Errorf("stats after expiry: %+v", st)
	}
	if s.Set(entryFor("zero", 1), 0); s.Stats().Admissions != 2 {
		t.Error("a ttl of zero was admitted")
	}
}

// TestDeleteWinsOverWrite sets and deletes keys at once from many
// goroutines: once the writer is idle, no deleted key is served or on
// disk, and no removal is reported for them.
func TestDeleteWinsOverWrite(t *testing.T) {
	s := openTest(t, Options{MinUses: 1, WriteQueue: 10000, WriteQueueBytes: 1 << 30})
	var notices sync.Map
	s.NotifyRemoval(func(e *cache.Entry) { notices.Store(e.Key, true) })
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				key := fmt.Sprintf("w%d/k%d", w, i)
				s.Set(entryFor(key, 3000), time.Hour)
				if i%2 == 0 {
					s.Delete(key)
				} else {
					s.Set(entryFor(key+"/kept", 100), time.Hour)
				}
			}
		}()
	}
	wg.Wait()
	settle(t, s)
	for w := range workers {
		for i := 0; i < perWorker; i += 2 {
			key := fmt.Sprintf("w%d/k%d", w, i)
			if _, ok := s.Get(key); ok {
				t.Fatalf("deleted %s served", key)
			}
			if _, ok := notices.Load(key); ok {
				t.Errorf("Delete of %s reported as a removal", key)
			}
		}
	}
	want := workers * perWorker // the odd keys and their /kept
	waitFor(t, "the files to settle", func() bool { return len(objectFiles(t, s.dir)) == want })
	if st := s.Stats(); st.Items != int64(want) {
		t.Errorf("Items = %d, want %d", st.Items, want)
	}
	if n := len(objectFiles(t, s.dir)); n != want {
		t.Errorf("%d files on disk, want %d", n, want)
	}
}

// TestDeleteDuringWrite holds the writer inside a write (the rename
// fault hook blocks) and deletes the key meanwhile: the write is
// discarded.
func TestDeleteDuringWrite(t *testing.T) {
	s := openTest(t, Options{MinUses: 1})
	inWrite, release := make(chan struct{}), make(chan struct{})
	s.setFault(func(op string) error {
		if op == "write" {
			close(inWrite)
			<-release
		}
		return nil
	})
	s.Set(entryFor("k", 1000), time.Hour)
	<-inWrite
	s.Delete("k")
	s.setFault(nil)
	close(release)
	settle(t, s)
	if _, ok := s.Get("k"); ok {
		t.Fatal("deleted key served")
	}
	if n := len(objectFiles(t, s.dir)); n != 0 {
		t.Fatalf("%d files on disk after the Delete", n)
	}
	if st := s.DiskStats(); st.Discarded != 1 {
		t.Errorf("Discarded = %d", st.Discarded)
	}
}

// TestEviction fills a small store: the capacity holds within one file,
// every eviction is reported once, Deletes never are, and the evicted
// files are unlinked.
func TestEviction(t *testing.T) {
	const capacity = 1 << 20
	s := openTest(t, Options{MinUses: 1, MaxBytes: capacity})
	var mu sync.Mutex
	removed := map[string]int{}
	s.NotifyRemoval(func(e *cache.Entry) { mu.Lock(); removed[e.Key]++; mu.Unlock() })
	const n = 100
	for i := range n {
		key := fmt.Sprint("k", i)
		s.Set(entryFor(key, 30_000), time.Hour)
		settle(t, s)
		if i%10 == 0 {
			s.Delete(key)
		}
		if st := s.Stats(); st.Bytes > capacity {
			t.Fatalf("after %d Sets: %d bytes held, capacity %d", i+1, st.Bytes, capacity)
		}
	}
	waitFor(t, "the deleter", func() bool { return s.unlinksQueued() == 0 })
	st := s.Stats() // final: the writer is idle and nothing expires
	// The deleter reports a removal just after it takes the file off its
	// queue: wait for the notices of every eviction counted.
	waitFor(t, "a notice of every eviction", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(removed)) >= st.Evictions
	})
	files := objectFiles(t, s.dir)
	if int64(len(files)) != st.Items {
		t.Errorf("%d files on disk, %d items", len(files), st.Items)
	}
	mu.Lock()
	defer mu.Unlock()
	for key, c := range removed {
		if c != 1 {
			t.Errorf("%s reported %d times", key, c)
		}
	}
	for i := 0; i < n; i += 10 {
		if removed[fmt.Sprint("k", i)] > 0 {
			t.Errorf("deleted k%d reported as removed", i)
		}
	}
	if uint64(len(removed)) != st.Evictions {
		t.Errorf("%d removals reported, %d evictions counted", len(removed), st.Evictions)
	}
	if int64(len(removed))+st.Items+n/10 != n {
		t.Errorf("%d evicted + %d held + %d deleted != %d", len(removed), st.Items, n/10, n)
	}
	for i := n - 5; i < n; i++ { // the newest are held
		key := fmt.Sprint("k", i)
		if e, ok := s.Get(key); !ok || !bytes.Equal(readBody(t, e), bodyFor(key, 30_000)) {
			t.Errorf("%s not served", key)
		}
	}
}

// TestQueueBound checks that a full write queue drops Sets, counted.
func TestQueueBound(t *testing.T) {
	s := openTest(t, Options{MinUses: 1, WriteQueue: 2})
	block, inWrite := make(chan struct{}), make(chan struct{}, 1)
	s.setFault(func(op string) error {
		if op == "write" {
			select {
			case inWrite <- struct{}{}:
			default:
			}
			<-block
		}
		return nil
	})
	var removed []string
	s.NotifyRemoval(func(e *cache.Entry) { removed = append(removed, e.Key) })
	s.Set(entryFor("a", 10), time.Hour)
	<-inWrite // a is being written; b and c fill the queue
	s.Set(entryFor("b", 10), time.Hour)
	s.Set(entryFor("c", 10), time.Hour)
	s.Set(entryFor("d", 10), time.Hour)
	close(block)
	s.setFault(nil)
	settle(t, s)
	if st := s.Stats(); st.Drops != 1 || st.Admissions != 3 || st.Items != 3 {
		t.Errorf("stats = %+v; want 1 drop, 3 admissions, 3 items", st)
	}
	if !reflect.DeepEqual(removed, []string{"d"}) {
		t.Errorf("removals reported: %q", removed)
	}
}

// TestOptions checks that bad options are refused, all at once.
func TestOptions(t *testing.T) {
	_, err := Open(Options{MinUses: -1})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Dir", "MaxBytes", "MinUses"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestDirectoryLocked checks that a second store on a directory in use is
// refused with a message naming it, and that Close lets it go.
func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if second, err := Open(Options{Dir: dir, MaxBytes: 1 << 20}); err == nil {
		second.Close()
		t.Fatal("a second store opened a directory in use")
	} else if !strings.Contains(err.Error(), "in use by another store") {
		t.Errorf("error %q does not say the directory is in use", err)
	}
	first.Close()
	again, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("reopening after Close: %v", err)
	}
	again.Close()
}
