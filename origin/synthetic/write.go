package synthetic

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// copyBufs holds the buffers bodyWriter.ReadFrom copies through, so that
// serving an object allocates nothing in proportion to its size.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// bodyWriter wraps a content response: it counts the body bytes into the
// stats (before they reach the connection, so a client that has read a
// body and then asks for the stats sees them counted), trickles the body
// for ?slow=, and copies from readers through a pooled buffer.
type bodyWriter struct {
	http.ResponseWriter
	ctx   context.Context
	stats *counters
	head  bool          // a HEAD request: net/http drops body writes
	pause time.Duration // ?slow=: pause before each chunk but the first
	timer *time.Timer
	sent  int64 // body bytes written so far
}

// Unwrap lets http.ResponseController reach the connection's writer, for
// Flush and Hijack.
func (b *bodyWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// Write writes p, in 1 KiB chunks with a pause before each (but the
// first) when the body is trickled.
func (b *bodyWriter) Write(p []byte) (int, error) {
	if b.pause <= 0 {
		return b.write(p)
	}
	done := 0
	for len(p) > 0 {
		if b.sent > 0 {
			if err := b.wait(); err != nil {
				return done, err
			}
		}
		n, err := b.write(p[:min(len(p), slowChunk)])
		done += n
		p = p[n:]
		if err != nil {
			return done, err
		}
		if err := http.NewResponseController(b.ResponseWriter).Flush(); err != nil {
			return done, err
		}
	}
	return done, nil
}

func (b *bodyWriter) write(p []byte) (int, error) {
	if b.head {
		return b.ResponseWriter.Write(p)
	}
	b.stats.bytes.Add(int64(len(p)))
	n, err := b.ResponseWriter.Write(p)
	if n < len(p) {
		b.stats.bytes.Add(int64(n - len(p)))
	}
	b.sent += int64(n)
	return n, err
}

// wait pauses for b.pause, or until the request is cancelled.
func (b *bodyWriter) wait() error {
	if b.timer == nil {
		b.timer = time.NewTimer(b.pause)
	} else {
		b.timer.Reset(b.pause)
	}
	select {
	case <-b.timer.C:
		return nil
	case <-b.ctx.Done():
		b.timer.Stop()
		return context.Cause(b.ctx)
	}
}

// ReadFrom copies src to the response through a pooled buffer. io.Copy
// (as http.ServeContent uses it) calls it instead of allocating a buffer.
func (b *bodyWriter) ReadFrom(src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	var total int64
	for {
		n, rerr := src.Read(buf[:])
		if n > 0 {
			m, werr := b.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// sleep waits for d, or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
