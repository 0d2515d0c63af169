package fastpath

import (
	"net"

	"golang.org/x/sys/unix"
)

// ackedBytes returns how many bytes the peer of c has acknowledged
// (TCP_INFO's tcpi_bytes_acked), or -1 when it cannot be read.
func ackedBytes(c *net.TCPConn) int64 {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	acked := int64(-1)
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			acked = int64(info.Bytes_acked)
		}
	})
	return acked
}
