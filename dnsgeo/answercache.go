package dnsgeo

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"github.com/outpost-cdn/outpost/config"
)

// The answer cache keeps the packed bytes of the common geo reply — one
// A or AAAA record for a name of the zone, NOERROR, with its OPT record
// and ECS echo — so that a UDP worker answers a repeated query by copying
// them and splicing in the query's ID and the question's letter case
// (0x20), instead of parsing, deciding and packing again.
//
// The key is the query's own bytes: the header without the ID, the
// question with its name lowercased, and the OPT record with its UDP
// payload size zeroed (a reply of this shape is far smaller than the 512
// bytes every client may receive, so the size changes nothing), and the
// query's source address when the answer may depend on it (no usable ECS
// subnet). Two queries with the same key get the same reply but for the
// ID and the name's case, whatever the locators, spread and shedding
// make of them: those hash the subnet or the address, which the key holds.
//
// Each served state has its own cache, so a reload starts empty. What
// changes between reloads — PoP health by probes, PoP states from the
// control plane (health, draining, shed shares) — bumps the server's
// answer generation (Server.answerGen), and an entry made under another
// generation is a miss. A PoP state that goes stale does so with no
// event: an entry made while states were fresh expires when the first of
// them would go stale. Rate limiting runs on every hit as on a miss.
//
// Only positive answers for names the zone has are stored, so random
// names (NXDOMAIN, REFUSED) never take a slot; random subnets or sources
// can only replace entries, within the bounds: a table of
// dns.answer_cache slots holding at most answerCacheBytes of keys and
// replies, and a key is stored only on its second miss.

// The answer cache's bounds besides its slots (dns.answer_cache, 16384
// by default).
const (
	// answerCacheBytes bounds the keys and replies held, together.
	answerCacheBytes = 4 << 20
	// answerKeyMax is the longest query whose reply is cached; with the
	// source address it bounds a key.
	answerKeyMax = 512
	// answerEntryOverhead is what an entry costs besides its key and
	// reply bytes, as counted against answerCacheBytes.
	answerEntryOverhead = int(unsafe.Sizeof(answerEntry{}))
)

// answerEntry is one cached reply; immutable once stored.
type answerEntry struct {
	data    []byte // the key (answerKey), then the reply
	keyLen  int
	hash    uint64 // the key's
	nameLen int    // wire length of the question name at offset 12
	ansOff  int    // where the answer record starts, and ends (for RRL's slip)
	ansEnd  int
	gen     uint64 // Server.answerGen when the answer was made
	expires int64  // Unix ns when a PoP state it relied on goes stale; 0: none
	out     outcome
	name    string // the question's name, lowercase, for RRL
	qtype   uint16 // the question's type, for RRL
}

// newAnswerEntry makes the entry of key with the packed reply, in one
// allocation for both.
func newAnswerEntry(h uint64, key, reply []byte) *answerEntry {
	data := make([]byte, 0, len(key)+len(reply))
	data = append(append(data, key...), reply...)
	return &answerEntry{data: data, keyLen: len(key), hash: h}
}

func (e *answerEntry) key() []byte   { return e.data[:e.keyLen] }
func (e *answerEntry) reply() []byte { return e.data[e.keyLen:] }
func (e *answerEntry) size() int64   { return int64(len(e.data) + len(e.name) + answerEntryOverhead) }

// answerCache is a table of entries in buckets of four slots (one cache
// line of pointers), read without locks: a slot holds an immutable entry
// that an insert replaces whole. A key is stored on its second miss
// within a while (a doorkeeper of hashes remembers the first), so a flood
// of keys seen once — random subnets, spoofed sources — allocates nothing
// and evicts nothing.
type answerCache struct {
	seed        maphash.Seed
	slots       []atomic.Pointer[answerEntry]
	mask        uint64          // of a bucket's first slot
	seen        []atomic.Uint64 // the doorkeeper: a Bloom filter of keys missed once (admit)
	firstMisses atomic.Int64
	maxBytes    int64
	entries     atomic.Int64
	bytes       atomic.Int64
	m           *metrics
}

