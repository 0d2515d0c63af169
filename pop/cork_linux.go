package pop

import "golang.org/x/sys/unix"

// setCork sets TCP_CORK: while corked, the kernel sends only full
// segments, so a response's header waits for its body.
func (c *sendfileConn) setCork(on bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, v) })
}
