package dnsgeo

import (
	"encoding/binary"
	"net"

	"github.com/miekg/dns"
)

// packReply packs resp into buf for a UDP worker. The common geo reply —
// one question, at most one A or AAAA record owned by the question's
// name, and at most an OPT record with at most an ECS option — is packed
// here, directly, with the answer's owner compressed to the question; the
// rest is the dns package's (PackBuffer). The dns package spends more
// on such a reply than answering it costs: it sizes the message with a
// compression map first, and allocates the ECS option's bytes.
// TestPackReply checks that both give the same message.
func packReply(resp *dns.Msg, buf []byte) ([]byte, error) {
	if b, ok := packCommon(resp, buf[:0]); ok {
		return b, nil
	}
	return resp.PackBuffer(buf)
}

// packCommon appends the common reply m to b; ok is false for a message
// of another shape, which b does not then hold.
func packCommon(m *dns.Msg, b []byte) (_ []byte, ok bool) {
	if len(m.Question) != 1 || len(m.Answer) > 1 || len(m.Ns) > 0 || len(m.Extra) > 1 || m.Rcode < 0 || m.Rcode > 0xFFF {
		return nil, false
	}
	var opt *dns.OPT
	var ecs *dns.EDNS0_SUBNET
	if len(m.Extra) == 1 {
		if opt, ok = m.Extra[0].(*dns.OPT); !ok || len(opt.Option) > 1 || opt.Hdr.Name != "." {
			return nil, false
		}
		if len(opt.Option) == 1 {
			if ecs, ok = opt.Option[0].(*dns.EDNS0_SUBNET); !ok {
				return nil, false
			}
		}
	} else if m.Rcode > 0xF {
		return nil, false
	}
	bits := uint16(m.Opcode)<<11 | uint16(m.Rcode&0xF)
	for _, f := range []struct {
		on  bool
		bit uint16
	}{{m.Response, 1 << 15}, {m.Authoritative, 1 << 10}, {m.Truncated, 1 << 9}, {m.RecursionDesired, 1 << 8},
		{m.RecursionAvailable, 1 << 7}, {m.Zero, 1 << 6}, {m.AuthenticatedData, 1 << 5}, {m.CheckingDisabled, 1 << 4}} {
		if f.on {
			bits |= f.bit
		}
	}
	b = binary.BigEndian.AppendUint16(b, m.Id)
	b = binary.BigEndian.AppendUint16(b, bits)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Answer)))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Extra)))

	q := m.Question[0]
	if b, ok = appendPlainName(b, q.Name); !ok {
		return nil, false
	}
	b = binary.BigEndian.AppendUint16(b, q.Qtype)
	b = binary.BigEndian.AppendUint16(b, q.Qclass)

	if len(m.Answer) == 1 {
		var ip net.IP
		h := m.Answer[0].Header()
		switch rr := m.Answer[0].(type) {
		case *dns.A:
			ip = rr.A.To4()
		case *dns.AAAA:
			if len(rr.AAAA) == net.IPv6len {
				ip = rr.AAAA
			}
		}
		if ip == nil || h.Name != q.Name {
			return nil, false
		}
		b = append(b, 0xC0, 12) // the owner: a pointer to the question's name
		b = binary.BigEndian.AppendUint16(b, h.Rrtype)
		b = binary.BigEndian.AppendUint16(b, h.Class)
		b = binary.BigEndian.AppendUint32(b, h.Ttl)
		b = binary.BigEndian.AppendUint16(b, uint16(len(ip)))
		b = append(b, ip...)
	}

	if opt != nil {
		b = append(b, 0) // the root
		b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
		b = binary.BigEndian.AppendUint16(b, opt.Hdr.Class)
		// The extended RCODE's upper bits, as the dns package sets them.
		b = binary.BigEndian.AppendUint32(b, opt.Hdr.Ttl&0x00FFFFFF|uint32(m.Rcode>>4)<<24)
		if ecs == nil {
			return binary.BigEndian.AppendUint16(b, 0), true
		}
		var addr []byte
		switch ecs.Family {
		case 0:
			if ecs.SourceNetmask != 0 {
				return nil, false
			}
		case 1:
			addr = ecs.Address.To4()
			if addr == nil || ecs.SourceNetmask > 32 {
				return nil, false
			}
		case 2:
			addr = ecs.Address
			if len(addr) != net.IPv6len || ecs.SourceNetmask > 128 {
				return nil, false
			}
		default:
			return nil, false
		}
		n := (int(ecs.SourceNetmask) + 7) / 8
		b = binary.BigEndian.AppendUint16(b, uint16(8+n))
		b = binary.BigEndian.AppendUint16(b, dns.EDNS0SUBNET)
		b = binary.BigEndian.AppendUint16(b, uint16(4+n))
		b = binary.BigEndian.AppendUint16(b, ecs.Family)
		b = append(b, ecs.SourceNetmask, ecs.SourceScope)
		for i := range n { // the address, cut to the source prefix
			c := addr[i]
			if rest := int(ecs.SourceNetmask) - 8*i; rest < 8 {
				c &= byte(0xFF << (8 - rest))
			}
			b = append(b, c)
		}
	}
	return b, true
}

// appendPlainName appends the wire form of a fully qualified name whose
// labels need no escaping (plainNameByte), uncompressed.
func appendPlainName(b []byte, name string) ([]byte, bool) {
	if len(name) == 0 || name[len(name)-1] != '.' || len(name) > 254 {
		return nil, false
	}
	if name == "." {
		return append(b, 0), true
	}
	start := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '.' {
			if !plainNameByte(c) {
				return nil, false
			}
			continue
		}
		l := i - start
		if l == 0 || l > 63 {
			return nil, false
		}
		b = append(b, byte(l))
		b = append(b, name[start:i]...)
		start = i + 1
	}
	return append(b, 0), true
}
