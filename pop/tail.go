package pop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

// This file is the live tail: GET /tail on the admin listener streams the
// PoP's requests as they finish, one line each, those matching a filter
// (as `varnishlog -q` does), whether or not the access log is on. Lines
// reach subscribers through the access log's writer goroutine, never from
// the request path: a request only queues its record (accesslog.go). Every
// bound has a default and a metric:
//
//   - maxTailSubscribers (8) streams at once; more are answered 503 and
//     counted in outpost_pop_tail_refused_total.
//   - tailBuffer (1024) lines wait per subscriber; when its client reads
//     more slowly than requests come, the lines that find the buffer full
//     are dropped, counted in outpost_pop_tail_dropped_lines_total, and the
//     stream says how many before its next line.
//   - maxTailQuery (1024) bytes of filter, of at most maxTailTerms (32)
//     comparisons; regular expressions are RE2 (linear time).
//
// Hits the HTTP/1.1 fast path answers are in the tail too, with the same
// fields as net/http's, so every filter matches them alike (fastWant).

// Bounds of the live tail.
const (
	maxTailSubscribers = 8
	tailBuffer         = 1024
	maxTailQuery       = 1024
	maxTailTerms       = 32
)

// tailHub is the set of open tails.
type tailHub struct {
	mu     sync.Mutex
	subs   map[*tailSub]struct{}
	closed bool
	n      atomic.Int32 // len(subs), read on the request path

	lines   atomic.Uint64 // lines sent to subscribers
	dropped atomic.Uint64 // lines dropped for slow subscribers
	refused atomic.Uint64 // tails refused: too many open
}

// tailSub is one open tail.
type tailSub struct {
	filter  *tailFilter
	format  string
	lines   chan []byte
	dropped atomic.Uint64 // dropped since the stream last said so
	done    chan struct{} // closed when the hub closes
}

func newTailHub() *tailHub { return &tailHub{subs: make(map[*tailSub]struct{})} }

// active reports whether a tail is open.
func (h *tailHub) active() bool { return h.n.Load() > 0 }

// errTailFull is the answer to a tail past maxTailSubscribers.
var errTailFull = errors.New("pop: too many tails open")

// subscribe opens a tail.
func (h *tailHub) subscribe(f *tailFilter, format string) (*tailSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("pop: shutting down")
	}
	if len(h.subs) >= maxTailSubscribers {
		h.refused.Add(1)
		return nil, errTailFull
	}
	s := &tailSub{filter: f, format: format, lines: make(chan []byte, tailBuffer), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	return s, nil
}

// unsubscribe closes a tail.
func (h *tailHub) unsubscribe(s *tailSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.n.Store(int32(len(h.subs)))
	}
}

// publish offers r to every tail whose filter it matches. Only the access
// log's writer goroutine calls it.
func (h *tailHub) publish(r *accessRecord, l *accessLog) {
	if !h.active() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.filter.match(r) {
			continue
		}
		line := l.format1(nil, r, s.format)
		select {
		case s.lines <- line:
			h.lines.Add(1)
		default:
			s.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
}

// close ends every tail, for Close.
func (h *tailHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		close(s.done)
		delete(h.subs, s)
	}
	h.n.Store(0)
}

