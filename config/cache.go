package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is a service's cache section: TTL defaults and clamps, the
// largest object stored, large objects in slices, stale windows,
// hit-for-miss and the query's part in the key.

// Defaults of a service's cache section.
const (
	defaultMaxObject  = 64 << 20 // 64 MiB
	defaultKeep       = time.Hour
	defaultHitForMiss = 2 * time.Minute
	defaultSliceSize  = 4 << 20 // 4 MiB
	// MinSliceSize and MaxSliceSize bound cache.slice.size: a slice is at
	// least one 64 KiB fill chunk, and at most 1 GiB.
	MinSliceSize = 64 << 10
	MaxSliceSize = 1 << 30
)

// CachePolicy says how a service's responses are cached.
type CachePolicy struct {
	// DefaultTTL is the freshness lifetime of storable responses that carry
	// no explicit freshness (max-age, Expires). 0, the default, means such
	// responses are not given one.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp every freshness lifetime; 0 means no clamp
	// (the default for both). When both are set MinTTL <= MaxTTL.
	MinTTL time.Duration
	MaxTTL time.Duration
	// MaxObject is the largest body, in bytes, that is stored; larger
	// responses stream through uncached. Default 64 MiB.
	MaxObject int64
	// Keep is how long past staleness an entry with validators (ETag,
	// Last-Modified) is kept so it can be revalidated. Default 1h; 0 means
	// stale entries are dropped.
	Keep time.Duration
	// StaleIfError is the stale-if-error window (RFC 5861) given to
	// responses that state none: how long past freshness a stored response
	// may still be served when the origin fails. Default 0: only the
	// origin's own stale-if-error applies.
	StaleIfError time.Duration
	// HitForMiss is how long the PoP remembers that a URL answered with
	// a response it may not store (private, no-store, Set-Cookie...):
	// requests for it in that time go to the origin in parallel instead
	// of waiting for one another (Varnish's hit-for-miss). A response
	// that may be stored ends it at once. Default 2m; 0 turns it off.
	HitForMiss time.Duration
	// Slice says whether objects larger than a slice are fetched from the
	// origin with Range and cached slice by slice (docs/slices.md).
	Slice SlicePolicy
	Query QueryPolicy
}

// SlicePolicy says how a service caches large objects in slices.
type SlicePolicy struct {
	// Enabled turns slicing on. Default true: an object found larger than
	// max_object is streamed through once, and from then on fetched and
	// cached slice by slice. False streams such objects through uncached
	// every time.
	Enabled bool
	// Probe asks every fill for its first slice with Range (nginx's slice
	// module), so even the first request of a large object is sliced, at
	// the price of a Range header on every fill and a 206 from the origin
	// for small objects too. Default false.
	Probe bool
	// Size is the slice size in bytes: objects larger than it are cached
	// as slices of this size, each its own stored entry. Between 64 KiB
	// and 1 GiB, and at most max_object. Default (when Enabled) 4 MiB, or
	// max_object when that is smaller; 0 when slicing is off, or left on
	// by default for a max_object below 64 KiB (then it is off).
	Size int64
}

// QueryPolicy says how the query string takes part in the cache key.
type QueryPolicy struct {
	Sort bool     // sort parameters so ?a=1&b=2 and ?b=2&a=1 share an entry; default false
	Drop []string // parameter names removed from the key (e.g. utm_source); case-sensitive
}

// cacheDefaults returns the cache policy of a service whose file leaves
// every setting out.
func cacheDefaults() CachePolicy {
	return CachePolicy{MaxObject: defaultMaxObject, Keep: defaultKeep, HitForMiss: defaultHitForMiss,
		Slice: SlicePolicy{Enabled: true, Size: defaultSliceSize}}
}

// cache decodes a service's cache policy into c, which holds the defaults.
func (d *decoder) cache(n *yaml.Node, path string, c *CachePolicy) {
	var minAt, sliceAt, enabledAt *yaml.Node
	sliceSize := int64(0) // 0: not given
	d.fields(n, path, []field{
		optional("default_ttl", d.setDuration(&c.DefaultTTL)),
		optional("min_ttl", func(n *yaml.Node, path string) {
			minAt = n
			d.setDuration(&c.MinTTL)(n, path)
		}),
		optional("max_ttl", d.setDuration(&c.MaxTTL)),
		optional("max_object", d.setSize(&c.MaxObject, 1)),
		optional("keep", d.setDuration(&c.Keep)),
		optional("stale_if_error", d.setDuration(&c.StaleIfError)),
		optional("hit_for_miss", d.setDuration(&c.HitForMiss)),
		optional("slice", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				optional("enabled", func(n *yaml.Node, path string) {
					enabledAt = n
					d.setBool(&c.Slice.Enabled)(n, path)
				}),
				optional("probe", d.setBool(&c.Slice.Probe)),
				optional("size", func(n *yaml.Node, path string) {
					sliceAt = n
					d.setSizeRange(&sliceSize, MinSliceSize, MaxSliceSize)(n, path)
				}),
			})
		}),
		optional("query", func(n *yaml.Node, path string) { d.query(n, path, &c.Query) }),
	})
	switch {
	case sliceSize > 0 && sliceSize > c.MaxObject:
		d.errorf(sliceAt, join(path, "slice.size"), "slice size %s is greater than max_object %s (a slice is a stored object)",
			formatSize(sliceSize), formatSize(c.MaxObject))
	case sliceSize > 0:
		c.Slice.Size = sliceSize
	case c.Slice.Enabled:
		c.Slice.Size = min(defaultSliceSize, c.MaxObject)
		if c.Slice.Size >= MinSliceSize {
			break
		}
		if enabledAt == nil { // on by default: too small a max_object turns it off
			c.Slice = SlicePolicy{}
			break
		}
		d.errorf(n, join(path, "slice"), "slicing needs max_object of at least %s (it is %s)",
			formatSize(MinSliceSize), formatSize(c.MaxObject))
	default:
		c.Slice.Size = 0
	}
	if c.MinTTL > 0 && c.MaxTTL > 0 && c.MinTTL > c.MaxTTL {
		d.errorf(minAt, join(path, "min_ttl"), "min_ttl %s is greater than max_ttl %s", formatDuration(c.MinTTL), formatDuration(c.MaxTTL))
	}
}

// query decodes a cache policy's query section into q.
func (d *decoder) query(n *yaml.Node, path string, q *QueryPolicy) {
	d.fields(n, path, []field{
		optional("sort", d.setBool(&q.Sort)),
		optional("drop", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			lines := make(map[string]int)
			for i, item := range items {
				p := index(path, i)
				s, ok := d.str(item, p)
				switch {
				case !ok:
				case s == "":
					d.errorf(item, p, "empty parameter name")
				case lines[s] > 0:
					d.errorf(item, p, "parameter %q is listed twice (first at line %d)", s, lines[s])
				default:
					lines[s] = item.Line
					q.Drop = append(q.Drop, s)
				}
			}
		}),
	})
}
