package blob

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seals make a filled memory file immutable: no writes, no resizing, and
// no removing the seals.
const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL

// newFile makes a sealed memory file holding data.
func newFile(name string, chunks [][]byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w: memfd_create: %v", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("blob: memfd_create: %w", err)
	}
	for _, data := range chunks {
		for off := 0; off < len(data); {
			n, err := unix.Write(fd, data[off:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("blob: fill memory file: %w", err)
			}
			off += n
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("blob: seal memory file: %w", err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// defaultLimit is half the process's open file limit (which the Go runtime
// has raised to its hard limit), leaving the rest for sockets.
func defaultLimit() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 2048 {
		return 0
	}
	if rl.Cur > 1<<30 {
		rl.Cur = 1 << 30
	}
	return int64(rl.Cur / 2)
}

// SendTo sends up to n bytes of the body from the reader's offset (all the
// rest when n < 0) to conn, a connected stream socket such as a
// *net.TCPConn, with sendfile(2), waiting for the socket to drain as a
// Write would (its write deadline applies). It returns the bytes sent; the
// reader's offset moves past them.
//
// When every page to send is in memory (always for a memory file; for a
// window of a disk file when cachestat(2) finds its pages in the page
// cache) sendfile is made as a raw system call, which the Go scheduler is
// not told about: on a non-blocking socket and pages in memory it cannot
// block, and telling the scheduler costs a wake-up of its monitor thread
// whenever the process was idle (see rawSendfile). A call that may read
// from a disk is made as an ordinary one, so that the scheduler can run
// other goroutines while it waits.
func (r *Reader) SendTo(conn syscall.Conn, n int64) (int64, error) {
	end := r.b.size
	if n >= 0 && r.off+n < end {
		end = r.off + n
	}
	sock, err := conn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("blob: sendfile: %w", err)
	}
	src, err := r.b.f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("blob: sendfile: %w", err)
	}
	start := r.off
	// pos is the offset in the file, which for a window of a file
	// (FromFile) is past the blob's own offset.
	pos, fileEnd := r.b.off+r.off, r.b.off+end
	defer func() { r.off = pos - r.b.off }()
	var sendErr error
	readErr := src.Read(func(srcFD uintptr) bool {
		raw := !r.b.disk || r.b.resident(srcFD)
		writeErr := sock.Write(func(dstFD uintptr) bool {
			for pos < fileEnd {
				n, err := sendfile(raw, int(dstFD), int(srcFD), &pos, int(min(fileEnd-pos, 1<<30)))
				switch {
				case err == unix.EAGAIN:
					return false // wait until the socket can take more
				case err == unix.EINTR:
					continue
				case err != nil:
					sendErr = err
					return true
				case n == 0:
					sendErr = errors.New("sendfile sent nothing")
					return true
				}
			}
			return true
		})
		if sendErr == nil {
			sendErr = writeErr
		}
		return true
	})
	if sendErr == nil {
		sendErr = readErr
	}
	if sendErr != nil {
		return pos - r.b.off - start, fmt.Errorf("blob: sendfile: %w", sendErr)
	}
	return pos - r.b.off - start, nil
}

// sendfile is sendfile(2), made as a raw system call when raw is true
// (and rawSendfile allows it).
//
// Why raw: the Go runtime's monitor thread (sysmon) sleeps deeply while
// every P is idle, and the next system call made through the scheduler
// (entersyscall) wakes it; it then checks every 20 µs for at least a
// millisecond before it backs off. A server that is busy in bursts, as any
// server below full load is, so pays thousands of wake-ups a second, each
// two context switches, about a quarter of its CPU time on the disk-hit
// benchmark (docs/storage.md). A raw call never wakes it. The price is
// that the P is not handed to another thread if the call blocks, which is
// why only calls that cannot block (pages in memory, a non-blocking
// socket) are made raw.
func sendfile(raw bool, out, in int, off *int64, n int) (int, error) {
	if !raw || !rawSendfile {
		return unix.Sendfile(out, in, off, n)
	}
	w, _, e := syscall.RawSyscall6(syscall.SYS_SENDFILE, uintptr(out), uintptr(in), uintptr(unsafe.Pointer(off)), uintptr(n), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(w), nil
}

// rawSendfile lets sendfile make raw calls; tests turn it off to compare.
var rawSendfile = true

// cachestatWorks is cleared when the kernel has no cachestat(2) (before
// Linux 6.5) or refuses it: every disk page then counts as maybe not
// resident.
var cachestatWorks atomic.Bool

func init() { cachestatWorks.Store(true) }

// residentFor is how long a disk window found in the page cache is taken
// to stay there without another look. cachestat walks the window's pages
// (about 3 us for 100 KiB on the reference box, 8% of a disk hit's CPU
// when made for every hit); a hot object is served many times a second,
// so the look is made about once a second per object instead.
const residentFor = time.Second

// epoch is the zero of residentAt's clock.
var epoch = time.Now()

// resident reports whether every page of the disk window b, in the file
// fd, was in the page cache within residentFor.
func (b *Blob) resident(fd uintptr) bool {
	now := int64(time.Since(epoch)) + 1 // never 0
	if at := b.residentAt.Load(); at != 0 && now-at < int64(residentFor) {
		return true
	}
	if !resident(fd, b.off, b.off+b.size) {
		return false
	}
	b.residentAt.Store(now)
	return true
}

// resident reports whether every page of [off, end) of the file fd is in
// the page cache, by cachestat(2), itself made as a raw call (it only
// looks the pages up). A page evicted between the check and sendfile
// (or within residentFor of the check) is read from disk inside a raw
// call: rare, and then it costs what nginx's blocking sendfile always
// risks.
func resident(fd uintptr, off, end int64) bool {
	if !cachestatWorks.Load() || end <= off {
		return false
	}
	first := off &^ (pageSize - 1)
	rng := unix.CachestatRange{Off: uint64(first), Len: uint64(end - first)}
	var st unix.Cachestat_t
	_, _, e := syscall.RawSyscall6(unix.SYS_CACHESTAT, fd, uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
	if e != 0 {
		if e == unix.ENOSYS || e == unix.EPERM {
			cachestatWorks.Store(false)
		}
		return false
	}
	return int64(st.Cache) >= (end-first+pageSize-1)/pageSize
}

// pageSize is the page cache's unit.
var pageSize = int64(os.Getpagesize())