// serveTail is GET /tail: q is the filter (tailFilter's syntax; none
// matches every request), format is json (the default) or combined, n
// ends the stream after that many lines. It needs the purge token, as
// POST /purge does: the lines show clients' addresses and URLs.
func (p *PoP) serveTail(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := p.routes.Load().purgeToken
	if token == "" || !validBearer(r.Header.Get("Authorization"), token) {
		p.access.tail.refused.Add(1)
		if token == "" {
			http.Error(w, "outpost: tail is disabled: no purge.token in the configuration (the tail needs it, as purge does)", http.StatusForbidden)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="outpost tail"`)
		http.Error(w, "outpost: tail needs Authorization: Bearer <purge.token>", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	switch format {
	case "":
		format = config.AccessLogJSON
	case config.AccessLogJSON, config.AccessLogCombined:
	default:
		http.Error(w, fmt.Sprintf("outpost: tail: unknown format %q (want json or combined)", format), http.StatusBadRequest)
		return
	}
	limit := uint64(0)
	if s := q.Get("n"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			http.Error(w, fmt.Sprintf("outpost: tail: n=%q: want a positive number of lines", s), http.StatusBadRequest)
			return
		}
		limit = n
	}
	filter, err := parseTailFilter(q.Get("q"))
	if err != nil {
		http.Error(w, "outpost: tail: "+err.Error(), http.StatusBadRequest)
		return
	}
	sub, err := p.access.tail.subscribe(filter, format)
	if err != nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("outpost: tail: %v (at most %d)", err, maxTailSubscribers), http.StatusServiceUnavailable)
		return
	}
	defer p.access.tail.unsubscribe(sub)

	if format == config.AccessLogJSON {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush() // the client knows the tail is open

	// The stream ends with the client, when the PoP closes, after n lines,
	// or once the PoP has drained: the admin server's shutdown waits for
	// its requests, and a tail never ends by itself.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var drainEnd time.Time
	sent := uint64(0)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.done:
			return
		case <-tick.C:
			if !p.draining.Load() {
				continue
			}
			if drainEnd.IsZero() {
				drainEnd = time.Now()
				if !p.noDrain {
					drainEnd = drainEnd.Add(p.cfg.Drain)
				}
			}
			if !time.Now().Before(drainEnd) {
				return
			}
		case line := <-sub.lines:
			if n := sub.dropped.Swap(0); n > 0 {
				if format == config.AccessLogJSON {
					fmt.Fprintf(w, "{\"dropped\":%d}\n", n)
				} else {
					fmt.Fprintf(w, "# dropped %d lines: the tail read more slowly than requests came\n", n)
				}
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			sent++
			// Write what else is waiting, then flush once.
			for more := true; more && (limit == 0 || sent < limit); {
				select {
				case line := <-sub.lines:
					if _, err := w.Write(line); err != nil {
						return
					}
					sent++
				default:
					more = false
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
			if limit > 0 && sent >= limit {
				return
			}
		}
	}
}

// tailFilter is a parsed filter: alternatives (or) of conjunctions (and)
// of comparisons. The syntax, after varnishlog's -q:
//
//	status >= 500
//	cache_status ~ "fwd=miss" and path ~ ^/obj/
//	host = demo.example and not method = GET or total_ms > 100
//
// A comparison is FIELD OP VALUE; OP is = != ~ !~ (a regular expression,
// RE2) or, for numbers, < <= > >=. VALUE is a word or a double-quoted Go
// string. Comparisons side by side are and-ed; "and" binds tighter than
// "or"; "not" negates the comparison after it. The fields are those of a
// JSON line: client, method, host, path, proto, status, bytes,
// cache_status, request_id, user_agent, referer, origin_ms, ttfb_ms,
// total_ms. The empty filter matches every request.
type tailFilter struct {
	any [][]tailTerm
}

// tailTerm is one comparison.
type tailTerm struct {
	not   bool
	field string
	op    string
	str   string
	num   float64
	re    *regexp.Regexp
}

// tailFields are the fields a filter may name: true for numbers.
var tailFields = map[string]bool{
	"client": false, "method": false, "host": false, "path": false, "proto": false,
	"cache_status": false, "request_id": false, "user_agent": false, "referer": false,
	"status": true, "bytes": true, "origin_ms": true, "ttfb_ms": true, "total_ms": true,
}

// parseTailFilter parses q (see tailFilter).
func parseTailFilter(q string) (*tailFilter, error) {
	if len(q) > maxTailQuery {
		return nil, fmt.Errorf("filter: longer than %d bytes", maxTailQuery)
	}
	f := &tailFilter{}
	var conj []tailTerm
	terms := 0
	rest := q
	not := false
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		word := leadingWord(rest)
		switch word {
		case "and":
			rest = rest[len(word):]
			continue
		case "or":
			if len(conj) == 0 || not {
				return nil, errors.New(`filter: "or" needs a comparison on each side`)
			}
			f.any = append(f.any, conj)
			conj = nil
			rest = rest[len(word):]
			continue
		case "not":
			not = !not
			rest = rest[len(word):]
			continue
		}
		t, after, err := parseTailTerm(rest)
		if err != nil {
			return nil, err
		}
		if terms++; terms > maxTailTerms {
			return nil, fmt.Errorf("filter: more than %d comparisons", maxTailTerms)
		}
		t.not, not = not, false
		conj = append(conj, t)
		rest = after
	}
	if not {
		return nil, errors.New(`filter: "not" needs a comparison after it`)
	}
	if len(conj) == 0 && len(f.any) > 0 {
		return nil, errors.New(`filter: "or" needs a comparison on each side`)
	}
	if len(conj) > 0 {
		f.any = append(f.any, conj)
	}
	return f, nil
}

// leadingWord is the run of letters, digits and '_' at s's start.
func leadingWord(s string) string {
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	return s[:i]
}

// parseTailTerm parses the comparison at s's start and returns the rest.
func parseTailTerm(s string) (tailTerm, string, error) {
	var t tailTerm
	t.field = leadingWord(s)
	numeric, ok := tailFields[t.field]
	if !ok {
		if t.field == "" {
			return t, "", fmt.Errorf("filter: want a field name at %q", clipFilter(s))
		}
		return t, "", fmt.Errorf("filter: unknown field %q (want one of client, method, host, path, proto, status, bytes, cache_status, request_id, user_agent, referer, origin_ms, ttfb_ms, total_ms)", t.field)
	}
	s = strings.TrimLeft(s[len(t.field):], " \t")
	for _, op := range []string{"!=", "!~", "<=", ">=", "=", "~", "<", ">"} {
		if strings.HasPrefix(s, op) {
			t.op = op
			break
		}
	}
	if t.op == "" {
		return t, "", fmt.Errorf("filter: want an operator (= != ~ !~ < <= > >=) after %s", t.field)
	}
	s = strings.TrimLeft(s[len(t.op):], " \t")
	var value string
	if strings.HasPrefix(s, `"`) {
		quoted, err := strconv.QuotedPrefix(s)
		if err != nil {
			return t, "", fmt.Errorf("filter: bad quoted value at %q", clipFilter(s))
		}
		value, _ = strconv.Unquote(quoted)
		s = s[len(quoted):]
	} else {
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		value, s = s[:end], s[end:]
		if value == "" {
			return t, "", fmt.Errorf("filter: want a value after %s %s", t.field, t.op)
		}
	}
	switch t.op {
	case "~", "!~":
		re, err := regexp.Compile(value)
		if err != nil {
			return t, "", fmt.Errorf("filter: %s %s: %v", t.field, t.op, err)
		}
		t.re = re
	case "<", "<=", ">", ">=":
		if !numeric {
			return t, "", fmt.Errorf("filter: %s is text: compare it with = != ~ or !~", t.field)
		}
		fallthrough
	default:
		t.str = value
		if numeric {
			n, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return t, "", fmt.Errorf("filter: %s %s %q: want a number", t.field, t.op, value)
			}
			t.num = n
		}
	}
	return t, s, nil
}

