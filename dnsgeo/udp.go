package dnsgeo

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
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
// answering. Parsing and packing remain the dns package's. On Linux a
// socket bound to one address is served by workers blocking in recvmmsg
// on sockets of their own, outside the network poller (udp_linux.go);
// elsewhere, and on wildcard sockets, the workers read through conn.
type udpServer struct {
	s        *Server
	conn     *net.UDPConn
	workers  int
	wildcard bool // bound to a wildcard address: reply from each query's destination
	stopping atomic.Bool
	done     chan struct{} // closed when every worker returned

	mu       sync.Mutex   // orders shutdown against serve's start
	blocking *blockingUDP // the blocking sockets once serve opened them; nil while conn serves
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
	u := &udpServer{s: s, conn: conn, workers: udpWorkers(), done: make(chan struct{})}
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
	}
	return u
}

// udpWorkers is how many workers serve a UDP socket: GOMAXPROCS as the
// process started, which the blocking workers raise by one (spareP).
var udpWorkers = sync.OnceValue(func() int { return max(runtime.GOMAXPROCS(0), 1) })

// udpBatch is how many packets a worker reads, answers and writes at once,
// at most: as many as are waiting.
const udpBatch = 16

// serve runs the workers until shutdown, or until the socket fails; it
// returns the first error.
func (u *udpServer) serve(started func()) error {
	defer close(u.done)
	u.mu.Lock()
	if u.stopping.Load() {
		u.mu.Unlock()
		return nil
	}
	if !u.wildcard {
		b, err := openBlockingUDP(u.conn, u.workers, u.s.log.Debug)
		if err != nil {
			u.s.log.Debug("UDP workers read through the network poller", "err", err)
		}
		u.blocking = b
	}
	u.mu.Unlock()
	if u.blocking != nil {
		defer u.blocking.close()
	}
	started()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range u.workers {
		wg.Go(func() {
			var err error
			if u.blocking != nil {
				err = u.blockingWorker(u.blocking.fds[i%len(u.blocking.fds)])
			} else {
				err = u.worker()
			}
			if err != nil {
				once.Do(func() { first = err })
				u.stop() // stop the others too
			}
		})
	}
	wg.Wait()
	return first
}

// stop makes the workers return: queries being answered finish, and no
// more are read.
func (u *udpServer) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stopping.Store(true)
	if u.blocking != nil {
		u.blocking.wake()
		return
	}
	u.conn.SetReadDeadline(time.Now())
}

// shutdown stops the workers and waits for them.
func (u *udpServer) shutdown(ctx context.Context) error {
	u.stop()
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// worker reads and answers queries from conn until the server stops.
func (u *udpServer) worker() error {
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
		b, err := u.s.answerUDP(buf[:n], from.Addr().Unmap(), req, sc, out)
		if b == nil && err == nil {
			continue
		}
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
	resp, _, _ := s.serveUDPState(s.state.Load(), m, src, req, sc)
	return resp
}

// serveUDPState is serveUDP under the state st; out and plain are
// replyState's (plain is false for error replies made from the header).
func (s *Server) serveUDPState(st *state, m []byte, src netip.Addr, req *dns.Msg, sc *scratch) (_ *dns.Msg, out outcome, plain bool) {
	if len(m) < 12 {
		s.invalid(m, dns.ErrShortRead)
		return nil, out, false
	}
	h := dns.Header{
		Id: binary.BigEndian.Uint16(m), Bits: binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]), Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]), Arcount: binary.BigEndian.Uint16(m[10:]),
	}
	action := s.accept(h)
	switch action {
	case dns.MsgIgnore:
		return nil, out, false
	case dns.MsgAccept:
		if sc.in.parse(m, req, st.zone.canon) {
			return s.replyState(st, req, src, false, sc)
		}
		err := req.Unpack(m)
		if err == nil {
			return s.replyState(st, req, src, false, sc)
		}
		s.invalid(m, err)
		return st.errorReply(m, dns.RcodeFormatError), out, false
	case dns.MsgRejectNotImplemented:
		return st.errorReply(m, dns.RcodeNotImplemented), out, false
	}
	return st.errorReply(m, dns.RcodeFormatError), out, false
}

