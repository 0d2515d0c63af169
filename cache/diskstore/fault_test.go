package diskstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestIOErrorOutOfService injects EIO into each kind of file operation:
// the store goes out of service (Healthy false, Get misses even for open
// entries, Set drops), logs at ERROR and counts it; nothing panics.
func TestIOErrorOutOfService(t *testing.T) {
	tests := []struct {
		name string
		op   string
		do   func(s *Store) // makes the store reach op
	}{
		{"EIO writing a file", "write", func(s *Store) { s.Set(entryFor("new", 100), time.Hour) }},
		{"EIO renaming a file", "rename", func(s *Store) { s.Set(entryFor("new", 100), time.Hour) }},
		{"EIO opening a file for a Get", "open", func(s *Store) { s.Get("cold") }},
		{"EIO reading a file for a Get", "read", func(s *Store) { s.Get("cold") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			s := openTest(t, Options{MinUses: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			s.Set(entryFor("hot", 100), time.Hour)
			s.Set(entryFor("cold", 100), time.Hour)
			settle(t, s)
			loaded(t, s)
			if _, ok := s.Get("hot"); !ok {
				t.Fatal("hot entry missed")
			}
			s.setFault(func(op string) error {
				if op == tt.op {
					return syscall.EIO
				}
				return nil
			})
			tt.do(s)
			waitFor(t, "the store to go out of service", func() bool { return !s.Healthy() })
			// A failed write turns the store unhealthy before the writer
			// counts its drop (abandon): let the writer finish, so that
			// the drop below is the later Set's alone.
			settle(t, s)
			if _, ok := s.Get("hot"); ok {
				t.Error("an open entry served by a store out of service")
			}
			drops := s.Stats().Drops
			s.Set(entryFor("later", 10), time.Hour)
			if s.Stats().Drops != drops+1 {
				t.Error("a Set to a store out of service is not counted as a drop")
			}
			st := s.DiskStats()
			if st.IOErrors == 0 || st.Healthy {
				t.Errorf("IOErrors = %d, Healthy = %v", st.IOErrors, st.Healthy)
			}
			// The record is written just after the store turns unhealthy.
			waitFor(t, "an ERROR record saying out of service", func() bool {
				return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "out of service")
			})
		})
	}
	t.Run("too many open files is a miss, not a failure", func(t *testing.T) {
		s := openTest(t, Options{MinUses: 1})
		s.Set(entryFor("k", 100), time.Hour)
		settle(t, s)
		loaded(t, s)
		s.setFault(func(op string) error {
			if op == "open" {
				return syscall.EMFILE
			}
			return nil
		})
		if _, ok := s.Get("k"); ok {
			t.Fatal("served without opening the file")
		}
		s.setFault(nil)
		if !s.Healthy() {
			t.Fatal("EMFILE took the store out of service")
		}
		if _, ok := s.Get("k"); !ok {
			t.Fatal("entry lost after EMFILE")
		}
		if st := s.DiskStats(); st.ReadErrors != 1 || st.IOErrors != 0 {
			t.Errorf("ReadErrors = %d, IOErrors = %d", st.ReadErrors, st.IOErrors)
		}
	})
}

// TestFileCutShortWhileServed truncates a file under an entry being
// served: reading its body fails instead of ending early.
func TestFileCutShortWhileServed(t *testing.T) {
	s := openTest(t, Options{MinUses: 1})
	s.Set(entryFor("k", 200_000), time.Hour)
	settle(t, s)
	e, ok := s.Get("k")
	if !ok {
		t.Fatal("miss")
	}
	files := objectFiles(t, s.dir)
	if err := os.Truncate(files[0], 100_000); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(e.BodyReader()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a body cut short: %v, want io.ErrUnexpectedEOF", err)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory,
// unmounted when the test ends, and returns its path. It skips the test
// unless it runs as root.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s mounts a tmpfs: run it as root", t.Name())
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dk", size>>10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Entries served hold their files open until the collector
		// closes them.
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			out, err := exec.Command("umount", dir).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("umount %s: %v: %s", dir, err, out)
				exec.Command("umount", "-l", dir).Run()
				return
			}
			time.Sleep(10 * time.Millisecond) // polling interval for the cleanups
		}
	})
	return dir
}

