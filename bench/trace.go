package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// Limits of a trace file.
const (
	maxTraceLine = 64 << 10
	// maxTraceSpan bounds the time a trace may cover (ten years), so that
	// offsets fit a time.Duration with room to spare.
	maxTraceSpan = 10 * 365 * 24 * time.Hour
)

// Trace is a recorded sequence of requests, replayed once in order. It is a
// Workload; with timestamps it is Paced.
type Trace struct {
	paths []string
	at    []time.Duration // nil when the trace has no timestamps
	base  string
}

var _ Paced = (*Trace)(nil)

// ParseTrace reads a trace: one request per line, as
//
//	[timestamp] URL [size]
//
// separated by spaces or tabs. Blank lines and lines starting with # are
// skipped. The URL is a path ("/obj/7?x=1") or an absolute http(s) URL, of
// which the path and query are sent (all absolute URLs of a trace must
// share one scheme and host: see Base). The timestamp is in seconds, with
// a fraction if any (Unix time or relative: only the differences count);
// either every request has one or none has. A timestamp earlier than the
// one before it is sent at the earlier request's time. The size asks the
// synthetic origin for an object of that many bytes (it becomes ?size=,
// in the synthetic origin's syntax: 512, 10k, 1m) unless the URL already
// has a size parameter. Errors name the line.
func ParseTrace(r io.Reader) (*Trace, error) {
	t := &Trace{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxTraceLine)
	var first, last float64
	timed := -1 // unknown until the first request
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		var ts float64
		hasTS := false
		if len(fields) >= 2 && !looksLikeURL(fields[0]) {
			v, err := parseTimestamp(fields[0])
			if err != nil {
				return nil, fmt.Errorf("bench: trace line %d: %w", line, err)
			}
			ts, hasTS = v, true
			fields = fields[1:]
		}
		if len(fields) > 2 {
			return nil, fmt.Errorf("bench: trace line %d: want [timestamp] URL [size], got %d fields", line, len(fields)+btoi(hasTS))
		}
		if timed < 0 {
			timed = btoi(hasTS)
		} else if timed != btoi(hasTS) {
			return nil, fmt.Errorf("bench: trace line %d: either every request has a timestamp or none has", line)
		}
		path, base, err := requestTarget(fields[0])
		if err != nil {
			return nil, fmt.Errorf("bench: trace line %d: %w", line, err)
		}
		if base != "" {
			if t.base == "" {
				t.base = base
			} else if base != t.base {
				return nil, fmt.Errorf("bench: trace line %d: %s is not on %s: a trace goes to one host", line, base, t.base)
			}
		}
		if len(fields) == 2 {
			size, err := synthetic.ParseSize(fields[1])
			if err != nil {
				return nil, fmt.Errorf("bench: trace line %d: %w", line, err)
			}
			path = withSize(path, size)
		}
		if hasTS {
			if len(t.paths) == 0 {
				first, last = ts, ts
			}
			if ts < last {
				ts = last
			}
			last = ts
			off := ts - first
			if off > maxTraceSpan.Seconds() {
				return nil, fmt.Errorf("bench: trace line %d: more than %v after the first request", line, maxTraceSpan)
			}
			t.at = append(t.at, time.Duration(math.Round(off*1e9)))
		}
		t.paths = append(t.paths, path)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("bench: trace line %d: longer than %d bytes", line+1, maxTraceLine)
		}
		return nil, fmt.Errorf("bench: reading trace: %w", err)
	}
	if len(t.paths) == 0 {
		return nil, errors.New("bench: the trace has no requests")
	}
	return t, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// looksLikeURL reports whether a field is a URL rather than a timestamp.
func looksLikeURL(s string) bool {
	return strings.HasPrefix(s, "/") || strings.Contains(s, "://")
}

func parseTimestamp(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("bad timestamp %q: want seconds ≥ 0, like 1700000000.25", s)
	}
	return v, nil
}

// requestTarget turns a trace or list URL into the request-target to send
// (path and query, escaped) and, for an absolute URL, its scheme://host.
func requestTarget(s string) (path, base string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("bad URL %q", s)
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil:
		base = u.Scheme + "://" + strings.ToLower(u.Host)
	default:
		return "", "", fmt.Errorf("bad URL %q: want a path (/obj/1) or an http(s) URL", s)
	}
	u.Fragment, u.RawFragment = "", ""
	path = u.RequestURI()
	if u.Opaque != "" || !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("bad URL %q: want a path (/obj/1) or an http(s) URL", s)
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f {
			return "", "", fmt.Errorf("bad URL %q: unescaped space, control or non-ASCII byte", s)
		}
	}
	return path, base, nil
}

// withSize adds ?size= to a path unless its query has a size already.
func withSize(path string, size int64) string {
	p, q, hasQuery := strings.Cut(path, "?")
	if hasQuery {
		if v, err := url.ParseQuery(q); err == nil && v.Has("size") {
			return path
		}
		return p + "?" + q + "&size=" + strconv.FormatInt(size, 10)
	}
	return path + "?size=" + strconv.FormatInt(size, 10)
}

// Len is the number of requests in the trace.
func (t *Trace) Len() int { return len(t.paths) }

// Base is the scheme and host ("https://cdn.example") of the trace's
// absolute URLs, or "" when it has only paths.
func (t *Trace) Base() string { return t.base }

// Timed reports whether the trace has timestamps.
func (t *Trace) Timed() bool { return t.at != nil }

// Next implements Workload: the k-th line, until the trace ends.
func (t *Trace) Next(dst []byte, k uint64, _ time.Duration) ([]byte, bool) {
	if k >= uint64(len(t.paths)) {
		return dst, false
	}
	return append(dst, t.paths[k]...), true
}

// At implements Paced: the k-th request's time after the first one's (0
// for a trace without timestamps).
func (t *Trace) At(k uint64) time.Duration {
	if t.at == nil || k >= uint64(len(t.at)) {
		return 0
	}
	return t.at[k]
}

// Name implements Workload.
func (t *Trace) Name() string {
	if t.Timed() {
		return fmt.Sprintf("trace of %d requests over %v", len(t.paths), t.at[len(t.at)-1].Round(time.Millisecond))
	}
	return fmt.Sprintf("trace of %d requests", len(t.paths))
}

// Loop returns a Workload that cycles through the trace's requests without
// end, ignoring timestamps: a URL list.
func (t *Trace) Loop() Workload { return loop{t} }

type loop struct{ t *Trace }

func (l loop) Next(dst []byte, k uint64, _ time.Duration) ([]byte, bool) {
	return append(dst, l.t.paths[k%uint64(len(l.t.paths))]...), true
}

func (l loop) Name() string { return fmt.Sprintf("list of %d URLs", len(l.t.paths)) }
