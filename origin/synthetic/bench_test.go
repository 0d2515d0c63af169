package synthetic

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that drops the body, so the benchmarks
// measure the origin and not a recorder's buffer.
type discardWriter struct {
	h    http.Header
	code int
	n    int64
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

var benchSizes = []struct {
	name string
	size int64
}{{"1k", 1 << 10}, {"100k", 100 << 10}}

func BenchmarkHandler(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			handler := s.Handler()
			req := httptest.NewRequest(http.MethodGet, "/obj/x?size="+bs.name, nil)
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(bs.size)
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.n = 0
				handler.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK || w.n != bs.size {
				b.Fatalf("status %d, %d bytes", w.code, w.n)
			}
		})
	}
}

func BenchmarkHandlerParallel(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			handler := s.Handler()
			b.SetBytes(bs.size)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/obj/x?size="+bs.name, nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					handler.ServeHTTP(w, req)
				}
			})
		})
	}
}

// BenchmarkContent is the raw generation speed, 32 KiB at a time.
func BenchmarkContent(b *testing.B) {
	r := Content("x", 1<<40)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if _, err := r.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(buf))
	}
}

func BenchmarkVerify(b *testing.B) {
	body, err := io.ReadAll(Content("x", 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify("x", body); err != nil {
			b.Fatal(err)
		}
	}
}
