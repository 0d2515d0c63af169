package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// ECS source prefix lengths a resolver sends at most (RFC 7871 §11.1
// recommends /24 and /56), unless the region is narrower.
const (
	ecsBits4 = 24
	ecsBits6 = 56
)

// resolver resolves the service hostname for one virtual client through
// the configured DNS server, with the client's subnet as EDNS Client
// Subnet. It speaks UDP and retries over TCP when the answer is truncated.
type resolver struct {
	server string
	name   string // fully qualified
	ecs    *dns.EDNS0_SUBNET
	udp    dns.Client
	tcp    dns.Client
}

// dnsResult is one resolution and what it cost.
type dnsResult struct {
	addr       netip.Addr
	ttl        time.Duration
	queries    int
	tcpRetries int
}

// newResolver makes the resolver of a client at addr (invalid: send no
// ECS) in a region whose prefix has regionBits bits.
func newResolver(server, host string, addr netip.Addr, regionBits int, timeout time.Duration) *resolver {
	r := &resolver{
		server: server,
		name:   dns.Fqdn(host),
		udp:    dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.DefaultMsgSize},
		tcp:    dns.Client{Net: "tcp", Timeout: timeout},
	}
	if addr.IsValid() {
		family, bits := uint16(1), max(regionBits, ecsBits4)
		if !addr.Is4() {
			family, bits = 2, max(regionBits, ecsBits6)
		}
		bits = min(bits, addr.BitLen())
		masked := netip.PrefixFrom(addr, bits).Masked().Addr()
		r.ecs = &dns.EDNS0_SUBNET{
			Code:          dns.EDNS0SUBNET,
			Family:        family,
			SourceNetmask: uint8(bits),
			Address:       net.IP(masked.AsSlice()),
		}
	}
	return r
}

// resolve asks for A records, then AAAA if there are none, and returns the
// first address of the answer with the answer's TTL.
func (r *resolver) resolve(ctx context.Context) (dnsResult, error) {
	var res dnsResult
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		addr, ttl, err := r.query(ctx, qtype, &res)
		if err != nil {
			return res, err
		}
		if addr.IsValid() {
			res.addr, res.ttl = addr, ttl
			return res, nil
		}
	}
	return res, failure(errDNS, fmt.Errorf("%s has no A or AAAA record at %s", r.name, r.server))
}

func (r *resolver) query(ctx context.Context, qtype uint16, res *dnsResult) (netip.Addr, time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(r.name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(dns.DefaultMsgSize, false)
	if r.ecs != nil {
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, r.ecs)
	}
	res.queries++
	in, _, err := r.udp.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		res.tcpRetries++
		in, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return netip.Addr{}, 0, failure(errDNS, fmt.Errorf("query %s %s at %s: %w", r.name, dns.TypeToString[qtype], r.server, err))
	}
	if in.Rcode != dns.RcodeSuccess {
		return netip.Addr{}, 0, failure(errDNS, fmt.Errorf("query %s %s at %s: %s", r.name, dns.TypeToString[qtype], r.server, dns.RcodeToString[in.Rcode]))
	}
	for _, rr := range in.Answer {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		default:
			continue // CNAMEs: the server adds their targets' records
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			return a.Unmap(), time.Duration(rr.Header().Ttl) * time.Second, nil
		}
	}
	return netip.Addr{}, 0, nil
}

// errNoDNSTarget reports a DNS-targeted run whose URL names an address.
var errNoDNSTarget = errors.New("bench: DNS targeting needs a URL with a host name, not an address")
