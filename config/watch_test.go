package config

import (
	"context"
	"os"
	"path/filepath"
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

	changes := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, 5*time.Millisecond, func() []string { return []string{path} }, func() { changes <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-changes:
			if !want {
				t.Errorf("%s: a change was reported", what)
			}
		case <-time.After(200 * time.Millisecond):
			if want {
				t.Errorf("%s: no change reported", what)
			}
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

	must(os.WriteFile(path, []byte("a: 22\n"), 0o644))
	expect("rewritten in place", true)
	must(os.Remove(filepath.Join(dir, "..data")))
	expect("removed", true)
}
