package dnsgeo

import (
	"encoding/binary"
	"net"

	"github.com/miekg/dns"
)

// queryParser parses the common query — one question whose name needs no
// escaping, and at most an OPT record with at most an ECS option — into a
// reused message, allocating nothing when the name is one of the zone's.
// Anything else is left to the dns package (parse reports false), so the
// two agree on every packet parse accepts (FuzzParseQuery checks it).
type queryParser struct {
	question [1]dns.Question
	extra    [1]dns.RR
	opt      dns.OPT
	options  [1]dns.EDNS0
	ecs      dns.EDNS0_SUBNET
	addr     [net.IPv6len]byte
	name     [255]byte
}

// parse fills req from the packet m, whose header accept has passed, and
// reports whether it could. canon maps the zone's names to themselves, so
// that a query for one of them reuses its string.
func (p *queryParser) parse(m []byte, req *dns.Msg, canon map[string]string) bool {
	if len(m) < 12 {
		return false
	}
	bits := binary.BigEndian.Uint16(m[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:]), binary.BigEndian.Uint16(m[8:]), binary.BigEndian.Uint16(m[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return false
	}

	// The question: plain labels only (no compression, nothing to escape).
	off, n := 12, 0
	for {
		if off >= len(m) {
			return false
		}
		l := int(m[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(m) || n+l+1 > 254 {
			return false
		}
		for _, c := range m[off : off+l] {
			if !plainNameByte(c) {
				return false
			}
		}
		n += copy(p.name[n:], m[off:off+l])
		p.name[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(m) {
		return false // the root, or no type and class: the dns package decides
	}
	name, ok := canon[string(p.name[:n])]
	if !ok {
		name = string(p.name[:n])
	}
	p.question[0] = dns.Question{Name: name, Qtype: binary.BigEndian.Uint16(m[off:]), Qclass: binary.BigEndian.Uint16(m[off+2:])}
	off += 4

	req.MsgHdr = dns.MsgHdr{
		Id:                 binary.BigEndian.Uint16(m),
		Response:           bits&(1<<15) != 0,
		Opcode:             int(bits>>11) & 0xF,
		Authoritative:      bits&(1<<10) != 0,
		Truncated:          bits&(1<<9) != 0,
		RecursionDesired:   bits&(1<<8) != 0,
		RecursionAvailable: bits&(1<<7) != 0,
		Zero:               bits&(1<<6) != 0,
		AuthenticatedData:  bits&(1<<5) != 0,
		CheckingDisabled:   bits&(1<<4) != 0,
		Rcode:              int(bits & 0xF),
	}
	req.Compress = false
	req.Question, req.Answer, req.Ns, req.Extra = p.question[:], nil, nil, nil
	if ar == 0 {
		return off == len(m)
	}

	// The OPT record: root owner, then at most one option, ECS.
	if off+11 > len(m) || m[off] != 0 || binary.BigEndian.Uint16(m[off+1:]) != dns.TypeOPT {
		return false
	}
	rdlen := int(binary.BigEndian.Uint16(m[off+9:]))
	p.opt = dns.OPT{Hdr: dns.RR_Header{
		Name: ".", Rrtype: dns.TypeOPT,
		Class:    binary.BigEndian.Uint16(m[off+3:]),
		Ttl:      binary.BigEndian.Uint32(m[off+5:]),
		Rdlength: uint16(rdlen),
	}}
	off += 11
	if off+rdlen != len(m) {
		return false
	}
	if rdlen > 0 {
		if rdlen < 8 || binary.BigEndian.Uint16(m[off:]) != dns.EDNS0SUBNET || int(binary.BigEndian.Uint16(m[off+2:]))+4 != rdlen {
			return false
		}
		b := m[off+4 : off+rdlen]
		family, source, scope := binary.BigEndian.Uint16(b), b[2], b[3]
		var size int
		switch family {
		case 1:
			size = net.IPv4len
		case 2:
			size = net.IPv6len
		default:
			return false // family 0 (dig +subnet=0) and the rest: the dns package decides
		}
		if int(source) > size*8 || int(scope) > size*8 {
			return false
		}
		// As the dns package does: the address is zero-padded or cut to
		// the family's length, and IPv4 is kept in its 16-byte form.
		p.addr = [net.IPv6len]byte{}
		if family == 1 {
			p.addr[10], p.addr[11] = 0xff, 0xff
			copy(p.addr[12:], b[4:])
		} else {
			copy(p.addr[:], b[4:])
		}
		addr := net.IP(p.addr[:])
		// Code stays 0, as the dns package leaves it; Option() is what packs.
		p.ecs = dns.EDNS0_SUBNET{Family: family, SourceNetmask: source, SourceScope: scope, Address: addr}
		p.options[0] = &p.ecs
		p.opt.Option = p.options[:]
	}
	p.extra[0] = &p.opt
	req.Extra = p.extra[:]
	req.Rcode |= p.opt.ExtendedRcode()
	return true
}

// plainNameByte reports whether c stands for itself in a name's text form.
func plainNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
