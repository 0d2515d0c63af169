//go:build !linux

package fastpath

import (
	"net"
	"syscall"
)

// rawSock is Linux only (rawsock_linux.go); elsewhere connections use
// net.Conn's Read and Write.
type rawSock struct{ rc syscall.RawConn }

func newRawSock(*net.TCPConn) *rawSock { return nil }

func (*rawSock) Read([]byte) (int, error)  { panic("unreachable") }
func (*rawSock) Write([]byte) (int, error) { panic("unreachable") }

var rawSockets = false
