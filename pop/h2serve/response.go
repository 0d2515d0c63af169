package h2serve

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// handlerBuf is how much of a handler's body is kept before the response
// starts, as net/http's HTTP/2 server keeps it: a handler that ends within
// it gets a Content-Length, and a sniffed Content-Type.
const handlerBuf = 4 << 10

// responseWriter is a stream's http.ResponseWriter. It sends what
// net/http's HTTP/2 server sends for the same calls: the header fields
// lowercased with Date, a Content-Length when the handler ends within the
// first 4 KiB, a sniffed Content-Type.
type responseWriter struct {
	st     *stream
	req    *http.Request
	header http.Header
	snap   http.Header // the header as WriteHeader saw it

	status     int
	sentHeader bool  // HEADERS went out
	declLen    int64 // Content-Length sent, or -1
	written    int64
	buf        []byte
	done       bool // the handler returned
	trailers   []string
	err        error
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
)

// Header returns the header map.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends a 1xx at once; a final status is kept for the first
// write, flush or the handler's end.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("h2serve: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 {
		if code == http.StatusSwitchingProtocols {
			return
		}
		block := AppendStatus(nil, code)
		block = appendHeaderFields(block, w.header)
		c := w.st.c
		c.mu.Lock()
		if !w.st.reset && !c.closed {
			c.out = appendHeaders(c.out, w.st.id, block, false, c.peerFrame)
		}
		c.mu.Unlock()
		c.flush()
		return
	}
	w.status = code
	w.snap = w.header.Clone()
	for _, v := range w.snap["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" && !slices.Contains(w.trailers, k) {
				w.trailers = append(w.trailers, k)
			}
		}
	}
}

// Write buffers p, or sends it.
func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.sentHeader && w.declLen >= 0 && w.written+int64(len(p)) > w.declLen {
		return 0, http.ErrContentLength
	}
	if cl := w.snap.Get("Content-Length"); !w.sentHeader && cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && w.written+int64(len(p)) > n {
			return 0, http.ErrContentLength
		}
	}
	w.written += int64(len(p))
	if len(w.buf)+len(p) <= handlerBuf {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.writeChunk(nil); err != nil {
		return 0, err
	}
	if err := w.writeChunk(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString is Write for a string.
func (w *responseWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// Flush sends the header and what is buffered.
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush, with the error (http.ResponseController).
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.writeChunk(nil); err != nil {
		return err
	}
	return w.st.c.flush()
}

// SetWriteDeadline bounds the stream's writes (http.ResponseController).
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.st.deadlineMu.Lock()
	w.st.writeDL = t
	w.st.deadlineMu.Unlock()
	w.st.wakeUp()
	return nil
}

// SetReadDeadline bounds the reads of the request body
// (http.ResponseController).
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	w.st.deadlineMu.Lock()
	w.st.readDL = t
	w.st.deadlineMu.Unlock()
	if b := w.st.body; b != nil {
		b.signal()
	}
	return nil
}

