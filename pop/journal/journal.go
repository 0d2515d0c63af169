// Package journal keeps a PoP's purges on disk, so that what was purged
// before a restart (graceful, a crash, kill -9) never comes back from the
// disk tier after it.
//
// The algorithm: every purge is a Record (when it was made, and what it
// matches: URL keys, key prefixes or a tag). Append writes it to every
// journal file (one bbolt database per cache directory, `purges.db`, one
// committed and fsynced transaction per purge) before the PoP applies it,
// so a purge the PoP acknowledged is on disk. When the PoP starts, Open
// reads the records of every journal file, and the disk tier asks, for each
// entry it finds from an earlier run, whether a record made after that
// entry's response matches it (Purged); such an entry is dropped. A record
// has done its job once every cache directory has been loaded through it:
// Prune then removes the records made before the load began. So the
// journal holds the purges of roughly one run, however long the PoP runs.
//
// Soft purges are kept as hard ones for entries from an earlier run: an
// entry a soft purge marked stale before a restart is dropped after it
// (its stale copy may not have reached the disk). See docs/storage.md.
//
// bbolt is a well-kept embedded B+tree store with crash-safe commits; a
// purge journal written by hand would have to get torn writes and fsync
// ordering right again.
package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the journal's file in each cache directory.
const FileName = "purges.db"

var bucket = []byte("purges")

// Record is one purge as the journal keeps it.
type Record struct {
	At   time.Time `json:"at"`   // when the PoP applied it
	Kind string    `json:"kind"` // "url", "prefix" or "tag"
	// Keys are the cache keys a URL purge removes (with their variants),
	// or the key prefixes of a prefix purge.
	Keys []string `json:"keys,omitempty"`
	Tag  string   `json:"tag,omitempty"` // a tag purge's tag
	Soft bool     `json:"soft,omitempty"`
}

// Matches reports whether the purge covers the entry stored under key
// with the surrogate keys tags.
func (r *Record) Matches(key string, tags []string) bool {
	switch r.Kind {
	case "url":
		for _, k := range r.Keys {
			if key == k || strings.HasPrefix(key, k+"\x00") {
				return true
			}
		}
	case "prefix":
		for _, pre := range r.Keys {
			if strings.HasPrefix(key, pre) {
				return true
			}
		}
	case "tag":
		return slices.Contains(tags, r.Tag)
	}
	return false
}

// Journal is the purge journal of one PoP over its cache directories. It
// is safe for concurrent use.
type Journal struct {
	dbs []*bolt.DB

	mu      sync.RWMutex
	records []Record // every record on disk and appended since, oldest first
}

// Open opens (creating if need be) the journal file in each of dirs and
// reads their records. A file that cannot be opened or read is an error:
// the PoP must not serve a disk whose purges it cannot know.
func Open(dirs []string) (*Journal, error) {
	j := &Journal{}
	for _, dir := range dirs {
		path := filepath.Join(dir, FileName)
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			j.Close()
			return nil, fmt.Errorf("journal: open %s: %w", path, err)
		}
		j.dbs = append(j.dbs, db)
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return b.ForEach(func(_, v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("a record: %w", err)
				}
				j.records = append(j.records, r)
				return nil
			})
		})
		if err != nil {
			j.Close()
			return nil, fmt.Errorf("journal: read %s: %w", path, err)
		}
	}
	// The files may hold the same purge (it went to every file): the
	// duplicates are harmless, only sorted.
	slices.SortStableFunc(j.records, func(a, b Record) int { return a.At.Compare(b.At) })
	return j, nil
}

// Append records r in every journal file, each in a committed transaction,
// and in memory. It returns the errors of the files it could not write (the
// record is still kept in memory, so this run applies it).
func (j *Journal) Append(r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	j.records = append(j.records, r)
	j.mu.Unlock()
	var errs []error
	for _, db := range j.dbs {
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			return b.Put(k[:], v)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("journal: %s: %w", db.Path(), err))
		}
	}
	return errors.Join(errs...)
}

// Purged reports whether a purge made at or after made matches the entry
// stored under key with the surrogate keys tags: an entry from an earlier
// run that it reports must not be served. (A purge in the same instant as
// the response counts: dropping a fresh copy costs one fetch, keeping a
// purged one is wrong.)
func (j *Journal) Purged(key string, tags []string, made time.Time) bool {
	j.mu.RLock()
	defer j.mu.RUnlock()
	for i := len(j.records) - 1; i >= 0 && !j.records[i].At.Before(made); i-- {
		if j.records[i].Matches(key, tags) {
			return true
		}
	}
	return false
}

// Len is the number of records held.
func (j *Journal) Len() int {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return len(j.records)
}

// Prune removes the records made before before, from memory and from
// every file. Call it once every cache directory has been loaded through
// the journal, with the time that load began.
func (j *Journal) Prune(before time.Time) error {
	j.mu.Lock()
	j.records = slices.DeleteFunc(j.records, func(r Record) bool { return r.At.Before(before) })
	j.mu.Unlock()
	var errs []error
	for _, db := range j.dbs {
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			var old [][]byte // deleting under a cursor would skip records
			err := b.ForEach(func(k, v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil || r.At.Before(before) {
					old = append(old, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("journal: prune %s: %w", db.Path(), err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the journal files.
func (j *Journal) Close() error {
	var errs []error
	for _, db := range j.dbs {
		if err := db.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	j.dbs = nil
	return errors.Join(errs...)
}
