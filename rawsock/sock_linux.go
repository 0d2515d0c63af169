package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Sock is a TCP connection read and written with raw system calls.
type Sock struct {
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

// New returns tc's raw socket, or nil when it has none (the caller then
// uses tc's own Read and Write).
func New(tc *net.TCPConn) *Sock {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Sock{tc: tc, rc: rc}
	s.readFn = s.read1
	s.writeFn = s.write1
	return s
}

// RawConn returns the connection's raw connection, made once (tc's
// SyscallConn makes one per call).
func (s *Sock) RawConn() syscall.RawConn { return s.rc }

// Read reads into p, as net.Conn's Read.
func (s *Sock) Read(p []byte) (int, error) {
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
		err = s.opError("read", err)
	}
	return n, err
}

// read1 is one read(2): false when the socket has nothing to read yet.
func (s *Sock) read1(fd uintptr) bool {
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
func (s *Sock) Write(p []byte) (int, error) {
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
		err = s.opError("write", err)
	}
	return n, err
}

// write1 writes what is left of s.wp with write(2) calls: false when the
// socket is full.
func (s *Sock) write1(fd uintptr) bool {
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

// opError wraps err as net.Conn's op would.
func (s *Sock) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.tc.LocalAddr(), Addr: s.tc.RemoteAddr(), Err: err}
}
