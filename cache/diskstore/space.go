package diskstore

import (
	"errors"
	"syscall"
	"time"
)

// A full file system (ENOSPC, EDQUOT) lowers the store's effective
// capacity; free space raises it again. The directory's room is what it
// holds (the indexed files and those evicted but not unlinked yet) plus
// what statfs(2) says is free for it (f_bavail; none if no inode is
// left). When a write fails for lack of space, the writer first unlinks
// what the deleter has queued (so a deleter behind the writer frees its
// backlog before anything is judged) and starts a collection (files
// unlinked while an entry holds them open keep their space until the
// collector closes them), then sets the capacity to the room less a
// headroom, if that is lower than it was, and evicts down to it. The
// capacity is a function of the room, not of the capacity before, so
// repeated failures cannot ratchet it down: a failure the backlog caused
// finds the room unchanged and leaves the capacity as it is. While the
// capacity is below Options.MaxBytes, the writer looks at the free space
// every Options.SpaceCheckInterval and raises the capacity to the room
// less the same headroom, never above MaxBytes, so space freed by the
// operator (or by the collector) is used again.
//
// A quota (EDQUOT) is invisible to statfs: a quota failure lowers the
// capacity to what the store holds less the headroom, and it is raised
// only as far as the file system's free space grows beyond what it was
// then. Without statfs (platforms other than Linux) a failure lowers the
// capacity the same way, unless the deleter's backlog held more than the
// failed write, and nothing raises it until the store is opened again.

// Defaults and bounds of the capacity's recovery.
const (
	// DefaultSpaceCheckInterval is Options.SpaceCheckInterval's default:
	// how often, while the capacity is lowered, the writer looks at the
	// file system's free space (one statfs call).
	DefaultSpaceCheckInterval = 5 * time.Second
	// headroomShare is the headroom the store leaves free on its file
	// system after a full one: 1/headroomShare of the file system, ...
	headroomShare = 64
	// maxHeadroom ... at most this much, ...
	maxHeadroom = 1 << 30
	// writeHeadroom ... and at least this many times the write that
	// failed (a write needs its room before eviction makes it).
	writeHeadroom = 2
)

// fsSpace is what statfs says of a file system, in bytes.
type fsSpace struct {
	avail int64 // free for an unprivileged user; 0 if no inode is free
	total int64 // the file system's size
}

// space is the writer's record of a lowered capacity; only the writer
// goroutine (noSpace, checkSpace, runWriter) touches it.
type space struct {
	below  bool  // the capacity is below Options.MaxBytes
	logged bool  // a lowering was logged (WARN) and no raise yet (INFO)
	offset int64 // the room less the capacity it set: the headroom, plus the free space a quota hid
	margin int64 // the headroom of the last lowering
	warned bool  // statfs failed, and that was logged
}

// headroom is what the store leaves free on a file system of total bytes
// (0 if unknown: then a sixteenth of what it holds) after a write of size
// bytes failed for lack of space.
func headroom(total, held, size int64) int64 {
	h := held / 16
	if total > 0 {
		h = min(total/headroomShare, maxHeadroom)
	}
	return max(h, writeHeadroom*blocks(size))
}

