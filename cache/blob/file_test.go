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
	path := filepath.Join(t.TempDir(), "object")
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
	big := randomBytes(t, 4<<20)
	tests := []struct {
		name  string
		data  []byte
		start int64
		n     int64
	}{
		{"small body whole", []byte("hello, sendfile"), 0, -1},
		{"from an offset", big[:1<<20], 1000, -1},
		{"limited length", big[:1<<20], 10, 5000},
		{"limit past the end stops at the end", big[:1<<20], 1<<20 - 100, 1 << 20},
		{"large body against small socket buffers", big, 0, -1},
	}
	// The three ways sendfile is made: raw (the window is in the page
	// cache), through the scheduler (its pages were dropped: on a file
	// system that honours POSIX_FADV_DONTNEED, not tmpfs), and through the
	// scheduler because raw calls are off.
	modes := []struct {
		name          string
		drop, nothing bool
	}{{"resident", false, false}, {"dropped from the page cache", true, false}, {"raw calls off", false, true}}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				f, off := windowFile(t, bytes.Repeat([]byte{0xAA}, 77), tt.data, bytes.Repeat([]byte{0xBB}, 5000))
				if mode.drop {
					dropPages(f)
				}
				if mode.nothing {
					defer noRawSendfile()()
				}
				b := FromFile(f, off, int64(len(tt.data)))
				server, client := tcpPair(t)
				client.SetReadBuffer(32 << 10)
				server.SetWriteBuffer(32 << 10)
				want := tt.data[tt.start:]
				if tt.n >= 0 && tt.n < int64(len(want)) {
					want = want[:tt.n]
				}
				got := make(chan []byte, 1)
				go func() {
					buf, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
					got <- buf
				}()
				r := b.NewReader()
				r.Seek(tt.start, io.SeekStart)
				server.SetWriteDeadline(time.Now().Add(30 * time.Second))
				n, err := r.SendTo(server, tt.n)
				if err != nil {
					t.Fatalf("SendTo: %v", err)
				}
				if n != int64(len(want)) {
					t.Fatalf("SendTo sent %d bytes, want %d", n, len(want))
				}
				if r.Remaining() != int64(len(tt.data))-tt.start-n {
					t.Errorf("Remaining = %d after sending", r.Remaining())
				}
				if buf := <-got; !bytes.Equal(buf, want) {
					t.Errorf("received %d bytes, not the %d sent (or different bytes)", len(buf), len(want))
				}
			})
		}
	}
}

// TestFromFileAccounting checks that file blobs stay out of the memory
// accounting and that the garbage collector closes their files.
func TestFromFileAccounting(t *testing.T) {
	// Blobs of the tests before may still wait for their cleanup.
	deadline := time.Now().Add(10 * time.Second)
	for OpenFiles() > 0 {
		runtime.GC()
		if time.Now().After(deadline) {
			t.Fatalf("file blobs of earlier tests still open: %d", OpenFiles())
		}
		time.Sleep(time.Millisecond) // polling interval for the cleanup goroutine
	}
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
	deadline = time.Now().Add(10 * time.Second)
	for OpenFiles() > files0 {
		runtime.GC()
		if time.Now().After(deadline) {
			t.Fatalf("unreferenced file blobs still open: %d (before: %d)", OpenFiles(), files0)
		}
		time.Sleep(time.Millisecond) // polling interval for the cleanup goroutine
	}
}
