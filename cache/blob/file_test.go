package blob

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// windowFile writes prefix, data and suffix to a new file and returns it
// opened for reading, with data's offset.
func windowFile(t *testing.T, prefix, data, suffix []byte) (*os.File, int64) {
	t.Helper()
	return windowFileIn(t, t.TempDir(), prefix, data, suffix)
}

// windowFileIn is windowFile in dir.
func windowFileIn(t *testing.T, dir string, prefix, data, suffix []byte) (*os.File, int64) {
	t.Helper()
	path := filepath.Join(dir, "object")
	all := append(append(append([]byte(nil), prefix...), data...), suffix...)
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, int64(len(prefix))
}

// TestFromFileReads checks that a window of a file reads exactly its own
// bytes, never the file's bytes before or after it.
func TestFromFileReads(t *testing.T) {
	data := randomBytes(t, 300_000)
	prefix, suffix := bytes.Repeat([]byte("H"), 4133), bytes.Repeat([]byte("T"), 999)
	f, off := windowFile(t, prefix, data, suffix)
	b := FromFile(f, off, int64(len(data)))
	if b.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", b.Size())
	}
	tests := []struct {
		name   string
		offset int64
		whence int
		want   []byte
	}{
		{"whole body from the start", 0, io.SeekStart, data},
		{"from an offset", 4096, io.SeekStart, data[4096:]},
		{"relative to the end", -10, io.SeekEnd, data[len(data)-10:]},
		{"at the end reads nothing", 0, io.SeekEnd, nil},
		{"past the end reads nothing", 10, io.SeekEnd, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.NewReader()
			if _, err := r.Seek(tt.offset, tt.whence); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d bytes, want %d (or different bytes)", len(got), len(tt.want))
			}
		})
	}
	t.Run("ReadAt across the window's end stops at it", func(t *testing.T) {
		p := make([]byte, 100)
		n, err := b.ReadAt(p, int64(len(data))-40)
		if n != 40 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:n], data[len(data)-40:]) {
			t.Errorf("ReadAt = %d, %v", n, err)
		}
	})
	t.Run("negative offset is an error", func(t *testing.T) {
		if _, err := b.ReadAt(make([]byte, 10), -5); err == nil {
			t.Error("ReadAt(-5) read the bytes before the window")
		}
	})
}

// TestFromFileTruncated checks that a file cut short under its blob fails
// the reads instead of returning fewer bytes as if the body ended there.
func TestFromFileTruncated(t *testing.T) {
	data := randomBytes(t, 100_000)
	f, off := windowFile(t, []byte("header"), data, nil)
	b := FromFile(f, off, int64(len(data)))
	if err := os.Truncate(f.Name(), off+50_000); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(b.NewReader()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a truncated window: err = %v, want io.ErrUnexpectedEOF", err)
	}
	server, client := tcpPair(t)
	go io.Copy(io.Discard, client)
	server.SetWriteDeadline(time.Now().Add(30 * time.Second))
	n, err := b.NewReader().SendTo(server, -1)
	if err == nil {
		t.Errorf("SendTo of a truncated window sent %d bytes and no error", n)
	}
	if n > 50_000 {
		t.Errorf("SendTo sent %d bytes, more than the file holds", n)
	}
}

// TestFromFileSendTo sends windows of a file over a real TCP connection:
// whole, from an offset, a limited length, and many times the socket
// buffers.
func TestFromFileSendTo(t *testing.T) {
	tests := sendToCases(t)
	// The three ways sendfile is made: raw (the window is in the page
	// cache), through the scheduler (its pages were dropped, in a
	// directory whose file system drops them: droppableDir), and through the
	// scheduler because raw calls are off.
	modes := []struct {
		name        string
		drop, noRaw bool
	}{{"resident", false, false}, {"dropped from the page cache", true, false}, {"raw calls off", false, true}}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				if mode.drop {
					dir = droppableDir(t)
				}
				f, off := windowFileIn(t, dir, bytes.Repeat([]byte{0xAA}, 77), tt.data, bytes.Repeat([]byte{0xBB}, 5000))
				if mode.drop {
					dropPages(f)
				}
				if mode.noRaw {
					defer noRawSendfile()()
				}
				checkSendTo(t, FromFile(f, off, int64(len(tt.data))), tt.data, tt.start, tt.n)
			})
		}
	}
}

// TestFromFileAccounting checks that file blobs stay out of the memory
// accounting and that the garbage collector closes their files.
func TestFromFileAccounting(t *testing.T) {
	// Blobs of the tests before may still wait for their cleanup.
	collectUntil(t, "the file blobs of earlier tests closed", func() bool { return OpenFiles() == 0 })
	files0 := OpenFiles()
	count0, bytes0 := Open()
	var keep []*Blob
	for range 5 {
		f, off := windowFile(t, nil, make([]byte, 1<<20), nil)
		keep = append(keep, FromFile(f, off, 1<<20))
	}
	if n := OpenFiles(); n < files0+5 {
		t.Errorf("OpenFiles = %d, want at least %d", n, files0+5)
	}
	if c, n := Open(); c != count0 || n != bytes0 {
		t.Errorf("Open = %d blobs, %d bytes after FromFile; want %d, %d (memory only)", c, n, count0, bytes0)
	}
	runtime.KeepAlive(keep)
	keep = nil
	collectUntil(t, "the unreferenced file blobs closed", func() bool { return OpenFiles() <= files0 })
}
