// Package dnssec holds the zone's DNSSEC keys and signs answers online,
// as package dnsgeo makes them. Geo answers differ per client, so no
// signed zone file can hold them: each RRset is signed when it is first
// answered, and its signatures are cached, bounded, per RRset (owner,
// type, TTL and data), so the cost is paid once per answer variant, not
// per query, until the signatures near their expiry.
//
// Keys are BIND-style file pairs, Kzone.+alg+tag.key (the DNSKEY record)
// and .private, written by Generate and WriteFiles (`outpost dnssec
// keygen`): ECDSA P-256 (algorithm 13) or Ed25519 (15). A key with the
// SEP flag (257) is a KSK, or a CSK when it is the only active key; it
// signs the DNSKEY RRset. Active keys without it (ZSKs) sign the rest. A
// key that is published only (a ZSK before its rollover, a KSK after
// it) is in the DNSKEY RRset but signs nothing.
package dnssec

import (
	"bufio"
	"container/list"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Algorithms are the signing algorithms Generate makes keys for, by the
// names `outpost dnssec keygen --algorithm` takes.
var Algorithms = map[string]uint8{
	"ecdsap256sha256": dns.ECDSAP256SHA256,
	"ed25519":         dns.ED25519,
}

// Key is one key of the zone.
type Key struct {
	// DNSKEY is the public key record, owned by the zone's apex.
	DNSKEY *dns.DNSKEY
	// Signer is the private key.
	Signer crypto.Signer
	// Active keys sign; the others are only published in the DNSKEY
	// RRset.
	Active bool
	// File is the .key file it was read from.
	File string
}

// SEP reports whether the key has the Secure Entry Point flag: a KSK or
// a CSK, the key a DS record at the parent points to.
func (k *Key) SEP() bool { return k.DNSKEY.Flags&dns.SEP != 0 }

// Generate makes a key for zone: a KSK or CSK (sep) or a ZSK, of the
// algorithm alg (dns.ECDSAP256SHA256 or dns.ED25519).
func Generate(zone string, alg uint8, sep bool) (*Key, error) {
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.Fqdn(strings.ToLower(zone)), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     dns.ZONE,
		Protocol:  3,
		Algorithm: alg,
	}
	if sep {
		k.Flags |= dns.SEP
	}
	bits := 256
	switch alg {
	case dns.ECDSAP256SHA256:
	case dns.ED25519:
	default:
		return nil, fmt.Errorf("dnssec: algorithm %d is not supported (want %d, ECDSA P-256, or %d, Ed25519)", alg, dns.ECDSAP256SHA256, dns.ED25519)
	}
	priv, err := k.Generate(bits)
	if err != nil {
		return nil, fmt.Errorf("dnssec: generating a key: %w", err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("dnssec: the generated key cannot sign")
	}
	return &Key{DNSKEY: k, Signer: signer, Active: true}, nil
}

// BaseName is the BIND name of k's files without the extension:
// Kcdn.example.+013+12345.
func (k *Key) BaseName() string {
	return fmt.Sprintf("K%s+%03d+%05d", k.DNSKEY.Hdr.Name, k.DNSKEY.Algorithm, k.DNSKEY.KeyTag())
}

// WriteFiles writes k's .key and .private files into dir (the private
// one readable by the owner only) and returns the .key file's path.
func (k *Key) WriteFiles(dir string) (string, error) {
	base := filepath.Join(dir, k.BaseName())
	role := "zone-signing key (ZSK)"
	if k.SEP() {
		role = "key-signing key (KSK or CSK)"
	}
	pub := fmt.Sprintf("; This is a %s, keyid %d, for %s\n%s\n", role, k.DNSKEY.KeyTag(), k.DNSKEY.Hdr.Name, k.DNSKEY)
	if err := os.WriteFile(base+".private", []byte(k.DNSKEY.PrivateKeyString(k.Signer)), 0o600); err != nil {
		return "", fmt.Errorf("dnssec: %w", err)
	}
	if err := os.WriteFile(base+".key", []byte(pub), 0o644); err != nil {
		return "", fmt.Errorf("dnssec: %w", err)
	}
	return base + ".key", nil
}

// Load reads a key: file is its .key file (or the name without the
// extension), and the .private file beside it holds the private key.
// Every error names the file.
func Load(file string, active bool) (*Key, error) {
	base := strings.TrimSuffix(strings.TrimSuffix(file, ".key"), ".private")
	data, err := os.ReadFile(base + ".key")
	if err != nil {
		return nil, fmt.Errorf("dnssec: %w", err)
	}
	var k *dns.DNSKEY
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' {
			continue
		}
		rr, err := dns.NewRR(line)
		if err != nil {
			return nil, fmt.Errorf("dnssec: %s.key: %w", base, err)
		}
		dk, ok := rr.(*dns.DNSKEY)
		if !ok || k != nil {
			return nil, fmt.Errorf("dnssec: %s.key: want one DNSKEY record", base)
		}
		k = dk
	}
	if k == nil {
		return nil, fmt.Errorf("dnssec: %s.key: no DNSKEY record", base)
	}
	k.Hdr.Name = strings.ToLower(k.Hdr.Name)
	f, err := os.Open(base + ".private")
	if err != nil {
		return nil, fmt.Errorf("dnssec: %w", err)
	}
	defer f.Close()
	priv, err := k.ReadPrivateKey(f, base+".private")
	if err != nil {
		return nil, fmt.Errorf("dnssec: %s.private: %w", base, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dnssec: %s.private: the key cannot sign", base)
	}
	if k.Algorithm != dns.ECDSAP256SHA256 && k.Algorithm != dns.ED25519 {
		return nil, fmt.Errorf("dnssec: %s.key: algorithm %d is not supported (want 13, ECDSA P-256, or 15, Ed25519)", base, k.Algorithm)
	}
	return &Key{DNSKEY: k, Signer: signer, Active: active, File: base + ".key"}, nil
}

