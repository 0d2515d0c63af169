package config

import (
	"context"
	"os"
	"path/filepath"
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

	// files counts the watcher's snapshots: a poll asks for the files,
	// and so does the snapshot it takes again after a reported change.
	// The test moves on by these counts, not by time: a loaded -race run
	// can go 200 ms without a poll, and a change made while the watcher
	// still takes its snapshot after the last change is taken into that
	// snapshot and never reported (the watcher's design: see the report
	// of this sweep), so each change waits for that snapshot.
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
		for deadline := time.Now().Add(10 * time.Second); polls.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the watcher polled %d times in 10s, want %d", what, polls.Load(), n)
			}
		}
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
			// The snapshot after the change is ask at+1; the next poll,
			// at+2, starts once it is the one compared against.
			waitPolls(what, at+2)
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
