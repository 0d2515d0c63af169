package diskstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/cache"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a test's clock, moved by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects a store's log records for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// openTest opens a store on opts (Dir a new temporary directory if empty,
// MaxBytes 64 MiB if zero), closed when the test ends.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// settle waits until the writer has written or discarded every write.
func settle(t testing.TB, s *Store) {
	t.Helper()
	waitFor(t, "the writer to drain", s.idle)
}

// loaded waits until the loader is done.
func loaded(t testing.TB, s *Store) {
	t.Helper()
	waitFor(t, "the loader to finish", func() bool { return s.Load().Done })
}

// bodyFor returns n bytes derived from key, so a body read back can be
// checked against its key alone.
func bodyFor(key string, n int) []byte {
	b := make([]byte, 0, n+32)
	seed := sha256.Sum256([]byte(key))
	var ctr [8]byte
	for i := uint64(0); len(b) < n; i++ {
		binary.LittleEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(append(seed[:], ctr[:]...))
		b = append(b, sum[:]...)
	}
	return b[:n]
}

// entryFor returns an entry for key with an n-byte body derived from it
// and every metadata field set.
func entryFor(key string, n int) *cache.Entry {
	now := time.Date(2026, 12, 1, 11, 59, 58, 0, time.UTC)
	return &cache.Entry{
		Key:    key,
		Status: http.StatusOK,
		Header: http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Cache-Control": {"max-age=600", "stale-while-revalidate=30"},
			"Etag":          {`"` + key + `"`},
		},
		Body:                 bodyFor(key, n),
		RequestTime:          now,
		ResponseTime:         now.Add(time.Second),
		InitialAge:           3 * time.Second,
		Lifetime:             10 * time.Minute,
		StaleWhileRevalidate: 30 * time.Second,
		StaleIfError:         time.Minute,
		MustRevalidate:       true,
	}
}

// readBody reads e's body in full.
func readBody(t testing.TB, e *cache.Entry) []byte {
	t.Helper()
	b, err := io.ReadAll(e.BodyReader())
	if err != nil {
		t.Fatalf("reading the body of %q: %v", e.Key, err)
	}
	return b
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client *net.TCPConn) {
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

// objectFiles lists the files under dir/objects.
func objectFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join(dir, "objects"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files
}
