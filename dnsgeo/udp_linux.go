package dnsgeo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// blockingUDP is how a UDP socket bound to one address is served on Linux,
// the way gdnsd serves it: each worker owns a socket (the listener's own,
// then SO_REUSEPORT siblings bound to the same address, so the kernel
// spreads clients over them) and a thread that blocks in recvmmsg on
// it, answers the batch and sends the replies with one
// sendmmsg. The sockets are blocking and outside the Go runtime's network
// poller: a batch costs two system calls and, when the socket is empty,
// one sleep in the kernel, where the poller costs a park, an epoll_wait, a
// wake-up and a failed read besides. Shutdown is shutdown(2) on every
// socket, which wakes the blocked readers; SO_RCVTIMEO wakes them anyway
// once a second.
type blockingUDP struct {
	fds []int // fds[0] is a duplicate of the listener's socket
}

// udpRecvTimeout bounds a blocking read, so that a worker sees a shutdown
// even if shutdown(2) did not wake it.
const udpRecvTimeout = time.Second

// openBlockingUDP takes conn's socket out of the network poller (it
// duplicates the descriptor, makes it blocking and closes conn) and adds
// up to n-1 SO_REUSEPORT sockets bound to the same address. On an error
// before conn is closed it returns nil and conn serves as before; siblings
// that cannot be opened leave the workers sharing the sockets there are.
func openBlockingUDP(conn *net.UDPConn, n int, log func(msg string, args ...any)) (*blockingUDP, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dnsgeo: duplicating the UDP socket: %w", dupErr)
	}
	if err := setBlocking(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The descriptor and the socket stay; the poller's registration goes
	// (or every packet would wake a thread in epoll_wait as well).
	conn.Close()
	b := &blockingUDP{fds: []int{fd}}
	spareP(n)
	if n <= 1 {
		return b, nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		log("UDP workers share one socket: SO_REUSEPORT", "err", err)
		return b, nil
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return b, nil
	}
	for len(b.fds) < n {
		s, err := reusePortSibling(sa)
		if err != nil {
			log("UDP workers share sockets: a SO_REUSEPORT sibling", "err", err)
			break
		}
		b.fds = append(b.fds, s)
	}
	return b, nil
}

// spareP makes GOMAXPROCS one more than the n workers, unless the
// environment sets it. A worker blocked in recvmmsg keeps its P in the
// runtime's syscall state; with no idle P besides, the runtime's monitor
// takes it back after 20µs and starts a thread to look for work, and on
// the next packet the worker wakes the monitor again: three more context
// switches per batch, which cost more than the batch (measured: a tenth
// of the process's CPU in the monitor's sleeps alone). With an idle P the
// monitor leaves a syscall P alone for 10ms and backs off to sleeping
// 10ms. GOMAXPROCS counts threads running Go code, and the workers spend
// their time blocked in the kernel, so the CPUs used stay the same.
func spareP(n int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if runtime.GOMAXPROCS(0) <= n {
		runtime.GOMAXPROCS(n + 1)
	}
}

