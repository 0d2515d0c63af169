//go:build !linux

package dnsgeo

import (
	"errors"
	"net"
)

// blockingUDP is Linux's way of serving a UDP socket (udp_linux.go);
// elsewhere the workers read through the network poller.
type blockingUDP struct{ fds []int }

func openBlockingUDP(*net.UDPConn, int, func(string, ...any)) (*blockingUDP, error) {
	return nil, errors.New("dnsgeo: blocking UDP workers need Linux")
}

func (b *blockingUDP) wake()  {}
func (b *blockingUDP) close() {}

func (u *udpServer) blockingWorker(int) error { return nil }
