package pop

import (
	"strings"
	"sync"

	"github.com/outpost-cdn/outpost/cache"
)

// keyIndex remembers which keys the store holds and the surrogate keys
// (tags) of each, because ristretto keeps only hashes: purge by prefix and
// by tag must list keys. Entries are added when offered to the store and
// removed when the store reports them gone (eviction, expiry, rejection)
// or the PoP deletes them, so the index tracks the store closely; a key it
// lists that the store no longer holds costs one useless Delete.
type keyIndex struct {
	mu       sync.Mutex
	keys     map[string]indexed
	tags     map[string]map[string]struct{} // tag → keys
	variants map[string]map[string]struct{} // URL key → its variants' keys
}

// indexed is what the index knows of one key.
type indexed struct {
	entry *cache.Entry
	tags  []string
}

func newKeyIndex() *keyIndex {
	return &keyIndex{
		keys:     make(map[string]indexed),
		tags:     make(map[string]map[string]struct{}),
		variants: make(map[string]map[string]struct{}),
	}
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

// add records that e is being stored under e.Key.
func (x *keyIndex) add(e *cache.Entry) {
	tags := entryTags(e)
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.keys[e.Key]; ok {
		x.untagLocked(e.Key, old.tags)
	}
	x.keys[e.Key] = indexed{entry: e, tags: tags}
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

// removed forgets e if it is still the entry indexed under its key (a
// newer Set of the key may have replaced it).
func (x *keyIndex) removed(e *cache.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.keys[e.Key]; ok && cur.entry == e {
		x.untagLocked(e.Key, cur.tags)
		delete(x.keys, e.Key)
	}
}

// drop forgets key whatever entry it had.
func (x *keyIndex) drop(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.keys[key]; ok {
		x.untagLocked(key, cur.tags)
		delete(x.keys, key)
	}
}

func (x *keyIndex) untagLocked(key string, tags []string) {
	for _, t := range tags {
		removeFrom(x.tags, t, key)
	}
	if url, _, variant := strings.Cut(key, "\x00"); variant {
		removeFrom(x.variants, url, key)
	}
}

// withPrefix returns the indexed entries whose key starts with one of the
// prefixes.
func (x *keyIndex) withPrefix(prefixes ...string) []*cache.Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*cache.Entry
	for key, ix := range x.keys {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				out = append(out, ix.entry)
				break
			}
		}
	}
	return out
}

// withKey returns the entries stored under the URL keys and their variants.
func (x *keyIndex) withKey(keys ...string) []*cache.Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*cache.Entry
	for _, k := range keys {
		if ix, ok := x.keys[k]; ok {
			out = append(out, ix.entry)
		}
		for v := range x.variants[k] {
			if ix, ok := x.keys[v]; ok {
				out = append(out, ix.entry)
			}
		}
	}
	return out
}

// withTag returns the entries carrying tag.
func (x *keyIndex) withTag(tag string) []*cache.Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*cache.Entry
	for key := range x.tags[tag] {
		if ix, ok := x.keys[key]; ok {
			out = append(out, ix.entry)
		}
	}
	return out
}

// len returns the number of keys indexed.
func (x *keyIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.keys)
}
