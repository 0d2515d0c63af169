package pop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/pop/journal"
	"github.com/outpost-cdn/outpost/popapi"
)

// purgeLog remembers recent purges so that a fill that was in flight when
// one landed does not put the purged object back, and remembers IDs so a
// retried purge is applied once.
type purgeLog struct {
	// gate is held shared by a fill storing its entry and exclusively by a
	// purge while it records itself and lists what it removes.
	gate    sync.RWMutex
	mu      sync.Mutex
	seq     uint64
	recent  []purgeRecord // oldest first, at most maxRecent
	dropped uint64        // highest seq no longer in recent
	ids     map[string]popapi.PurgeResult
	idOrder []string
}

// purgeRecord is one purge as fills check it.
type purgeRecord struct {
	seq     uint64
	matches func(key string, tags []string) bool
}

const (
	maxRecentPurges = 4096
	maxPurgeIDs     = 4096
)

// current is the sequence number of the latest purge; a fill records it
// when it starts.
func (l *purgeLog) current() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// record adds a purge and returns its sequence number.
func (l *purgeLog) record(matches func(key string, tags []string) bool) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.recent = append(l.recent, purgeRecord{seq: l.seq, matches: matches})
	if len(l.recent) > maxRecentPurges {
		l.dropped = l.recent[0].seq
		l.recent = l.recent[1:]
	}
	return l.seq
}

// purgedSince reports whether a purge after seq covers key: then an object
// fetched before that purge must not be stored. When the log has forgotten
// purges after seq, it answers true, to be safe.
func (l *purgeLog) purgedSince(seq uint64, key string, tags []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq == l.seq {
		return false
	}
	if seq < l.dropped {
		return true
	}
	for i := len(l.recent) - 1; i >= 0 && l.recent[i].seq > seq; i-- {
		if l.recent[i].matches(key, tags) {
			return true
		}
	}
	return false
}

// seen returns the result of an earlier purge with the same ID.
func (l *purgeLog) seen(id string) (popapi.PurgeResult, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.ids[id]
	return r, ok
}

// remember stores a purge's result under its ID.
func (l *purgeLog) remember(r popapi.PurgeResult) {
	if r.ID == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = make(map[string]popapi.PurgeResult)
	}
	if _, ok := l.ids[r.ID]; ok {
		return
	}
	l.ids[r.ID] = r
	l.idOrder = append(l.idOrder, r.ID)
	if len(l.idOrder) > maxPurgeIDs {
		delete(l.ids, l.idOrder[0])
		l.idOrder = l.idOrder[1:]
	}
}

// purgeCounters count purges for /metrics.
type purgeCounters struct {
	requests [3][2]atomic.Uint64 // kind (url, prefix, tag) × mode (hard, soft)
	objects  atomic.Uint64
	denied   atomic.Uint64
	// journalErrors counts purges the journal could not write to every
	// cache directory.
	journalErrors atomic.Uint64
}

var purgeKinds = [3]string{"url", "prefix", "tag"}

