package dnsgeo

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpReadSize is the read buffer of a UDP query: larger queries are
// malformed anyway.
const udpReadSize = 4096

// udpServer serves queries on one UDP socket with a few long-lived
// workers, one per CPU, each reading, answering and writing with buffers
// and a request message of its own. The dns package's server starts a
// goroutine per packet, whose stack then grows while the query is
// answered; that, and its per-packet allocations, cost more than
// answering. Parsing and packing remain the dns package's.
type udpServer struct {
	s        *Server
	conn     *net.UDPConn
	workers  int
	wildcard bool      // bound to a wildcard address: reply from each query's destination
	batch    batchConn // reads and writes many packets per system call; nil on wildcard sockets
	stopping atomic.Bool
	done     chan struct{} // closed when every worker returned
}

// newUDPServer returns the udpServer of pc, or nil when pc needs the dns
// package's server: a socket that is not a *net.UDPConn, or one bound to a
// wildcard address on a system other than Linux. On a wildcard address
// each reply must leave from the address its query came to: the workers
// then read and write with the destination in control messages (IP_PKTINFO),
// as the dns package's server does.
func newUDPServer(s *Server, pc net.PacketConn) *udpServer {
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	la, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil
	}
	u := &udpServer{s: s, conn: conn, workers: max(runtime.GOMAXPROCS(0), 1), done: make(chan struct{})}
	if la.IP == nil || la.IP.IsUnspecified() {
		if runtime.GOOS != "linux" {
			return nil
		}
		err6 := ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		err4 := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		if err4 != nil && err6 != nil {
			return nil
		}
		u.wildcard = true
		return u
	}
	if runtime.GOOS == "linux" { // elsewhere a batch is one packet
		if la.IP.To4() != nil {
			u.batch = ipv4.NewPacketConn(conn)
		} else {
			u.batch = ipv6.NewPacketConn(conn)
		}
	}
	return u
}

// batchConn reads and writes several UDP packets per system call
// (recvmmsg and sendmmsg on Linux).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatch is how many packets a worker reads, answers and writes at once,
// at most: as many as are waiting.
const udpBatch = 16

// serve runs the workers until shutdown, or until the socket fails; it
// returns the first error.
func (u *udpServer) serve(started func()) error {
	defer close(u.done)
	started()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range u.workers {
		wg.Go(func() {
			if err := u.worker(); err != nil {
				once.Do(func() { first = err })
				u.stopping.Store(true)
				u.conn.SetReadDeadline(time.Now()) // stop the others too
			}
		})
	}
	wg.Wait()
	return first
}

