package synthetic

import (
	"strings"
	"sync"
	"sync/atomic"
)

// maxPrefixes bounds the distinct keys of Stats.Requests.ByPrefix; the
// requests of any further prefix count under OtherPrefix.
const maxPrefixes = 64

// OtherPrefix is the ByPrefix key that counts requests whose first path
// segment arrived after 64 others were already counted (and requests whose
// path does not start with a slash). It has no slash, so no path clashes
// with it.
const OtherPrefix = "other"

// Stats are the origin's counters since it started or since the last
// reset. Only content requests count: everything but /_origin/…, which is
// where stats, load and health probes go.
type Stats struct {
	Requests RequestStats `json:"requests"`
	// BytesSent is the body bytes sent in answer to content requests:
	// the object for a 200, the parts for a 206, nothing for HEAD and 304.
	BytesSent int64 `json:"bytes_sent"`
}

// RequestStats counts content requests.
type RequestStats struct {
	Total int64 `json:"total"`
	// ByPrefix counts requests by the first segment of their path, with
	// its slash: "/obj" for /obj/a/b, "/" for /. At most 64 prefixes are
	// kept; the rest count under OtherPrefix.
	ByPrefix map[string]int64 `json:"by_prefix"`
}

// counters are the live figures behind Stats. Counting takes a read lock
// and two atomic adds; a new prefix takes the write lock once.
type counters struct {
	total atomic.Int64
	bytes atomic.Int64

	mu       sync.RWMutex
	byPrefix map[string]*atomic.Int64
}

func newCounters() *counters {
	return &counters{byPrefix: make(map[string]*atomic.Int64)}
}

// count counts one content request for path.
func (c *counters) count(path string) {
	c.total.Add(1)
	prefix := prefixOf(path)
	c.mu.RLock()
	n := c.byPrefix[prefix]
	c.mu.RUnlock()
	if n == nil {
		n = c.slot(prefix)
	}
	n.Add(1)
}

// slot returns prefix's counter, creating it, or OtherPrefix's when the
// map is full.
func (c *counters) slot(prefix string) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.byPrefix[prefix]; n != nil {
		return n
	}
	named := len(c.byPrefix)
	if _, ok := c.byPrefix[OtherPrefix]; ok {
		named--
	}
	if named >= maxPrefixes {
		prefix = OtherPrefix
		if n := c.byPrefix[prefix]; n != nil {
			return n
		}
	}
	n := new(atomic.Int64)
	c.byPrefix[strings.Clone(prefix)] = n
	return n
}

// snapshot returns the counters, and zeroes them if reset is set. A
// request counted while a reset runs may land on either side of it.
func (c *counters) snapshot(reset bool) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st Stats
	st.Requests.ByPrefix = make(map[string]int64, len(c.byPrefix))
	for k, n := range c.byPrefix {
		st.Requests.ByPrefix[k] = n.Load()
	}
	if reset {
		st.Requests.Total = c.total.Swap(0)
		st.BytesSent = c.bytes.Swap(0)
		c.byPrefix = make(map[string]*atomic.Int64)
	} else {
		st.Requests.Total = c.total.Load()
		st.BytesSent = c.bytes.Load()
	}
	return st
}

// prefixOf returns the first segment of path with its leading slash.
func prefixOf(path string) string {
	if !strings.HasPrefix(path, "/") {
		return OtherPrefix
	}
	if i := strings.IndexByte(path[1:], '/'); i >= 0 {
		return path[:1+i]
	}
	return path
}
