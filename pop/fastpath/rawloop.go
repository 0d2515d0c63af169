package fastpath

import (
	"bufio"
	"bytes"
	"net"
	"time"

	"github.com/outpost-cdn/outpost/rawsock"
)

// On the clear listener (without PROXY protocol headers) a connection's
// fast-path requests are served inside one read of its socket through the
// runtime's poller (rawsock.Sock.Loop), so that the poller's readiness
// carries over from one request to the next: after an answer, when the
// read that brought the request was short (the socket was drained), the
// loop waits for the next request without first making a read(2) that
// would only fail with EAGAIN. Through net.Conn's Read every wait begins
// with such a read, one system call per keep-alive request in four.
//
// The loop answers only requests whose heads are whole in the buffer. A
// head begun but not whole once the socket is drained (rare: heads come in
// one segment), and a whole head the Cache declines, leave the loop; the
// serving loop (serveConn) then reads the head with its deadline, or lends
// or hands off the request, as for any connection, and comes back to the
// loop for the next request.

// loopExit is why a rawLoop run ended.
type loopExit int

const (
	exitClose    loopExit = iota // the connection is done: close it
	exitHead                     // a head is begun but not whole: read it with readHead
	exitDeclined                 // a whole head the Cache declined (rawLoop.head): lend it or hand off
)

// rawLoop runs a connection's fast-path requests inside rawsock.Sock.Loop.
// One is made per connection; its step function is made once.
type rawLoop struct {
	s    *Server
	fc   *fastConn
	br   *bufio.Reader
	rd   *connReader
	step func() bool
	exit loopExit // why the run ended
	head []byte   // exitDeclined: the declined head, buffered in br
}

func newRawLoop(s *Server, fc *fastConn, br *bufio.Reader, rd *connReader) *rawLoop {
	l := &rawLoop{s: s, fc: fc, br: br, rd: rd}
	l.step = l.stepOnce
	return l
}

// run serves requests until the connection closes or a request must be
// read or answered outside the loop. The wait's read deadline must be set.
func (l *rawLoop) run() loopExit {
	l.exit, l.head = exitClose, nil
	if err := l.fc.c.raw.Loop(l.step); err != nil {
		return exitClose // the wait's deadline passed, or the connection closed
	}
	return l.exit
}

// stepOnce is a step of the loop (rawsock.Sock.Loop): called with the
// socket's readiness unknown, so it reads before it waits; it answers the
// whole heads buffered, and returns false to wait once the socket is known
// to be drained with nothing buffered, true to leave the loop (l.exit).
func (l *rawLoop) stepOnce() bool {
	mayRead := true // not known to be drained
	for {
		n := l.br.Buffered()
		if n > 0 {
			// (fc.active is written only by this goroutine, under the
			// server's lock: reading it here needs no lock.)
			if !l.fc.active && !l.s.setActive(l.fc, true) {
				l.exit = exitClose
				return true
			}
			buf, _ := l.br.Peek(n)
			i := bytes.Index(buf, []byte("\r\n\r\n"))
			if i >= 0 && !bareLF(buf[:i+4]) {
				if !l.serve(buf[:i+4]) {
					return true
				}
				continue
			}
			if i >= 0 || !mayRead || n >= headMax {
				l.exit = exitHead // readHead judges it, and waits for the rest with its deadline
				return true
			}
		} else if !mayRead {
			l.s.armWait(l.fc)
			return false
		}
		l.rd.sock = l.fc.c.raw
		_, err := l.br.Peek(n + 1) // one read(2)
		l.rd.sock = nil
		switch {
		case err == rawsock.ErrWouldBlock && n == 0:
			l.s.armWait(l.fc)
			return false
		case err != nil && n == 0:
			l.exit = exitClose // the client closed or reset the connection
			return true
		case err != nil:
			l.exit = exitHead // with part of a head: readHead's read sees the end too
			return true
		}
		mayRead = !l.rd.short
	}
}

// serve answers the whole head at the start of the buffer; false when the
// loop must end (l.exit says why).
func (l *rawLoop) serve(head []byte) bool {
	fc, s := l.fc, l.s
	if !s.answer(fc, head) {
		l.exit, l.head = exitDeclined, head
		return false
	}
	fc.answered = true
	l.br.Discard(len(head))
	if fc.send.err != nil || fc.req.Close || !s.setActive(fc, false) {
		l.exit = exitClose
		return false
	}
	return true
}

// bareLF reports whether a whole head has a line ending in LF alone (the
// fast path leaves that leniency to net/http).
func bareLF(head []byte) bool {
	return bytes.Count(head, []byte("\n")) != bytes.Count(head, []byte("\r\n"))
}

// connReader is what a connection's buffered reader reads: the socket with
// raw reads inside a rawLoop step (sock set), the connection otherwise.
type connReader struct {
	conn  net.Conn
	sock  *rawsock.Sock // non-nil inside a step: read with ReadNow
	short bool          // the last raw read returned less than it was asked for
}

// Read reads from the socket or the connection.
func (r *connReader) Read(p []byte) (int, error) {
	if r.sock == nil {
		return r.conn.Read(p)
	}
	n, err := r.sock.ReadNow(p)
	r.short = n < len(p)
	return n, err
}

// armWait sets the read deadline of the wait for the next request:
// read_header before the first request, idle after it (read_header when
// idle is 0). The idle deadline is set lazily, as the send timeout is: 5/4
// of the timeout ahead, and again only once a quarter of the timeout has
// passed since, so that a wait lasts from idle to 5/4 of it and a
// keep-alive request seldom updates a timer (nginx's timers are lazy in
// the same way). Whatever sets another read deadline on the connection
// clears fc.idleArmed.
func (s *Server) armWait(fc *fastConn) {
	wait := s.idle
	if fc.first || wait <= 0 {
		fc.first, fc.idleArmed = false, 0
		setReadDeadline(fc.rw, s.readHeader)
		return
	}
	now := time.Now().UnixNano()
	if fc.idleArmed != 0 && now-fc.idleArmed < int64(wait/4) {
		return
	}
	fc.idleArmed = now
	fc.rw.SetReadDeadline(time.Unix(0, now+int64(wait+wait/4)))
}
