package pop

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// accessLog writes one line per logged request, and hands every request a
// live tail (tail.go) asks for to its subscribers. The request path only
// hands a record to a buffered channel (dropping it, and counting the
// drop, when the writer is behind), so a slow disk or a slow tail client
// never slows a request. The PoP always has one, even with the log off,
// so that a tail can start at any time.
type accessLog struct {
	pop    string
	mode   string  // config.AccessLogOff, Sampled or Full
	sample float64 // fraction logged in sampled mode
	format string  // config.AccessLogJSON or Combined
	target string  // a file's path, config.AccessLogStdout or Stderr

	records chan accessRecord
	reopen  chan chan error // ReopenLogs asks the writer goroutine
	dropped atomic.Uint64   // records the full channel turned away
	reopens atomic.Uint64   // successful reopens of the file
	failed  atomic.Uint64   // reopens that failed (the old file stays)

	tail *tailHub

	// Owned by the writer goroutine.
	file *os.File // nil for stdout, stderr or no log
	out  io.Writer
	buf  []byte

	done chan struct{}
	once sync.Once
}

// accessRecord is what one line says.
type accessRecord struct {
	at          time.Time
	client      string
	method      string
	host        string
	path        string
	proto       string
	status      int
	bytes       int64
	cacheStatus string
	userAgent   string
	referer     string
	requestID   string
	origin      time.Duration // 0 when no origin request was made for it
	server      string        // the origin server (host:port) that answered it; "" when none
	ttfb        time.Duration // to the response's first byte (its header)
	total       time.Duration
	toLog       bool // the access log writes it (a tail may want it anyway)
}

// requestIDHeader carries a request's ID: the client's, when it sent a
// usable one, else one the PoP makes (32 hex digits, as nginx's
// $request_id). The origin receives it too (forwardHeader), so its logs and
// the PoP's name the same request.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request ID; a longer one, or one with
// characters outside visible ASCII, is replaced.
const maxRequestID = 128

// newAccessLog opens the configured log. With the log off it writes
// nothing, but still serves the live tail.
func newAccessLog(pop string, c config.AccessLog) (*accessLog, error) {
	buffer := c.Buffer
	if buffer <= 0 { // a Config built by hand rather than parsed
		buffer = 4096
	}
	l := &accessLog{
		pop:     pop,
		mode:    c.Mode,
		sample:  1,
		format:  c.Format,
		target:  c.Path,
		records: make(chan accessRecord, buffer),
		reopen:  make(chan chan error),
		tail:    newTailHub(),
		done:    make(chan struct{}),
	}
	if l.mode == "" {
		l.mode = config.AccessLogOff
	}
	if l.format == "" {
		l.format = config.AccessLogJSON
	}
	if l.mode == config.AccessLogSampled {
		l.sample = c.Sample
	}
	if l.mode != config.AccessLogOff {
		if err := l.open(); err != nil {
			return nil, err
		}
	}
	go l.run()
	return l, nil
}

