// Package blob keeps large response bodies outside the Go heap, in sealed
// anonymous memory files (Linux memfd), so that a PoP can hand a stored
// body to a client's TCP socket with sendfile(2): the kernel passes the
// body's pages to the socket without copying them through the process.
//
// A Blob is immutable: its file is sealed against writes, growth and
// shrinking once filled. Its lifetime is the Go garbage collector's: a
// Blob's file is closed, and its memory given back, when no Entry or reader
// refers to it any more. So a cache may drop an entry while a slow client
// is still being sent its body, with no reference counts to get wrong; the
// price is that memory of evicted bodies is returned at the next garbage
// collection rather than at once (see Open), which Reserve bounds.
//
// Where memfd is missing (not Linux) New returns ErrUnsupported, and
// callers keep bodies on the heap.
//
// A Blob can also be a window of an ordinary read-only file (FromFile): a
// disk cache's stored body, sent with sendfile the same way, its pages
// cached by the kernel's page cache. Such a Blob holds no process memory,
// so it is left out of Open and Reserve; its file is closed by the garbage
// collector all the same.
package blob

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrUnsupported is returned by New where bodies cannot be kept in memory
// files: not Linux, or the kernel refuses memfd.
var ErrUnsupported = errors.New("blob: memory files are not supported here")

// ErrLimit is returned by New when Limit blobs are open already.
var ErrLimit = errors.New("blob: open blob limit reached")

// Blob is a response body held in a sealed memory file. It is safe for
// concurrent use: every read names its own offset.
type Blob struct {
	f    *os.File
	off  int64 // where the body starts in f: 0 but for FromFile
	size int64
	// disk: a window of an ordinary file (FromFile), whose pages may have
	// to be read from a disk; a memory file's never do.
	disk bool
	// residentAt is when every page of a disk window was last found in the
	// page cache (time since epoch, monotonic), or 0 (blob_linux.go).
	residentAt atomic.Int64
}

// open counts the blobs whose files are open, and their bytes.
var open struct {
	count atomic.Int64
	bytes atomic.Int64
	limit atomic.Int64
	// reserved is the sum of the caches' Reserve calls; lastGC is when New
	// last started a collection (UnixNano).
	reserved atomic.Int64
	lastGC   atomic.Int64
}

// Reserve declares that a cache may hold up to n bytes of blobs, and
// returns the function that takes the declaration back. When the open
// blobs exceed what the caches declared by a sixteenth, the excess is bodies
// the caches dropped that no garbage collection has freed yet: New then
// starts a collection (at most one a second), so their memory comes back
// without waiting for the (small) Go heap to grow.
func Reserve(n int64) (release func()) {
	open.reserved.Add(n)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			open.reserved.Add(-n)
		}
	}
}

// collectIfOver starts a garbage collection when the open blobs exceed the
// reservations by a sixteenth, at most once a second.
func collectIfOver() {
	reserved := open.reserved.Load()
	if reserved <= 0 || open.bytes.Load() <= reserved+reserved/16 {
		return
	}
	now, last := time.Now().UnixNano(), open.lastGC.Load()
	if now-last < int64(time.Second) || !open.lastGC.CompareAndSwap(last, now) {
		return
	}
	go runtime.GC()
}

func init() { open.limit.Store(defaultLimit()) }

// SetLimit sets how many blobs may be open at once (each holds a file
// descriptor); past it New returns ErrLimit. n <= 0 turns blobs off.
func SetLimit(n int64) { open.limit.Store(max(n, 0)) }

// Limit is how many blobs may be open at once: by default half of the
// process's file descriptor limit, leaving the other half for sockets.
func Limit() int64 { return open.limit.Load() }

// Open reports how many blobs are open and their bytes. It includes blobs
// no longer referenced whose memory the next garbage collection returns.
func Open() (count, bytes int64) { return open.count.Load(), open.bytes.Load() }

