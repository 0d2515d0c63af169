package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatch: a ConfigMap's update (a new directory, the symlink swapped)
// and a rewrite in place are seen; an untouched file is not.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet's layout: cdn.yaml -> ..data/cdn.yaml, ..data -> ..v1.
	must(os.Mkdir(filepath.Join(dir, "..v1"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "..v1", "cdn.yaml"), []byte("a: 1\n"), 0o644))
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink(filepath.Join("..data", "cdn.yaml"), filepath.Join(dir, "cdn.yaml")))
	path := filepath.Join(dir, "cdn.yaml")

	// files counts the watcher's polls (each asks for the files). The
	// test moves on by these counts, not by time: a loaded -race run can
	// go 200 ms without a poll.
	var polls atomic.Int64
	changes := make(chan int64, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, 5*time.Millisecond, func() []string { polls.Add(1); return []string{path} }, func() { changes <- polls.Load() })
	}()
	defer func() { cancel(); <-done }()
	// waitPolls waits until the watcher has asked for the files n times.
	waitPolls := func(what string, n int64) {
		t.Helper()
		pollUntil(t, fmt.Sprintf("%s: the watcher to poll %d times", what, n), func() bool { return polls.Load() >= n })
	}
	expect := func(what string, want bool) {
		t.Helper()
		if !want {
			// Ten polls that see nothing, however long they take.
			waitPolls(what, polls.Load()+10)
			select {
			case <-changes:
				t.Errorf("%s: a change was reported", what)
			default:
			}
			return
		}
		select {
		case at := <-changes:
			// The poll that saw it was ask at; the next one starts once
			// that poll's snapshot is the one compared against.
			waitPolls(what, at+1)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no change reported in 10s", what)
		}
	}
	expect("untouched", false)

	// The swap: a new directory with the same size and maybe the same
	// modification time; only the inode tells.
	must(os.Mkdir(filepath.Join(dir, "..v2"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "..v2", "cdn.yaml"), []byte("a: 2\n"), 0o644))
	must(os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	expect("ConfigMap swap", true)
	expect("after the swap", false)

	// In place, in one write (os.WriteFile truncates first: a poll between
	// the two could see a second change).
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("a: 22\n"), 0)
	must(err)
	must(f.Close())
	expect("rewritten in place", true)
	must(os.Remove(filepath.Join(dir, "..data")))
	expect("removed", true)
}

// TestWatchChangeDuringReload: a change made while changed() runs (a
// ConfigMap swapped again during a reload) is reported by a later poll,
// not folded into the reload's snapshot.
func TestWatchChangeDuringReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdn.yaml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, 5*time.Millisecond, func() []string { return []string{path} }, func() {
			mu.Lock() // the test's writes stop once a change is reported
			defer mu.Unlock()
			if calls.Add(1) == 1 {
				// Lands while the first reload runs.
				if err := os.WriteFile(path, []byte("a: 2222222\n"), 0o644); err != nil {
					t.Error(err)
				}
			}
		})
	}()
	defer func() { cancel(); <-done }()
	// Change the file until the watcher reports a change (its first
	// snapshot may be taken after any one write): sizes 6 and 7 in turn,
	// never the reload's 11. Once one is reported, only the reload
	// writes.
	i := 0
	pollUntil(t, "a change reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if calls.Load() > 0 {
			return true
		}
		i++
		if err := os.WriteFile(path, []byte("a: 1"+strings.Repeat("1", i%2)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return false
	})
	pollUntil(t, "the change made during the reload reported", func() bool { return calls.Load() >= 2 })
}

// pollUntil checks cond every millisecond until it holds, and fails the
// test if it does not within 10 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
	}
}
