package diskstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
)

// writeBuffer is the writer's buffer: the most one write system call
// takes.
const writeBuffer = 256 << 10

var (
	// errStopped ends a write abandoned because the store is closing.
	errStopped = errors.New("diskstore: closing")
	// errSource is wrapped by failures to read the entry's own body,
	// which say nothing about the disk.
	errSource = errors.New("diskstore: reading the entry's body")
)

// tmpSeq numbers temporary files (tmp is emptied at Open, and one store
// uses a directory at a time).
var tmpSeq atomic.Uint64

// runWriter writes the queued entries, one at a time.
func (s *Store) runWriter() {
	defer s.wg.Done()
	buf := make([]byte, writeBuffer)
	p := pacer{rate: s.opts.MaxWriteRate, stop: s.stop}
	// While a full file system holds the capacity below MaxBytes, the
	// writer looks at the free space every SpaceCheckInterval (checkSpace).
	var check *time.Ticker
	var checkC <-chan time.Time
	defer func() {
		if check != nil {
			check.Stop()
		}
	}()
	for {
		if s.space.below != (check != nil) {
			if s.space.below {
				check = time.NewTicker(s.opts.SpaceCheckInterval)
				checkC = check.C
			} else {
				check.Stop()
				check, checkC = nil, nil
			}
		}
		select {
		case <-checkC:
			s.checkSpace()
		case <-s.stop:
			for { // discard what is queued
				select {
				case w := <-s.queue:
					s.queuedBytes.Add(-w.cost)
					s.unwritten.Add(-1)
				default:
					return
				}
			}
		case w := <-s.queue:
			s.queuedBytes.Add(-w.cost)
			s.writeOne(w, buf, &p)
			s.unwritten.Add(-1)
		}
	}
}

// writeOne writes w to a temporary file and renames it into place, unless
// a Delete or a newer Set of its key came after it.
func (s *Store) writeOne(w *write, buf []byte, p *pacer) {
	key := w.e.Key
	sh := s.shardOf(w.hash)
	sh.mu.RLock()
	current := sh.pending[key] == w
	sh.mu.RUnlock()
	if !current {
		s.c.discarded.Add(1)
		return
	}
	if s.failed.Load() {
		s.abandon(sh, w)
		return
	}
	start := time.Now()
	tmp, size, err := s.writeTmp(w, buf, p)
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		switch {
		case errors.Is(err, errStopped):
			return
		case errors.Is(err, errSource):
			s.c.writeErrors.Add(1)
			s.log.Warn("diskstore: entry not written", "key", key, "err", err)
		case isNoSpace(err):
			s.c.writeErrors.Add(1)
			s.noSpace(size, err)
		default:
			s.c.writeErrors.Add(1)
			s.ioError("write", err)
		}
		s.abandon(sh, w)
		return
	}
	s.publish(sh, w, tmp, size, start)
}

// abandon drops w, not written, if it is still the key's newest write.
func (s *Store) abandon(sh *shard, w *write) {
	sh.mu.Lock()
	current := sh.pending[w.e.Key] == w
	if current {
		delete(sh.pending, w.e.Key)
	}
	sh.mu.Unlock()
	if current {
		s.c.drops.Add(1)
		s.removed(w.e)
	} else {
		s.c.discarded.Add(1)
	}
}

// publish renames tmp, w's complete file of size bytes, into place and
// indexes it, if w is still its key's newest write; otherwise discards it.
func (s *Store) publish(sh *shard, w *write, tmp string, size int64, start time.Time) {
	key := w.e.Key
	final := s.path(fileName(key))
	sh.mu.Lock()
	if sh.pending[key] != w { // a Delete or a newer Set came after it
		sh.mu.Unlock()
		os.Remove(tmp)
		s.c.discarded.Add(1)
		return
	}
	delete(sh.pending, key)
	s.pathMu.Lock()
	err := s.rename(tmp, final)
	s.pathMu.Unlock()
	if err != nil {
		sh.mu.Unlock()
		os.Remove(tmp)
		s.c.writeErrors.Add(1)
		s.c.drops.Add(1)
		if isNoSpace(err) {
			s.noSpace(size, err)
		} else {
			s.ioError("rename", err)
		}
		s.removed(w.e)
		return
	}
	old := sh.items[key]
	it := newItem(key, w.hash, size, w.expires)
	it.verified.Store(true)
	sh.items[key] = it
	sh.unlinks++ // the old file, if any, is gone from its name
	if old != nil {
		s.opens.drop(old)
	}
	s.polMu.Lock()
	if old != nil {
		s.pol.remove(&old.node)
	}
	victims := s.pol.add(&it.node, s.now().UnixNano(), nil)
	s.polMu.Unlock()
	sh.mu.Unlock()
	if s.opts.Fsync {
		syncDir(filepath.Dir(final))
	}
	s.c.writes.Add(1)
	s.c.bytesWritten.Add(uint64(size))
	s.writeLat.Observe(time.Since(start))
	s.evictVictims(victims)
}

