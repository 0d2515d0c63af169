package synthetic

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ContentVersion is the version of the definition of the bytes, sizes and
// validators below. It is part of every ETag and of the hash everything is
// derived from (whose domain string ends in "v1"), so a new definition
// changes every ETag too and no cache mixes the two.
const ContentVersion = 1

// domain prefixes the id in the hash everything is derived from.
const domain = "outpost-synthetic/v1\x00"

const (
	blockSize = 4096               // bytes in one block of content
	golden    = 0x9e3779b97f4a7c15 // the SplitMix64 increment
)

// ErrMismatch reports received bytes that are not the object's content.
var ErrMismatch = errors.New("synthetic: content mismatch")

// splitmix is the SplitMix64 output function of the state x+golden.
func splitmix(x uint64) uint64 {
	x += golden
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// idHash is SHA-256(domain || id) as four little-endian words: word 0 seeds
// the block, word 1 the block keys, words 2 and 3 the size, and words 0 and
// 3 together the Last-Modified.
func idHash(id string) [4]uint64 {
	var buf [128]byte
	b := append(append(buf[:0], domain...), id...)
	sum := sha256.Sum256(b)
	var h [4]uint64
	for i := range h {
		h[i] = binary.LittleEndian.Uint64(sum[8*i:])
	}
	return h
}

// object is the content of one id, cut to a size. It holds no bytes: every
// read computes them.
type object struct {
	seed, keySeed uint64
	size          int64
}

func newObject(h [4]uint64, size int64) *object {
	return &object{seed: h[0], keySeed: h[1], size: max(size, 0)}
}

// ReadAt implements io.ReaderAt; it is safe for concurrent use.
func (o *object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("synthetic: read at negative offset %d", off)
	}
	if off >= o.size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := o.size - off; int64(n) > rem {
		n = int(rem)
	}
	fill(o.seed, o.keySeed, p[:n], off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill writes the content bytes at [off, off+len(p)) into p, as Content
// defines them, with seed = h0 and keySeed = h1. Computing each word on the
// fly is as fast as copying a precomputed block and allocates nothing.
func fill(seed, keySeed uint64, p []byte, off int64) {
	for len(p) > 0 {
		k := uint64(off) / blockSize
		key := splitmix(keySeed + k*golden)
		in := int(uint64(off) % blockSize)
		if w := in % 8; w != 0 || len(p) < 8 {
			// A partial word: the head or the tail of p.
			var word [8]byte
			binary.LittleEndian.PutUint64(word[:], splitmix(seed+uint64(in/8)*golden)^key)
			c := copy(p, word[w:])
			p, off = p[c:], off+int64(c)
			continue
		}
		words := min((blockSize-in)/8, len(p)/8)
		x := seed + uint64(in/8)*golden
		dst := p[:8*words]
		for g := uint64(golden); len(dst) >= 32; dst = dst[32:] {
			// Four independent words a round, for instruction-level parallelism.
			binary.LittleEndian.PutUint64(dst[0:8], splitmix(x)^key)
			binary.LittleEndian.PutUint64(dst[8:16], splitmix(x+g)^key)
			binary.LittleEndian.PutUint64(dst[16:24], splitmix(x+2*g)^key)
			binary.LittleEndian.PutUint64(dst[24:32], splitmix(x+3*g)^key)
			x += 4 * g
		}
		for len(dst) >= 8 {
			binary.LittleEndian.PutUint64(dst, splitmix(x)^key)
			x += golden
			dst = dst[8:]
		}
		p, off = p[8*words:], off+int64(8*words)
	}
}

// Content returns the first size bytes of id's content. The reader also
// seeks and reads at offsets (it is an io.ReaderAt), so a range costs only
// the bytes in it; nothing is materialised. Generation runs at several GB/s.
//
// The content of an id is defined so that any client can recompute it. Let
// h0 and h1 be the first two little-endian 64-bit words of
// SHA-256("outpost-synthetic/v1\x00" + id), and splitmix the SplitMix64
// output function (x += 0x9e3779b97f4a7c15, then the usual two
// xor-shift-multiply rounds and a final xor-shift). Then the content is a
// sequence of little-endian 64-bit words, word w being
//
//	splitmix(h0 + (w mod 512)·γ) XOR splitmix(h1 + (w div 512)·γ)
//
// with γ = 0x9e3779b97f4a7c15 and arithmetic mod 2⁶⁴: a 4 KiB block of
// SplitMix64 output with each block's index mixed in, so that no two blocks
// of an object are equal and a body shifted by whole blocks fails to verify.
func Content(id string, size int64) *io.SectionReader {
	o := newObject(idHash(id), size)
	return io.NewSectionReader(o, 0, o.size)
}

// Verify reports whether body is the start of id's content: nil if every
// byte matches, otherwise an error wrapping ErrMismatch that names the first
// offset that differs. It does not check the length; compare that with the
// size the origin announced (or SizeOf) separately.
func Verify(id string, body []byte) error {
	_, err := NewVerifier(id, 0).Write(body)
	return err
}

// A Verifier checks a stream of bytes against id's content as it is
// written, so a client can verify a body of any size with io.Copy and a
// fixed amount of memory. Start it at a range's first offset to check a
// partial response.
type Verifier struct {
	obj *object
	off int64
	buf [blockSize]byte
}

// NewVerifier returns a Verifier for id's content starting at offset off.
func NewVerifier(id string, off int64) *Verifier {
	o := newObject(idHash(id), 1<<63-1)
	return &Verifier{obj: o, off: max(off, 0)}
}

// Write checks p against the content at the current offset and advances
// it. At the first differing byte it returns the count of matching bytes
// before it and an error wrapping ErrMismatch.
func (v *Verifier) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		want := v.buf[:min(len(p), len(v.buf))]
		fill(v.obj.seed, v.obj.keySeed, want, v.off)
		got := p[:len(want)]
		if string(got) != string(want) {
			for i := range got {
				if got[i] != want[i] {
					v.off += int64(i)
					return done + i, fmt.Errorf("%w at offset %d: got %#02x, want %#02x",
						ErrMismatch, v.off, got[i], want[i])
				}
			}
		}
		done += len(got)
		v.off += int64(len(got))
		p = p[len(got):]
	}
	return done, nil
}

// Offset returns the offset of the next byte Write expects.
func (v *Verifier) Offset() int64 { return v.off }

// ETag returns the strong entity tag of id's content cut to size, quoted:
// "1-<16 hex digits of the id's hash>-<size>". It changes with the id, the
// size and ContentVersion, as a strong validator must (RFC 9110 §8.8.3).
func ETag(id string, size int64) string { return etag(idHash(id), size) }

func etag(h [4]uint64, size int64) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendInt(b, ContentVersion, 10)
	b = append(b, '-')
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[(h[0]>>uint(i))&0xf])
	}
	b = append(b, '-')
	b = strconv.AppendInt(b, size, 10)
	b = append(b, '"')
	return string(b)
}

// lastModifiedEpoch is the latest Last-Modified any object has.
var lastModifiedEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// LastModified returns id's Last-Modified time: a whole second within the
// year before 2025-01-01T00:00:00Z, derived from the id. It is the same on
// every server start, so validators stay valid when the origin restarts,
// and it is always in the past.
func LastModified(id string) time.Time { return lastModified(idHash(id)) }

func lastModified(h [4]uint64) time.Time {
	const year = 365 * 24 * 60 * 60
	return time.Unix(lastModifiedEpoch-int64(splitmix(h[0]^h[3])%year), 0).UTC()
}
