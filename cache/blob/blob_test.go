package blob

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newBlob(t testing.TB, data []byte) *Blob {
	t.Helper()
	b, err := New("test", data)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("blobs are not supported here: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestReadAndSeek(t *testing.T) {
	data := randomBytes(t, 100_000)
	b := newBlob(t, data)
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
	if _, err := b.NewReader().Seek(-1, io.SeekStart); err == nil {
		t.Error("a negative position was accepted")
	}
	if _, ok := any(b.NewReader()).(io.WriterTo); ok {
		t.Error("Reader has WriteTo: io.Copy would bypass the connection's ReadFrom (sendfile)")
	}
}

func TestSealed(t *testing.T) {
	b := newBlob(t, []byte("immutable"))
	// Reopening the memory file for writing and writing must both fail or
	// leave the contents as they were: the file is sealed.
	f, err := os.OpenFile("/proc/self/fd/"+itoa(int(b.f.Fd())), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("changed!!"))
		f.Close()
	}
	if err == nil {
		t.Fatal("wrote to a sealed blob")
	}
	got, _ := io.ReadAll(b.NewReader())
	if string(got) != "immutable" {
		t.Fatalf("contents = %q", got)
	}
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}

// TestSendTo sends blobs over a real TCP connection: whole, from an
// offset, a limited length, and a body many times the socket buffers (so
// sendfile must wait for the reader, EAGAIN).
func TestSendTo(t *testing.T) {
	for _, tt := range sendToCases(t) {
		t.Run(tt.name, func(t *testing.T) { checkSendTo(t, newBlob(t, tt.data), tt.data, tt.start, tt.n) })
	}
}

// sendToCase is a body and the part of it SendTo is asked for.
type sendToCase struct {
	name  string
	data  []byte
	start int64
	n     int64
}

// sendToCases are the SendTo cases of memory and file blobs: whole, from
// an offset, a limited length, and a body many times the socket buffers.
func sendToCases(t *testing.T) []sendToCase {
	big := randomBytes(t, 4<<20)
	return []sendToCase{
		{"small body whole", []byte("hello, sendfile"), 0, -1},
		{"from an offset", big[:1<<20], 1000, -1},
		{"limited length", big[:1<<20], 10, 5000},
		{"limit past the end stops at the end", big[:1<<20], 1<<20 - 100, 1 << 20},
		{"large body against small socket buffers", big, 0, -1},
	}
}

// checkSendTo sends b, whose body is data, from start for n bytes (the
// rest when n < 0) over a real TCP connection with small socket buffers
// (so sendfile must fill the socket and wait), and checks what arrives and
// the reader's offset after.
func checkSendTo(t *testing.T, b *Blob, data []byte, start, n int64) {
	t.Helper()
	server, client := tcpPair(t)
	client.SetReadBuffer(32 << 10)
	server.SetWriteBuffer(32 << 10)
	want := data[start:]
	if n >= 0 && n < int64(len(want)) {
		want = want[:n]
	}
	got := make(chan []byte, 1)
	go func() {
		buf, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- buf
	}()
	r := b.NewReader()
	r.Seek(start, io.SeekStart)
	server.SetWriteDeadline(time.Now().Add(30 * time.Second))
	sent, err := r.SendTo(server, n)
	if err != nil {
		t.Fatalf("SendTo: %v", err)
	}
	if sent != int64(len(want)) {
		t.Fatalf("SendTo sent %d bytes, want %d", sent, len(want))
	}
	if r.Remaining() != int64(len(data))-start-sent {
		t.Errorf("Remaining = %d after sending", r.Remaining())
	}
	if buf := <-got; !bytes.Equal(buf, want) {
		t.Errorf("received %d bytes, not the %d sent (or different bytes)", len(buf), len(want))
	}
}

// TestSendToClosedPeer reports a client that went away as an error.
func TestSendToClosedPeer(t *testing.T) {
	b := newBlob(t, randomBytes(t, 8<<20))
	server, client := tcpPair(t)
	server.SetWriteBuffer(4096)
	client.Close()
	server.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := b.NewReader().SendTo(server, -1); err == nil {
		t.Fatal("SendTo to a closed peer succeeded")
	}
}