// shutdown stops the workers: queries being answered finish, and no more
// are read.
func (u *udpServer) shutdown(ctx context.Context) error {
	u.stopping.Store(true)
	u.conn.SetReadDeadline(time.Now())
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// worker reads and answers queries until the server stops.
func (u *udpServer) worker() error {
	if u.batch != nil {
		return u.batchWorker()
	}
	buf := make([]byte, udpReadSize)
	out := make([]byte, 2*udpReadSize) // PackBuffer wants len, not cap: room for the uncompressed reply
	req := new(dns.Msg)
	sc := new(scratch)
	for {
		n, from, sess, err := u.read(buf)
		if err != nil {
			if stop, err := u.readErr(err); stop {
				return err
			}
			continue
		}
		resp := u.s.serveUDP(buf[:n], from.Addr().Unmap(), req, sc)
		if resp == nil {
			continue
		}
		b, err := packReply(resp, out)
		if err != nil {
			u.s.log.Debug("packing a DNS reply", "err", err, "client", from)
			continue
		}
		if err := u.write(b, from, sess); err != nil {
			u.s.log.Debug("writing a DNS reply", "err", err, "client", from)
		}
	}
}

// readErr says what a worker does after a read error: stop with nil
// (the server stops), stop with the error (the socket is gone), or go on.
func (u *udpServer) readErr(err error) (stop bool, _ error) {
	if u.stopping.Load() {
		return true, nil
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, nil
	}
	if errors.Is(err, net.ErrClosed) {
		return true, err
	}
	u.s.log.Debug("reading a UDP query", "err", err)
	return false, nil // ICMP errors and the like: the socket still works
}

// batchWorker is worker with recvmmsg and sendmmsg: it reads the queries
// waiting, up to udpBatch, answers them and sends the replies together.
func (u *udpServer) batchWorker() error {
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	outBuf := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
		out[i].Buffers = make([][]byte, 1)
		outBuf[i] = make([]byte, 2*udpReadSize) // PackBuffer wants len, not cap
	}
	req := new(dns.Msg)
	sc := new(scratch)
	for {
		n, err := u.batch.ReadBatch(in, 0)
		if err != nil {
			if stop, err := u.readErr(err); stop {
				return err
			}
			continue
		}
		k := 0
		for i := range in[:n] {
			ua, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			from := ua.AddrPort()
			resp := u.s.serveUDP(in[i].Buffers[0][:in[i].N], from.Addr().Unmap(), req, sc)
			if resp == nil {
				continue
			}
			b, err := packReply(resp, outBuf[k])
			if err != nil {
				u.s.log.Debug("packing a DNS reply", "err", err, "client", from)
				continue
			}
			out[k].Buffers[0], out[k].Addr = b, ua
			k++
		}
		for sent := 0; sent < k; {
			m, err := u.batch.WriteBatch(out[sent:k], 0)
			if err != nil || m <= 0 {
				// Skip the reply that failed; send the rest.
				u.s.log.Debug("writing a DNS reply", "err", err, "client", out[sent+max(m, 0)].Addr)
				m = max(m, 0) + 1
			}
			sent += m
		}
	}
}

// read reads one packet; sess is its session (the address it came to)
// on a wildcard socket.
func (u *udpServer) read(buf []byte) (int, netip.AddrPort, *dns.SessionUDP, error) {
	if !u.wildcard {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		return n, from, nil, err
	}
	n, sess, err := dns.ReadFromSessionUDP(u.conn, buf)
	if err != nil {
		return 0, netip.AddrPort{}, nil, err
	}
	ua, _ := sess.RemoteAddr().(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, nil, errors.New("dnsgeo: UDP packet without a source address")
	}
	return n, ua.AddrPort(), sess, nil
}

// write sends a reply to the client of a packet read.
func (u *udpServer) write(b []byte, to netip.AddrPort, sess *dns.SessionUDP) error {
	var err error
	if sess != nil {
		_, err = dns.WriteToSessionUDP(u.conn, b, sess)
	} else {
		_, err = u.conn.WriteToUDPAddrPort(b, to)
	}
	return err
}

// serveUDP answers one UDP packet m from src: nothing for packets too
// short to have a header or that are answers, FORMERR or NOTIMP for those
// accept rejects or that do not parse (errorReply: the question and OPT
// record kept, QR and RD the only flags), else the handler's reply. req
// is reused between packets.
func (s *Server) serveUDP(m []byte, src netip.Addr, req *dns.Msg, sc *scratch) *dns.Msg {
	if len(m) < 12 {
		s.invalid(m, dns.ErrShortRead)
		return nil
	}
	h := dns.Header{
		Id: binary.BigEndian.Uint16(m), Bits: binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]), Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]), Arcount: binary.BigEndian.Uint16(m[10:]),
	}
	action := s.accept(h)
	switch action {
	case dns.MsgIgnore:
		return nil
	case dns.MsgAccept:
		if sc.in.parse(m, req, s.state.Load().zone.canon) {
			return s.reply(req, src, false, sc)
		}
		err := req.Unpack(m)
		if err == nil {
			return s.reply(req, src, false, sc)
		}
		s.invalid(m, err)
		return s.state.Load().errorReply(m, dns.RcodeFormatError)
	case dns.MsgRejectNotImplemented:
		return s.state.Load().errorReply(m, dns.RcodeNotImplemented)
	}
	return s.state.Load().errorReply(m, dns.RcodeFormatError)
}
