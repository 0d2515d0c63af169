package diskstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// The file format. A file is a fixed header, the metadata, then the body:
//
//	offset size
//	0      4    magic "ODS1"
//	4      2    format version (1)
//	6      2    flags: 0, or flagAligned
//	8      4    metadata length
//	12     4    CRC32C of the metadata
//	16     8    body length
//	24     4    CRC32C of the body
//	28     4    CRC32C of bytes 0–27
//
// all little-endian (encoding/binary). The metadata is a gob-encoded meta:
// every cache.Entry field but the body and Prepared, and the storage
// expiry. The body follows the metadata at once, or, with flagAligned, at
// the next multiple of blockSize (zero bytes between, which no checksum
// covers and nothing reads). A file's length is the body's offset + body
// length exactly; anything else is a torn or damaged file.
//
// Why aligned: sendfile(2) hands the socket the body's pages, and a body
// that starts mid-page puts each page's worth of it in two page fragments,
// so the kernel builds and frees twice as many socket buffers for it
// (measured with bench/sendfloor: a 1 MiB hit cost 18-36% more CPU with
// the body 700 bytes into its file; docs/storage.md). Bodies of alignMin
// bytes or more are aligned; the padding costs them no space, as files are
// counted in whole blocks. Files written before the flag existed have
// flags 0 and are read as they are.
const (
	headerSize  = 32
	magic       = "ODS1"
	fileVersion = 1
	// maxMetaBytes bounds the metadata a header may announce: a response
	// header larger than this is not stored, and a header that says more
	// is damaged.
	maxMetaBytes = 1 << 20
	// blockSize is the unit files are accounted in: a file costs its
	// length rounded up to whole blocks.
	blockSize = 4096
	// flagAligned says the body starts at a multiple of blockSize.
	flagAligned = 1
	// alignMin is the smallest body written aligned (flagAligned).
	alignMin = 64 << 10
)

// bodyOffset is where a body of bodyLen bytes starts after metadata of
// metaLen bytes, and the flags that say so.
func bodyOffset(metaLen int, bodyLen int64) (int64, uint16) {
	off := int64(headerSize + metaLen)
	if bodyLen < alignMin {
		return off, 0
	}
	return blocks(off), flagAligned
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is wrapped by every decoding failure: the file is damaged,
// torn or not ours.
var errCorrupt = errors.New("diskstore: corrupt file")

// header is a file's fixed header.
type header struct {
	flags    uint16
	metaLen  uint32
	metaCRC  uint32
	bodyLen  int64
	bodyCRC  uint32
	bodyOff  int64 // derived: headerSize + metaLen, aligned with flagAligned
	fileSize int64 // derived: bodyOff + bodyLen
}

// meta is what a file stores of a cache.Entry beside its body.
type meta struct {
	Key                  string
	Status               int
	Header               http.Header
	HasHeader            bool // Header was non-nil (gob drops empty maps)
	RequestTime          time.Time
	ResponseTime         time.Time
	InitialAge           time.Duration
	Lifetime             time.Duration
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	NoCache              bool
	MustRevalidate       bool
	VaryIndex            bool // VaryFields was non-nil (gob drops empty slices)
	VaryFields           []string
	VaryNonce            string
	// Expires is when the store stops serving the entry (Unix nanoseconds).
	Expires int64
}

func metaOf(e *cache.Entry, expires int64) meta {
	return meta{
		Key: e.Key, Status: e.Status, Header: e.Header, HasHeader: e.Header != nil,
		RequestTime: e.RequestTime, ResponseTime: e.ResponseTime,
		InitialAge: e.InitialAge, Lifetime: e.Lifetime,
		StaleWhileRevalidate: e.StaleWhileRevalidate, StaleIfError: e.StaleIfError,
		NoCache: e.NoCache, MustRevalidate: e.MustRevalidate,
		VaryIndex: e.VaryFields != nil, VaryFields: e.VaryFields, VaryNonce: e.VaryNonce,
		Expires: expires,
	}
}

// entry makes the cache.Entry m describes, without a body, marked as
// the disk's (OnDisk).
func (m *meta) entry() *cache.Entry {
	e := &cache.Entry{
		OnDisk: true,
		Key:    m.Key, Status: m.Status, Header: m.Header,
		RequestTime: m.RequestTime, ResponseTime: m.ResponseTime,
		InitialAge: m.InitialAge, Lifetime: m.Lifetime,
		StaleWhileRevalidate: m.StaleWhileRevalidate, StaleIfError: m.StaleIfError,
		NoCache: m.NoCache, MustRevalidate: m.MustRevalidate,
		VaryFields: m.VaryFields, VaryNonce: m.VaryNonce,
	}
	if m.HasHeader && e.Header == nil {
		e.Header = http.Header{}
	}
	if m.VaryIndex && e.VaryFields == nil {
		e.VaryFields = []string{}
	}
	return e
}

// encodeMeta returns the gob encoding of m.
func encodeMeta(m *meta) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(m); err != nil {
		return nil, fmt.Errorf("diskstore: encode metadata: %w", err)
	}
	if buf.Len() > maxMetaBytes {
		return nil, fmt.Errorf("diskstore: metadata of %d bytes is over the %d-byte limit", buf.Len(), maxMetaBytes)
	}
	return buf.Bytes(), nil
}

