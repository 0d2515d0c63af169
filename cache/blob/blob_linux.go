package blob

import (
	"errors"
	"fmt"
	"os"
	"syscall"

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
		writeErr := sock.Write(func(dstFD uintptr) bool {
			for pos < fileEnd {
				n, err := unix.Sendfile(int(dstFD), int(srcFD), &pos, int(min(fileEnd-pos, 1<<30)))
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
