package diskstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
)

// firstRead is how much of a file one read takes at first: the header and,
// usually, all the metadata.
const firstRead = 4096

// bufs are the buffers body checksums are computed through.
var bufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// injected returns the error a test's fault hook makes op fail with.
func (s *Store) injected(op string) error {
	if f := s.fault.Load(); f != nil {
		return (*f)(op)
	}
	return nil
}

// openFile opens path for reading, without access-time updates.
func (s *Store) openFile(path string) (*os.File, error) {
	if err := s.injected("open"); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|noatime, 0)
	if noatime != 0 && errors.Is(err, syscall.EPERM) {
		return os.Open(path) // a file of another owner
	}
	return f, err
}

// readFile reads and checks f's header and metadata, and the body's
// checksum too when verifyBody. name is the file's name; key, when not
// empty, the key it must hold. A damaged file is errCorrupt; any other
// error is the device's.
func (s *Store) readFile(f *os.File, name, key string, verifyBody bool) (header, meta, os.FileInfo, error) {
	var h header
	var m meta
	if err := s.injected("read"); err != nil {
		return h, m, nil, &os.PathError{Op: "read", Path: f.Name(), Err: err}
	}
	buf := make([]byte, firstRead)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return h, m, nil, err
	}
	h, err = decodeHeader(buf[:n])
	if err != nil {
		return h, m, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return h, m, nil, err
	}
	if fi.Size() != h.fileSize {
		return h, m, nil, fmt.Errorf("%w: file of %d bytes, header says %d", errCorrupt, fi.Size(), h.fileSize)
	}
	end := headerSize + int(h.metaLen)
	mb := buf[headerSize:min(end, n)]
	if end > n {
		mb = make([]byte, h.metaLen)
		if _, err := f.ReadAt(mb, headerSize); err != nil {
			if errors.Is(err, io.EOF) {
				return h, m, nil, fmt.Errorf("%w: metadata cut short", errCorrupt)
			}
			return h, m, nil, err
		}
	}
	if m, err = decodeMeta(h, mb); err != nil {
		return h, m, nil, err
	}
	if key != "" && m.Key != key {
		return h, m, nil, fmt.Errorf("%w: the file holds another key", errCorrupt)
	}
	if fileName(m.Key) != name {
		return h, m, nil, fmt.Errorf("%w: the file's key does not hash to its name", errCorrupt)
	}
	if verifyBody && h.bodyLen > 0 {
		if err := checkBody(f, h.bodyOff, h); err != nil {
			return h, m, nil, err
		}
	}
	return h, m, fi, nil
}

// checkBody reads the body once, through a bounded buffer, and compares
// its checksum with the header's.
func checkBody(f *os.File, off int64, h header) error {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	var crc uint32
	for done := int64(0); done < h.bodyLen; {
		p := buf[:min(int64(len(buf)), h.bodyLen-done)]
		n, err := f.ReadAt(p, off+done)
		crc = crc32.Update(crc, castagnoli, p[:n])
		done += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && done == h.bodyLen) {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: body cut short", errCorrupt)
			}
			return err
		}
	}
	if crc != h.bodyCRC {
		return fmt.Errorf("%w: body checksum mismatch", errCorrupt)
	}
	return nil
}

// entryOf makes the entry served from f: the metadata, and the body as a
// window of f, which the entry then owns. An empty body needs no file.
func entryOf(f *os.File, h header, m *meta) *cache.Entry {
	e := m.entry()
	if h.bodyLen > 0 {
		e.Blob = blob.FromFile(f, h.bodyOff, h.bodyLen)
	} else {
		f.Close()
	}
	return e
}

// prepared gives e, just made from its file and not yet shared, what
// Options.Prepare derives from it.
func (s *Store) prepared(e *cache.Entry) *cache.Entry {
	if s.opts.Prepare != nil {
		e.Prepared = s.opts.Prepare(e)
	}
	return e
}