// collectUntil collects garbage until cond holds (the blobs' cleanups
// close their files after a collection), failing after 10 s.
func collectUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			c, n := Open()
			t.Fatalf("timed out waiting for %s: %d blobs, %d bytes and %d file blobs open", what, c, n, OpenFiles())
		}
		time.Sleep(time.Millisecond) // polling interval for the cleanup goroutine
	}
}

func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

var _ syscall.Conn = (*net.TCPConn)(nil)

// TestLimitAndRelease checks the open-blob limit, and that a blob nobody
// refers to is closed by the garbage collector, its count and bytes
// returned.
func TestLimitAndRelease(t *testing.T) {
	newBlob(t, []byte("probe")) // skips where blobs are unsupported
	old := Limit()
	defer SetLimit(old)

	// The probe and the blobs of the tests before are garbage whose
	// cleanups may close them at any moment: wait until they have, so
	// that the counts below move only with this test's blobs.
	collectUntil(t, "the blobs of earlier tests closed", func() bool { c, _ := Open(); return c == 0 })
	count0, bytes0 := Open()
	SetLimit(count0 + 2)
	a, err := New("a", make([]byte, 1000))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New("b", make([]byte, 2000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New("c", []byte("x")); !errors.Is(err, ErrLimit) {
		t.Fatalf("New past the limit: err = %v, want ErrLimit", err)
	}
	if c, n := Open(); c < count0+2 || n < bytes0+3000 {
		t.Errorf("Open = %d blobs, %d bytes; want at least %d, %d", c, n, count0+2, bytes0+3000)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	a, b = nil, nil
	collectUntil(t, "the unreferenced blobs closed", func() bool { c, _ := Open(); return c <= count0 })
	SetLimit(0)
	if _, err := New("off", []byte("x")); !errors.Is(err, ErrLimit) {
		t.Errorf("New with blobs off: err = %v, want ErrLimit", err)
	}
}

// TestCollectsDroppedBlobs checks that blobs dropped beyond what the caches
// reserved are freed without anyone calling runtime.GC: New starts a
// collection when the excess passes a sixteenth of the reservations.
func TestCollectsDroppedBlobs(t *testing.T) {
	newBlob(t, []byte("probe"))
	runtime.GC()
	_, before := Open()
	release := Reserve(before + 1<<20)
	defer release()
	open.lastGC.Store(0)
	for range 40 { // 40 MiB dropped at once: far past the reservation
		New("dropped", make([]byte, 1<<20))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		New("trigger", make([]byte, 1)) // a New notices the excess
		if _, n := Open(); n < before+20<<20 {
			break
		}
		if time.Now().After(deadline) {
			_, n := Open()
			t.Fatalf("dropped blobs never collected: %d bytes open, %d before", n, before)
		}
		time.Sleep(10 * time.Millisecond) // polling interval; New allows one collection a second
	}
}

// TestNamesAndChunks checks that any cache key makes a blob (a variant's
// key holds NUL bytes, which memfd_create refuses in a name) and that a
// blob made from chunks holds them in order.
func TestNamesAndChunks(t *testing.T) {
	data := randomBytes(t, 200<<10)
	chunks := [][]byte{data[:64<<10], data[64<<10 : 128<<10], nil, data[128<<10:]}
	for _, name := range []string{
		"http://a.example/x\x00nonce\x00Accept-Encoding=zstd, br",
		strings.Repeat("long/", 100),
		"",
	} {
		b, err := NewChunks(name, chunks)
		if errors.Is(err, ErrUnsupported) {
			t.Skipf("blobs are not supported here: %v", err)
		}
		if err != nil {
			t.Fatalf("NewChunks(%q): %v", name, err)
		}
		got, err := io.ReadAll(b.NewReader())
		if err != nil || !bytes.Equal(got, data) || b.Size() != int64(len(data)) {
			t.Fatalf("NewChunks(%q): read %d bytes (%v), size %d, want %d", name, len(got), err, b.Size(), len(data))
		}
	}
}
