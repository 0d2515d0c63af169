package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
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

	// The read loop (Loop): its step, and the socket while a step runs.
	step   func() bool
	loopFD uintptr
	inStep atomic.Bool
	loopFn func(fd uintptr) bool

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
	s.loopFn = s.loop1
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
	n, err := readOnce(fd, s.rp)
	if err == ErrWouldBlock {
		return false
	}
	s.rn, s.rerr = n, err
	return true
}

// readOnce is one read(2) into p (not empty), retried on EINTR:
// ErrWouldBlock when the socket has nothing to read yet, io.EOF at its
// end, an *os.SyscallError when it fails.
func readOnce(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EAGAIN:
			return 0, ErrWouldBlock
		case e == syscall.EINTR:
			continue
		case e != 0:
			return 0, os.NewSyscallError("read", e)
		case n == 0:
			return 0, io.EOF
		}
		return int(n), nil
	}
}

// Loop runs step inside one read of the socket through the poller
// (RawConn.Read), until step returns true: step reads with ReadNow, and
// returns false to wait until the socket has more to read, after which it
// is called again. The poller's readiness is cleared only when Loop
// starts, not between steps, so a step may wait without reading until
// ReadNow fails with ErrWouldBlock once it knows the socket is drained (its
// last read was short): no data that arrived meanwhile is missed, as every
// arrival after that read wakes the wait. That saves the read(2) per
// request that would only say "nothing yet" (nginx skips it the same way).
//
// Loop returns what the wait failed with (the read deadline, the
// connection closed), wrapped as Read's errors are, or nil when step ended
// it. The connection's other methods may be used inside step (writes,
// deadlines); its Read and Close may not: the read lock is held, and Close
// waits for it.
func (s *Sock) Loop(step func() bool) error {
	s.rmu.Lock()
	s.step = step
	err := s.rc.Read(s.loopFn)
	s.step = nil
	s.rmu.Unlock()
	if err != nil {
		return s.opError("read", err)
	}
	return nil
}

// loop1 is one step of Loop.
func (s *Sock) loop1(fd uintptr) bool {
	s.loopFD = fd
	s.inStep.Store(true)
	done := s.step()
	s.inStep.Store(false)
	return done
}

// InStep reports whether a step of Loop is running. The connection must
// not be closed from inside a step: Close waits for the read the step is
// part of to end.
func (s *Sock) InStep() bool { return s.inStep.Load() }

// ErrWouldBlock is what ReadNow returns when the socket has nothing to
// read yet: the step returns false to wait for more.
var ErrWouldBlock = errors.New("rawsock: nothing to read yet")

// ReadNow reads into p with one read(2), from inside a step of Loop (it
// panics elsewhere): ErrWouldBlock when nothing has come yet, io.EOF at
// the end of the input, and otherwise errors as Read's.
func (s *Sock) ReadNow(p []byte) (int, error) {
	if !s.inStep.Load() {
		panic("rawsock: ReadNow outside Loop")
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := readOnce(s.loopFD, p)
	if err != nil && err != ErrWouldBlock && err != io.EOF {
		err = s.opError("read", err)
	}
	return n, err
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