// appendHeader appends the file header for metadata and body of these
// lengths and checksums, with these flags (bodyOffset's).
func appendHeader(b []byte, flags uint16, metaLen int, metaCRC uint32, bodyLen int64, bodyCRC uint32) []byte {
	start := len(b)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, fileVersion)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(metaLen))
	b = binary.LittleEndian.AppendUint32(b, metaCRC)
	b = binary.LittleEndian.AppendUint64(b, uint64(bodyLen))
	b = binary.LittleEndian.AppendUint32(b, bodyCRC)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeHeader checks and decodes a file's first headerSize bytes.
func decodeHeader(b []byte) (header, error) {
	var h header
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: %d bytes, shorter than a header", errCorrupt, len(b))
	}
	if string(b[:4]) != magic {
		return h, fmt.Errorf("%w: bad magic %q", errCorrupt, b[:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != fileVersion {
		return h, fmt.Errorf("%w: format version %d, want %d", errCorrupt, v, fileVersion)
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return h, fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	h.flags = binary.LittleEndian.Uint16(b[6:])
	if h.flags&^flagAligned != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x", errCorrupt, h.flags)
	}
	h.metaLen = binary.LittleEndian.Uint32(b[8:])
	h.metaCRC = binary.LittleEndian.Uint32(b[12:])
	bodyLen := binary.LittleEndian.Uint64(b[16:])
	h.bodyCRC = binary.LittleEndian.Uint32(b[24:])
	if h.metaLen > maxMetaBytes {
		return h, fmt.Errorf("%w: metadata length %d over the limit", errCorrupt, h.metaLen)
	}
	if bodyLen > 1<<56 {
		return h, fmt.Errorf("%w: body length %d", errCorrupt, bodyLen)
	}
	h.bodyLen = int64(bodyLen)
	h.bodyOff = headerSize + int64(h.metaLen)
	if h.flags&flagAligned != 0 {
		h.bodyOff = blocks(h.bodyOff)
	}
	h.fileSize = h.bodyOff + h.bodyLen
	return h, nil
}

// decodeMeta checks the metadata against the header and decodes it.
func decodeMeta(h header, b []byte) (meta, error) {
	var m meta
	if len(b) != int(h.metaLen) {
		return m, fmt.Errorf("%w: %d bytes of metadata, header says %d", errCorrupt, len(b), h.metaLen)
	}
	if crc32.Checksum(b, castagnoli) != h.metaCRC {
		return m, fmt.Errorf("%w: metadata checksum mismatch", errCorrupt)
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return m, fmt.Errorf("%w: metadata: %v", errCorrupt, err)
	}
	if m.Key == "" {
		return m, fmt.Errorf("%w: metadata without a key", errCorrupt)
	}
	return m, nil
}

// decodeFile decodes a whole file held in memory (the fuzz target's seam;
// the store reads the header, metadata and body separately) and checks
// its length and both checksums.
func decodeFile(b []byte) (meta, []byte, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return meta{}, nil, err
	}
	if int64(len(b)) != h.fileSize {
		return meta{}, nil, fmt.Errorf("%w: file of %d bytes, header says %d", errCorrupt, len(b), h.fileSize)
	}
	m, err := decodeMeta(h, b[headerSize:headerSize+int(h.metaLen)])
	if err != nil {
		return meta{}, nil, err
	}
	body := b[h.bodyOff:]
	if crc32.Checksum(body, castagnoli) != h.bodyCRC {
		return meta{}, nil, fmt.Errorf("%w: body checksum mismatch", errCorrupt)
	}
	return m, body, nil
}

// encodeFile returns a whole file for e with body (tests and the fuzz
// seeds; the writer streams the body instead).
func encodeFile(e *cache.Entry, body []byte, expires int64) ([]byte, error) {
	m := metaOf(e, expires)
	mb, err := encodeMeta(&m)
	if err != nil {
		return nil, err
	}
	off, flags := bodyOffset(len(mb), int64(len(body)))
	b := appendHeader(nil, flags, len(mb), crc32.Checksum(mb, castagnoli), int64(len(body)), crc32.Checksum(body, castagnoli))
	b = append(b, mb...)
	b = append(b, make([]byte, off-int64(len(b)))...)
	return append(b, body...), nil
}

// fileName is the name of key's file: the hex of the first 128 bits of
// its SHA-256. Keys hold arbitrary bytes (a variant's key has NUL bytes),
// so they are never part of a name; a file holds its key, and a file whose
// key is not the one asked for is another key's (a collision, or a file
// moved by hand) and is dropped.
func fileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// validName reports whether name looks like a fileName.
func validName(name string) bool {
	if len(name) != 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// fileEstimate is what e's file will cost on disk, in whole blocks, before
// its metadata is encoded (e.Size() counts the header fields beside the
// body): an aligned body (bodyOffset) takes whole blocks of its own.
func fileEstimate(e *cache.Entry) int64 {
	body := e.BodySize()
	if body < alignMin {
		return blocks(headerSize + e.Size())
	}
	return blocks(headerSize+e.Size()-body) + blocks(body)
}

// blocks is n bytes rounded up to whole blocks.
func blocks(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }
