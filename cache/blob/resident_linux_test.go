package blob

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestResident checks the page-cache probe that decides whether sendfile
// may be a raw call: a file just written is resident, and one whose pages
// were dropped (fsync, then POSIX_FADV_DONTNEED) is not.
func TestResident(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !resident(f.Fd(), 1000, 200<<10) {
		if !cachestatWorks.Load() {
			t.Skip("no cachestat(2) here (Linux before 6.5): disk pages are never taken as resident")
		}
		t.Fatal("a file just written is not resident")
	}
	if resident(f.Fd(), 10, 10) {
		t.Error("an empty range counts as resident")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, which keeps its pages whatever the advice")
	}
	if resident(f.Fd(), 1000, 200<<10) {
		t.Error("pages dropped from the page cache count as resident")
	}
}

// dropPages writes f's pages back and drops them from the page cache
// (where the file system honours the advice).
func dropPages(f *os.File) {
	f.Sync()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// noRawSendfile makes every sendfile go through the scheduler until the
// function it returns is called.
func noRawSendfile() func() {
	rawSendfile = false
	return func() { rawSendfile = true }
}

// TestResidentRemembered checks that a disk window found resident is taken
// as resident for residentFor without another look, and looked at again
// after it.
func TestResidentRemembered(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, whose pages cannot be dropped")
	}
	f, off := windowFile(t, make([]byte, 100), make([]byte, 200<<10), nil)
	b := FromFile(f, off, 200<<10)
	fd := f.Fd()
	start := time.Now() // before the look that starts residentFor
	if !b.resident(fd) {
		if !cachestatWorks.Load() {
			t.Skip("no cachestat(2) here")
		}
		t.Fatal("a file just written is not resident")
	}
	dropPages(f) // an fsync: on a busy disk it can take residentFor and more
	// Checked only while residentFor cannot have run out since the look.
	if !b.resident(fd) && time.Since(start) < residentFor {
		t.Error("a window found resident is looked at again within residentFor")
	}
	b.residentAt.Add(-int64(residentFor))
	if b.resident(fd) {
		t.Error("a window whose pages were dropped is taken as resident after residentFor")
	}
}