// EnableFullDuplex is a no-op: HTTP/2 streams are full duplex.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// writeChunk sends the header (the first time) and the buffered body,
// then p, both through the flow-control windows.
func (w *responseWriter) writeChunk(p []byte) error {
	st, c := w.st, w.st.c
	if !w.sentHeader {
		w.sentHeader = true
		isHead := w.req.Method == http.MethodHead
		body := w.buf
		clen := ""
		w.declLen = -1
		if v := w.snap.Get("Content-Length"); v != "" {
			delete(w.snap, "Content-Length")
			if n, err := strconv.ParseUint(v, 10, 63); err == nil {
				clen, w.declLen = v, int64(n)
			}
		}
		if _, has := w.snap["Content-Length"]; !has && clen == "" && w.done && len(p) == 0 && bodyAllowed(w.status) && (len(body) > 0 || !isHead) {
			clen = strconv.Itoa(len(body))
		}
		ctype := ""
		_, hasType := w.snap["Content-Type"]
		if w.snap.Get("Content-Encoding") == "" && !hasType && bodyAllowed(w.status) && len(body)+len(p) > 0 {
			sniff := body
			if len(sniff) == 0 {
				sniff = p
			}
			ctype = http.DetectContentType(sniff)
		}
		if _, ok := w.snap["Connection"]; ok {
			v := w.snap.Get("Connection")
			delete(w.snap, "Connection")
			if v == "close" {
				defer c.goAwayGraceful()
			}
		}
		block := AppendStatus(nil, w.status)
		block = appendHeaderFields(block, w.snap)
		if ctype != "" {
			block = AppendField(block, "content-type", ctype)
		}
		if clen != "" {
			block = AppendField(block, "content-length", clen)
		}
		if _, ok := w.snap["Date"]; !ok {
			block = AppendField(block, "date", time.Now().UTC().Format(http.TimeFormat))
		}
		end := isHead || (w.done && len(body) == 0 && len(p) == 0 && !w.hasTrailers())
		c.mu.Lock()
		if st.reset || c.closed {
			c.mu.Unlock()
			w.err = errStreamReset
			return w.err
		}
		c.out = appendHeaders(c.out, st.id, block, end, c.peerFrame)
		if end {
			st.localClosed = true
		}
		c.mu.Unlock()
		if end {
			w.buf = nil
			return nil
		}
	}
	if w.req.Method == http.MethodHead || st.localClosed {
		w.buf = w.buf[:0]
		return nil
	}
	end := w.done && !w.hasTrailers()
	if len(w.buf) > 0 {
		if err := st.sendData(w.buf, end && len(p) == 0); err != nil {
			w.err = err
			return err
		}
		w.buf = w.buf[:0]
	}
	if len(p) > 0 || (end && !st.localClosedNow()) {
		if err := st.sendData(p, end); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// localClosedNow reads localClosed under the lock.
func (st *stream) localClosedNow() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.localClosed
}

func (w *responseWriter) hasTrailers() bool {
	if len(w.trailers) > 0 {
		for _, k := range w.trailers {
			if len(w.header[k]) > 0 {
				return true
			}
		}
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// finish ends the response when the handler returns: what is buffered,
// END_STREAM, trailers; and the stream, resetting it (NO_ERROR) when the
// client is still sending a body nobody will read.
func (w *responseWriter) finish() {
	st, c := w.st, w.st.c
	w.done = true
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		w.writeChunk(nil)
	}
	if w.err == nil && w.hasTrailers() && !st.localClosedNow() {
		block := make([]byte, 0, 64)
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				if httpguts.ValidHeaderFieldValue(v) {
					block = AppendField(block, strings.ToLower(k), v)
				}
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
				for _, v := range vv {
					if httpguts.ValidHeaderFieldValue(v) {
						block = AppendField(block, strings.ToLower(name), v)
					}
				}
			}
		}
		c.mu.Lock()
		if !st.reset && !c.closed {
			c.out = appendHeaders(c.out, st.id, block, true, c.peerFrame)
			st.localClosed = true
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	st.localClosed = true
	remoteDone := st.remoteClosed
	c.mu.Unlock()
	if remoteDone {
		c.closeStream(st, nil)
		return
	}
	// The client is still sending (half-closed local): the stream stays
	// until it ends; DATA that comes is answered with RST_STREAM NO_ERROR
	// (RFC 9113 §8.1), and discarded.
	if st.body != nil {
		st.body.Close()
	}
}

// appendHeaderFields appends h's fields as net/http's HTTP/2 server
// encodes them: lowercase names, fields with invalid names or values
// dropped, Transfer-Encoding only as "trailers".
func appendHeaderFields(block []byte, h http.Header) []byte {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		name := lower(k)
		isTE := name == "transfer-encoding"
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) || (isTE && v != "trailers") {
				continue
			}
			block = AppendField(block, name, v)
		}
	}
	return block
}

// lower lowercases a canonical header name, without allocating for the
// common ones.
func lower(k string) string {
	if v, ok := commonLower[k]; ok {
		return v
	}
	return strings.ToLower(k)
}

var commonLower = func() map[string]string {
	m := make(map[string]string)
	for name := range staticName {
		if name[0] != ':' {
			m[http.CanonicalHeaderKey(name)] = name
		}
	}
	for _, name := range []string{"cache-status", "x-request-id", "alt-svc", "x-content-type-options", "access-control-allow-methods"} {
		m[http.CanonicalHeaderKey(name)] = name
	}
	return m
}()

func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == 204, status == 304:
		return false
	}
	return true
}
