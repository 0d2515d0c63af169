package pop

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/pop/fill"
)

// sliceSource is one slice as a request reads it: from a stored entry, or
// from the fill in flight for it.
type sliceSource struct {
	index int64
	entry *cache.Entry // stored
	f     *fetch       // or in flight
	rd    *fill.Reader
	pos   int64  // bytes of the slice taken from rd before pending
	rest  []byte // the last chunk from rd, from pos on
}

func (s *sliceSource) close() {
	if s != nil && s.rd != nil {
		s.rd.Detach()
		s.rd = nil
	}
}

// sliceReader is a sliced object as an io.ReadSeeker for http.ServeContent:
// it reads each slice from the store or its fill, and starts the fill of
// the next slice (up to limit) while it reads one. Used by one goroutine.
type sliceReader struct {
	p        *PoP
	svc      *service
	r        *http.Request
	obj      *sliceObject
	purgeSeq uint64
	limit    int64 // the last byte the response may need
	off      int64
	cur      *sliceSource
	next     *sliceSource // the fill ahead of cur
	probe    *sliceSource // the slice the request's own fill brought, until used
	err      error        // why a read failed
}

func (s *sliceReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.obj.size
	}
	if offset < 0 {
		return 0, errors.New("pop: seek before the start of a sliced object")
	}
	s.off = offset
	return offset, nil
}

func (s *sliceReader) Read(b []byte) (int, error) {
	if s.off >= s.obj.size {
		return 0, io.EOF
	}
	i := s.off / s.obj.slice
	if s.cur == nil || s.cur.index != i {
		if err := s.open(i); err != nil {
			s.err = err
			return 0, err
		}
	}
	n, err := s.read(b)
	if err != nil {
		s.err = err
		return n, err
	}
	s.off += int64(n)
	return n, nil
}

// read reads from the current slice at s.off.
func (s *sliceReader) read(b []byte) (int, error) {
	c := s.cur
	first, last := s.obj.bounds(c.index)
	at := s.off - first
	b = b[:min(int64(len(b)), last-s.off+1)]
	if c.entry != nil {
		if c.entry.Blob != nil {
			n, err := c.entry.Blob.ReadAt(b, at)
			if n > 0 {
				err = nil
			}
			return n, err
		}
		return copy(b, c.entry.Body[at:]), nil
	}
	if at < c.pos { // backwards within a slice in flight: read it again
		c.close()
		s.cur = nil
		if err := s.open(c.index); err != nil {
			return 0, err
		}
		c = s.cur
	}
	for c.pos+int64(len(c.rest)) <= at {
		c.pos += int64(len(c.rest))
		c.rest = nil
		chunk, done, err := c.rd.Next(s.r.Context())
		if err != nil {
			return 0, err
		}
		if done {
			return 0, io.ErrUnexpectedEOF
		}
		c.rest = chunk
	}
	return copy(b, c.rest[at-c.pos:]), nil
}

// open makes slice i the current one and starts the fill of the next.
func (s *sliceReader) open(i int64) error {
	s.cur.close()
	s.cur = nil
	var src *sliceSource
	switch {
	case s.next != nil && s.next.index == i:
		src, s.next = s.next, nil
	case s.probe != nil && s.probe.index == i:
		src, s.probe = s.probe, nil
	default:
		src = s.find(i)
	}
	s.cur = src
	if src == nil {
		return errBadSlice
	}
	if s.next != nil && s.next.index != i+1 {
		s.next.close()
		s.next = nil
	}
	if s.next == nil && i+1 < s.obj.count() && (i+1)*s.obj.slice <= s.limit {
		s.next = s.find(i + 1)
	}
	if src.f != nil {
		select {
		case <-src.f.Ready():
		case <-s.r.Context().Done():
			return s.r.Context().Err()
		}
		if src.f.err != nil {
			return src.f.err
		}
	}
	return nil
}

// find returns slice i from the store, or joins its fill.
func (s *sliceReader) find(i int64) *sliceSource {
	if e, ok := s.p.store.Get(s.obj.sliceKey(i)); ok {
		first, last := s.obj.bounds(i)
		if e.BodySize() == last-first+1 {
			s.svc.slices.hits.Add(1)
			return &sliceSource{index: i, entry: e}
		}
	}
	f, rd := s.p.joinSlice(s.r, s.svc, s.obj, i, s.purgeSeq)
	if rd == nil {
		return nil
	}
	return &sliceSource{index: i, f: f, rd: rd}
}