// openItem opens and checks the file of it, an indexed entry, and keeps
// the entry in the open set.
func (s *Store) openItem(sh *shard, it *item) (*cache.Entry, bool) {
	start := time.Now()
	name := fileName(it.key)
	f, err := s.openFile(s.path(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) { // removed by hand
			s.c.notFound.Add(1)
			if s.unindex(sh, it, false) {
				s.removed(&cache.Entry{Key: it.key})
			}
			return nil, false
		}
		s.readFailed("open", err)
		return nil, false
	}
	h, m, _, err := s.readFile(f, name, it.key, !it.verified.Load())
	if err != nil {
		f.Close()
		if errors.Is(err, errCorrupt) {
			s.dropCorrupt(sh, it, err)
		} else {
			s.readFailed("read", err)
		}
		return nil, false
	}
	it.verified.Store(true)
	e := s.prepared(entryOf(f, h, &m))
	s.readLat.Observe(time.Since(start))
	s.collectFiles()
	return s.opens.add(it, e), true
}

// openUnindexed serves key, not indexed yet while the loader runs, from
// its file if there is one: checked in full, asked about (keep) and
// indexed.
func (s *Store) openUnindexed(sh *shard, key string, h uint64, now int64) (*cache.Entry, bool) {
	name := fileName(key)
	path := s.path(name)
	sh.mu.RLock()
	unlinks := sh.unlinks
	_, doomed := sh.doomed[key]
	sh.mu.RUnlock()
	if doomed {
		return nil, false
	}
	start := time.Now()
	f, err := s.openFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.readFailed("open", err)
		}
		return nil, false
	}
	hd, m, fi, err := s.readFile(f, name, key, true)
	if err != nil {
		if errors.Is(err, errCorrupt) {
			if fi, serr := f.Stat(); serr == nil && s.removeFile(sh, key, path, fi) {
				s.c.corrupt.Add(1)
				s.log.Warn("diskstore: corrupt file removed", "file", path, "err", err)
			}
		} else {
			s.readFailed("read", err)
		}
		f.Close()
		return nil, false
	}
	if m.Expires != 0 && now >= m.Expires {
		s.removeFile(sh, key, path, fi)
		f.Close()
		return nil, false
	}
	cur, it := s.adopt(sh, key, h, path, hd, &m, fi, unlinks, now)
	if it == nil {
		f.Close()
		if cur == nil {
			return nil, false
		}
		if e := cur.open.Load(); e != nil {
			return e, true
		}
		return s.openItem(sh, cur)
	}
	it.verified.Store(true)
	it.hit()
	e := s.prepared(entryOf(f, hd, &m))
	s.readLat.Observe(time.Since(start))
	s.collectFiles()
	return s.opens.add(it, e), true
}

// adopt indexes key's file from an earlier run, which the caller has read
// (after seeing unlinks files of the shard unlinked), unless the index has
// the key already (returned as cur), the file has gone meanwhile, or keep
// declines it (then it is unlinked). It returns the new item.
func (s *Store) adopt(sh *shard, key string, hash uint64, path string, hd header, m *meta, fi os.FileInfo, unlinks uint64, now int64) (cur, it *item) {
	sh.mu.Lock()
	if cur := sh.items[key]; cur != nil {
		sh.mu.Unlock()
		return cur, nil
	}
	if _, doomed := sh.doomed[key]; doomed {
		sh.mu.Unlock()
		return nil, nil
	}
	if sh.unlinks != unlinks { // maybe this very file
		if now, err := os.Stat(path); err != nil || !os.SameFile(now, fi) {
			sh.mu.Unlock()
			return nil, nil
		}
	}
	if !s.keeps(m.entry()) {
		err := os.Remove(path)
		sh.unlinks++
		sh.mu.Unlock()
		s.progress.dropped.Add(1)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.ioError("unlink", err)
		}
		return nil, nil
	}
	it = newItem(key, hash, hd.fileSize, m.Expires)
	sh.items[key] = it
	s.progress.loaded.Add(1)
	s.polMu.Lock()
	victims := s.pol.addMain(&it.node, now, nil)
	s.polMu.Unlock()
	sh.mu.Unlock()
	s.evictVictims(victims)
	return nil, it
}