// rename renames tmp to final, making final's directory if it is missing.
func (s *Store) rename(tmp, final string) error {
	if err := s.injected("rename"); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: err}
	}
	err := os.Rename(tmp, final)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return err
		}
		err = os.Rename(tmp, final)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeTmp writes w's file to a new temporary file and returns its path
// (empty if none was made) and length.
func (s *Store) writeTmp(w *write, buf []byte, p *pacer) (string, int64, error) {
	m := metaOf(w.e, w.expires)
	mb, err := encodeMeta(&m)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %v", errSource, err)
	}
	bodyLen := w.e.BodySize()
	bodyOff, flags := bodyOffset(len(mb), bodyLen)
	size := bodyOff + bodyLen
	if err := s.injected("write"); err != nil {
		return "", size, &os.PathError{Op: "write", Path: s.tmp, Err: err}
	}
	tmp := filepath.Join(s.tmp, strconv.FormatUint(tmpSeq.Add(1), 36))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", size, err
	}
	fw := fileWriter{f: f, buf: buf[:0], p: p}
	fw.write(make([]byte, headerSize)) // the header goes in last
	fw.write(mb)
	fw.write(make([]byte, bodyOff-headerSize-int64(len(mb)))) // the padding to an aligned body
	crc, n, err := fw.body(w.e)
	if err == nil {
		err = fw.flush()
	}
	if err == nil && n != bodyLen {
		err = fmt.Errorf("%w: %d bytes, the entry says %d", errSource, n, bodyLen)
	}
	if err == nil {
		hdr := appendHeader(make([]byte, 0, headerSize), flags, len(mb), crc32.Checksum(mb, castagnoli), bodyLen, crc)
		_, err = f.WriteAt(hdr, 0)
	}
	if err == nil && s.opts.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tmp, size, err
}

// fileWriter writes a file through a buffer, paced.
type fileWriter struct {
	f   *os.File
	buf []byte
	p   *pacer
	err error
}

func (w *fileWriter) write(b []byte) {
	for len(b) > 0 && w.err == nil {
		n := copy(w.buf[len(w.buf):cap(w.buf)], b)
		w.buf = w.buf[:len(w.buf)+n]
		b = b[n:]
		if len(w.buf) == cap(w.buf) {
			w.err = w.flush()
		}
	}
}

func (w *fileWriter) flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	if err := w.p.wait(int64(len(w.buf))); err != nil {
		return err
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// body writes e's body and returns its checksum and length.
func (w *fileWriter) body(e *cache.Entry) (uint32, int64, error) {
	if e.Blob == nil {
		w.write(e.Body)
		return crc32.Checksum(e.Body, castagnoli), int64(len(e.Body)), w.err
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	chunk := *bp
	r := e.Blob.NewReader()
	var crc uint32
	var n int64
	for w.err == nil {
		k, err := r.Read(chunk)
		crc = crc32.Update(crc, castagnoli, chunk[:k])
		n += int64(k)
		w.write(chunk[:k])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, n, fmt.Errorf("%w: %v", errSource, err)
		}
	}
	return crc, n, w.err
}

// pacer holds writes to a rate in bytes per second (none if zero),
// allowing a burst of at most a second's worth after an idle spell.
type pacer struct {
	rate  int64
	stop  <-chan struct{}
	start time.Time
	sent  int64
}

// wait returns once n more bytes may be written, or errStopped.
func (p *pacer) wait(n int64) error {
	select {
	case <-p.stop:
		return errStopped
	default:
	}
	if p.rate <= 0 {
		return nil
	}
	now := time.Now()
	if due := p.start.Add(p.duration(p.sent)); p.start.IsZero() || now.Sub(due) > time.Second {
		p.start, p.sent = now, 0
	}
	p.sent += n
	d := p.start.Add(p.duration(p.sent)).Sub(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.stop:
		return errStopped
	}
}

func (p *pacer) duration(bytes int64) time.Duration {
	return time.Duration(float64(bytes) / float64(p.rate) * float64(time.Second))
}
