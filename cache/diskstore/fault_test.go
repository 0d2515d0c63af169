package diskstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
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

// TestFullDisk runs a store whose capacity exceeds a small tmpfs: writes
// that do not fit fail cleanly, the effective capacity drops, the store
// stays in service and serves only right bodies. It needs root (mount).
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestFullDisk mounts a 4 MiB tmpfs: run it as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
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
	var logs logBuffer
	s, err := Open(Options{Dir: dir, MaxBytes: 64 << 20, MinUses: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 300 << 10
	for i := range 40 {
		s.Set(entryFor(fmt.Sprint("k", i), size), time.Hour)
		settle(t, s)
		// The files evicted for room take space until the deleter
		// unlinks them, but no longer count in the indexed bytes that
		// noSpace lowers the capacity to: a write that runs out of space
		// before the deleter catches up lowers it again, towards 0 (an
		// open product issue). Let the deleter catch up, as it does on a
		// PoP whose deleter keeps up with its writer.
		waitFor(t, "the deleter", func() bool { return s.unlinksQueued() == 0 })
	}
	st := s.DiskStats()
	t.Logf("after 40 writes of 300 KiB: %+v", st.StoreStats)
	if st.NoSpace == 0 {
		t.Fatal("no write ran out of space on a 4 MiB file system")
	}
	if st.MaxBytes >= 4<<20 || st.MaxBytes <= 0 {
		t.Errorf("effective capacity %d, want below the 4 MiB that fit", st.MaxBytes)
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
	before := s.DiskStats().Writes // the store keeps writing within its new capacity
	s.Set(entryFor("after", size), time.Hour)
	settle(t, s)
	if e, ok := s.Get("after"); !ok || !bytes.Equal(readBody(t, e), bodyFor("after", size)) || s.DiskStats().Writes != before+1 {
		out, _ := exec.Command("df", "-k", dir).CombinedOutput()
		t.Errorf("a write after the capacity was lowered failed: %+v\n%s", s.DiskStats(), out)
	}
	if n, err := os.ReadDir(s.tmp); err != nil || len(n) != 0 {
		t.Errorf("tmp holds %d files (%v)", len(n), err)
	}
}
