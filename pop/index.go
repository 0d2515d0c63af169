package pop

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/outpost-cdn/outpost/cache"
)

// purgeIndex is the PoP's store: a cache.Store that wraps the configured
// one and keeps an index of the keys it holds, the surrogate keys (tags)
// of each and each URL's variants, because ristretto keeps only hashes of
// keys while purge by prefix and by tag must list them.
//
// Every change to the store passes through the wrapper, so the index
// follows the store whoever changes it: Set indexes the entry (a Set with
// a ttl of zero or less stores nothing and indexes nothing), Delete forgets the key (a
// purge, an invalidation by an unsafe method, RFC 9111 §4.4, a failed
// revalidation), and what the wrapped store removes on its own (evicted,
// expired, declined by its admission policy) it reports through
// cache.RemovalNotifier, which newPurgeIndex requires. A store of several
// tiers plugs in behind the wrapper the same way, unknown to the PoP.
//
// Set and Delete of one key are applied to the store and the index as one
// step (a lock per key hash), so the index sees them in the store's order;
// Get goes straight to the store.
type purgeIndex struct {
	cache.Store
	seed  maphash.Seed
	order [64]sync.Mutex // by key hash: Set and Delete of one key, store and index together

	mu       sync.Mutex
	keys     map[string]indexed
	tags     map[string]map[string]struct{} // tag → keys
	variants map[string]map[string]struct{} // URL key → its variants' keys
}

var _ cache.Store = (*purgeIndex)(nil)

// indexed is what the index knows of one key: never the entry itself,
// which would keep its body (or, for the disk tier, its open file) alive
// after the store let it go.
type indexed struct {
	id   weak.Pointer[cache.Entry] // the entry indexed, while it lives
	made time.Time                 // its ResponseTime
	tags []string
}

// newPurgeIndex makes an empty index; wrap gives it its store. The two
// steps let a store that finds entries of an earlier run as it opens (the
// disk tier) index them from the start.
func newPurgeIndex() *purgeIndex {
	return &purgeIndex{
		seed:     maphash.MakeSeed(),
		keys:     make(map[string]indexed),
		tags:     make(map[string]map[string]struct{}),
		variants: make(map[string]map[string]struct{}),
	}
}

// wrap makes x the wrapper of store, which must report what it removes on
// its own: an index that is not told of evictions would list every entry
// the store ever held.
func (x *purgeIndex) wrap(store cache.Store) error {
	n, ok := store.(cache.RemovalNotifier)
	if !ok {
		return fmt.Errorf("the store (%T) does not report the entries it removes (cache.RemovalNotifier); the purge index needs that", store)
	}
	x.Store = store
	n.NotifyRemoval(x.removed)
	return nil
}

// addLoaded indexes e, an entry a store found from an earlier run, unless
// a newer entry of its key is indexed already (a fill that overtook the
// loader).
func (x *purgeIndex) addLoaded(e *cache.Entry) {
	x.mu.Lock()
	cur, ok := x.keys[e.Key]
	x.mu.Unlock()
	if ok && cur.made.After(e.ResponseTime) {
		return
	}
	x.add(e)
}

// Set offers e to the wrapped store and indexes it.
func (x *purgeIndex) Set(e *cache.Entry, ttl time.Duration) {
	if e == nil {
		return
	}
	if ttl <= 0 { // stores nothing (cache.Store)
		x.Store.Set(e, ttl)
		return
	}
	mu := x.lockFor(e.Key)
	defer mu.Unlock()
	// Indexed before the store sees it: a store that declines it at once
	// reports the removal from inside Set.
	x.add(e)
	x.Store.Set(e, ttl)
}

// Delete removes key from the wrapped store and from the index.
func (x *purgeIndex) Delete(key string) {
	mu := x.lockFor(key)
	defer mu.Unlock()
	x.Store.Delete(key)
	x.drop(key)
}

// lockFor locks and returns the order lock of key.
func (x *purgeIndex) lockFor(key string) *sync.Mutex {
	mu := &x.order[maphash.String(x.seed, key)%uint64(len(x.order))]
	mu.Lock()
	return mu
}

// entryTags returns the surrogate keys of a stored response: the
// space-separated Surrogate-Key field and the comma-separated Cache-Tag
// field, as Fastly and Cloudflare define them.
func entryTags(e *cache.Entry) []string {
	var tags []string
	for _, v := range e.Header.Values("Surrogate-Key") {
		tags = append(tags, strings.Fields(v)...)
	}
	for _, v := range e.Header.Values("Cache-Tag") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// add records that e is being stored under e.Key. Set calls it; it is
// idempotent, so a caller that also calls it before Set does no harm.
func (x *purgeIndex) add(e *cache.Entry) {
	tags := entryTags(e)
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.keys[e.Key]; ok {
		x.untagLocked(e.Key, old.tags)
	}
	x.keys[e.Key] = indexed{id: weak.Make(e), made: e.ResponseTime, tags: tags}
	for _, t := range tags {
		addTo(x.tags, t, e.Key)
	}
	if url, _, variant := strings.Cut(e.Key, "\x00"); variant {
		addTo(x.variants, url, e.Key)
	}
}

func addTo(m map[string]map[string]struct{}, set, key string) {
	s := m[set]
	if s == nil {
		s = make(map[string]struct{})
		m[set] = s
	}
	s[key] = struct{}{}
}

func removeFrom(m map[string]map[string]struct{}, set, key string) {
	if s := m[set]; s != nil {
		delete(s, key)
		if len(s) == 0 {
			delete(m, set)
		}
	}
}

// removed is the wrapped store's removal notice: it forgets e if e is
// still the entry indexed under its key, and not one a newer Set of the key
// replaced. A store of several tiers may report a copy of the entry it was
// given (the disk tier decodes its own), so an entry counts as the one
// indexed when it is the same one or was made no earlier.
func (x *purgeIndex) removed(e *cache.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	// A notice that names only the key (no ResponseTime: the disk tier,
	// which reports evictions from its index) means the key is gone.
	if cur, ok := x.keys[e.Key]; ok && (cur.id == weak.Make(e) || e.ResponseTime.IsZero() || !e.ResponseTime.Before(cur.made)) {
		x.untagLocked(e.Key, cur.tags)
		delete(x.keys, e.Key)
	}
}

// drop forgets key whatever entry it had.
func (x *purgeIndex) drop(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.keys[key]; ok {
		x.untagLocked(key, cur.tags)
		delete(x.keys, key)
	}
}

func (x *purgeIndex) untagLocked(key string, tags []string) {
	for _, t := range tags {
		removeFrom(x.tags, t, key)
	}
	if url, _, variant := strings.Cut(key, "\x00"); variant {
		removeFrom(x.variants, url, key)
	}
}

// withPrefix returns the indexed keys that start with one of the
// prefixes.
func (x *purgeIndex) withPrefix(prefixes ...string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for key := range x.keys {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				out = append(out, key)
				break
			}
		}
	}
	return out
}

// withKey returns the URL keys indexed and their variants' keys.
func (x *purgeIndex) withKey(keys ...string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for _, k := range keys {
		if _, ok := x.keys[k]; ok {
			out = append(out, k)
		}
		for v := range x.variants[k] {
			if _, ok := x.keys[v]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// withTag returns the keys of the entries carrying tag.
func (x *purgeIndex) withTag(tag string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for key := range x.tags[tag] {
		if _, ok := x.keys[key]; ok {
			out = append(out, key)
		}
	}
	return out
}

// len returns the number of keys indexed.
func (x *purgeIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.keys)
}
