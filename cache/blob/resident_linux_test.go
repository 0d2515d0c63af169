package blob

import (
	"errors"
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
	p := filepath.Join(droppableDir(t), "f")
	if err := os.WriteFile(p, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	needCachestat(t)
	if !resident(f.Fd(), 1000, 200<<10) {
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
	if resident(f.Fd(), 1000, 200<<10) {
		t.Error("pages dropped from the page cache count as resident")
	}
}

// needCachestat skips the test where the kernel has no cachestat(2)
// (before Linux 6.5; CI's has it): there disk pages are never taken as
// resident, which TestFromFileSendTo covers.
func needCachestat(t *testing.T) {
	var st unix.Cachestat_t
	err := unix.Cachestat(0, &unix.CachestatRange{}, &st, 0)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("no cachestat(2) here (%v): disk pages are never taken as resident", err)
	}
}

// droppableDir returns a new directory on a file system whose pages
// POSIX_FADV_DONTNEED drops (not tmpfs): the test's temporary directory,
// or one under /var/tmp (on disk wherever /tmp is a tmpfs). It skips the
// test when neither is.
func droppableDir(t *testing.T) string {
	t.Helper()
	for _, base := range []string{"", "/var/tmp"} {
		dir := t.TempDir()
		if base != "" {
			d, err := os.MkdirTemp(base, "blobtest")
			if err != nil {
				continue
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
		var fs unix.Statfs_t
		if unix.Statfs(dir, &fs) == nil && fs.Type != unix.TMPFS_MAGIC {
			return dir
		}
	}
	t.Skip("no directory off tmpfs to drop pages in (the temporary directory and /var/tmp are tmpfs)")
	return ""
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
	needCachestat(t)
	f, off := windowFileIn(t, droppableDir(t), make([]byte, 100), make([]byte, 200<<10), nil)
	b := FromFile(f, off, 200<<10)
	fd := f.Fd()
	start := time.Now() // before the look that starts residentFor
	if !b.resident(fd) {
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