// reusePortSibling opens a blocking UDP socket with SO_REUSEPORT bound to sa.
func reusePortSibling(sa unix.Sockaddr) (int, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	s, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	if family == unix.AF_INET6 {
		err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if err == nil {
		err = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil {
		err = unix.Bind(s, sa)
	}
	if err == nil {
		err = setBlocking(s)
	}
	if err != nil {
		unix.Close(s)
		return -1, err
	}
	return s, nil
}

// setBlocking clears O_NONBLOCK on fd and bounds its reads by udpRecvTimeout.
func setBlocking(fd int) error {
	if err := unix.SetNonblock(fd, false); err != nil {
		return fmt.Errorf("dnsgeo: a blocking UDP socket: %w", err)
	}
	tv := unix.NsecToTimeval(udpRecvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("dnsgeo: SO_RCVTIMEO: %w", err)
	}
	return nil
}

// wake makes every blocked read return: after shutdown(SHUT_RD) a socket
// reads as empty datagrams without blocking. On an unbound-peer UDP socket
// Linux reports ENOTCONN but shuts it down all the same.
func (b *blockingUDP) wake() {
	for _, fd := range b.fds {
		unix.Shutdown(fd, unix.SHUT_RD)
	}
}

// close closes the sockets, once no worker uses them.
func (b *blockingUDP) close() {
	for _, fd := range b.fds {
		unix.Close(fd)
	}
}

// udpMmsg is a worker's batch: the headers recvmmsg and sendmmsg fill and
// read, and the buffers they point to, allocated once.
type udpMmsg struct {
	in     [udpBatch]unix.Mmsghdr
	out    [udpBatch]unix.Mmsghdr
	inIov  [udpBatch]unix.Iovec
	outIov [udpBatch]unix.Iovec
	names  [udpBatch]unix.RawSockaddrInet6 // room for either family
	inBuf  [udpBatch][udpReadSize]byte
	outBuf [udpBatch][2 * udpReadSize]byte // PackBuffer wants len, not cap: room for the uncompressed reply
	query  [udpBatch]int                   // the datagram in that out[k] answers
}

func newUDPMmsg() *udpMmsg {
	m := new(udpMmsg)
	for i := range m.in {
		m.inIov[i].Base = &m.inBuf[i][0]
		m.inIov[i].SetLen(udpReadSize)
		m.in[i].Hdr.Iov = &m.inIov[i]
		m.in[i].Hdr.SetIovlen(1)
		m.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.out[i].Hdr.Iov = &m.outIov[i]
		m.out[i].Hdr.SetIovlen(1)
	}
	return m
}

// recv blocks until at least one datagram is waiting on fd and reads as
// many as are waiting, up to udpBatch.
func (m *udpMmsg) recv(fd int) (int, error) {
	for i := range m.in {
		m.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		m.in[i].Hdr.Flags = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.in[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// send sends out[:k]; it returns how many went, and the error of the
// first that did not.
func (m *udpMmsg) send(fd int, from, k int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.out[from])), uintptr(k-from), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// source is the address and port datagram i came from.
func (m *udpMmsg) source(i int) netip.AddrPort {
	sa := &m.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// udpYield is how often a busy worker goes through the scheduler. A
// goroutine that only enters and leaves system calls never does, and the
// runtime's monitor, seeing the same one on its P for 10ms, takes the P
// away in the middle of a read and then polls every 20µs for a while
// (perf: a quarter of the process's CPU in the monitor); a yield every
// 2ms costs about a microsecond and keeps it asleep.
const udpYield = 2 * time.Millisecond

// blockingWorker serves fd until the server stops: it reads the queries
// waiting (blocking while there are none), answers them and sends the
// replies together. It keeps to its thread without LockOSThread: the
// thread that leaves a system call with the P goes on running it, and a
// locked goroutine's yield would hand the P to another thread and back.
func (u *udpServer) blockingWorker(fd int) error {
	m := newUDPMmsg()
	yielded := time.Now()
	req := new(dns.Msg)
	sc := new(scratch)
	for {
		if now := time.Now(); now.Sub(yielded) > udpYield {
			runtime.Gosched()
			yielded = now
		}
		n, err := m.recv(fd)
		if u.stopping.Load() {
			return nil // what was read after shutdown is not answered
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			case errors.Is(err, unix.EBADF), errors.Is(err, unix.ENOTSOCK):
				return fmt.Errorf("dnsgeo: reading UDP queries: %w", err)
			default:
				u.s.log.Debug("reading a UDP query", "err", err)
			}
			continue
		}
		k := 0
		for i := range m.in[:n] {
			from := m.source(i)
			if !from.IsValid() {
				continue
			}
			b, err := u.s.answerUDP(m.inBuf[i][:m.in[i].Len], from.Addr().Unmap(), req, sc, m.outBuf[k][:])
			if b == nil && err == nil {
				continue
			}
			if err != nil || len(b) == 0 {
				u.s.log.Debug("packing a DNS reply", "err", err, "client", from)
				continue
			}
			m.outIov[k].Base = &b[0]
			m.outIov[k].SetLen(len(b))
			m.out[k].Hdr.Name = m.in[i].Hdr.Name
			m.out[k].Hdr.Namelen = m.in[i].Hdr.Namelen
			m.query[k] = i
			k++
		}
		for sent := 0; sent < k; {
			c, err := m.send(fd, sent, k)
			if err != nil || c <= 0 {
				// Skip the reply that failed; send the rest.
				u.s.log.Debug("writing a DNS reply", "err", err, "client", m.source(m.query[sent]))
				c = 1
			}
			sent += c
		}
	}
}
