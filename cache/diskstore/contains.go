package diskstore

// Contains reports whether the store holds key: indexed, or queued for
// writing. It reads the index only (no I/O), for a tier in front of the
// store that must know whether an entry it drops is still cached here.
func (s *Store) Contains(key string) bool {
	sh := s.shardOf(s.hash(key))
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, queued := sh.pending[key]
	return sh.items[key] != nil || queued
}
