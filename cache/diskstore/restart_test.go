package diskstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// fill writes n entries key0..key<n-1> (bodies derived from the keys)
// into a store on dir and closes it.
func fill(t *testing.T, dir string, n, size int) {
	t.Helper()
	s := openTest(t, Options{Dir: dir, MinUses: 1, WriteQueue: n + 1, WriteQueueBytes: 1 << 30})
	for i := range n {
		s.Set(entryFor(fmt.Sprint("key", i), size), time.Hour)
	}
	settle(t, s)
	if st := s.Stats(); st.Items != int64(n) {
		t.Fatalf("wrote %d entries of %d", st.Items, n)
	}
	s.Close()
}

// TestRestart writes entries, closes the store and opens it again: all
// are indexed by the loader and served, each asked about once.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	const n = 300
	fill(t, dir, n, 2000)
	var logs logBuffer
	var mu sync.Mutex
	asked := map[string]int{}
	s, err := OpenWith(Options{Dir: dir, MaxBytes: 64 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		func(e *cache.Entry) bool { mu.Lock(); asked[e.Key]++; mu.Unlock(); return true })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	loaded(t, s)
	p := s.Load()
	if p.Scanned != n || p.Loaded != n || p.Dropped != 0 || !p.Done {
		t.Errorf("Load = %+v", p)
	}
	if st := s.Stats(); st.Items != n {
		t.Errorf("Items = %d", st.Items)
	}
	for i := range n {
		key := fmt.Sprint("key", i)
		e, ok := s.Get(key)
		if !ok || !bytes.Equal(readBody(t, e), bodyFor(key, 2000)) {
			t.Fatalf("%s not served right", key)
		}
	}
	mu.Lock()
	for i := range n {
		if c := asked[fmt.Sprint("key", i)]; c != 1 {
			t.Errorf("key%d asked about %d times", i, c)
		}
	}
	mu.Unlock()
	// The loader logs "index loaded" just after it sets Done (which
	// loaded waited for): wait for the record instead of reading the log
	// at once.
	waitFor(t, `the "index loaded" log record`, func() bool { return strings.Contains(logs.String(), "index loaded") })
	for _, want := range []string{"loading the index", "index loaded", "loaded=300"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// TestGetWhileLoading holds the loader back before its first file and
// checks that every key is served straight from its file meanwhile, asked
// about once, and not asked about again when the loader reaches it.
func TestGetWhileLoading(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	fill(t, dir, n, 1000)
	var mu sync.Mutex
	asked := map[string]int{}
	keep := func(e *cache.Entry) bool {
		mu.Lock()
		asked[e.Key]++
		mu.Unlock()
		return true
	}
	// keep is set before the loader starts (OpenWith): set after Open, the
	// loader may index some files before it is (CI saw it under -race),
	// and those are never asked about.
	s, err := OpenWith(Options{Dir: dir, MaxBytes: 64 << 20, Logger: slog.New(slog.DiscardHandler)}, keep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, held := make(chan struct{}), make(chan struct{}, 1)
	s.setFault(func(op string) error {
		if op == "load" {
			select {
			case held <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	})
	<-held
	for i := range n {
		key := fmt.Sprint("key", i)
		e, ok := s.Get(key)
		if !ok || !bytes.Equal(readBody(t, e), bodyFor(key, 1000)) {
			t.Fatalf("%s not served while loading", key)
		}
	}
	if p := s.Load(); p.Done || p.Loaded != n {
		t.Errorf("while held: Load = %+v, want %d loaded by Gets", p, n)
	}
	close(release)
	loaded(t, s)
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if c := asked[fmt.Sprint("key", i)]; c != 1 {
			t.Errorf("key%d asked about %d times", i, c)
		}
	}
	if st := s.Stats(); st.Items != n {
		t.Errorf("Items = %d", st.Items)
	}
}

// TestKeepFalse drops the entries keep declines, for good.
func TestKeepFalse(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	fill(t, dir, n, 500)
	odd := func(e *cache.Entry) bool { var i int; fmt.Sscan(strings.TrimPrefix(e.Key, "key"), &i); return i%2 == 0 }
	for round := range 2 {
		s, err := OpenWith(Options{Dir: dir, MaxBytes: 64 << 20, Logger: slog.New(slog.DiscardHandler)}, odd)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Get("key1"); ok { // while loading, by name
			t.Errorf("round %d: declined key1 served", round)
		}
		loaded(t, s)
		for i := range n {
			_, ok := s.Get(fmt.Sprint("key", i))
			if ok != (i%2 == 0) {
				t.Errorf("round %d: key%d served = %v", round, i, ok)
			}
		}
		if got := len(objectFiles(t, dir)); got != n/2 {
			t.Errorf("round %d: %d files, want %d", round, got, n/2)
		}
		s.Close()
	}
}

// TestDamagedFiles damages files in every way and checks that each is a
// miss, is removed and is counted, both when the loader finds it and when
// a Get finds it first.
func TestDamagedFiles(t *testing.T) {
	type damage func(t *testing.T, dir, path string)
	rewrite := func(f func(b []byte) []byte) damage {
		return func(t *testing.T, dir, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		damage damage
	}{
		{"flipped byte in the body", rewrite(func(b []byte) []byte { b[len(b)-100] ^= 1; return b })},
		{"flipped byte in the metadata", rewrite(func(b []byte) []byte { b[headerSize+40] ^= 1; return b })},
		{"flipped byte in the header", rewrite(func(b []byte) []byte { b[17] ^= 1; return b })},
		{"truncated file", rewrite(func(b []byte) []byte { return b[:len(b)-1] })},
		{"zero-length file", rewrite(func(b []byte) []byte { return nil })},
		{"another key's file at the path", func(t *testing.T, dir, path string) {
			other, err := encodeFile(entryFor("other", 5000), bodyFor("other", 5000), time.Now().Add(time.Hour).UnixNano())
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path, other, 0o644)
		}},
	}
	for _, tt := range tests {
		for _, via := range []string{"Get while loading", "loader", "Get of an indexed entry"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				dir := t.TempDir()
				fill(t, dir, 1, 5000)
				path := filepath.Join(dir, "objects", fileName("key0")[:2], fileName("key0")[2:4], fileName("key0"))
				if via != "Get of an indexed entry" {
					tt.damage(t, dir, path)
				}
				hold := make(chan struct{})
				keep := func(*cache.Entry) bool { return true }
				s, err := OpenWith(Options{Dir: dir, MaxBytes: 64 << 20, Logger: slog.New(slog.DiscardHandler)}, keep)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				close(hold)
				switch via {
				case "loader":
					loaded(t, s)
				case "Get of an indexed entry":
					loaded(t, s)
					tt.damage(t, dir, path)
				}
				if e, ok := s.Get("key0"); ok {
					t.Fatalf("damaged entry served (%d bytes)", e.BodySize())
				}
				loaded(t, s)
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("damaged file still there: %v", err)
				}
				if st := s.DiskStats(); st.Corrupt != 1 || st.Items != 0 {
					t.Errorf("Corrupt = %d, Items = %d", st.Corrupt, st.Items)
				}
				s.Set(entryFor("key0", 5000), time.Hour) // the store goes on
				s.Get("key0")
				s.Set(entryFor("key0", 5000), time.Hour)
				settle(t, s)
				if e, ok := s.Get("key0"); !ok || !bytes.Equal(readBody(t, e), bodyFor("key0", 5000)) {
					t.Error("rewritten entry not served")
				}
			})
		}
	}
}

// TestTmpAndStrayFiles checks that Open empties tmp/ and the loader
// removes files that are no entry's.
func TestTmpAndStrayFiles(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 3, 100)
	os.WriteFile(filepath.Join(dir, "tmp", "garbage"), []byte("half a write"), 0o644)
	os.WriteFile(filepath.Join(dir, "objects", "ab", "cd", "not-a-name"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "objects", "ab", "cd"), 0o755)
	os.WriteFile(filepath.Join(dir, "objects", "ab", "cd", "not-a-name"), []byte("x"), 0o644)
	s := openTest(t, Options{Dir: dir})
	loaded(t, s)
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp holds %d files after Open", len(ents))
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "ab", "cd", "not-a-name")); !os.IsNotExist(err) {
		t.Error("stray file kept")
	}
	if p := s.Load(); p.Loaded != 3 || p.Dropped != 1 {
		t.Errorf("Load = %+v", p)
	}
}

// TestExpiredAtLoad drops files that expired while the store was closed.
func TestExpiredAtLoad(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openTest(t, Options{Dir: dir, MinUses: 1, Now: c.Now})
	s.Set(entryFor("short", 10), time.Minute)
	s.Set(entryFor("long", 10), time.Hour)
	settle(t, s)
	s.Close()
	c.Add(10 * time.Minute)
	s = openTest(t, Options{Dir: dir, Now: c.Now})
	if _, ok := s.Get("short"); ok {
		t.Error("expired entry served while loading")
	}
	loaded(t, s)
	if _, ok := s.Get("long"); !ok {
		t.Error("live entry missed")
	}
	if n := len(objectFiles(t, dir)); n != 1 {
		t.Errorf("%d files left", n)
	}
}