// stored reports whether slice i is in the store now.
func (s *sliceReader) stored(i int64) bool {
	_, ok := s.p.store.Get(s.obj.sliceKey(i))
	return ok
}

func (s *sliceReader) close() {
	for _, src := range []*sliceSource{s.cur, s.next, s.probe} {
		src.close()
	}
}

// serveSliced answers r from the sliced object obj. status is the
// Cache-Status member so far; with hit set, it becomes hit when every
// slice the response needs is stored, fwd=partial when some are, and
// fwd=uri-miss when none is. probe is the slice the request's fill brought
// (nil when none); serveSliced detaches it. It returns false without
// answering when the object changed before any byte was sent, so the
// caller can fetch it again.
func (p *PoP) serveSliced(w http.ResponseWriter, r *http.Request, svc *service, obj *sliceObject, status cache.Status, res result, probe *sliceSource, retry bool) bool {
	sr := &sliceReader{p: p, svc: svc, r: r, obj: obj, purgeSeq: p.purges.current(), limit: obj.size - 1, probe: probe}
	defer sr.close()
	rq := r
	if len(r.Header["Range"]) > 1 || strings.Contains(r.Header.Get("Range"), ",") {
		// Several ranges of a sliced object: the whole object (RFC 9110
		// §14.2 lets a server ignore Range), streamed from its slices.
		rq = r.Clone(r.Context())
		delete(rq.Header, "Range")
	}
	from, satisfiable := int64(0), rq.Header["Range"] == nil
	if first, last, ok := singleRange(rq.Header["Range"], obj.size); ok {
		from, satisfiable = first, true
		if rq.Header.Get("If-Range") == "" {
			sr.limit = last
		}
	}
	now := p.now()
	if rq.Method == http.MethodGet && status.Hit {
		stored, needed := 0, 0
		for i := from / obj.slice; i <= sr.limit/obj.slice; i++ {
			needed++
			if sr.stored(i) {
				stored++
			}
		}
		switch {
		case stored < needed && stored > 0:
			status.Hit, status.Fwd = false, fwdPartial
		case stored < needed:
			status.Hit, status.Fwd = false, cache.FwdURIMiss
		}
		if !status.Hit {
			res = resultMiss
		}
	}
	plain := rq.Method == http.MethodGet && rq.Header["If-Match"] == nil && rq.Header["If-None-Match"] == nil &&
		rq.Header["If-Modified-Since"] == nil && rq.Header["If-Unmodified-Since"] == nil
	if plain && satisfiable {
		// The first slice is at hand before the header goes out, so a
		// changed object or a failing origin can still be answered.
		if err := sr.open(from / obj.slice); err != nil {
			if r.Context().Err() != nil {
				svc.stats.record(r, 0, res, 0)
				return true
			}
			if errors.Is(err, errSliceChanged) && retry {
				return false
			}
			status.Hit = false
			if status.Fwd == "" {
				status.Fwd = fwdPartial
			}
			p.originFailed(w, r, svc, status, err)
			return true
		}
	}

	h := w.Header()
	for name, values := range obj.meta.Header {
		h[name] = values
	}
	p.dropTargeted(h)
	h["Age"] = []string{cache.AgeHeader(obj.meta.Age(now))}
	p.addVia(h, r)
	status.TTL, status.HasTTL = obj.meta.TTL(now), true
	p.addStatus(h, status)
	if notModifiedByDate(rq, obj.meta) {
		delete(h, "Content-Length")
		delete(h, "Content-Type")
		delete(h, "Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		svc.stats.record(r, http.StatusNotModified, res, 0)
		return true
	}
	cw := &countingWriter{ResponseWriter: w}
	modTime, _ := http.ParseTime(obj.meta.Header.Get("Last-Modified"))
	delete(h, "Content-Length")
	if _, typed := h["Content-Type"]; !typed {
		h["Content-Type"] = nil
	}
	http.ServeContent(cw, rq, "", modTime, sr)
	if sr.err != nil && r.Context().Err() == nil {
		// An origin failure or another representation mid-stream: cut the
		// response so it cannot pass for a whole one.
		p.log.Warn("sliced response cut short", "service", svc.name, "key", obj.key, "err", sr.err)
		svc.stats.record(r, cw.status, resultError, cw.n)
		panic(http.ErrAbortHandler)
	}
	svc.stats.record(r, cw.status, res, cw.n)
	return true
}
