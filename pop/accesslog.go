package pop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// accessLog writes one JSON line per logged request. The request path only
// hands a record to a buffered channel (dropping it, and counting the drop,
// when the writer is behind), so a slow disk never slows a request.
type accessLog struct {
	pop     string
	sample  float64 // fraction logged; 1 logs every request
	records chan accessRecord
	dropped atomic.Uint64
	out     *slog.Logger
	closer  io.Closer
	done    chan struct{}
	once    sync.Once
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
	origin      time.Duration // 0 when no origin request was made for it
	total       time.Duration
}

// newAccessLog opens the configured log, or returns nil when it is off.
func newAccessLog(pop string, c config.AccessLog) (*accessLog, error) {
	if c.Mode == "" || c.Mode == config.AccessLogOff {
		return nil, nil
	}
	var w io.Writer = os.Stderr
	var closer io.Closer
	if c.Path != "" {
		f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		w, closer = f, f
	}
	l := &accessLog{
		pop:     pop,
		sample:  1,
		records: make(chan accessRecord, 4096),
		out:     slog.New(slog.NewJSONHandler(w, nil)),
		closer:  closer,
		done:    make(chan struct{}),
	}
	if c.Mode == config.AccessLogSampled {
		l.sample = c.Sample
	}
	go l.run()
	return l, nil
}

// sampled reports whether this request is to be logged.
func (l *accessLog) sampled() bool {
	return l.sample >= 1 || rand.Float64() < l.sample
}

// log queues a record without blocking.
func (l *accessLog) log(r accessRecord) {
	select {
	case l.records <- r:
	default:
		l.dropped.Add(1)
	}
}

// run writes the queued records until close.
func (l *accessLog) run() {
	defer close(l.done)
	ctx := context.Background()
	for r := range l.records {
		attrs := []slog.Attr{
			slog.String("pop", l.pop),
			slog.String("client", r.client),
			slog.String("method", r.method),
			slog.String("host", r.host),
			slog.String("path", r.path),
			slog.String("proto", r.proto),
			slog.Int("status", r.status),
			slog.Int64("bytes", r.bytes),
			slog.String("cache_status", r.cacheStatus),
			slog.Float64("origin_ms", float64(r.origin.Microseconds())/1000),
			slog.Float64("total_ms", float64(r.total.Microseconds())/1000),
		}
		rec := slog.NewRecord(r.at, slog.LevelInfo, "request", 0)
		rec.AddAttrs(attrs...)
		l.out.Handler().Handle(ctx, rec)
	}
}

// close flushes the queue and closes the file.
func (l *accessLog) close() {
	l.once.Do(func() {
		close(l.records)
		<-l.done
		if l.closer != nil {
			l.closer.Close()
		}
	})
}

// accessRecorder sees what a handler sends, for the access log.
type accessRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	origin time.Duration
}

func (a *accessRecorder) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(p)
	a.bytes += int64(n)
	return n, err
}

// ReadFrom lets a blob body reach the connection's ReadFrom (sendfile).
func (a *accessRecorder) ReadFrom(src io.Reader) (int64, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := copyTo(a.ResponseWriter, src)
	a.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (a *accessRecorder) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// noteOrigin records the time an origin took for this request, when it is
// being logged.
func noteOrigin(w http.ResponseWriter, d time.Duration) {
	if a, ok := w.(*accessRecorder); ok {
		a.origin = d
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
