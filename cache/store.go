package cache

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/outpost-cdn/outpost/cache/blob"
)

// Entry is one stored response. An Entry is immutable once it has been
// offered to a Store: readers share it without locks, and a refresh (a 304
// merge, say) makes a new Entry instead of editing this one.
type Entry struct {
	// Key is the cache key the entry is stored under (see Key).
	Key string
	// Status is the response status code.
	Status int
	// Header holds the stored end-to-end response header fields: hop-by-hop
	// fields and Age are removed before storing.
	Header http.Header
	// Body is the complete response body, when it is kept on the heap.
	Body []byte
	// Blob holds the body instead of Body when it is kept outside the
	// heap, in a sealed memory file that can be sent with sendfile (see
	// package cache/blob). At most one of Body and Blob is set.
	Blob *blob.Blob

	// RequestTime is when the request that produced this response was sent
	// (request_time in RFC 9111 §4.2.3).
	RequestTime time.Time
	// ResponseTime is when the response was received (response_time).
	ResponseTime time.Time
	// InitialAge is corrected_initial_age of RFC 9111 §4.2.3: the response's
	// age at ResponseTime.
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1), after the
	// service's TTL overrides were applied.
	Lifetime time.Duration
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows after
	// the entry turns stale during which it may still be served.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// NoCache says the entry must be revalidated before every use.
	NoCache bool
	// MustRevalidate says the entry must not be used stale without a
	// successful revalidation.
	MustRevalidate bool
	// Prepared is what the server that made the entry derived from it
	// once, to serve it faster (the PoP keeps its fast path's response head
	// here); nil when none. Like every field, it is set before the entry is
	// stored and never changed after; a copy with another Header must drop
	// it. When it has a Size() int64 method, Size counts it.
	Prepared any

	// OnDisk says a disk tier returned this entry (its body is a window of
	// a cache file): the PoP's Cache-Status then says the disk answered. A
	// copy made for memory clears it.
	OnDisk bool

	// VaryFields, when set, makes this entry a variant index rather than a
	// response: the stored response varies on these request header fields
	// (canonical names, sorted), and each variant is stored under
	// VariantKey(Key, VaryNonce, ...). A new index gets a new nonce, so
	// dropping the index (an invalidation, a purge) orphans every old
	// variant at once.
	VaryFields []string
	VaryNonce  string
}

// IsVaryIndex reports whether the entry is a variant index (see VaryFields).
func (e *Entry) IsVaryIndex() bool { return e.VaryFields != nil }

// entryOverhead approximates the bytes an Entry costs beyond its key,
// header and body: the struct, slice and map headers, and the store's own
// bookkeeping.
const entryOverhead = 160

// Size is the entry's cost in bytes for cache accounting: body, header
// fields, key and a fixed overhead.
func (e *Entry) Size() int64 {
	n := e.BodySize() + int64(len(e.Key)) + entryOverhead
	for name, values := range e.Header {
		for _, v := range values {
			n += int64(len(name) + len(v) + 4) // ": " and CRLF
		}
	}
	if s, ok := e.Prepared.(interface{ Size() int64 }); ok {
		n += s.Size()
	}
	return n
}

// BodySize is the length of the stored body.
func (e *Entry) BodySize() int64 {
	if e.Blob != nil {
		return e.Blob.Size()
	}
	return int64(len(e.Body))
}

// BodyReader returns a reader of the stored body.
func (e *Entry) BodyReader() io.ReadSeeker {
	if e.Blob != nil {
		return e.Blob.NewReader()
	}
	return bytes.NewReader(e.Body)
}

// Age is the entry's current_age at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	resident := now.Sub(e.ResponseTime)
	if resident < 0 {
		resident = 0
	}
	return e.InitialAge + resident
}

// Fresh reports whether the entry is fresh at now (RFC 9111 §4.2).
func (e *Entry) Fresh(now time.Time) bool {
	return e.Lifetime > e.Age(now)
}

// TTL is the remaining freshness at now; it is negative once the entry is
// stale. It is what Cache-Status reports as ttl (RFC 9211 §2.5).
func (e *Entry) TTL(now time.Time) time.Duration {
	return e.Lifetime - e.Age(now)
}

