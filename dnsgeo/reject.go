package dnsgeo

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Error replies. A query that gets FORMERR or NOTIMP is answered the way
// gdnsd answers it: its ID and opcode, QR and RD set and no other flag
// (RA is for recursive servers, RFC 1035 §4.1.1; AD is for validators,
// RFC 4035 §3.2.3; an echoed TC would send the client to TCP for
// nothing), the question kept when it parses, and an OPT record when the
// query had one (RFC 6891 §6.1.1, §7) with our UDP size and the DO bit
// copied (RFC 3225 §3).

// errorReply builds the reply with rcode to the raw query m, whose
// header has been read (len(m) >= 12) and which was rejected before, or
// instead of, being parsed whole.
func (st *state) errorReply(m []byte, rcode int) *dns.Msg {
	bits := binary.BigEndian.Uint16(m[2:])
	r := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id:               binary.BigEndian.Uint16(m),
		Response:         true,
		Opcode:           int(bits>>11) & 0xF,
		RecursionDesired: bits&(1<<8) != 0,
		Rcode:            rcode,
	}}
	w := scanWire(m)
	if w.question != nil {
		r.Question = []dns.Question{*w.question}
	}
	if w.opt {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(st.udpSize)
		if w.do {
			opt.SetDo()
		}
		r.Extra = []dns.RR{opt}
	}
	return r
}

// wireScan is what scanWire found in a raw message.
type wireScan struct {
	question *dns.Question // the first question; nil when it does not parse
	opt      bool          // an OPT record is in the additional section
	do       bool          // its DO bit
}

// scanWire reads the first question of the raw message m, and looks for
// an OPT record in its additional section, skipping every record before
// it. It stops at the first thing that does not parse.
func scanWire(m []byte) (w wireScan) {
	qd, an, ns, ar := int(binary.BigEndian.Uint16(m[4:])), int(binary.BigEndian.Uint16(m[6:])),
		int(binary.BigEndian.Uint16(m[8:])), int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	for i := range qd {
		name, next, err := dns.UnpackDomainName(m, off)
		if err != nil || next+4 > len(m) {
			return w
		}
		if i == 0 {
			w.question = &dns.Question{Name: name, Qtype: binary.BigEndian.Uint16(m[next:]), Qclass: binary.BigEndian.Uint16(m[next+2:])}
		}
		off = next + 4
	}
	for i := range an + ns + ar {
		next := skipName(m, off)
		if next < 0 || next+10 > len(m) {
			return w
		}
		rrtype := binary.BigEndian.Uint16(m[next:])
		rdlen := int(binary.BigEndian.Uint16(m[next+8:]))
		if i >= an+ns && rrtype == dns.TypeOPT && next == off+1 {
			w.opt = true
			w.do = binary.BigEndian.Uint32(m[next+4:])&(1<<15) != 0
			return w
		}
		off = next + 10 + rdlen
		if off > len(m) {
			return w
		}
	}
	return w
}

// skipName returns the offset just past the name at off in m, or -1 when
// it runs past the end or has a bad label type.
func skipName(m []byte, off int) int {
	for {
		if off >= len(m) {
			return -1
		}
		c := int(m[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1
			}
			off += 1 + c
		case 0xC0: // a compression pointer ends the name
			if off+2 > len(m) {
				return -1
			}
			return off + 2
		default:
			return -1
		}
	}
}

// ecsAddressLenOK reports whether the ECS option e of the OPT record opt
// carried as many ADDRESS octets on the wire as its source prefix needs
// (RFC 7871 §6: "MUST be truncated to the number of bits indicated by
// the SOURCE PREFIX-LENGTH field", and no more). The dns package pads or
// cuts the address when it parses, so the length is recovered from the
// OPT record's RDLENGTH less the other options' lengths. An OPT record
// made in memory (RDLENGTH 0) passes.
func ecsAddressLenOK(opt *dns.OPT, e *dns.EDNS0_SUBNET) bool {
	if opt.Hdr.Rdlength == 0 {
		return true
	}
	others := 0
	for _, o := range opt.Option {
		if o == dns.EDNS0(e) {
			continue
		}
		others += optionLen(o)
	}
	return int(opt.Hdr.Rdlength)-others-8 == (int(e.SourceNetmask)+7)/8
}

// optionLen is the wire length of an EDNS option, code and length
// included.
func optionLen(o dns.EDNS0) int {
	return dns.Len(&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: []dns.EDNS0{o}}) - 11
}

// tcpRaw keeps the last message read on each TCP connection, so that the
// FORMERR the dns package sends to a message it cannot parse can be
// rebuilt as errorReply builds it, from the message's bytes. An entry
// goes when a read on its connection fails, as every connection's last
// read does (the server sets no limit of queries per connection).
type tcpRaw struct {
	st   func() *state
	last sync.Map // connKey → []byte
}

func connKey(local, remote net.Addr) string { return local.String() + "|" + remote.String() }

// reader wraps the dns package's reader of TCP messages.
func (t *tcpRaw) reader(r dns.Reader) dns.Reader { return tcpRawReader{r, t} }

// writer wraps the writer of one TCP connection's replies.
func (t *tcpRaw) writer(w dns.Writer) dns.Writer { return tcpErrorWriter{w, t} }

type tcpRawReader struct {
	dns.Reader
	t *tcpRaw
}

// ReadTCP reads a message and keeps it as the connection's last.
func (r tcpRawReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	m, err := r.Reader.ReadTCP(conn, timeout)
	k := connKey(conn.LocalAddr(), conn.RemoteAddr())
	if err != nil {
		r.t.last.Delete(k)
		return m, err
	}
	r.t.last.Store(k, m) // the dns package reads each TCP message into memory of its own
	return m, nil
}

// tcpErrorWriter replaces the FORMERR the dns package itself sends to a
// TCP message that does not parse (made of the query's header and flags,
// with what it parsed of the question and no OPT record) with
// errorReply's. A FORMERR of the handler without an OPT record is
// rebuilt the same, to the same effect.
type tcpErrorWriter struct {
	dns.Writer
	t *tcpRaw
}

// Write writes b, or errorReply's reply in place of the dns package's
// FORMERR.
func (w tcpErrorWriter) Write(b []byte) (int, error) {
	if len(b) >= 12 && b[3]&0xF == dns.RcodeFormatError && binary.BigEndian.Uint16(b[10:]) == 0 {
		if rw, ok := w.Writer.(interface {
			LocalAddr() net.Addr
			RemoteAddr() net.Addr
		}); ok {
			if m, ok := w.t.last.Load(connKey(rw.LocalAddr(), rw.RemoteAddr())); ok {
				if q := m.([]byte); len(q) >= 12 && binary.BigEndian.Uint16(q) == binary.BigEndian.Uint16(b) {
					if rb, err := w.t.st().errorReply(q, dns.RcodeFormatError).Pack(); err == nil {
						return w.Writer.Write(rb)
					}
				}
			}
		}
		c := slices.Clone(b)
		c[2] &= 0xF9 // at the least, QR, the opcode and RD only
		c[3] &= 0x0F
		return w.Writer.Write(c)
	}
	return w.Writer.Write(b)
}
