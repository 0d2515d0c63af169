package diskstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// fixChecksums rewrites the checksums of a file held in memory so that a
// fuzzed metadata reaches the gob decoder (the checksums would stop
// almost every mutation before it).
func fixChecksums(b []byte) []byte {
	if len(b) < headerSize {
		return b
	}
	b = bytes.Clone(b)
	metaLen := int(binary.LittleEndian.Uint32(b[8:]))
	bodyOff := int64(headerSize + metaLen)
	if binary.LittleEndian.Uint16(b[6:])&flagAligned != 0 {
		bodyOff = blocks(bodyOff)
	}
	if bodyOff <= int64(len(b)) {
		meta := b[headerSize : headerSize+metaLen]
		binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(meta, castagnoli))
		body := b[bodyOff:]
		binary.LittleEndian.PutUint64(b[16:], uint64(len(body)))
		binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(body, castagnoli))
	}
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, e := range []*cache.Entry{
		entryFor("http://a.example/seed", 100),
		entryFor("http://a.example/aligned", alignMin), // flagAligned
		{Key: "v\x00nonce", Status: 200, VaryFields: []string{"Accept-Encoding"}, VaryNonce: "n"},
		{Key: "k", Status: 204, Header: http.Header{}},
	} {
		b, err := encodeFile(e, e.Body, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecodeFile feeds the decoder of files read from disk (untrusted:
// damaged, truncated, anyone's) with arbitrary bytes, as they are and with
// their checksums made right: it must never panic, and what it accepts
// must encode back to a file it decodes the same.
func FuzzDecodeFile(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, fixChecksums(data)} {
			m, body, err := decodeFile(b)
			if err != nil {
				continue
			}
			again, err := encodeFile(m.entry(), body, m.Expires)
			if err != nil {
				continue // metadata over the limit once re-encoded
			}
			m2, body2, err := decodeFile(again)
			if err != nil {
				t.Fatalf("re-encoded file does not decode: %v", err)
			}
			if !bytes.Equal(body, body2) || !reflect.DeepEqual(m.entry(), m2.entry()) && !sameTimes(&m, &m2) {
				t.Fatalf("round trip changed the entry:\n%+v\n%+v", m, m2)
			}
		}
	})
}

// sameTimes reports whether a and b differ at most in how their times
// are represented.
func sameTimes(a, b *meta) bool {
	if !a.RequestTime.Equal(b.RequestTime) || !a.ResponseTime.Equal(b.ResponseTime) {
		return false
	}
	x, y := *a, *b
	x.RequestTime, x.ResponseTime = y.RequestTime, y.ResponseTime
	return reflect.DeepEqual(x.entry(), y.entry())
}

// TestDecodeFileRejects checks the decoder against damaged files.
func TestDecodeFileRejects(t *testing.T) {
	good := fuzzSeeds()[0]
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"shorter than a header", good[:headerSize-1]},
		{"bad magic", flip(0)},
		{"other version", flip(4)},
		{"flipped length (header checksum)", flip(9)},
		{"flipped metadata byte", flip(headerSize + 10)},
		{"flipped body byte", flip(len(good) - 1)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(bytes.Clone(good), 0)},
		{"unknown flag, header checksum right", fixChecksums(flip(7))},
		{"aligned flag on an unaligned file", func() []byte { b := bytes.Clone(good); b[6] |= flagAligned; return fixChecksums(b) }()},
		{"metadata not gob, checksums right", fixChecksums(append(append(bytes.Clone(good[:headerSize]), bytes.Repeat([]byte{0xff}, int(binary.LittleEndian.Uint32(good[8:]))-0)...), good[headerSize+int(binary.LittleEndian.Uint32(good[8:])):]...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := decodeFile(tt.data); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, _, err := decodeFile(good); err != nil {
		t.Fatalf("good file: %v", err)
	}
}