// HasValidators reports whether the stored response carries a validator
// (ETag or Last-Modified), so that a stale copy can be revalidated with a
// conditional request instead of being fetched again.
func (e *Entry) HasValidators() bool {
	return e.Header.Get("ETag") != "" || e.Header.Get("Last-Modified") != ""
}

// StorageTTL is how long, from now, a store should keep the entry: the rest
// of its freshness lifetime plus the longest window in which it may still be
// used when stale (stale-while-revalidate, stale-if-error) and, for entries
// with validators, keep, so they can be revalidated rather than refetched.
// A result of zero or less means the entry is of no further use.
func (e *Entry) StorageTTL(now time.Time, keep time.Duration) time.Duration {
	extra := max(e.StaleWhileRevalidate, e.StaleIfError)
	if e.HasValidators() {
		extra = max(extra, keep)
	}
	return e.TTL(now) + extra
}

// Store holds entries by key. Where it keeps them (memory, disk, another
// tier behind it) is its own business. Implementations are safe for
// concurrent use. A Store may apply Set asynchronously and may decline an
// entry (admission policy, full buffers), so a Get right after a Set is not
// guaranteed to find it; implementations should bridge that gap where they
// can. A Store that removes entries on its own (eviction, expiry,
// admission) should also implement RemovalNotifier, so that an index kept
// beside it can follow.
type Store interface {
	// Get returns the entry stored under key.
	Get(key string) (*Entry, bool)
	// Set offers e, stored under e.Key, for ttl. A ttl of zero or less
	// stores nothing. It never blocks on the store's internal work.
	Set(e *Entry, ttl time.Duration)
	// Delete removes the entry stored under key, including one whose Set is
	// still pending.
	Delete(key string)
	// Stats returns the store's counters.
	Stats() StoreStats
	// Close stops the store's background work and releases what it holds.
	Close()
}

// RemovalNotifier is implemented by stores that remove entries on their
// own: evicted to make room, expired, or declined by an admission policy.
// Whatever keeps an index of a store's keys (the PoP's purge index, which
// wraps its store) registers with it, so the index never lists, nor keeps
// alive, what the store no longer holds. A store that never removes entries
// on its own implements it by ignoring f.
type RemovalNotifier interface {
	// NotifyRemoval makes the store call f with each entry that leaves it
	// on its own. It is not called for Delete, nor for an entry replaced
	// by a newer Set of its key, nor for a Set with a ttl of zero or less.
	// f may run on the store's goroutines, even inside Set: it must be
	// safe for concurrent use, must not block and must not call the store.
	// A later call replaces f; nil stops the notices.
	NotifyRemoval(f func(e *Entry))
}

// Persistent is implemented by stores that keep entries across restarts
// (the disk tier). What happened while the process was down (a purge it
// recorded but had not applied to every file, say) is known only to the
// store's owner, so the store asks it about every entry from an earlier
// run before it first returns, lists or indexes that entry.
type Persistent interface {
	// NotifyLoad makes the store call keep with each entry it finds from
	// an earlier run: once, before the entry is first returned by Get, and
	// from the store's background loader as it indexes what is on disk. An
	// entry for which keep returns false is deleted and never returned.
	// keep may run on the store's goroutines, concurrently: it must be safe
	// for concurrent use, must not block and must not call the store. Set
	// it before the store starts loading (at construction); a later call
	// replaces it.
	NotifyLoad(keep func(e *Entry) bool)
}

// RejectionReporter is implemented by stores whose admission policy can
// decline an entry. The PoP asks it on a miss so that Cache-Status can say
// the previous fill was not admitted.
type RejectionReporter interface {
	// Rejected reports whether the most recent Set for key was declined by
	// the admission policy.
	Rejected(key string) bool
}

// StoreStats are a store's counters. Items and Bytes are current values;
// the rest count events since the store was made.
type StoreStats struct {
	Items    int64 // entries held now
	Bytes    int64 // cost of the entries held now
	MaxBytes int64 // the store's capacity

	Admissions uint64 // entries the admission policy accepted
	Rejections uint64 // entries the admission policy declined
	Drops      uint64 // Sets lost before reaching the policy (full buffers)
	Evictions  uint64 // entries removed to make room or because their TTL ran out
}