// DS returns the DS record (SHA-256) of a KSK or CSK for the parent zone.
func (k *Key) DS() *dns.DS { return k.DNSKEY.ToDS(dns.SHA256) }

// Options configure a Signer. Zero fields get the defaults.
type Options struct {
	// Validity is how long a signature is valid from when it is made;
	// default 7 days. Signatures are made again once a quarter of it
	// has passed, so a cached signature always has three quarters left.
	Validity time.Duration
	// CacheSize bounds the RRsets whose signatures are cached; default
	// 100,000 (about 300 bytes each).
	CacheSize int
	// DNSKEYTTL is the TTL of the DNSKEY RRset; default 1 hour.
	DNSKEYTTL uint32
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Options returns the signer's settings, defaults applied.
func (s *Signer) Options() Options { return s.opts }

// Stats counts what a Signer did.
type Stats struct {
	Cached  uint64 // RRsets answered with cached signatures
	Signed  uint64 // RRsets signed (first answered, or their signatures aged)
	Entries int    // RRsets in the cache now
	Evicted uint64 // cache entries dropped for room
}

// Signer signs the zone's RRsets with its active keys, caching the
// signatures. It is safe for concurrent use.
type Signer struct {
	zone    string // lowercased, fully qualified
	keys    []*Key
	ksk     []*Key // sign the DNSKEY RRset
	zsk     []*Key // sign the rest
	dnskeys []dns.RR
	opts    Options

	mu      sync.Mutex
	lru     *list.List // of *entry, most recent first
	entries map[string]*list.Element

	cached, signed, evicted atomic.Uint64
}

// entry is one RRset's cached signatures.
type entry struct {
	key     string
	sigs    []dns.RR
	renewAt time.Time
}

// NewSigner makes the signer of zone with keys: every key is published in
// the DNSKEY RRset; active SEP keys sign it, active other keys sign the
// rest, and when no active key lacks SEP, the SEP keys sign everything
// (a CSK).
func NewSigner(zone string, keys []*Key, opts Options) (*Signer, error) {
	s := &Signer{zone: dns.Fqdn(strings.ToLower(zone)), keys: keys, opts: opts, lru: list.New(), entries: make(map[string]*list.Element)}
	if s.opts.Validity <= 0 {
		s.opts.Validity = 7 * 24 * time.Hour
	}
	if s.opts.CacheSize <= 0 {
		s.opts.CacheSize = 100_000
	}
	if s.opts.DNSKEYTTL == 0 {
		s.opts.DNSKEYTTL = 3600
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	seen := make(map[uint16]bool)
	for _, k := range keys {
		if k.DNSKEY.Hdr.Name != s.zone {
			return nil, fmt.Errorf("dnssec: key %s is for %s, not for the zone %s", k.File, k.DNSKEY.Hdr.Name, s.zone)
		}
		if seen[k.DNSKEY.KeyTag()] {
			return nil, fmt.Errorf("dnssec: key %s: key tag %d is listed twice", k.File, k.DNSKEY.KeyTag())
		}
		seen[k.DNSKEY.KeyTag()] = true
		pub := *k.DNSKEY
		pub.Hdr.Ttl = s.opts.DNSKEYTTL
		s.dnskeys = append(s.dnskeys, &pub)
		if !k.Active {
			continue
		}
		if k.SEP() {
			s.ksk = append(s.ksk, k)
		} else {
			s.zsk = append(s.zsk, k)
		}
	}
	switch {
	case len(s.ksk) == 0 && len(s.zsk) == 0:
		return nil, errors.New("dnssec: no active key: one at least must sign")
	case len(s.ksk) == 0:
		s.ksk = s.zsk // ZSKs alone: they sign the DNSKEY RRset too (no DS can point to them, though)
	case len(s.zsk) == 0:
		s.zsk = s.ksk // a CSK
	}
	return s, nil
}

// Zone returns the signed zone's apex, lowercased and fully qualified.
func (s *Signer) Zone() string { return s.zone }

// DNSKEYs returns the DNSKEY RRset: every key, active or published.
// The records are shared: do not change them.
func (s *Signer) DNSKEYs() []dns.RR { return s.dnskeys }

// Keys returns the keys.
func (s *Signer) Keys() []*Key { return s.keys }

// Stats returns what the signer did so far.
func (s *Signer) Stats() Stats {
	s.mu.Lock()
	n := s.lru.Len()
	s.mu.Unlock()
	return Stats{Cached: s.cached.Load(), Signed: s.signed.Load(), Entries: n, Evicted: s.evicted.Load()}
}

// Sign returns the RRSIG records of rrset, one per signing key: from the
// cache when it has them and they are fresh, else made now and cached.
// The records of rrset share owner, class, type and TTL. The RRSIGs are
// shared and owned by the lowercased owner: do not change them.
func (s *Signer) Sign(rrset []dns.RR) ([]dns.RR, error) {
	if len(rrset) == 0 {
		return nil, nil
	}
	key, err := cacheKey(rrset)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	s.mu.Lock()
	if el, ok := s.entries[key]; ok {
		e := el.Value.(*entry)
		if now.Before(e.renewAt) {
			s.lru.MoveToFront(el)
			s.mu.Unlock()
			s.cached.Add(1)
			return e.sigs, nil
		}
	}
	s.mu.Unlock()

	signers := s.zsk
	if rrset[0].Header().Rrtype == dns.TypeDNSKEY {
		signers = s.ksk
	}
	canon := make([]dns.RR, len(rrset))
	for i, rr := range rrset {
		canon[i] = dns.Copy(rr)
		canon[i].Header().Name = strings.ToLower(rr.Header().Name)
	}
	h := canon[0].Header()
	sigs := make([]dns.RR, 0, len(signers))
	for _, k := range signers {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: h.Class, Ttl: h.Ttl},
			Algorithm:  k.DNSKEY.Algorithm,
			OrigTtl:    h.Ttl,
			Expiration: uint32(now.Add(s.opts.Validity).Unix()),
			Inception:  uint32(now.Add(-time.Hour).Unix()), // clocks of validators lag
			KeyTag:     k.DNSKEY.KeyTag(),
			SignerName: s.zone,
		}
		if err := sig.Sign(k.Signer, canon); err != nil {
			return nil, fmt.Errorf("dnssec: signing %s %s: %w", h.Name, dns.TypeToString[h.Rrtype], err)
		}
		sigs = append(sigs, sig)
	}
	s.signed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &entry{key: key, sigs: sigs, renewAt: now.Add(s.opts.Validity / 4)}
	if el, ok := s.entries[key]; ok {
		el.Value = e
		s.lru.MoveToFront(el)
		return sigs, nil
	}
	s.entries[key] = s.lru.PushFront(e)
	for s.lru.Len() > s.opts.CacheSize {
		last := s.lru.Back()
		s.lru.Remove(last)
		delete(s.entries, last.Value.(*entry).key)
		s.evicted.Add(1)
	}
	return sigs, nil
}

// keyBufs are the buffers cacheKey packs into.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// cacheKey is rrset in wire form with lowercased owners (TTL and data
// included): what its signatures cover. The records are packed in a
// message, which leaves them as they are (dns.PackRR would write their
// RDLENGTH, and they are shared).
func cacheKey(rrset []dns.RR) (string, error) {
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	m := dns.Msg{Answer: rrset}
	b, err := m.PackBuffer((*bp)[:cap(*bp)])
	if err != nil {
		return "", fmt.Errorf("dnssec: packing %s: %w", rrset[0].Header().Name, err)
	}
	if cap(b) > cap(*bp) {
		*bp = b[:0]
	}
	// Lowercase each owner: uncompressed names after the 12-byte header.
	for off := 12; off < len(b); {
		for off < len(b) && b[off] != 0 {
			l := int(b[off])
			for j := off + 1; j <= off+l && j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			off += l + 1
		}
		if off+11 > len(b) {
			break
		}
		off += 11 + (int(b[off+9])<<8 | int(b[off+10])) // the root label, type, class, TTL, RDLENGTH, RDATA
	}
	return string(b[12:]), nil
}
