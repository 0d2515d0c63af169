package dnsgeo

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
)

// Response rate limiting (RRL) keeps the server from being a useful
// reflector: a spoofed flood of queries "from" a victim gets few answers.
// Each account is a client network (a /24 or /56 by default) and a kind
// of response, as BIND counts them: answers per name and type, NXDOMAIN
// and NODATA per zone, errors (REFUSED, FORMERR, …) on their own. So a
// busy resolver asking for many names is not limited by one of them, and
// a flood of random names is one account. Accounts refill at the
// configured rate (GCRA, the token bucket as one timestamp) and hold at
// most the burst. Over the limit, every slip-th reply is sent empty and
// truncated so that a real client retries over TCP, which is never
// limited; the others are dropped.
//
// The accounts live in a fixed table of two-slot buckets, each with its
// own lock, so memory is bounded whatever the sources, and queries from
// different networks rarely contend. A new account takes an idle slot of
// its bucket (one that has refilled), or else one that is not being
// limited, so a flood of new sources cannot easily reset an account that
// is being limited.

// rrlAction is what the rate limiter says about a reply.
type rrlAction uint8

const (
	rrlSend rrlAction = iota // within the limit
	rrlDrop                  // over: send nothing
	rrlSlip                  // over: send an empty, truncated reply
)

// The kinds of response that are counted apart.
const (
	rrlAnswer uint64 = iota + 1
	rrlNXDomain
	rrlNoData
	rrlError
)

// rrl is a rate-limit table. It is safe for concurrent use.
type rrl struct {
	cfg      config.RateLimit
	interval int64 // nanoseconds per response
	burst    int64 // the most an account may be ahead: Burst intervals
	slip     uint32
	v4, v6   int // prefix lengths of the client networks
	seed     maphash.Seed
	buckets  []rrlBucket
	mask     uint64
}

// rrlBucket holds two accounts under one lock.
type rrlBucket struct {
	mu    sync.Mutex
	slots [2]rrlSlot
}

// rrlSlot is one account: key 0 is a free slot.
type rrlSlot struct {
	key     uint64
	tat     int64  // GCRA's theoretical arrival time, Unix nanoseconds
	limited uint32 // replies over the limit, for slip
}

// evictBefore reports whether s should make room for a new account
// before o: idle accounts (refilled by now) go first, then those not
// being limited, then the one with the earlier arrival time.
func (s *rrlSlot) evictBefore(o *rrlSlot, now int64) bool {
	rank := func(x *rrlSlot) int {
		switch {
		case x.tat <= now:
			return 0
		case x.limited == 0:
			return 1
		}
		return 2
	}
	if rs, ro := rank(s), rank(o); rs != ro {
		return rs < ro
	}
	return s.tat < o.tat
}

// newRRL makes the table of cfg, which is enabled.
func newRRL(cfg config.RateLimit) *rrl {
	n := max(cfg.TableSize/2, 1)
	size := 1
	for size < n {
		size <<= 1
	}
	r := &rrl{
		cfg:      cfg,
		interval: int64(1e9) / int64(cfg.ResponsesPerSecond),
		slip:     uint32(cfg.Slip),
		v4:       cfg.IPv4Prefix,
		v6:       cfg.IPv6Prefix,
		seed:     maphash.MakeSeed(),
		buckets:  make([]rrlBucket, size),
		mask:     uint64(size - 1),
	}
	r.burst = int64(max(cfg.Burst, 1)) * r.interval
	return r
}

// key returns the account of a reply to src: its network, the kind of
// reply, and the name and type for answers.
func (r *rrl) key(src netip.Addr, kind uint64, name string, qtype uint16) uint64 {
	b := src.Unmap().As16()
	bits := r.v6
	if src.Unmap().Is4() {
		bits = 96 + r.v4
	}
	// Clear the bits past the prefix.
	for i := range b {
		switch keep := bits - i*8; {
		case keep <= 0:
			b[i] = 0
		case keep < 8:
			b[i] &= byte(0xff << (8 - keep))
		}
	}
	h := mix(binary.BigEndian.Uint64(b[:8])) ^ mix(binary.BigEndian.Uint64(b[8:])^kind<<56^uint64(qtype))
	if name != "" {
		h ^= mix(foldHash(r.seed, name))
	}
	if h == 0 {
		h = 1
	}
	return h
}

// foldHash hashes a DNS name without regard to ASCII letter case.
func foldHash(seed maphash.Seed, name string) uint64 {
	var buf [256]byte
	n := copy(buf[:], name)
	for i := range n {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	return maphash.Bytes(seed, buf[:n])
}

// check counts one reply of account key at now (Unix nanoseconds) and
// says whether to send it.
func (r *rrl) check(key uint64, now int64) rrlAction {
	b := &r.buckets[key&r.mask]
	b.mu.Lock()
	s := &b.slots[0]
	switch {
	case s.key == key:
	case b.slots[1].key == key:
		s = &b.slots[1]
	default:
		// A new account: an idle slot, else one not being limited, else
		// the one with the earlier arrival time.
		if o := &b.slots[1]; o.evictBefore(s, now) {
			s = o
		}
		*s = rrlSlot{key: key, tat: now}
	}
	tat := max(s.tat, now) + r.interval
	if tat-now <= r.burst {
		s.tat = tat
		b.mu.Unlock()
		return rrlSend
	}
	s.limited++
	n := s.limited
	b.mu.Unlock()
	if r.slip > 0 && n%r.slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// rrlKind returns the kind of resp for rate limiting, and the name that
// counts with it ("" for none).
func rrlKind(st *state, resp *dns.Msg) (kind uint64, name string, qtype uint16) {
	switch {
	case resp.Rcode == dns.RcodeNameError:
		return rrlNXDomain, st.zone.name, 0
	case resp.Rcode != dns.RcodeSuccess || len(resp.Question) != 1:
		return rrlError, "", 0
	case len(resp.Answer) == 0:
		return rrlNoData, st.zone.name, 0
	}
	return rrlAnswer, resp.Question[0].Name, resp.Question[0].Qtype
}