// dropCorrupt removes it, whose file is damaged, from the index and
// unlinks the file.
func (s *Store) dropCorrupt(sh *shard, it *item, cause error) {
	s.c.corrupt.Add(1)
	path := s.path(fileName(it.key))
	s.log.Warn("diskstore: corrupt file removed", "file", path, "err", cause)
	sh.mu.Lock()
	ok := sh.items[it.key] == it
	var err error
	if ok {
		delete(sh.items, it.key)
		s.opens.drop(it)
		s.polMu.Lock()
		s.pol.remove(&it.node)
		s.polMu.Unlock()
		err = os.Remove(path)
		sh.unlinks++
	}
	sh.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.ioError("unlink", err)
	}
	if ok {
		s.removed(&cache.Entry{Key: it.key})
	}
}

// removeIfSame unlinks path if it is still the file fi describes (a file
// not indexed: damaged, expired, of an unknown key), and reports whether
// it did. The writer renames under pathMu, so no newer file can take the
// name meanwhile.
func (s *Store) removeIfSame(path string, fi os.FileInfo) bool {
	s.pathMu.Lock()
	defer s.pathMu.Unlock()
	cur, err := os.Stat(path)
	if err != nil || !os.SameFile(cur, fi) {
		return false
	}
	if err := os.Remove(path); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.ioError("unlink", err)
		}
		return false
	}
	return true
}

// removeFile unlinks key's file path if it is still the file fi describes
// (damaged or expired, found by a Get before the loader indexed it), and
// drops the key from the index if the loader indexed that file meanwhile.
// It reports whether it unlinked the file.
func (s *Store) removeFile(sh *shard, key, path string, fi os.FileInfo) bool {
	sh.mu.Lock()
	if !s.removeIfSame(path, fi) {
		sh.mu.Unlock()
		return false
	}
	sh.unlinks++
	it := sh.items[key]
	if it != nil {
		delete(sh.items, key)
		s.opens.drop(it)
		s.polMu.Lock()
		s.pol.remove(&it.node)
		s.polMu.Unlock()
	}
	sh.mu.Unlock()
	if it != nil {
		s.removed(&cache.Entry{Key: key})
	}
	return true
}

// readFailed counts a failed read and handles its error.
func (s *Store) readFailed(op string, err error) {
	s.c.readErrors.Add(1)
	s.ioError(op, err)
}

// lastCollect is when collectFiles last started a garbage collection
// (Unix nanoseconds), for every store of the process.
var lastCollect atomic.Int64

// collectFiles starts a garbage collection, at most once a second, when
// the file blobs open in the process are more than twice the open set's
// bound (and some): the entries dropped from the open sets hold their
// files until the collector closes them.
func (s *Store) collectFiles() {
	if blob.OpenFiles() > int64(2*s.opts.OpenFiles+256) {
		collect()
	}
}

// collect starts a garbage collection, unless one was started less than a
// second ago.
func collect() {
	now, last := time.Now().UnixNano(), lastCollect.Load()
	if now-last < int64(time.Second) || !lastCollect.CompareAndSwap(last, now) {
		return
	}
	go runtime.GC()
}

