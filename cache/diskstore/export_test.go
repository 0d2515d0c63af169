package diskstore

// setFault makes the store's file operations call f first: "open" (a
// file opened for a Get), "read" (its header, metadata and body checks),
// "write" (a new file), "rename", "load" (the loader, before each file,
// where it may block), "unlink" (an evicted or expired file, before the
// deleter or a writer out of space unlinks it; it may block, its error
// is ignored); a non-nil error fails the operation with it. nil removes
// the hook.
func (s *Store) setFault(f func(op string) error) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// idle reports whether no write is queued or in flight.
func (s *Store) idle() bool { return s.unwritten.Load() == 0 }

// unlinksQueued reports how many files wait for the deleter.
func (s *Store) unlinksQueued() int {
	s.del.mu.Lock()
	defer s.del.mu.Unlock()
	n := len(s.del.q)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.doomed)
		sh.mu.RUnlock()
	}
	return n
}
