package fastpath

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawSock makes a client connection's read(2) and write(2) calls as raw
// system calls (syscall.RawSyscall) through the runtime's network poller,
// instead of net.Conn's Read and Write, which tell the scheduler about
// each call (entersyscall). The socket is non-blocking, so the calls never
// block (the poller waits when they would), and telling the scheduler buys
// nothing; it costs a lot: the runtime's monitor thread (sysmon) sleeps
// deeply while the process is idle, the next call made through the
// scheduler wakes it, and it then checks every 20 µs for at least a
// millisecond. A server below full load is idle and busy by turns, and so
// paid thousands of wake-ups a second, each two context switches: a
// quarter of the PoP's CPU time on the disk-hit benchmark. With raw calls
// on the hit path (here, and blob's sendfile) the monitor stays asleep
// (docs/storage.md has the measurements).
//
// Reads and writes each go through one callback made once per connection,
// with their arguments in the struct under a mutex, so that a call
// allocates nothing. Errors are wrapped as net.Conn's are (*net.OpError
// around *os.SyscallError or the poller's error), so callers see the same
// errors either way.
type rawSock struct {
	tc *net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// newRawSock returns tc's raw socket, or nil when it has none (the caller
// then uses tc's own Read and Write).
func newRawSock(tc *net.TCPConn) *rawSock {
	if !rawSockets {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &rawSock{tc: tc, rc: rc}
	s.readFn = s.read1
	s.writeFn = s.write1
	return s
}

// rawSockets lets connections use raw sockets; tests turn it off to
// compare the two.
var rawSockets = true

// Read reads into p, as net.Conn's Read.
func (s *rawSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	n, rerr := s.rn, s.rerr
	s.rp, s.rerr = nil, nil
	s.rmu.Unlock()
	if err == nil {
		err = rerr
	}
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: "tcp", Source: s.tc.LocalAddr(), Addr: s.tc.RemoteAddr(), Err: err}
	}
	return n, err
}

// read1 is one read(2): false when the socket has nothing to read yet.
func (s *rawSock) read1(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)))
		switch {
		case e == syscall.EAGAIN:
			return false
		case e == syscall.EINTR:
			continue
		case e != 0:
			s.rerr = os.NewSyscallError("read", e)
		case n == 0:
			s.rerr = io.EOF
		default:
			s.rn = int(n)
		}
		return true
	}
}

// Write writes p, as net.Conn's Write.
func (s *rawSock) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wp, s.werr = nil, nil
	s.wmu.Unlock()
	if err == nil {
		err = werr
	}
	if err != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: s.tc.LocalAddr(), Addr: s.tc.RemoteAddr(), Err: err}
	}
	return n, err
}

// write1 writes what is left of s.wp with write(2) calls: false when the
// socket is full.
func (s *rawSock) write1(fd uintptr) bool {
	for s.wn < len(s.wp) {
		rest := s.wp[s.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch {
		case e == syscall.EAGAIN:
			return false
		case e == syscall.EINTR:
			continue
		case e != 0:
			s.werr = os.NewSyscallError("write", e)
			return true
		}
		s.wn += int(n)
	}
	return true
}