// isNoSpace reports whether err is a full file system or quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isFatal reports whether err says the device or file system is failing,
// rather than something passing (a file gone, too many open files).
func isFatal(err error) bool {
	for _, e := range fatalErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// doomed is a file the deleter unlinks: an evicted or expired entry's.
type doomed struct {
	it     *item
	e      *cache.Entry // the open entry, if it was, for the removal notice
	notify bool
}

// deleter unlinks evicted and expired files off the request path.
type deleter struct {
	mu    sync.Mutex
	q     []doomed
	wake  chan struct{}
	bytes atomic.Int64 // of the files queued or being unlinked, in blocks
	// unlinking is read-held by each unlink from the file's removal to
	// the decrement of bytes, and write-held while the writer measures
	// the directory's room (measureRoom), so that a file counts either in
	// bytes or in the file system's free space: never in neither.
	unlinking sync.RWMutex
}

func (d *deleter) init() { d.wake = make(chan struct{}, 1) }

// push queues d for unlinking; the shard's doomed set is updated by the
// caller under the shard's lock.
func (d *deleter) push(x doomed) {
	d.bytes.Add(x.it.node.size)
	d.mu.Lock()
	d.q = append(d.q, x)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (s *Store) runDeleter() {
	defer s.wg.Done()
	for {
		select {
		case <-s.del.wake:
			s.unlinkQueued()
		case <-s.stop:
			s.unlinkQueued()
			return
		}
	}
}

// unlinkQueued unlinks the queued files and reports their removal, until
// the queue is empty. It takes one file off the queue at a time, so that
// the deleter and a writer that ran out of space (noSpace) can both call
// it and share the work: each file is unlinked once, by one of them, and
// a caller returns once no file is left that the other has not taken.
func (s *Store) unlinkQueued() {
	for {
		s.del.mu.Lock()
		if len(s.del.q) == 0 {
			s.del.q = nil // let the backing array go
			s.del.mu.Unlock()
			return
		}
		d := s.del.q[0]
		s.del.q[0] = doomed{}
		s.del.q = s.del.q[1:]
		s.del.mu.Unlock()
		s.unlinkDoomed(d)
	}
}

// unlinkDoomed unlinks d's file, unless a newer file of its key took its
// name, and reports its removal. Safe to call concurrently for different
// files (the shard's lock orders them).
func (s *Store) unlinkDoomed(d doomed) {
	s.injected("unlink") // tests slow the deleter here
	it := d.it
	name := fileName(it.key)
	path := s.path(name)
	e := d.e
	if e == nil && d.notify && s.onRemove.Load() != nil {
		e = s.readBack(path, name, it.key)
	}
	sh := s.shardOf(it.hash)
	s.del.unlinking.RLock()
	sh.mu.Lock()
	if sh.doomed[it.key] == it {
		delete(sh.doomed, it.key)
	}
	// A newer file of the key, renamed over this one, stays.
	replaced := sh.items[it.key] != nil
	var err error
	if !replaced {
		err = os.Remove(path)
		sh.unlinks++
	}
	sh.mu.Unlock()
	s.del.bytes.Add(-it.node.size)
	s.del.unlinking.RUnlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.ioError("unlink", err)
	}
	if !replaced && d.notify {
		s.removed(e)
	}
}

// readBack reads the metadata of a file about to be unlinked, for the
// removal notice; only the key when it cannot.
func (s *Store) readBack(path, name, key string) *cache.Entry {
	f, err := os.Open(path)
	if err != nil {
		return &cache.Entry{Key: key}
	}
	defer f.Close()
	_, m, _, err := s.readFile(f, name, key, false)
	if err != nil {
		return &cache.Entry{Key: key}
	}
	return m.entry()
}

// openSet is the bounded set of open entries (checked, their file open),
// so a hot entry is served without a system call. It evicts with CLOCK:
// the hand passes over entries hit since its last pass, clearing their
// bit, and drops the first one that was not.
type openSet struct {
	mu   sync.Mutex
	ring []*item
	hand int
	n    atomic.Int64
}

func (o *openSet) init(n int) { o.ring = make([]*item, max(n, 1)) }

// add keeps e open as it's entry, unless it is gone from the index or has
// an open entry already (returned instead).
func (o *openSet) add(it *item, e *cache.Entry) *cache.Entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	if it.gone {
		return e
	}
	if cur := it.open.Load(); cur != nil {
		return cur
	}
	for {
		v := o.ring[o.hand]
		if v == nil {
			break
		}
		if v.ref.Load() {
			v.ref.Store(false)
			o.hand = (o.hand + 1) % len(o.ring)
			continue
		}
		v.open.Store(nil)
		v.slot = -1
		o.n.Add(-1)
		break
	}
	o.ring[o.hand] = it
	it.slot = o.hand
	it.open.Store(e)
	o.hand = (o.hand + 1) % len(o.ring)
	o.n.Add(1)
	return e
}

// drop forgets it, removed from the index.
func (o *openSet) drop(it *item) {
	o.mu.Lock()
	it.gone = true
	if it.slot >= 0 {
		o.ring[it.slot] = nil
		it.slot = -1
		o.n.Add(-1)
	}
	it.open.Store(nil)
	o.mu.Unlock()
}

// clear forgets every entry.
func (o *openSet) clear() {
	o.mu.Lock()
	for i, it := range o.ring {
		if it != nil {
			it.open.Store(nil)
			it.slot = -1
			o.ring[i] = nil
		}
	}
	o.n.Store(0)
	o.mu.Unlock()
}