// answerUDP answers the UDP packet m from src with the reply's bytes in
// buf, or nil when none is sent: from the answer cache when it holds the
// reply (answercache.go), else as serveUDP answers it and packed by
// packReply, and then kept in the cache when it is of the cached kind.
func (s *Server) answerUDP(m []byte, src netip.Addr, req *dns.Msg, sc *scratch, buf []byte) ([]byte, error) {
	st := s.state.Load()
	c := st.answers
	var key []byte
	nameLen := 0
	if c != nil {
		key, nameLen, _ = answerKey(sc.key[:0], m, src)
	}
	if key == nil {
		resp, _, _ := s.serveUDPState(st, m, src, req, sc)
		if resp == nil {
			return nil, nil
		}
		return packReply(resp, buf)
	}
	h := c.hash(key)
	gen := s.answerGen.Load()
	if e := c.get(h, key); e != nil && e.gen == gen && (e.expires == 0 || s.now().UnixNano() < e.expires) {
		s.metrics.answerHits.Add(1)
		return s.cachedReply(st, e, m, src, buf), nil
	}
	s.metrics.answerMisses.Add(1)
	expires := s.answerExpiry(st) // before deciding: see answerExpiry
	resp, out, plain := s.serveUDPState(st, m, src, req, sc)
	if resp == nil {
		return nil, nil
	}
	b, common := packCommon(resp, buf[:0])
	if !common {
		return resp.PackBuffer(buf)
	}
	if plain && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 1 && len(b)+nameLen <= dns.MinMsgSize {
		if t := resp.Answer[0].Header().Rrtype; (t == dns.TypeA || t == dns.TypeAAAA) && c.admit(h) {
			e := newAnswerEntry(h, key, b)
			e.nameLen, e.gen, e.expires, e.out = nameLen, gen, expires, out
			e.ansOff = 12 + nameLen + 4
			e.ansEnd = e.ansOff + 2 + 10 + answerRdlen(b, e.ansOff)
			e.name, e.qtype = strings.ToLower(resp.Question[0].Name), resp.Question[0].Qtype
			c.put(e)
		}
	}
	return b, nil
}

// answerRdlen is the RDLENGTH of the record whose owner, a compression
// pointer, is at off in the packed reply b.
func answerRdlen(b []byte, off int) int {
	return int(binary.BigEndian.Uint16(b[off+10:]))
}

// cachedReply is the reply of the cache entry e to the query m from src:
// its bytes with the query's ID and the letter case of its name, after
// the rate limit (which may drop it, or slip it: the answer removed, TC
// set), counted in the metrics as the answer it is.
func (s *Server) cachedReply(st *state, e *answerEntry, m []byte, src netip.Addr, buf []byte) []byte {
	if st.rrl != nil {
		switch st.rrl.check(st.rrl.key(src, rrlAnswer, e.name, e.qtype), s.now().UnixNano()) {
		case rrlDrop:
			s.metrics.rrlDropped.Add(1)
			return nil
		case rrlSlip:
			s.metrics.rrlSlipped.Add(1)
			r := e.reply()
			b := append(buf[:0], r[:e.ansOff]...)
			b = append(b, r[e.ansEnd:]...)
			b[2] |= 1 << 1 // TC
			b[6], b[7] = 0, 0
			return splice(b, m, e.nameLen)
		}
	}
	b := append(buf[:0], e.reply()...)
	s.metrics.count(st, e.out)
	return splice(b, m, e.nameLen)
}

// splice puts the query m's ID and question name (nameLen bytes, the
// same but for letter case) into the reply b.
func splice(b, m []byte, nameLen int) []byte {
	b[0], b[1] = m[0], m[1]
	copy(b[12:12+nameLen], m[12:12+nameLen])
	return b
}