// servePurge handles POST /purge, behind withPurgeToken: it applies the
// purge the body names and answers with a popapi.PurgeResult.
func (p *PoP) servePurge(w http.ResponseWriter, r *http.Request) {
	var req popapi.PurgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "outpost: bad purge request: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := p.Purge(req)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errNoService) {
			code = http.StatusNotFound
		}
		http.Error(w, "outpost: "+err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

var errNoService = errors.New("no service has that host")

// Purge removes (or, soft, marks stale) what the request names and
// returns how many objects it touched. A request whose ID was applied
// before does nothing and says so. The purge index lists the objects; the
// deletes and the soft purge's replacements go through the store the index
// wraps, so it follows them.
func (p *PoP) Purge(req popapi.PurgeRequest) (popapi.PurgeResult, error) {
	if prev, ok := p.purges.seen(req.ID); ok && req.ID != "" {
		prev.Duplicate = true
		return prev, nil
	}
	res := popapi.PurgeResult{ID: req.ID, PoP: p.name, Soft: req.Soft}
	rule := journal.Record{At: p.now(), Soft: req.Soft}
	var (
		list func() []string
		kind int
	)
	switch {
	case req.URL != "" && req.Prefix == "" && req.Tag == "":
		keys, err := p.urlKeys(req.URL)
		if err != nil {
			return res, err
		}
		rule.Kind, rule.Keys, kind = "url", keys, 0
		list = func() []string { return p.index.withKey(keys...) }
	case req.Prefix != "" && req.URL == "" && req.Tag == "":
		prefixes, err := p.prefixKeys(req.Prefix)
		if err != nil {
			return res, err
		}
		rule.Kind, rule.Keys, kind = "prefix", prefixes, 1
		list = func() []string { return p.index.withPrefix(prefixes...) }
	case req.Tag != "" && req.URL == "" && req.Prefix == "":
		tag := req.Tag
		rule.Kind, rule.Tag, kind = "tag", tag, 2
		list = func() []string { return p.index.withTag(tag) }
	default:
		return res, errors.New("a purge names exactly one of url, prefix and tag")
	}
	res.Kind = rule.Kind
	keys := p.recordPurge(rule, list)

	now := p.now()
	for _, key := range keys {
		var e *cache.Entry
		if req.Soft {
			e, _ = p.store.Get(key)
		}
		p.store.Delete(key)
		if e != nil && !e.IsVaryIndex() {
			stale := softened(e, now)
			p.store.Set(stale, stale.StorageTTL(now, p.keepFor(e)))
		}
		res.Purged++
	}
	mode := 0
	if req.Soft {
		mode = 1
	}
	p.purgeStats.requests[kind][mode].Add(1)
	p.purgeStats.objects.Add(uint64(res.Purged))
	p.purges.remember(res)
	p.log.Info("purge", "id", req.ID, "kind", res.Kind, "soft", req.Soft, "objects", res.Purged)
	return res, nil
}

// recordPurge logs a purge and lists what it covers as one step against
// fills storing entries (see keep). With a disk tier, the purge is in the
// journal before it is applied, so a restart cannot undo it.
func (p *PoP) recordPurge(rule journal.Record, list func() []string) []string {
	if p.journal != nil {
		if err := p.journal.Append(rule); err != nil {
			p.purgeStats.journalErrors.Add(1)
			p.log.Error("purge not written to the journal; a restart may bring its objects back from disk", "err", err)
		}
	}
	p.purges.gate.Lock()
	defer p.purges.gate.Unlock()
	p.purges.record(rule.Matches)
	return list()
}

// softened returns a copy of e that is stale at now and must be
// revalidated before use (no stale-while-revalidate), but may still serve
// under stale-if-error.
func softened(e *cache.Entry, now time.Time) *cache.Entry {
	c := *e
	c.Lifetime = min(e.Lifetime, e.Age(now))
	c.StaleWhileRevalidate = 0
	if e.StaleIfError > 0 {
		// Keep the moment stale-if-error ends where it was.
		c.StaleIfError = e.Lifetime + e.StaleIfError - c.Lifetime
	}
	return &c
}

// keepFor is the keep window of the service that stored e.
func (p *PoP) keepFor(e *cache.Entry) time.Duration {
	if u, err := url.Parse(strings.SplitN(e.Key, "\x00", 2)[0]); err == nil {
		if svc := p.routes.Load().byHost[u.Hostname()]; svc != nil {
			return svc.keep
		}
	}
	return time.Hour
}

// urlKeys returns the keys of a URL under both schemes.
func (p *PoP) urlKeys(raw string) ([]string, error) {
	u, svc, err := p.parsePurgeURL(raw)
	if err != nil {
		return nil, err
	}
	host := hostOnly(u.Host)
	return []string{
		cache.Key("http", host, u.EscapedPath(), u.RawQuery, svc.query),
		cache.Key("https", host, u.EscapedPath(), u.RawQuery, svc.query),
	}, nil
}

// prefixKeys returns the key prefixes of a URL prefix under both schemes.
func (p *PoP) prefixKeys(raw string) ([]string, error) {
	u, _, err := p.parsePurgeURL(raw)
	if err != nil {
		return nil, err
	}
	host := hostOnly(u.Host)
	rest := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		rest += "?" + u.RawQuery
	}
	return []string{"http://" + host + rest, "https://" + host + rest}, nil
}

// parsePurgeURL parses a purge target and finds its service.
func (p *PoP) parsePurgeURL(raw string) (*url.URL, *service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("bad purge URL %q: %w", raw, err)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("purge URL %q has no host", raw)
	}
	svc := p.routes.Load().byHost[hostOnly(u.Host)]
	if svc == nil {
		return nil, nil, fmt.Errorf("%w: %q", errNoService, hostOnly(u.Host))
	}
	return u, svc, nil
}
