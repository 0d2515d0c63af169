//go:build !linux

package rawsock

import (
	"errors"
	"net"
	"syscall"
)

// Sock is Linux only (sock_linux.go).
type Sock struct{}

// New returns nil here: callers use the connection's own Read and Write.
func New(*net.TCPConn) *Sock { return nil }

func (*Sock) Read([]byte) (int, error)    { panic("rawsock: no raw sockets here") }
func (*Sock) Write([]byte) (int, error)   { panic("rawsock: no raw sockets here") }
func (*Sock) RawConn() syscall.RawConn    { panic("rawsock: no raw sockets here") }
func (*Sock) Loop(func() bool) error      { panic("rawsock: no raw sockets here") }
func (*Sock) ReadNow([]byte) (int, error) { panic("rawsock: no raw sockets here") }
func (*Sock) InStep() bool                { panic("rawsock: no raw sockets here") }

// ErrWouldBlock is Linux's (sock_linux.go).
var ErrWouldBlock = errors.New("rawsock: nothing to read yet")
