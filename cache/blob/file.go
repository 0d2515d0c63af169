package blob

import (
	"os"
	"runtime"
	"sync/atomic"
)

// files counts the blobs made by FromFile whose files are still open.
var files atomic.Int64

// FromFile returns a Blob that is the window [off, off+size) of f, an
// ordinary file opened for reading whose bytes in that window never change
// (a disk cache writes a file whole, then renames it into place). The
// Blob takes f over: f is closed by the garbage collector once no Blob or
// Reader refers to it, as a memory file is, so the caller must not close
// it, nor give it to FromFile twice. Unlinking the file's name meanwhile
// is fine: readers keep the file open.
//
// Such a blob holds no process memory (the kernel's page cache holds its
// pages), so it counts neither in Open nor against Limit or Reserve;
// OpenFiles counts it. Reads and sendfile honour the window; if the file
// turns out shorter than the window, reads fail with io.ErrUnexpectedEOF
// and SendTo with an error, never with another file's bytes.
func FromFile(f *os.File, off, size int64) *Blob {
	b := &Blob{f: f, off: max(off, 0), size: max(size, 0), disk: true}
	files.Add(1)
	runtime.AddCleanup(b, closeWindowFile, f)
	return b
}

func closeWindowFile(f *os.File) {
	f.Close()
	files.Add(-1)
}

// OpenFiles reports how many blobs made by FromFile have their files open,
// including blobs no longer referenced whose files the next garbage
// collection closes.
func OpenFiles() int64 { return files.Load() }