// open (re)opens the target: a file in append mode, or a standard stream.
// On error the current target stays.
func (l *accessLog) open() error {
	switch l.target {
	case "", config.AccessLogStderr:
		l.out = os.Stderr
		return nil
	case config.AccessLogStdout:
		l.out = os.Stdout
		return nil
	}
	f, err := os.OpenFile(l.target, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	if l.file != nil {
		l.file.Close()
	}
	l.file, l.out = f, f
	return nil
}

// logging reports whether the log writes lines at all.
func (l *accessLog) logging() bool { return l.mode != config.AccessLogOff }

// want says whether a request is to be recorded, and whether the log (as
// against only a tail) wants it.
func (l *accessLog) want() (record, toLog bool) {
	toLog = l.logging() && (l.sample >= 1 || rand.Float64() < l.sample)
	return toLog || l.tail.active(), toLog
}

// sampled reports whether this request is to be recorded, by the log or
// a tail.
func (l *accessLog) sampled() bool {
	record, _ := l.want()
	return record
}

// log queues a record without blocking.
func (l *accessLog) log(r accessRecord) {
	select {
	case l.records <- r:
	default:
		l.dropped.Add(1)
	}
}

// run writes the queued records, and reopens the file when asked, until
// close.
func (l *accessLog) run() {
	defer close(l.done)
	for {
		select {
		case r, ok := <-l.records:
			if !ok {
				return
			}
			if r.toLog && l.out != nil {
				l.buf = l.format1(l.buf[:0], &r, l.format)
				l.out.Write(l.buf)
			}
			l.tail.publish(&r, l)
		case reply := <-l.reopen:
			err := errors.New("access log: no file to reopen")
			if l.file != nil {
				err = l.open()
			}
			reply <- err
		}
	}
}

// ReopenLogs reopens the access log's file, so that the lines go to a new
// file at the configured path after logrotate (or an operator) moved the
// old one: nginx's SIGUSR1, which `outpost pop` wires to it. Lines queued
// before the call go to the old file. With no file (the log off, or on a
// standard stream) it does nothing and returns nil; if the file cannot be
// opened the old one stays in use and the error is returned.
func (p *PoP) ReopenLogs() error {
	l := p.access
	if l == nil || !l.logging() || l.target == "" || l.target == config.AccessLogStdout || l.target == config.AccessLogStderr {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case l.reopen <- reply:
	case <-l.done:
		return errors.New("access log: closed")
	}
	err := <-reply
	if err != nil {
		l.failed.Add(1)
		return fmt.Errorf("pop %s: %w", p.name, err)
	}
	l.reopens.Add(1)
	p.log.Info("access log reopened", "path", l.target)
	return nil
}

// close flushes the queue and closes the file.
func (l *accessLog) close() {
	l.once.Do(func() {
		close(l.records)
		<-l.done
		l.tail.close()
		if l.file != nil {
			l.file.Close()
		}
	})
}

// format1 appends r's line in format to b.
func (l *accessLog) format1(b []byte, r *accessRecord, format string) []byte {
	if format == config.AccessLogCombined {
		return appendCombined(b, r)
	}
	return l.appendJSON(b, r)
}

// appendJSON appends r as one JSON object, as log/slog's JSON handler
// writes it (time, level, msg, then the fields).
func (l *accessLog) appendJSON(b []byte, r *accessRecord) []byte {
	w := appendWriter{b: b}
	h := slog.NewJSONHandler(&w, nil)
	rec := slog.NewRecord(r.at, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("pop", l.pop),
		slog.String("client", r.client),
		slog.String("method", r.method),
		slog.String("host", r.host),
		slog.String("path", r.path),
		slog.String("proto", r.proto),
		slog.Int("status", r.status),
		slog.Int64("bytes", r.bytes),
		slog.String("cache_status", r.cacheStatus),
		slog.String("request_id", r.requestID),
		slog.String("user_agent", r.userAgent),
		slog.String("referer", r.referer),
		slog.Float64("origin_ms", millis(r.origin)),
		slog.String("origin_server", r.server),
		slog.Float64("ttfb_ms", millis(r.ttfb)),
		slog.Float64("total_ms", millis(r.total)),
	)
	h.Handle(context.Background(), rec)
	return w.b
}

// appendWriter collects what a handler writes.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// appendCombined appends r in the NCSA combined format, as nginx's
// "combined" and Apache's writes it, so that log tools read it:
//
//	192.0.2.7 - - [06/Dec/2026:10:00:00 +0000] "GET /obj/1 HTTP/1.1" 200 512 "-" "curl/8.5.0"
//
// Quotes, backslashes and bytes outside printable ASCII in the request
// line, referer and user agent are escaped as \xHH, as nginx does, so a
// client cannot forge a line.
func appendCombined(b []byte, r *accessRecord) []byte {
	b = append(b, orDash(r.client)...)
	b = append(b, " - - ["...)
	b = r.at.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, r.method)
	b = append(b, ' ')
	b = appendEscaped(b, r.path)
	b = append(b, ' ')
	b = appendEscaped(b, r.proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.bytes, 10)
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(r.referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(r.userAgent))
	return append(b, "\"\n"...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendEscaped appends s with '"', '\\' and bytes outside 0x20..0x7e
// as \xHH.
func appendEscaped(b []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// serveLogged serves r and queues its record for the access log or a
// tail. The request gets its ID first, so the origin sees the one logged.
func (p *PoP) serveLogged(w http.ResponseWriter, r *http.Request, toLog bool) {
	start := time.Now()
	id := ensureRequestID(r.Header)
	rec := &accessRecorder{ResponseWriter: w, start: start}
	defer func() {
		p.access.log(accessRecord{
			at: start, client: clientIP(r), method: r.Method, host: r.Host, path: r.URL.RequestURI(),
			proto: r.Proto, status: rec.status, bytes: rec.bytes, cacheStatus: lastMember(w.Header()),
			userAgent: r.Header.Get("User-Agent"), referer: r.Header.Get("Referer"), requestID: id,
			origin: rec.origin, server: rec.server, ttfb: rec.ttfb, total: time.Since(start), toLog: toLog,
		})
	}()
	p.serve(rec, r)
}

// wantRequest says whether net/http's request r is to be recorded, and
// whether for the log.
func (p *PoP) wantRequest(*http.Request) (record, toLog bool) {
	if p.access == nil {
		return false, false
	}
	return p.access.want()
}

// fastWant is wantRequest for a hit the HTTP/1.1 fast path answered. Its
// records have the same fields as net/http's: the fast path keeps the
// User-Agent, Referer and X-Request-Id values while it parses the head
// (fastpath.Request), and they become strings only for a recorded hit.
func (p *PoP) fastWant() (record, toLog bool) {
	if p.access == nil {
		return false, false
	}
	return p.access.want()
}

// ensureRequestID returns the request's ID from h, first making one and
// setting it in h when the client sent none, or one that is too long or
// not visible ASCII.
func ensureRequestID(h http.Header) string {
	if v := h[requestIDHeader]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	id := newRequestID()
	h[requestIDHeader] = []string{id}
	return id
}

// fastRequestID is ensureRequestID for a hit of the fast path, given the
// X-Request-Id value it read (empty for none or several): the client's ID
// when it is valid, else a new one. Nothing is forwarded: a hit reaches no
// origin.
func fastRequestID(sent []byte) string {
	if s := string(sent); validRequestID(s) {
		return s
	}
	return newRequestID()
}

// validRequestID reports whether a client's request ID may be logged and
// passed on as it is.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// newRequestID makes a request ID: 128 random bits as 32 hex digits.
// math/rand/v2's generator (ChaCha8, seeded from the OS) suffices: an ID
// must be unique, not secret.
func newRequestID() string {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i], raw[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return hex.EncodeToString(raw[:])
}

// accessRecorder sees what a handler sends, for the access log.
type accessRecorder struct {
	http.ResponseWriter
	start  time.Time
	status int
	bytes  int64
	origin time.Duration
	server string
	ttfb   time.Duration
}

// first notes the time of the response's first byte.
func (a *accessRecorder) first() {
	if a.ttfb == 0 {
		a.ttfb = max(time.Since(a.start), time.Nanosecond)
	}
}

func (a *accessRecorder) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
		a.first()
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
		a.first()
	}
	n, err := a.ResponseWriter.Write(p)
	a.bytes += int64(n)
	return n, err
}

// ReadFrom lets a blob body reach the connection's ReadFrom (sendfile).
func (a *accessRecorder) ReadFrom(src io.Reader) (int64, error) {
	if a.status == 0 {
		a.status = http.StatusOK
		a.first()
	}
	n, err := copyTo(a.ResponseWriter, src)
	a.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (a *accessRecorder) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// noteOrigin records the time an origin took for this request, and the
// server that answered (resp; nil when none did), when it is being logged.
func noteOrigin(w http.ResponseWriter, d time.Duration, resp *http.Response) {
	if a, ok := w.(*accessRecorder); ok {
		a.origin = d
		if resp != nil && resp.Request != nil && resp.Request.URL != nil {
			a.server = resp.Request.URL.Host
		}
	}
}

// lastMember returns this PoP's (the last) Cache-Status member.
func lastMember(h http.Header) string {
	v := h.Values("Cache-Status")
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}