// noSpace handles a write of size bytes the file system had no room for
// (see above). It runs on the writer.
func (s *Store) noSpace(size int64, err error) {
	s.c.nospace.Add(1)
	backlog := s.del.bytes.Load()
	s.unlinkQueued()
	collect()
	if s.loading.Load() {
		// The index does not know every file yet: a capacity set from it
		// would evict the files the loader has still to index. The write
		// is dropped; the first failure after the load lowers it.
		s.log.Debug("diskstore: file system full while loading: write dropped", "err", err, "write_bytes", size)
		return
	}
	quota := errors.Is(err, syscall.EDQUOT)
	ours, fs, ferr := s.measureRoom() // polMu held from here
	old := s.pol.capacity
	room := ours
	if ferr == nil && !quota {
		room += fs.avail
	}
	margin := headroom(fs.total, ours, size)
	target := room - margin
	lower := target < old
	if (ferr != nil || quota) && backlog > blocks(size) {
		// statfs cannot tell: the backlog the writer just unlinked may
		// well have been what the write lacked.
		lower = false
	}
	var victims []*node
	if lower {
		victims = s.pol.setCapacity(target, s.now().UnixNano(), nil)
		s.space.offset = ours + fs.avail - s.pol.capacity
		s.space.margin = margin
		s.space.below = true
	}
	now := s.pol.capacity
	s.polMu.Unlock()
	switch {
	case !lower:
		s.log.Debug("diskstore: file system full: write dropped, capacity kept",
			"err", err, "write_bytes", size, "held_bytes", ours, "free_bytes", fs.avail, "max_bytes", old)
	case !s.space.logged:
		s.space.logged = true
		s.log.Warn("diskstore: file system full: capacity lowered to what fits",
			"err", err, "write_bytes", size, "held_bytes", ours, "free_bytes", fs.avail,
			"headroom_bytes", margin, "old_max_bytes", old, "max_bytes", now)
	default:
		s.log.Debug("diskstore: file system full again: capacity lowered",
			"write_bytes", size, "held_bytes", ours, "free_bytes", fs.avail, "max_bytes", now)
	}
	if !lower {
		return
	}
	s.c.capLowered.Add(1)
	s.evictVictims(victims)
	// Free the victims' space before the next write needs it.
	s.unlinkQueued()
}

// checkSpace raises a lowered capacity by the free space the file system
// has gained (see above). It runs on the writer, every SpaceCheckInterval
// while the capacity is below MaxBytes.
func (s *Store) checkSpace() {
	ours, fs, err := s.measureRoom() // polMu held from here
	old := s.pol.capacity
	if err != nil {
		s.polMu.Unlock()
		if !s.space.warned {
			s.space.warned = true // one record, not one per interval
			s.log.Warn("diskstore: cannot look at the free space: the capacity stays lowered", "err", err)
		}
		return
	}
	target := min(ours+fs.avail-s.space.offset, s.opts.MaxBytes)
	// Raise by whole steps (a quarter of the headroom), or to MaxBytes,
	// so that a few KiB freed do not count as a raise each.
	raise := target > old && (target == s.opts.MaxBytes || target-old >= s.space.margin/4)
	if raise {
		s.pol.setCapacity(target, s.now().UnixNano(), nil) // higher: evicts nothing
	}
	now := s.pol.capacity
	s.space.below = now < s.opts.MaxBytes
	s.polMu.Unlock()
	if !raise {
		return
	}
	s.c.capRaised.Add(1)
	if s.space.logged {
		s.space.logged = false
		s.log.Info("diskstore: free space is back: capacity raised",
			"free_bytes", fs.avail, "held_bytes", ours, "old_max_bytes", old, "max_bytes", now,
			"configured_bytes", s.opts.MaxBytes)
	} else {
		s.log.Debug("diskstore: capacity raised", "free_bytes", fs.avail, "old_max_bytes", old, "max_bytes", now)
	}
}

// measureRoom returns the bytes the store's files take (indexed, and
// evicted but not unlinked yet) and what statfs says of the file system,
// taken together so that no file the deleter unlinks meanwhile counts in
// neither; it returns with polMu held, for the caller to unlock, so that
// no file leaves the index meanwhile either (but for a Delete, or an
// expiry found by a Get, whose file may then count in neither: a capacity
// a file too low, which the next check corrects). Lock order: unlinking,
// then polMu (the deleter holds unlinking before a shard's lock, which
// comes before polMu).
func (s *Store) measureRoom() (ours int64, fs fsSpace, err error) {
	s.del.unlinking.Lock()
	defer s.del.unlinking.Unlock()
	fs, err = statFS(s.dir)
	s.polMu.Lock()
	return s.pol.bytes() + s.del.bytes.Load(), fs, err
}
