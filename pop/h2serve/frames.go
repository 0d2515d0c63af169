package h2serve

import (
	"encoding/binary"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The server writes frames by appending them to its connection's buffer:
// the Framer's writer would copy each frame into its own buffer first, and
// header blocks are encoded without state (see the package doc), so
// nothing here needs the Framer's bookkeeping.

const (
	frameHeaderLen = 9
	initialWindow  = 65535     // every window's size before SETTINGS (RFC 9113 §6.9.2)
	maxWindow      = 1<<31 - 1 // the largest window (RFC 9113 §6.9.1)
	defaultFrame   = 16384     // SETTINGS_MAX_FRAME_SIZE's initial value
)

// appendFrameHeader appends a frame header.
func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, stream uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(stream>>24)&0x7f, byte(stream>>16), byte(stream>>8), byte(stream))
}

// appendHeaders appends block as a HEADERS frame, with CONTINUATION frames
// when it exceeds maxFrame.
func appendHeaders(b []byte, stream uint32, block []byte, endStream bool, maxFrame int) []byte {
	t := http2.FrameHeaders
	var flags http2.Flags
	if endStream {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		b = appendFrameHeader(b, n, t, f, stream)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		t, flags = http2.FrameContinuation, 0
	}
}

// appendRST appends RST_STREAM.
func appendRST(b []byte, stream uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, stream)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// appendWindowUpdate appends WINDOW_UPDATE.
func appendWindowUpdate(b []byte, stream, incr uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, stream)
	return binary.BigEndian.AppendUint32(b, incr&0x7fffffff)
}

// appendGoAway appends GOAWAY.
func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last&0x7fffffff)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// appendSettings appends a SETTINGS frame (an ACK when s is empty and ack).
func appendSettings(b []byte, ack bool, s ...http2.Setting) []byte {
	var flags http2.Flags
	if ack {
		flags = http2.FlagSettingsAck
	}
	b = appendFrameHeader(b, 6*len(s), http2.FrameSettings, flags, 0)
	for _, st := range s {
		b = binary.BigEndian.AppendUint16(b, uint16(st.ID))
		b = binary.BigEndian.AppendUint32(b, st.Val)
	}
	return b
}

// appendPingAck appends a PING acknowledging data.
func appendPingAck(b []byte, data [8]byte) []byte {
	b = appendFrameHeader(b, 8, http2.FramePing, http2.FlagPingAck, 0)
	return append(b, data[:]...)
}

// staticName maps the names of HPACK's static table (RFC 7541 Appendix A)
// to their first index.
var staticName = map[string]uint64{
	":authority": 1, ":method": 2, ":path": 4, ":scheme": 6, ":status": 8,
	"accept-charset": 15, "accept-encoding": 16, "accept-language": 17, "accept-ranges": 18,
	"accept": 19, "access-control-allow-origin": 20, "age": 21, "allow": 22, "authorization": 23,
	"cache-control": 24, "content-disposition": 25, "content-encoding": 26, "content-language": 27,
	"content-length": 28, "content-location": 29, "content-range": 30, "content-type": 31,
	"cookie": 32, "date": 33, "etag": 34, "expect": 35, "expires": 36, "from": 37, "host": 38,
	"if-match": 39, "if-modified-since": 40, "if-none-match": 41, "if-range": 42,
	"if-unmodified-since": 43, "last-modified": 44, "link": 45, "location": 46, "max-forwards": 47,
	"proxy-authenticate": 48, "proxy-authorization": 49, "range": 50, "referer": 51, "refresh": 52,
	"retry-after": 53, "server": 54, "set-cookie": 55, "strict-transport-security": 56,
	"transfer-encoding": 57, "user-agent": 58, "vary": 59, "via": 60, "www-authenticate": 61,
}

// AppendStatus appends the :status field of a response header block: one
// byte for the statuses in HPACK's static table.
func AppendStatus(b []byte, code int) []byte {
	switch code {
	case 200:
		return append(b, 0x88)
	case 204:
		return append(b, 0x89)
	case 206:
		return append(b, 0x8a)
	case 304:
		return append(b, 0x8b)
	case 400:
		return append(b, 0x8c)
	case 404:
		return append(b, 0x8d)
	case 500:
		return append(b, 0x8e)
	}
	var d [3]byte
	return appendLiteral(b, 8, "", string(strconv.AppendInt(d[:0], int64(code), 10)))
}

// AppendField appends a header field to a header block as a literal
// without indexing (RFC 7541 §6.2.2), with the static table's index for
// the name when it has one. name must be lowercase.
func AppendField(b []byte, name, value string) []byte {
	return appendLiteral(b, staticName[name], name, value)
}

func appendLiteral(b []byte, index uint64, name, value string) []byte {
	if index != 0 {
		b = appendInt(b, 4, 0, index)
	} else {
		b = append(b, 0)
		b = appendString(b, name)
	}
	return appendString(b, value)
}

// appendString appends an HPACK string, Huffman-coded when that is shorter.
func appendString(b []byte, s string) []byte {
	if n := hpack.HuffmanEncodeLength(s); n < uint64(len(s)) {
		b = appendInt(b, 7, 0x80, n)
		return hpack.AppendHuffmanString(b, s)
	}
	b = appendInt(b, 7, 0, uint64(len(s)))
	return append(b, s...)
}

// appendInt appends an HPACK integer with an n-bit prefix (RFC 7541 §5.1).
func appendInt(b []byte, n uint, first byte, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	v -= limit
	for v >= 128 {
		b = append(b, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(b, byte(v))
}
