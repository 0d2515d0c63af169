package pop

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/config"
)

// Compression at the edge (a service's compress section). A fill whose
// origin response is a storable 200 of a compressible media type, not
// encoded, with a Content-Length within the service's bounds (or none: a
// chunked body is compressed, and stored while its encoding stays within
// max_object) and without
// Cache-Control: no-transform, is stored per Accept-Encoding class: the
// PoP adds Vary: Accept-Encoding, so each folded Accept-Encoding value
// (cache.NormalizeAcceptEncoding: "zstd, br, gzip, deflate" for Chrome,
// "br, gzip, deflate" for Safari, "identity" for curl) is its own variant,
// filled once. A class that accepts one of the service's codecs gets the
// body compressed, as it streams in from the origin, with the first codec
// of the service's list it accepts; every client of the class can decode
// it, so no variant ever holds bytes another client of its key cannot
// read. The compressed variant's ETag is the origin's, weakened (as nginx
// does): a client's If-None-Match still matches it (weak comparison), a
// revalidation sends it to the origin, which compares weakly too, and
// If-Range, which compares strongly, never matches it. Ranges are ranges
// of the compressed bytes, which is what the stored representation is.
//
// The CPU is bounded PoP-wide (at most GOMAXPROCS compressions at once,
// whatever the services: compressSlots) and by each service's concurrency
// (a fill that finds every slot of either taken is stored uncompressed and
// counted busy), the memory by the encoders' windows (1 MiB each; encoders
// are pooled) and max_size.

// compressor is a service's compression setting as the PoP runs it.
type compressor struct {
	cfg   config.Compress
	slots chan struct{}
}

// newCompressor returns the compressor of c, or nil when it is off.
func newCompressor(c config.Compress) *compressor {
	if !c.Enabled {
		return nil
	}
	n := c.Concurrency
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &compressor{cfg: c, slots: make(chan struct{}, n)}
}

// newCompressSlots is the PoP-wide bound on compressions running at once:
// one per CPU Go may use (GOMAXPROCS at start), so compression can take
// the PoP's CPUs but never queue work beyond them. Services' concurrency
// settings bound each service within it.
func newCompressSlots() chan struct{} { return make(chan struct{}, runtime.GOMAXPROCS(0)) }

var (
	descCompressingPoP = prometheus.NewDesc("outpost_pop_compress_slots_in_use",
		"Compressions running now, all services (bounded PoP-wide by outpost_pop_compress_slots).", nil, nil)
	descCompressSlots = prometheus.NewDesc("outpost_pop_compress_slots",
		"The PoP-wide bound on compressions running at once: GOMAXPROCS at start.", nil, nil)
)

// compressCollector exports the PoP-wide compression bound and its use.
type compressCollector struct{ p *PoP }

// Describe sends the metric descriptions.
func (c compressCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCompressingPoP
	ch <- descCompressSlots
}

// Collect reads the bound and how much of it is taken.
func (c compressCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descCompressingPoP, prometheus.GaugeValue, float64(len(c.p.compressing)))
	ch <- prometheus.MustNewConstMetric(descCompressSlots, prometheus.GaugeValue, float64(cap(c.p.compressing)))
}

// choose returns the codec for a folded Accept-Encoding value: the first
// of the service's codecs the class accepts, or "" for none.
func (c *compressor) choose(folded string) string {
	for _, codec := range c.cfg.Codecs {
		for accepted := range strings.SplitSeq(folded, ", ") {
			if accepted == codec {
				return codec
			}
		}
	}
	return ""
}

// The codecs' indexes in the counters.
var codecs = [...]string{config.CodecZstd, config.CodecBr, config.CodecGzip}

func codecIndex(codec string) int {
	for i, c := range codecs {
		if c == codec {
			return i
		}
	}
	return -1
}

// compressCounters count one service's compression.
type compressCounters struct {
	responses [len(codecs)]atomic.Uint64 // bodies compressed
	in, out   [len(codecs)]atomic.Uint64 // their bytes before and after
	busy      atomic.Uint64              // stored uncompressed: every slot taken
	noTrans   atomic.Uint64              // left alone: no-transform
}