// New copies data into a new sealed memory file. name is a label for
// debugging (it shows in /proc/PID/fd); the file's contents never change
// after New returns.
func New(name string, data []byte) (*Blob, error) {
	return NewChunks(name, [][]byte{data})
}

// NewChunks is New for a body held in pieces: the file holds the chunks'
// bytes one after another.
func NewChunks(name string, chunks [][]byte) (*Blob, error) {
	if n := open.count.Add(1); n > open.limit.Load() {
		open.count.Add(-1)
		return nil, ErrLimit
	}
	var size int64
	for _, c := range chunks {
		size += int64(len(c))
	}
	f, err := newFile(fileName(name), chunks)
	if err != nil {
		open.count.Add(-1)
		return nil, err
	}
	b := &Blob{f: f, size: size}
	open.bytes.Add(b.size)
	collectIfOver()
	// The file lives as long as the Blob: closed by the cleanup when the
	// Blob is unreachable, never while a reader holds the Blob.
	runtime.AddCleanup(b, closeFile, fileAndSize{f, b.size})
	return b, nil
}

// maxName is the longest name memfd_create accepts (249 bytes) less a
// margin.
const maxName = 200

// fileName makes a label safe for memfd_create: no NUL bytes (a variant's
// cache key has them; memfd_create would fail with EINVAL), no slashes
// (they read badly in /proc), and at most maxName bytes.
func fileName(name string) string {
	b := []byte(name)
	if len(b) > maxName {
		b = b[:maxName]
	}
	for i, c := range b {
		if c == 0 || c == '/' {
			b[i] = '|'
		}
	}
	return string(b)
}

// fileAndSize is what the cleanup of a Blob needs.
type fileAndSize struct {
	f    *os.File
	size int64
}

func closeFile(fs fileAndSize) {
	fs.f.Close()
	open.count.Add(-1)
	open.bytes.Add(-fs.size)
}

// Size is the body's length in bytes.
func (b *Blob) Size() int64 { return b.size }

// ReadAt reads len(p) bytes at off, as io.ReaderAt. A file that ends
// before the blob's last byte (a window of a file cut short under it) is
// io.ErrUnexpectedEOF.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blob: read: negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	var atEnd error
	if rest := b.size - off; int64(len(p)) > rest {
		p, atEnd = p[:rest], io.EOF
	}
	n, err := b.f.ReadAt(p, b.off+off)
	switch {
	case err == nil:
		return n, atEnd
	case errors.Is(err, io.EOF):
		return n, fmt.Errorf("blob: read: file ends %d bytes into a blob of %d: %w", off+int64(n), b.size, io.ErrUnexpectedEOF)
	default:
		return n, fmt.Errorf("blob: read: %w", err)
	}
}

// NewReader returns a reader of the whole body. It reads, seeks and reads
// at offsets; it deliberately has no WriteTo, so that io.Copy into an
// HTTP/1.1 response hands it to the connection's ReadFrom, where SendTo
// can send it with sendfile.
func (b *Blob) NewReader() *Reader { return &Reader{b: b} }

// Reader reads a Blob from an offset of its own. A Reader is not safe for
// concurrent use; a Blob may have many Readers.
type Reader struct {
	b   *Blob
	off int64
}

// Blob returns the blob r reads.
func (r *Reader) Blob() *Blob { return r.b }

// Read reads from the current offset, as io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.b.size {
		return 0, io.EOF
	}
	n, err := r.b.ReadAt(p, r.off)
	r.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads at off regardless of the current offset, as io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) { return r.b.ReadAt(p, off) }

// Seek sets the offset of the next Read, as io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.b.size
	default:
		return 0, errors.New("blob: seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("blob: seek: negative position")
	}
	r.off = offset
	return offset, nil
}

// Remaining is how many bytes are left to read.
func (r *Reader) Remaining() int64 { return max(r.b.size-r.off, 0) }