func clipFilter(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// match reports whether r passes the filter.
func (f *tailFilter) match(r *accessRecord) bool {
	if len(f.any) == 0 {
		return true
	}
	for _, conj := range f.any {
		ok := true
		for i := range conj {
			if conj[i].match(r) == conj[i].not {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// match compares one field of r.
func (t *tailTerm) match(r *accessRecord) bool {
	if tailFields[t.field] {
		var v float64
		switch t.field {
		case "status":
			v = float64(r.status)
		case "bytes":
			v = float64(r.bytes)
		case "origin_ms":
			v = millis(r.origin)
		case "ttfb_ms":
			v = millis(r.ttfb)
		case "total_ms":
			v = millis(r.total)
		}
		switch t.op {
		case "=":
			return v == t.num
		case "!=":
			return v != t.num
		case "<":
			return v < t.num
		case "<=":
			return v <= t.num
		case ">":
			return v > t.num
		case ">=":
			return v >= t.num
		}
		return t.re.MatchString(strconv.FormatFloat(v, 'f', -1, 64)) == (t.op == "~")
	}
	var v string
	switch t.field {
	case "client":
		v = r.client
	case "method":
		v = r.method
	case "host":
		v = r.host
	case "path":
		v = r.path
	case "proto":
		v = r.proto
	case "cache_status":
		v = r.cacheStatus
	case "request_id":
		v = r.requestID
	case "user_agent":
		v = r.userAgent
	case "referer":
		v = r.referer
	}
	switch t.op {
	case "=":
		return v == t.str
	case "!=":
		return v != t.str
	}
	return t.re.MatchString(v) == (t.op == "~")
}

// String is the filter as the parser understood it, for errors and tests.
func (f *tailFilter) String() string {
	var alts []string
	for _, conj := range f.any {
		var parts []string
		for _, t := range conj {
			s := ""
			if t.not {
				s = "not "
			}
			v, _ := json.Marshal(t.str)
			if t.re != nil {
				v, _ = json.Marshal(t.re.String())
			}
			parts = append(parts, s+t.field+" "+t.op+" "+string(v))
		}
		alts = append(alts, strings.Join(parts, " and "))
	}
	return strings.Join(alts, " or ")
}