// slowDeleter makes each unlink of an evicted file wait 0-3 ms, as a
// deleter behind its writer on a loaded machine does.
func slowDeleter(s *Store) {
	s.setFault(func(op string) error {
		if op == "unlink" {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		return nil
	})
}

// TestFullDisk runs a store whose capacity exceeds a small tmpfs: writes
// that do not fit fail cleanly, the effective capacity drops, the store
// stays in service and serves only right bodies. The deleter is slowed,
// so writes run out of space while evicted files wait for it: that must
// not ratchet the capacity down. It needs root (mount).
func TestFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 4<<20)
	var logs logBuffer
	s, err := Open(Options{Dir: dir, MaxBytes: 64 << 20, MinUses: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	slowDeleter(s)
	const size = 300 << 10
	for i := range 40 {
		s.Set(entryFor(fmt.Sprint("k", i), size), time.Hour)
		settle(t, s)
	}
	st := s.DiskStats()
	t.Logf("after 40 writes of 300 KiB: %+v", st.StoreStats)
	if st.NoSpace == 0 {
		t.Fatal("no write ran out of space on a 4 MiB file system")
	}
	if st.MaxBytes >= 4<<20 || st.MaxBytes <= 0 {
		t.Errorf("effective capacity %d, want below the 4 MiB that fit", st.MaxBytes)
	}
	// The room less the headroom (twice a failed write, 608 KiB) is
	// about 3.4 MiB; writes that failed while the deleter lagged must not
	// have lowered it further.
	if st.MaxBytes < 3<<20 {
		t.Errorf("effective capacity %d after %d writes out of space, %d lowerings: ratcheted below the 3 MiB that fit", st.MaxBytes, st.NoSpace, st.CapacityLowered)
	}
	if !st.Healthy {
		t.Error("a full disk took the store out of service")
	}
	if !strings.Contains(logs.String(), "file system full") {
		t.Errorf("no log of the full disk:\n%s", logs.String())
	}
	served := 0
	for i := range 40 {
		key := fmt.Sprint("k", i)
		if e, ok := s.Get(key); ok {
			served++
			if !bytes.Equal(readBody(t, e), bodyFor(key, size)) {
				t.Fatalf("%s served with a wrong body", key)
			}
		}
	}
	if served == 0 {
		t.Error("nothing served after the disk ran full")
	}
	waitFor(t, "the deleter", func() bool { return s.unlinksQueued() == 0 })
	// The entries served above hold their (maybe unlinked) files open
	// until the collector closes them.
	runtime.GC()
	before := s.DiskStats() // the store keeps writing within its new capacity
	s.Set(entryFor("after", size), time.Hour)
	settle(t, s)
	if st := s.DiskStats(); st.Writes != before.Writes+1 || st.NoSpace != before.NoSpace {
		out, _ := exec.Command("df", "-k", dir).CombinedOutput()
		t.Errorf("a write after the capacity was lowered failed: %+v\n%s", st, out)
	}
	// S3-FIFO may evict the new entry at once (every older one was just
	// hit); if it is served, its body must be right.
	if e, ok := s.Get("after"); ok && !bytes.Equal(readBody(t, e), bodyFor("after", size)) {
		t.Error("after served with a wrong body")
	}
	if n, err := os.ReadDir(s.tmp); err != nil || len(n) != 0 {
		t.Errorf("tmp holds %d files (%v)", len(n), err)
	}
}

// TestFullDiskRecovers fills a tmpfs with a file that is not the
// store's: the store's writes run out of space and its capacity drops;
// once the file is removed the capacity comes back to MaxBytes (never
// above it), with one INFO record, and the store fills it. It needs root.
func TestFullDiskRecovers(t *testing.T) {
	mnt := mountTmpfs(t, 4<<20)
	filler := filepath.Join(mnt, "filler") // another program's file on the same disk
	if err := os.WriteFile(filler, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	const maxBytes = 2 << 20
	s := openTest(t, Options{Dir: filepath.Join(mnt, "cache"), MaxBytes: maxBytes, MinUses: 1,
		SpaceCheckInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	loaded(t, s)
	notAbove := func() {
		t.Helper()
		if c := s.Stats().MaxBytes; c > maxBytes {
			t.Fatalf("effective capacity %d above MaxBytes %d", c, maxBytes)
		}
	}
	const size = 100 << 10
	for i := range 20 {
		s.Set(entryFor(fmt.Sprint("k", i), size), time.Hour)
		settle(t, s)
		notAbove()
	}
	st := s.DiskStats()
	if st.NoSpace == 0 || st.CapacityLowered == 0 || st.MaxBytes >= maxBytes {
		t.Fatalf("with 1 MiB free, 2 MiB of writes: NoSpace %d, CapacityLowered %d, capacity %d", st.NoSpace, st.CapacityLowered, st.MaxBytes)
	}
	if strings.Contains(logs.String(), "free space is back") {
		t.Fatalf("capacity raised while the file system was still full:\n%s", logs.String())
	}
	lowered := st.MaxBytes
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the capacity to come back", func() bool {
		notAbove()
		return s.Stats().MaxBytes == maxBytes
	})
	// The record is written just after the capacity is raised.
	waitFor(t, "an INFO record of the recovery", func() bool {
		return strings.Contains(logs.String(), "level=INFO msg=\"diskstore: free space is back")
	})
	if got := strings.Count(logs.String(), "free space is back"); got != 1 {
		t.Errorf("%d records of the recovery, want one at INFO:\n%s", got, logs.String())
	}
	if st := s.DiskStats(); st.CapacityRaised == 0 {
		t.Errorf("capacity back from %d to %d, CapacityRaised 0", lowered, st.MaxBytes)
	}
	before := s.DiskStats()
	for i := range 20 {
		s.Set(entryFor(fmt.Sprint("later", i), size), time.Hour)
		settle(t, s)
		notAbove()
	}
	st = s.DiskStats()
	if st.NoSpace != before.NoSpace || st.Writes != before.Writes+20 {
		t.Errorf("writes after the recovery: %d written of 20, %d more out of space", st.Writes-before.Writes, st.NoSpace-before.NoSpace)
	}
	if st.Bytes <= lowered || st.Bytes > maxBytes {
		t.Errorf("the store holds %d bytes after the recovery, want more than the %d it was lowered to and at most %d", st.Bytes, lowered, maxBytes)
	}
}

// TestFreeSpaceKeepsCapacity runs a store on a file system with room for
// its capacity and some: it never lowers its capacity, not even when its
// deleter falls so far behind that evicted files fill the file system
// (the writer then unlinks them itself). It needs root.
func TestFreeSpaceKeepsCapacity(t *testing.T) {
	tests := []struct {
		name        string
		block       bool // the deleter blocks on its first file until the test ends
		wantNoSpace bool
	}{
		{"deleter keeps up", false, false},
		{"deleter blocked behind the writer", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mnt := mountTmpfs(t, 8<<20)
			const maxBytes = 5 << 20
			s := openTest(t, Options{Dir: mnt, MaxBytes: maxBytes, MinUses: 1, SpaceCheckInterval: 10 * time.Millisecond})
			release, blocked := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { close(release) }) // before the store's Close
			if tt.block {
				var first atomic.Bool
				s.setFault(func(op string) error {
					if op == "unlink" && first.CompareAndSwap(false, true) {
						close(blocked)
						<-release
					}
					return nil
				})
			}
			loaded(t, s)
			const size = 300 << 10
			for i := range 40 {
				s.Set(entryFor(fmt.Sprint("k", i), size), time.Hour)
				settle(t, s)
				if tt.block && s.Stats().Evictions > 0 {
					// The first file evicted is the deleter's (the file
					// system has room for a few more): let it block there
					// before the writer can run out of space and unlink.
					waitFor(t, "the deleter to block", func() bool {
						select {
						case <-blocked:
							return true
						default:
							return false
						}
					})
				}
			}
			st := s.DiskStats()
			if (st.NoSpace > 0) != tt.wantNoSpace {
				t.Errorf("NoSpace %d, want some: %v", st.NoSpace, tt.wantNoSpace)
			}
			if st.MaxBytes != maxBytes || st.CapacityLowered != 0 {
				t.Errorf("capacity %d (lowered %d times) on a file system with room for it, want %d", st.MaxBytes, st.CapacityLowered, maxBytes)
			}
			if st.Writes+st.Drops != 40 || st.Drops != st.NoSpace {
				t.Errorf("%d written, %d dropped, %d out of space: want every Set written or dropped for lack of space", st.Writes, st.Drops, st.NoSpace)
			}
		})
	}
}

// TestHeadroom checks the space the store leaves free after a full file
// system.
func TestHeadroom(t *testing.T) {
	tests := []struct {
		name               string
		total, held, write int64
		want               int64
	}{
		{"a 64th of the file system", 64 << 30, 10 << 30, 4096, 1 << 30},
		{"at most 1 GiB", 4 << 40, 10 << 30, 4096, 1 << 30},
		{"a 64th of a small file system", 64 << 20, 10 << 20, 4096, 1 << 20},
		{"at least twice the failed write", 64 << 20, 10 << 20, 1 << 20, 2 << 20},
		{"twice the failed write in whole blocks", 64 << 20, 10 << 20, 1<<20 + 1, 2<<20 + 2*4096},
		{"no statfs: a 16th of what the store holds", 0, 16 << 20, 4096, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headroom(tt.total, tt.held, tt.write); got != tt.want {
				t.Errorf("headroom(%d, %d, %d) = %d, want %d", tt.total, tt.held, tt.write, got, tt.want)
			}
		})
	}
}
