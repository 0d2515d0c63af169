//go:build !linux

package rawsock

import (
	"net"
	"syscall"
)

// Sock is Linux only (sock_linux.go).
type Sock struct{}

// New returns nil here: callers use the connection's own Read and Write.
func New(*net.TCPConn) *Sock { return nil }

func (*Sock) Read([]byte) (int, error)  { panic("rawsock: no raw sockets here") }
func (*Sock) Write([]byte) (int, error) { panic("rawsock: no raw sockets here") }
func (*Sock) RawConn() syscall.RawConn  { panic("rawsock: no raw sockets here") }