// noTransform reports whether Cache-Control in h has no-transform.
func noTransform(h http.Header) bool {
	for _, v := range h["Cache-Control"] {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

// compressFill makes a fill's storable response compressed for its
// Accept-Encoding class when the service compresses and the response
// qualifies (see the file's comment): it sets the header fields and
// replaces resp.Body with the compressed stream. Called before the fill
// reads the header's Vary and publishes.
func (p *PoP) compressFill(f *fetch, svc *service, resp *http.Response) {
	c := svc.compress
	if c == nil || resp.StatusCode != http.StatusOK || encoded(resp.Header) ||
		!c.cfg.Compressible(resp.Header.Get("Content-Type")) ||
		resp.ContentLength >= 0 && (resp.ContentLength < c.cfg.MinSize || resp.ContentLength > c.cfg.MaxSize) {
		return
	}
	counts := &svc.edge.compress
	if noTransform(resp.Header) {
		counts.noTrans.Add(1)
		return
	}
	// Each Accept-Encoding class is its own variant from now on, whether
	// this one is compressed or not.
	if !varies(resp.Header, "Accept-Encoding") {
		resp.Header.Add("Vary", "Accept-Encoding")
	}
	codec := c.choose(f.encoding)
	if codec == "" {
		return
	}
	if noTransform(f.leaderHeader) {
		counts.noTrans.Add(1)
		return
	}
	select {
	case c.slots <- struct{}{}:
	default:
		counts.busy.Add(1)
		return
	}
	select {
	case p.compressing <- struct{}{}:
	default:
		<-c.slots
		counts.busy.Add(1)
		return
	}
	i := codecIndex(codec)
	counts.responses[i].Add(1)
	resp.Header.Set("Content-Encoding", codec)
	resp.Header.Del("Content-Length")
	resp.Header.Del("Content-MD5")
	if etag := resp.Header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		resp.Header.Set("ETag", "W/"+etag)
	}
	resp.Body = newCompressBody(resp.Body, codec, func(in, out int64) {
		counts.in[i].Add(uint64(in))
		counts.out[i].Add(uint64(out))
		<-p.compressing
		<-c.slots
	})
	resp.ContentLength = -1
}

// varies reports whether h's Vary names field.
func varies(h http.Header, field string) bool {
	for _, v := range h["Vary"] {
		for name := range strings.SplitSeq(v, ",") {
			if n := strings.TrimSpace(name); strings.EqualFold(n, field) || n == "*" {
				return true
			}
		}
	}
	return false
}

// keepWeakETag keeps a compressed variant's weakened ETag when a 304
// freshens it with the origin's strong one.
func keepWeakETag(stale, merged http.Header) {
	if etag := merged.Get("ETag"); etag != "" && stale.Get("ETag") == "W/"+etag {
		merged.Set("ETag", "W/"+etag)
	}
}

// compressBody is an origin body compressed as it is read: an encoder on
// its own goroutine reads the origin and writes into a pipe.
type compressBody struct {
	pr   *io.PipeReader
	src  io.ReadCloser
	raw  atomic.Int64 // origin bytes read
	done chan struct{}
}

// errBodyClosed ends the encoder's writes when the body is closed early.
var errBodyClosed = errors.New("pop: compressed body closed")

// newCompressBody starts compressing src with codec; done is called with
// the bytes in and out once the encoder has stopped.
func newCompressBody(src io.ReadCloser, codec string, done func(in, out int64)) *compressBody {
	pr, pw := io.Pipe()
	b := &compressBody{pr: pr, src: src, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		cw := &countWriter{w: pw}
		enc := getEncoder(codec, cw)
		buf := readBuffers.Get().(*[]byte)
		err := b.encode(enc, *buf)
		readBuffers.Put(buf)
		putEncoder(codec, enc)
		pw.CloseWithError(err) // nil: EOF
		done(b.raw.Load(), cw.n)
	}()
	return b
}

// encode copies the origin body through enc; nil at its end.
func (b *compressBody) encode(enc encoder, buf []byte) error {
	for {
		n, err := b.src.Read(buf)
		if n > 0 {
			b.raw.Add(int64(n))
			if _, werr := enc.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return enc.Close()
		}
		if err != nil {
			return err // the origin's error, as the fill would have seen it
		}
	}
}

func (b *compressBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

// Close stops the encoder and closes the origin body.
func (b *compressBody) Close() error {
	b.pr.CloseWithError(errBodyClosed)
	err := b.src.Close()
	<-b.done
	return err
}

// originBytes is what was read from the origin.
func (b *compressBody) originBytes() int64 { return b.raw.Load() }

// countWriter counts what passes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder is a pooled compressor.
type encoder interface {
	io.WriteCloser
	Reset(io.Writer)
}

// encoderWindow bounds each encoder's memory.
const encoderWindow = 1 << 20

var encoderPools = map[string]*sync.Pool{
	config.CodecZstd: {New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
		return encoder(e)
	}},
	config.CodecBr: {New: func() any {
		return encoder(brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: 5, LGWin: 20}))
	}},
	config.CodecGzip: {New: func() any {
		e, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return encoder(e)
	}},
}

func getEncoder(codec string, w io.Writer) encoder {
	e := encoderPools[codec].Get().(encoder)
	e.Reset(w)
	return e
}

func putEncoder(codec string, e encoder) {
	e.Reset(nil)
	encoderPools[codec].Put(e)
}
