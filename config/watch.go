package config

import (
	"context"
	"os"
	"time"
)

// This file watches the configuration for changes made on disk, for
// deployments where no one sends SIGHUP: Kubernetes updates a mounted
// ConfigMap by writing a new directory and swapping a symlink to it (the
// file is replaced, never written in place), so a watcher must follow the
// name, not an open file.

// Watch polls the files files() returns (the configuration file and the
// files it names: see NamedFiles) every interval, until ctx is done, and
// calls changed when any of them looks different from the last poll: it
// appeared or vanished, or has another inode (a swapped ConfigMap, a file
// replaced by rename), size or modification time. Symlinks are followed.
// files is asked again at each poll, as a changed file may name other
// files. A poll costs one stat per file; polling suits the few files of a
// configuration and works where inotify does not (network file systems,
// some container runtimes).
func Watch(ctx context.Context, every time.Duration, files func() []string, changed func()) {
	if every <= 0 {
		return
	}
	last := snapshot(files())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The files as they were before changed() runs are what the next
		// poll compares with: a change made while the reload runs (a
		// ConfigMap swapped again) is then seen and reported, never
		// folded into the reload's snapshot. A reload that makes the
		// configuration name other files is seen as one more change: one
		// more reload, which finds nothing new.
		now := snapshot(files())
		if !sameSnapshot(last, now) {
			changed()
		}
		last = now
	}
}

// fileState is what a poll sees of one file; info is nil when it does
// not exist (or cannot be read).
type fileState struct {
	name string
	info os.FileInfo
}

func snapshot(names []string) []fileState {
	out := make([]fileState, len(names))
	for i, n := range names {
		out[i].name = n
		if fi, err := os.Stat(n); err == nil {
			out[i].info = fi
		}
	}
	return out
}

func sameSnapshot(a, b []fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		switch {
		case x.name != y.name, (x.info == nil) != (y.info == nil):
			return false
		case x.info == nil:
		case !os.SameFile(x.info, y.info), x.info.Size() != y.info.Size(), !x.info.ModTime().Equal(y.info.ModTime()):
			return false
		}
	}
	return true
}