// answerWays is the slots of a bucket.
const answerWays = 4

// answerCacheSize is the slots of the answer cache of dc:
// Options.AnswerCacheEntries when set, else dns.answer_cache.
func (s *Server) answerCacheSize(dc *config.DNS) int {
	if s.answerEntries != 0 {
		return s.answerEntries
	}
	return dc.AnswerCache
}

// newAnswerCache returns a cache of at least n slots (rounded up to a
// power of two, a bucket at least), or nil when n <= 0 (off).
func newAnswerCache(n int, m *metrics) *answerCache {
	if n <= 0 {
		return nil
	}
	size := answerWays
	for size < n {
		size <<= 1
	}
	return &answerCache{
		seed:     maphash.MakeSeed(),
		slots:    make([]atomic.Pointer[answerEntry], size),
		mask:     uint64(size-1) &^ (answerWays - 1),
		seen:     make([]atomic.Uint64, size/2), // 32 bits a slot
		maxBytes: answerCacheBytes,
		m:        m,
	}
}

// hash is key's hash, for get, admit and put.
func (c *answerCache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// get returns the entry of key (whose hash is h), or nil.
func (c *answerCache) get(h uint64, key []byte) *answerEntry {
	b := c.slots[h&c.mask:][:answerWays]
	for i := range b {
		// The comparison of strings of bytes does not allocate.
		if e := b[i].Load(); e != nil && e.hash == h && string(e.key()) == string(key) {
			return e
		}
	}
	return nil
}

// admit reports whether a missed key of hash h is worth storing: it was
// missed before, lately. The doorkeeper is a Bloom filter (two bits a
// key, 32 bits a slot) cleared after as many first misses as the cache
// has slots, so that it stays sparse: about 0.4% of keys seen once pass.
func (c *answerCache) admit(h uint64) bool {
	n := uint64(len(c.seen))*64 - 1
	b1, b2 := h>>32&n, (h^h>>48)&n
	w1, w2 := &c.seen[b1/64], &c.seen[b2/64]
	m1, m2 := uint64(1)<<(b1%64), uint64(1)<<(b2%64)
	if w1.Load()&m1 != 0 && w2.Load()&m2 != 0 {
		return true
	}
	w1.Or(m1)
	w2.Or(m2)
	if c.firstMisses.Add(1)%int64(len(c.slots)) == 0 {
		for i := range c.seen {
			c.seen[i].Store(0)
		}
	}
	return false
}

// put stores e in its bucket: over an entry of the same key, else in an
// empty slot, else over the entry of the oldest answer generation (the
// hash picks among equals). Nothing is stored when the bytes bound
// forbids it.
func (c *answerCache) put(e *answerEntry) {
	b := c.slots[e.hash&c.mask:][:answerWays]
	victim := int(e.hash>>62) % answerWays
	var old *answerEntry
	for i := range b {
		x := b[i].Load()
		if x == nil {
			victim, old = i, nil
			break
		}
		if x.hash == e.hash && string(x.key()) == string(e.key()) {
			victim, old = i, x
			break
		}
		if v := b[victim].Load(); v != nil && x.gen < v.gen {
			victim = i
		}
	}
	if old == nil {
		old = b[victim].Load()
	}
	grow := e.size()
	if old != nil {
		grow -= old.size()
	}
	if grow > 0 && c.bytes.Load()+grow > c.maxBytes {
		c.m.answerSkipped.Add(1)
		return
	}
	if !b[victim].CompareAndSwap(old, e) {
		return // another worker just filled it
	}
	c.bytes.Add(grow)
	switch {
	case old == nil:
		c.entries.Add(1)
	case old.hash != e.hash || string(old.key()) != string(e.key()):
		c.m.answerEvictions.Add(1)
	}
}

// answerKey appends the cache key of the UDP query m from src to b (see
// the comment at the top of the file) and returns it with the wire length
// of the question's name. ok is false for a query whose reply is not
// cached: not exactly one question and at most an OPT record, a name
// with bytes other than letters, digits, '-' and '_', or too long.
func answerKey(b []byte, m []byte, src netip.Addr) (key []byte, nameLen int, ok bool) {
	if len(m) < 12+1+4 || len(m) > answerKeyMax {
		return nil, 0, false
	}
	qd, an, ns, ar := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:]), binary.BigEndian.Uint16(m[8:]), binary.BigEndian.Uint16(m[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return nil, 0, false
	}
	b = append(b, m[2:12]...)
	off := 12
	for {
		if off >= len(m) {
			return nil, 0, false
		}
		l := int(m[off])
		off++
		b = append(b, byte(l))
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(m) {
			return nil, 0, false
		}
		for _, c := range m[off : off+l] {
			if !plainNameByte(c) {
				return nil, 0, false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		off += l
	}
	nameLen = off - 12
	if nameLen == 1 || off+4 > len(m) {
		return nil, 0, false
	}
	b = append(b, m[off:off+4]...) // type and class
	off += 4
	bySource := true
	if ar == 1 {
		// The OPT record: the root, type OPT, then the payload size
		// (zeroed in the key), TTL and options.
		if off+11 > len(m) || m[off] != 0 || binary.BigEndian.Uint16(m[off+1:]) != 41 {
			return nil, 0, false
		}
		b = append(b, m[off:off+3]...)
		b = append(b, 0, 0)
		b = append(b, m[off+5:]...)
		bySource = !usableSubnet(m[off+11:])
	} else if off != len(m) {
		return nil, 0, false
	}
	if bySource {
		a := src.As16()
		b = append(b, a[:]...)
	}
	return b, nameLen, true
}

// usableSubnet reports whether the OPT record's options opts hold one
// well-formed ECS option whose subnet decide locates instead of the
// source address: source prefix above 0 and an address that says where
// a user is (not ignoredForGeo). When in doubt it says no, and the key
// then holds the source address too.
func usableSubnet(opts []byte) bool {
	found := false
	for len(opts) >= 4 {
		code, l := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if 4+l > len(opts) {
			return false
		}
		body := opts[4 : 4+l]
		opts = opts[4+l:]
		if code != 8 { // EDNS0SUBNET
			continue
		}
		if found || l < 4 {
			return false
		}
		found = true
		family, source := binary.BigEndian.Uint16(body), body[2]
		var a netip.Addr
		switch family {
		case 1:
			var x [4]byte
			copy(x[:], body[4:])
			a = netip.AddrFrom4(x)
		case 2:
			var x [16]byte
			copy(x[:], body[4:])
			a = netip.AddrFrom16(x)
		default:
			return false
		}
		// As decide takes it: masked, an IPv4-mapped subnet of /96 or
		// longer as IPv4 (so ::ffff:0:0/96 is a source prefix of 0).
		sub, err := a.Prefix(int(source))
		if err != nil {
			return false
		}
		if sub.Addr().Is4In6() && sub.Bits() >= 96 {
			sub = netip.PrefixFrom(sub.Addr().Unmap(), sub.Bits()-96)
		}
		if sub.Bits() == 0 || ignoredForGeo(sub.Addr()) {
			return false
		}
	}
	return found && len(opts) == 0
}

// bumpAnswers makes every cached answer stale: something an answer may
// depend on changed (a PoP's health or state).
func (s *Server) bumpAnswers() { s.answerGen.Add(1) }

// answerExpiry is when an answer made now stops holding as PoP states go
// stale: the earliest time a fresh state of a PoP of st, or the server's
// latest state, gets older than dns.states.max_age. 0 when no state is
// fresh (then only events change answers, and they bump the generation).
func (s *Server) answerExpiry(st *state) int64 {
	last := s.lastState.Load()
	if last == 0 {
		return 0
	}
	now := s.now().UnixNano()
	exp := int64(0)
	consider := func(at int64) {
		if at == 0 || now-at > st.maxAge {
			return
		}
		if t := at + st.maxAge + 1; exp == 0 || t < exp {
			exp = t
		}
	}
	consider(last)
	for _, p := range st.pops {
		consider(p.report.at.Load())
	}
	return exp
}
